#!/usr/bin/env bash
# The test command: builds (if needed), starts a real PostgreSQL 15 and ClickHouse on free
# loopback ports in a temporary directory, runs every unit and integration test through
# ctest against them, and stops the servers whatever happens.
#
#   test/run.sh [BUILD_DIR] [ctest args...]     (default BUILD_DIR: build)
#
# With ELTD_SANITIZER_LOGS=DIR, sanitizer reports of every process go to DIR and any
# report fails the run (CI's sanitizer pass uses this).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD=${1:-build}
shift || true
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S "$ROOT" -B "$BUILD"
fi
cmake --build "$BUILD" -j"$(nproc)"

# /tmp, not the checkout: the postgres user must be able to enter the directory.
SRV=$(mktemp -d /tmp/eltd-test.XXXXXX)
rmdir "$SRV"
cleanup() { bash "$HERE/servers.sh" stop "$SRV" >/dev/null 2>&1 || true; }
trap cleanup EXIT INT TERM
bash "$HERE/servers.sh" start "$SRV" >/dev/null
# shellcheck disable=SC1091
. "$SRV/env.sh"
export ELTD_TEST_ENV="$SRV/env.sh"
export ELTD_SERVERS="$HERE/servers.sh"

rc=0
ctest --test-dir "$BUILD" --output-on-failure --timeout 900 "$@" || rc=$?

if [ -n "${ELTD_SANITIZER_LOGS:-}" ] && compgen -G "$ELTD_SANITIZER_LOGS/*" >/dev/null; then
  echo "sanitizer reports:" >&2
  for f in "$ELTD_SANITIZER_LOGS"/*; do echo "== $f" >&2; cat "$f" >&2; done
  rc=1
fi
exit $rc
