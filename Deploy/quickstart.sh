#!/usr/bin/env bash
# The main job: installs what is missing, builds DiffusionFarm in release, and runs
# a whole farm on this machine (a PostgreSQL cluster in farm-data/, a coordinator
# and one worker), renders a batch of prompts with the bundled `demo` model (64x64
# scenes of coloured shapes), shows progress, writes the PNGs to farm-output/ and
# shuts the farm down. Safe to run again: it reuses the cluster and adds a new job.
#
#   Deploy/quickstart.sh                                   # the demo model and its prompts
#   Deploy/quickstart.sh --model ~/sd15.safetensors        # your own model (or FARM_MODEL=...)
#       [--prompt TEXT] [--count N] [--size 512] [--steps 20]
set -euo pipefail
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
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "quickstart: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ -n "$model" ] && [ ! -e "$model" ]; then echo "quickstart: no model at $model" >&2; exit 2; fi

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
echo "  logs:     $data/coordinator.log, $data/worker.log, $data/postgres.log"
echo "  database: $data/pg (stopped; this script starts it again next time)"
