#!/usr/bin/env bash
# The main job: installs what is missing, builds DiffusionFarm in release, and runs
# a whole farm on this machine (a PostgreSQL cluster in farm-data/, a coordinator
# and one worker), renders a small job, and writes its images to farm-output/.
# Safe to run again: it reuses the cluster and adds a new job.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
[ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH"

data="$root/farm-data"
output="$root/farm-output"
port="${FARM_PG_PORT:-54329}"
endpoint="${FARM_LISTEN:-tcp://127.0.0.1:55555}"
prompt="${FARM_PROMPT:-a small red circle at the top left on a blue background}"
count="${FARM_COUNT:-4}"

Deploy/install-deps.sh
echo "building farm (release)..."
swift build -c release --product farm 2>&1 | tail -1
farm="$(swift build -c release --show-bin-path)/farm"

mkdir -p "$data" "$output"
bindir=$(pg_config --bindir 2>/dev/null || true)
[ -x "$bindir/initdb" ] || bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

# PostgreSQL refuses to run as root: run it as the postgres system user then.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@"; else "$@"; fi
}
if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$data"; fi
if [ ! -f "$data/pg/PG_VERSION" ]; then
    echo "creating a PostgreSQL cluster in $data/pg"
    as_pg "$bindir/initdb" -D "$data/pg" -U farm --auth=trust -E UTF8 >/dev/null
fi
if ! as_pg "$bindir/pg_ctl" -D "$data/pg" status >/dev/null 2>&1; then
    as_pg "$bindir/pg_ctl" -D "$data/pg" -l "$data/postgres.log" -w \
        -o "-p $port -k $data -h 127.0.0.1" start >/dev/null
fi
database="host=127.0.0.1 port=$port user=farm dbname=postgres"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    as_pg "$bindir/pg_ctl" -D "$data/pg" -m fast stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$farm" migrate --database "$database"
"$farm" coordinator --database "$database" --listen "$endpoint" >"$data/coordinator.log" 2>&1 &
pids+=($!)
"$farm" worker --coordinator "$endpoint" --id quickstart-worker >"$data/worker.log" 2>&1 &
pids+=($!)

job=$("$farm" submit --database "$database" --name quickstart --model test-pattern \
    --prompt "$prompt" --count "$count" --width 256 --height 256 --steps 8)
echo "submitted job $job ($count images)"
"$farm" status --database "$database" "$job" --wait 300
"$farm" fetch --database "$database" "$job" --out "$output"
echo
echo "done: job $job rendered $count image(s) with the test-pattern model"
echo "  images:   $output/$job-*.png"
echo "  logs:     $data/coordinator.log, $data/worker.log, $data/postgres.log"
echo "  database: $data/pg (stopped; this script starts it again next time)"
