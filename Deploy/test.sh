#!/usr/bin/env bash
# The test command: installs what is missing, then builds and runs the whole test
# suite in release mode (numeric code is too slow in debug builds). Tests start
# their own throwaway PostgreSQL servers; nothing needs to be running first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH"
Deploy/install-deps.sh
swift build -c release --build-tests
# The stress run (kills, pauses and cut links across a whole farm) runs on its own, after
# the rest: other tests time daemons, and the stress run's load would make them flaky.
swift test -c release --skip-build --skip stressRunLosesNothing
swift test -c release --skip-build --filter stressRunLosesNothing
