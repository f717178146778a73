#!/usr/bin/env bash
# The main job: installs what is missing, builds DiffusionFarm in release, and runs
# a whole farm on this machine (a PostgreSQL cluster in farm-data/, a coordinator
# and one worker), renders a batch of prompts with the bundled `demo` model (64x64
# scenes of coloured shapes), shows progress, writes the PNGs to farm-output/ and
# shuts the farm down. Safe to run again: it reuses the cluster and adds a new job.
# As root, PostgreSQL runs as the postgres user; when that user cannot reach farm-data/ (a clone
# under /root, or any folder with mode 700 above it) the cluster lives in
# /var/lib/diffusionfarm-quickstart/<hash of this folder's path>/ instead (the script says where).
#
#   Deploy/quickstart.sh                                   # the demo model and its prompts
#   Deploy/quickstart.sh --model ~/sd15.safetensors        # your own model (or FARM_MODEL=...)
#       [--prompt TEXT] [--count N] [--size 512] [--steps 20]
#   FARM_BIN=/path/to/farm Deploy/quickstart.sh            # a prebuilt farm (its .resources beside it): no swift build
# Also FARM_PG_PORT (54329) and FARM_LISTEN (tcp://127.0.0.1:55555) for the ports it uses.
set -euo pipefail
farm_bin=${FARM_BIN:+$(realpath -m "$FARM_BIN")} # before cd: a relative FARM_BIN names a file from here
cd "$(dirname "$0")/.."
root=$(pwd)
[ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH"

data="$root/farm-data"
output="$root/farm-output"
port="${FARM_PG_PORT:-54329}"
endpoint="${FARM_LISTEN:-tcp://127.0.0.1:55555}"
model="${FARM_MODEL:-}"
prompt="${FARM_PROMPT:-}"
count="${FARM_COUNT:-}"
size="${FARM_SIZE:-}"
steps="${FARM_STEPS:-20}"
while [ $# -gt 0 ]; do
    case "$1" in
        --model) model="$2"; shift 2 ;;
        --prompt) prompt="$2"; shift 2 ;;
        --count) count="$2"; shift 2 ;;
        --size) size="$2"; shift 2 ;;
        --steps) steps="$2"; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "quickstart: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ -n "$model" ] && [ ! -e "$model" ]; then echo "quickstart: no model at $model" >&2; exit 2; fi

Deploy/install-deps.sh
if [ -n "$farm_bin" ]; then
    [ -x "$farm_bin" ] || { echo "quickstart: FARM_BIN=$FARM_BIN is not an executable" >&2; exit 2; }
    farm=$farm_bin
    echo "using $farm (FARM_BIN: not building)"
else
    echo "building farm (release)..."
    swift build -c release --product farm 2>&1 | tail -1
    farm="$(swift build -c release --show-bin-path)/farm"
fi

mkdir -p "$data" "$output"
bindir=$(pg_config --bindir 2>/dev/null || true)
[ -x "$bindir/initdb" ] || bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

# PostgreSQL refuses to run as root: run it as the postgres system user then (from /: its tools
# return to the current folder, which postgres may not be allowed to enter).
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then (cd / && setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@"); else "$@"; fi
}
# The cluster (pg/), its log and its socket live in $pghome: farm-data/, unless we are root and the
# postgres user cannot reach it (a folder only root may enter above it). Then a folder under
# /var/lib named by this checkout's path, so that the next run finds the same cluster.
pghome=$data
pgsock=$data
if [ "$(id -u)" -eq 0 ]; then
    if as_pg test -x "$data"; then
        chown postgres:postgres "$data"
    else
        pghome="/var/lib/diffusionfarm-quickstart/$(printf '%s' "$root" | sha256sum | cut -c1-12)"
        pgsock="$pghome/socket"
        install -d -m 755 /var/lib/diffusionfarm-quickstart "$pghome"
        install -d -o postgres -g postgres -m 700 "$pghome/pg"
        install -d -o postgres -g postgres -m 755 "$pgsock"
        [ -e "$pghome/postgres.log" ] || install -o postgres -g postgres -m 640 /dev/null "$pghome/postgres.log"
        echo "$root" >"$pghome/checkout" # whose cluster this is, for whoever cleans /var/lib up
        echo "note: the postgres user cannot enter $data (a folder above it is private to root);"
        echo "      the PostgreSQL cluster and its log are kept in $pghome instead"
    fi
