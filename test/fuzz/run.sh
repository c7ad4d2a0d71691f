#!/usr/bin/env bash
# Runs the libFuzzer targets for a bounded time each, on a copy of their seed corpus (the
# repository is never written to). Any crash, leak, sanitizer report or failed check fails
# the run; the reproducer is kept and its path printed.
#   usage: test/fuzz/run.sh BUILD_DIR [SECONDS] [TARGET...]   (targets: http config template cron)
# BUILD_DIR was configured with CC=clang -DELTD_FUZZ=ON. Extra libFuzzer flags: FUZZ_FLAGS.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${1:?usage: run.sh BUILD_DIR [SECONDS] [TARGET...]}"
secs="${2:-45}"
shift $(($# < 2 ? $# : 2))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(http config template cron)

work="$(mktemp -d /tmp/eltd-fuzz.XXXXXX)"
status=0
for t in "${targets[@]}"; do
    bin="$build/test/fuzz/fuzz_$t"
    [ -x "$bin" ] || { echo "fuzz: $bin not built" >&2; exit 2; }
    mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
    cp "$here/corpus/$t/"* "$work/$t/corpus/"
    echo "=== fuzz_$t for ${secs}s"
    # shellcheck disable=SC2086
    if "$bin" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
        -dict="$here/$t.dict" -artifact_prefix="$work/$t/artifacts/" ${FUZZ_FLAGS:-} \
        "$work/$t/corpus" >"$work/$t/log" 2>&1; then
        grep -E '^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units' "$work/$t/log" | tail -2
    else
        status=1
        echo "fuzz_$t FAILED; log $work/$t/log; reproducer:" >&2
        ls "$work/$t/artifacts/" >&2
        tail -40 "$work/$t/log" >&2
    fi
done
if [ "$status" -eq 0 ]; then
    rm -rf "$work"
else
    echo "fuzz: kept $work" >&2
fi
exit "$status"
