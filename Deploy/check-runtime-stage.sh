#!/usr/bin/env bash
# Checks the container image's runtime stage without a Docker engine: a missing shared library
# (libcurl4 once) only shows when the image starts. Builds a Debian root file system from exactly
# the packages the runtime stage of Deploy/container/Dockerfile installs (read from the Dockerfile,
# which stays the one owner of the list), adds what the stage copies and its user, and runs
# `farm --version` and a demo render in it with chroot, as that user, with the stage's ENV.
# Needs root, mmdebstrap (Deploy/install-deps.sh) and the Debian mirror this machine uses; takes
# about a minute, most of it downloading and unpacking the packages (nothing is cached).
#
#   Deploy/check-runtime-stage.sh [FARM_BINARY]   # default: $(swift build -c release --show-bin-path)/farm
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH"
start=$SECONDS
fail() { echo "check-runtime-stage: FAILED: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (mmdebstrap and chroot)"

farm=$(realpath "${1:-$(swift build -c release --show-bin-path)/farm}")
resources="$(dirname "$farm")/DiffusionFarm_StableDiffusion.resources"
[ -x "$farm" ] && [ -d "$resources" ] || fail "no farm binary with its resource bundle at $farm"
# The Swift runtime the binary was linked against (the build stage copies the swift image's).
swiftlibs=$(ldd "$farm" | awk '$1 == "libswiftCore.so" { print $3 }' | xargs -r dirname)
[ -d "$swiftlibs" ] || fail "cannot find the Swift runtime libraries $farm uses"

# The runtime stage, continuation lines joined.
stage=$(awk '/^FROM /{ stage = ($NF == "runtime") } stage' Deploy/container/Dockerfile |
    sed -e ':a' -e '/\\$/{N; s/\\\n//; ta' -e '}')
base=$(awk '/^FROM /{ print $2 }' <<<"$stage")
[ "$base" = "debian:bookworm-slim" ] || fail "the runtime stage is based on $base; this check builds bookworm (update it)"
packages=$(grep -o 'apt-get install[^&]*' <<<"$stage" | tr -s ' ' '\n' | grep -v -e '^-' -e '^apt-get$' -e '^install$' -e '^$' | paste -sd,)
useradd=$(grep -o 'useradd[^&]*' <<<"$stage")
env=$(awk '$1 == "ENV" { $1 = ""; print }' <<<"$stage")
user=$(awk '$1 == "USER" { print $2 }' <<<"$stage")
workdir=$(awk '$1 == "WORKDIR" { print $2 }' <<<"$stage")
copies=$(awk '$1 == "COPY" { print $(NF-1), $NF }' <<<"$stage")
[ -n "$packages" ] && [ -n "$useradd" ] && [ -n "$user" ] || fail "cannot read the runtime stage of Deploy/container/Dockerfile"
echo "runtime stage packages: $packages"

# The bookworm index targets this machine's apt uses (its mirror, no third-party repositories);
# with none, mmdebstrap takes deb.debian.org with updates and security.
mirrors=()
while read -r uri suite; do mirrors+=("deb $uri $suite main"); done < <(
    apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Identifier: Packages' |
        awk '$2 ~ /^bookworm(-updates|-security)?$/' | sort -u)
# A mirror that serves snapshots has old Release files: check their dates as this machine's apt does.
valid_until=
eval "$(apt-config shell valid_until Acquire::Check-Valid-Until)"
aptopts=()
[ -z "$valid_until" ] || aptopts+=(--aptopt="Acquire::Check-Valid-Until \"$valid_until\"")

tmp=$(mktemp -d)
cleanup() {
    # chroot's mounts lived in their own namespace; never delete through a mount that outlived it.
    if grep -q " $tmp/" /proc/self/mountinfo; then echo "check-runtime-stage: mounts left under $tmp; not removing it" >&2
    else rm -rf --one-file-system "$tmp"; fi
}
trap cleanup EXIT
chmod 755 "$tmp" # apt downloads as _apt
rootfs="$tmp/rootfs"
timeout 600 mmdebstrap --quiet --variant=minbase --include="$packages" \
    "${aptopts[@]}" \
    bookworm "$rootfs" "${mirrors[@]}" || fail "mmdebstrap could not install $packages"
echo "root file system built in $((SECONDS - start)) s"

# What the stage copies: the Swift runtime, and the build stage's /out (binary, bundle, migrations).
while read -r source dest; do
    case "$source" in
        /usr/lib/swift/linux/*.so) mkdir -p "$rootfs$dest" && cp "$swiftlibs"/*.so "$rootfs$dest" ;;
        /out/) mkdir -p "$rootfs$dest" && cp "$farm" "$rootfs$dest/farm" && cp -R "$resources" Migrations "$rootfs$dest" ;;
        *) fail "the runtime stage copies $source, which this check does not know (update it)" ;;
    esac
done <<<"$copies"
# shellcheck disable=SC2086 # the Dockerfile's command, split as the shell in RUN splits it
chroot "$rootfs" $useradd
ids="$(chroot "$rootfs" id -u "$user"):$(chroot "$rootfs" id -g "$user")"

# As the container would: its own /proc, the stage's user, ENV and WORKDIR, nothing from this shell.
in_image() {
    # shellcheck disable=SC2086 # ENV's NAME=VALUE words
    timeout 300 unshare --mount --pid --fork --kill-child --mount-proc="$rootfs/proc" \
        chroot --userspec="$ids" "$rootfs" env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$workdir" $env \
        env -C "$workdir" "$@"
}
missing=$(in_image ldd /opt/diffusionfarm/farm | grep 'not found' || true)
[ -z "$missing" ] || fail "farm cannot load in the runtime stage:"$'\n'"$missing"
version=$(in_image /opt/diffusionfarm/farm --version 2>&1) || fail "farm --version: $version"
case "$version" in DiffusionFarm*) ;; *) fail "farm --version printed: $version" ;; esac
said=$(in_image /opt/diffusionfarm/farm render --model demo --prompt "a red circle" --steps 2 --out /tmp/x.png 2>&1) ||
    fail "farm render: $said"
[ -s "$rootfs/tmp/x.png" ] || fail "farm render wrote no PNG"
# The image has the Vulkan loader but no driver (a GPU host supplies its own): farm devices lists the CPU and says why.
devices=$(in_image /opt/diffusionfarm/farm devices 2>&1) || fail "farm devices: $devices"
grep -q "^cpu " <<<"$devices" || fail "farm devices did not list the CPU: $devices"
echo "check-runtime-stage: OK: farm starts and renders in the runtime stage ($((SECONDS - start)) s)"