fi
pglog="$pghome/postgres.log"
echo "data: keys and daemon logs in $data, the PostgreSQL cluster in $pghome/pg, images in $output"
if [ ! -f "$pghome/pg/PG_VERSION" ]; then
    echo "creating a PostgreSQL cluster in $pghome/pg"
    as_pg "$bindir/initdb" -D "$pghome/pg" -U farm --auth=trust -E UTF8 >/dev/null
fi
if ! as_pg "$bindir/pg_ctl" -D "$pghome/pg" status >/dev/null 2>&1; then
    as_pg "$bindir/pg_ctl" -D "$pghome/pg" -l "$pglog" -w \
        -o "-p $port -k $pgsock -h 127.0.0.1" start >/dev/null
fi
database="host=127.0.0.1 port=$port user=farm dbname=postgres"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    as_pg "$bindir/pg_ctl" -D "$pghome/pg" -m fast stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$farm" migrate --database "$database"
# The ZeroMQ link is CURVE-encrypted: one key pair per daemon, the worker's key on the allow-list.
[ -f "$data/coordinator.key" ] || "$farm" keys generate "$data/coordinator.key" >/dev/null
[ -f "$data/worker.key" ] || "$farm" keys generate "$data/worker.key" >/dev/null
"$farm" keys allow "$data/worker.key" --name quickstart-worker --database "$database" >/dev/null
link=(--curve-key "$data/worker.key" --coordinator-key "$data/coordinator.key")
"$farm" coordinator --database "$database" --listen "$endpoint" --curve-key "$data/coordinator.key" >"$data/coordinator.log" 2>&1 &
pids+=($!)
if [ -n "$model" ]; then
    # A worker serves every model in a folder, named by file name without extension.
    model_path=$(cd "$(dirname "$model")" && pwd)/$(basename "$model")
    model_name=$(basename "${model_path%.*}")
    [ -d "$model_path" ] && model_name=$(basename "$model_path")
    "$farm" worker --coordinator "$endpoint" "${link[@]}" --id quickstart-worker --engine diffusion \
        --models "$(dirname "$model_path")" >"$data/worker.log" 2>&1 &
    pids+=($!)
    job=$("$farm" submit --database "$database" --name quickstart --model "$model_name" \
        --prompt "${prompt:-a lighthouse on a cliff at sunset, oil painting}" --count "${count:-4}" \
        --width "${size:-512}" --height "${size:-512}" --steps "$steps" --sampler dpmpp_2m_karras)
else
    model_name=demo
    "$farm" worker --coordinator "$endpoint" "${link[@]}" --id quickstart-worker --engine diffusion >"$data/worker.log" 2>&1 &
    pids+=($!)
    if [ -n "$prompt" ]; then
        job=$("$farm" submit --database "$database" --name quickstart --model demo --prompt "$prompt" \
            --count "${count:-4}" --width 64 --height 64 --steps "$steps" --cfg 5 --sampler dpmpp_2m)
    else
        job=$("$farm" submit --database "$database" --name quickstart Deploy/demo-prompts.yaml)
    fi
fi
echo "submitted job $job with the $model_name model; progress:"
"$farm" watch --database "$database" "$job"
"$farm" status --database "$database" "$job" --wait 600
"$farm" fetch --database "$database" "$job" --out "$output"
echo
echo "done: job $job rendered with the $model_name model"
echo "  images:   $output/$job-*.png"
echo "  logs:     $data/coordinator.log, $data/worker.log, $pglog"
echo "  database: $pghome/pg (stopped; this script starts it again next time)"
