#!/usr/bin/env bash
# Checks the quick start where people often run it: as root, in a clone inside a folder only root
# may enter (/root/...), which the postgres user that runs the cluster cannot reach. Clones this
# repository's HEAD (what CI tests) into a private temporary folder, runs Deploy/quickstart.sh there
# twice with a prebuilt farm on free ports, and checks that each run rendered its PNGs, that the
# second reused the first one's cluster, and that nothing is left running. About 15 seconds.
#
#   Deploy/check-quickstart-private-dir.sh [FARM_BINARY]   # default: $(swift build -c release --show-bin-path)/farm
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
[ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH"
start=$SECONDS
fail() { echo "check-quickstart-private-dir: FAILED: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (the case it checks is root's)"
farm=$(realpath -m "${1:-$(swift build -c release --show-bin-path)/farm}")
[ -x "$farm" ] || fail "no farm binary at $farm"
as_pg() { setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@"; }

# A port nothing listens on, below the kernel's ephemeral range (no outgoing connection holds it).
free_port() {
    local port
    for _ in $(seq 100); do
        port=$((20000 + RANDOM % 12000))
        [ "$port" != "${1:-}" ] || continue
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
    done
    fail "found no free port"
}
pg_port=$(free_port)
zmq_port=$(free_port "$pg_port")

tmp=$(mktemp -d) # mode 700, owned by root: postgres cannot enter it, as with /root
clone="$tmp/DiffusionFarm"
# Where the quick start keeps the cluster when postgres cannot reach the clone (its rule).
pghome="/var/lib/diffusionfarm-quickstart/$(printf '%s' "$clone" | sha256sum | cut -c1-12)"
bindir=$(pg_config --bindir 2>/dev/null || true)
[ -x "$bindir/pg_ctl" ] || bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
cleanup() {
    # The quick start stops its cluster and daemons as it exits; this is for one killed on its timeout.
    [ ! -f "$pghome/pg/postmaster.pid" ] || as_pg "$bindir/pg_ctl" -D "$pghome/pg" -m immediate stop >/dev/null 2>&1 || true
    for pid in $(pgrep -f -- "$tmp/" || true); do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf --one-file-system "$tmp" "$pghome"
    rmdir /var/lib/diffusionfarm-quickstart 2>/dev/null || true
}
trap cleanup EXIT
! as_pg test -x "$tmp" || fail "postgres can enter $tmp, so this would check nothing"
git -c safe.directory="$repo" -c advice.detachedHead=false clone -q "$repo" "$clone"

# One quick start, two small pictures (--prompt: the default batch ignores --count and --steps).
quickstart() {
    local log="$tmp/run$1.log" rc=0
    timeout -k 10 300 env -u FARM_MODEL -u FARM_SIZE FARM_BIN="$farm" FARM_PG_PORT="$pg_port" \
        FARM_LISTEN="tcp://127.0.0.1:$zmq_port" "$clone/Deploy/quickstart.sh" \
        --prompt "a small red circle at the top left on a blue background" --count 2 --steps 4 >"$log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        tail -n 30 "$log" "$clone"/farm-data/*.log "$pghome/postgres.log" >&2 2>/dev/null || true
        fail "run $1 of the quick start exited $rc (log above)"
    fi
    pngs=$(find "$clone/farm-output" -name '*.png' -size +0 | wc -l)
    [ "$pngs" -eq $((2 * $1)) ] || fail "after run $1, farm-output/ holds $pngs PNGs, not $((2 * $1))"
    grep -qF "database: $pghome/pg (stopped" "$log" || fail "run $1 did not name $pghome/pg as the database"
    [ ! -f "$pghome/pg/postmaster.pid" ] || fail "run $1 left PostgreSQL running"
    ! pgrep -f -- "$tmp/" >/dev/null || fail "run $1 left processes running: $(pgrep -af -- "$tmp/")"
}
quickstart 1
grep -q "creating a PostgreSQL cluster in $pghome/pg" "$tmp/run1.log" || fail "run 1 did not create its cluster in $pghome/pg"
quickstart 2
! grep -q "creating a PostgreSQL cluster" "$tmp/run2.log" || fail "run 2 made a new cluster instead of reusing the first"
echo "check-quickstart-private-dir: OK: the quick start ran twice as root in a private folder ($((SECONDS - start)) s)"
