#!/usr/bin/env bash
# Installs the Debian packages DiffusionFarm builds and runs with, if any are missing.
# Safe to run again: it installs nothing when everything is present.
#   Deploy/install-deps.sh [--test]   # --test: also what Deploy/test.sh's checks use
set -euo pipefail

# libvulkan-dev: the Vulkan headers CVulkan builds with (the loader itself is opened at run time).
packages=(libopenblas-dev libzmq3-dev libsodium-dev libpq-dev libpng-dev postgresql pkg-config libvulkan-dev)
# check-runtime-stage.sh builds the container's runtime stage with mmdebstrap; gpg lets
# mmdebstrap give the chroot's sources the archive key. The dashboard's browser test drives
# Debian's headless Chromium through chromium-driver with Selenium (python3-selenium), and
# needs a font to draw text in its screenshots. The Vulkan tests run on Mesa's lavapipe (a Vulkan 1.3 driver on
# the CPU, in mesa-vulkan-drivers), and check the committed SPIR-V against glslc.
if [ "${1:-}" = "--test" ]; then
    packages+=(mmdebstrap gpg chromium chromium-driver python3 python3-selenium fonts-dejavu-core)
    packages+=(mesa-vulkan-drivers glslc vulkan-tools)
fi

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    # The farm runs its own PostgreSQL clusters; keep the package from creating and
    # starting a system-wide one on port 5432.
    if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
        as_root mkdir -p /etc/postgresql-common
        echo "create_main_cluster = false" | as_root tee /etc/postgresql-common/createcluster.conf >/dev/null
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A prebuilt binary (the quick start's FARM_BIN) needs no toolchain.
if [ -z "${FARM_BIN:-}" ] && ! command -v swift >/dev/null 2>&1; then
    if [ -x /opt/swift/usr/bin/swift ]; then
        echo "note: add /opt/swift/usr/bin to PATH" >&2
    else
        echo "error: the Swift toolchain (6.0 or newer) is not installed; get it from swift.org and put it on PATH" >&2
        exit 1
    fi
fi
