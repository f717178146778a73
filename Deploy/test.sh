#!/usr/bin/env bash
# The test command: installs what is missing, then builds and runs the whole test
# suite in release mode (numeric code is too slow in debug builds). Tests start
# their own throwaway PostgreSQL servers; nothing needs to be running first. As root it
# also checks the quick start and the container's runtime stage (Debian packages downloaded).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH"
Deploy/install-deps.sh --test
# The house style (.swift-format): `swift format format -i -r Sources Tests` fixes what it reports.
swift format lint --strict --recursive Sources Tests
# The C kernels build on arm64 and riscv64 too (their AVX paths are x86-only).
Deploy/check-portable-kernels.sh
swift build -c release --build-tests
# The deploy files, run for real with the binary just built: the quick start as root in a folder
# postgres cannot enter, and the container image's runtime stage (no Docker engine needed).
if [ "$(id -u)" -eq 0 ]; then
    Deploy/check-quickstart-private-dir.sh "$(swift build -c release --show-bin-path)/farm"
    Deploy/check-runtime-stage.sh "$(swift build -c release --show-bin-path)/farm"
else
    echo "skipping the quick start and container checks: they need root"
fi
# The stress run (kills, pauses and cut links across a whole farm) runs on its own, after
# the rest: other tests time daemons, and the stress run's load would make them flaky. So do
# the queue-at-scale tests (millions of task rows), whose timings must be the machine's own.
swift test -c release --skip-build --skip "stressRunLosesNothing|JobStoreScale|FarmScale"
swift test -c release --skip-build --filter JobStoreScale
swift test -c release --skip-build --filter FarmScale
swift test -c release --skip-build --filter stressRunLosesNothing
