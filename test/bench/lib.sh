# test/bench/lib.sh — what the benchmark scripts share: the eltd binary they measure and the
# servers they run against. Sourced after the script has set ROOT, ELTD, KEEP and log/die.

# The binary: --eltd's, else build-bench/eltd, configured Release and built if missing.
bench_eltd() {
  if [ -z "$ELTD" ]; then
    ELTD=$ROOT/build-bench/eltd
    if [ ! -x "$ELTD" ]; then
      log "building $ELTD (Release)"
      cmake -B "$ROOT/build-bench" -S "$ROOT" -DCMAKE_BUILD_TYPE=Release >/dev/null
      cmake --build "$ROOT/build-bench" -j2 --target eltd >/dev/null
    fi
  fi
  [ -x "$ELTD" ] || die "no eltd binary at $ELTD"
}

# bench_servers PREFIX: the servers of ELTD_TEST_ENV, else fresh ones started by
# test/servers.sh in /tmp/PREFIX.XXXXXX (SRV, outside WORK: --keep-servers keeps them).
SRV=""
bench_servers() {
  if [ -n "${ELTD_TEST_ENV:-}" ]; then
    # shellcheck disable=SC1090
    . "$ELTD_TEST_ENV"
  else
    SRV=$(mktemp -d "/tmp/$1.XXXXXX")
    bash "$ROOT/test/servers.sh" start "$SRV" >/dev/null
    # shellcheck disable=SC1091
    . "$SRV/env.sh"
  fi
}

# For the EXIT trap: stops the servers bench_servers started, or prints how to reach them.
bench_servers_release() {
  [ -n "$SRV" ] || return 0
  if [ "$KEEP" = 1 ]; then log "servers kept: ELTD_TEST_ENV=$SRV/env.sh (stop: test/servers.sh stop $SRV)"
  else bash "$ROOT/test/servers.sh" stop "$SRV" >/dev/null 2>&1 || true; fi
}
