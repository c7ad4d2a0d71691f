#!/usr/bin/env bash
# Source faults (issue 8, point 3): eltd's source.port goes through test/lib/faultproxy.py
# to PostgreSQL, throttled to 20 MB/s server->client so that faults land mid-COPY.
# (0) control: pass/throttle modes forward the whole COPY, data exact;
# (a) pg_terminate_backend of eltd's COPY backend mid-stream (the stream then ends cleanly
#     on a newline): the load fails, the previous table is intact, no side table;
# (b) PostgreSQL stopped with `-m immediate` mid-run: without retries the run fails and the
#     previous table is intact; with retries and PostgreSQL started again the run either
#     succeeds exactly or fails cleanly (the exported snapshot dies with the server);
# (c) the COPY connection reset through the proxy mid-stream: fails clean without retries,
#     a retry succeeds exactly once the proxy passes again.
# Every case changes the PostgreSQL data first, so "previous" and "new" differ.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"

S=eltd_fsrc
ROWS=${ELTD_FAULT_ROWS:-2000000}
pg "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S;
    CREATE TABLE $S.big (id bigint PRIMARY KEY, name text NOT NULL, val bigint NOT NULL);
    INSERT INTO $S.big SELECT g, 'name-' || g || repeat('x', 20), g % 1000
    FROM generate_series(1, $ROWS) g;"
mkdir -p "$WORK/nomodels"
export PG_SCHEMA=$S MODELS_PATH=$WORK/nomodels TABLES_YAML='[big]'
DB=raw_fsrc
ch "DROP DATABASE IF EXISTS $DB" >/dev/null

# PostgreSQL must be running again whatever happens; the proxy exits with this shell.
PG_DOWN=
FP_PID=
cleanup() {
  local rc=$?
  set +e # errexit still holds in a trap: nothing here may end the shell before finish
  [ -n "$PG_DOWN" ] && pg_start_again >/dev/null 2>&1
  [ -n "$FP_PID" ] && kill "$FP_PID" 2>/dev/null
  (exit $rc)
  finish
}
trap cleanup EXIT

# An immediate stop leaves TIME_WAIT sockets on PostgreSQL's port; a servers.sh whose bind
# probe lacks SO_REUSEADDR (before its fix) refuses to start it then. Fall back to pg_ctl
# directly and let servers.sh rewrite env.sh.
pg_start_again() {
  bash "$SERVERS" start-postgres "$ELTD_TEST_DIR" 2>/dev/null && return 0
  echo "# servers.sh start-postgres refused (TIME_WAIT on $PGPORT); pg_ctl start"
  local ctl=(/usr/lib/postgresql/15/bin/pg_ctl -D "$PGDATA_DIR" -l "$ELTD_TEST_DIR/pg/postgres.log" -w -t 30 start)
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "${ctl[@]}" >/dev/null; else "${ctl[@]}" >/dev/null; fi
  bash "$SERVERS" start-postgres "$ELTD_TEST_DIR" 2>/dev/null
}

# ---- the proxy ----
start_proxy() { # TARGET_PORT: sets FP_PORT, FP_CTL
  $PY "$ROOT/test/lib/faultproxy.py" --target "127.0.0.1:$1" --parent $$ --max-lifetime 1500 \
    >"$WORK/fp.out" 2>"$WORK/fp.err" &
  FP_PID=$!
  wait_for 10 test -s "$WORK/fp.out" || { fail "faultproxy did not start: $(cat "$WORK/fp.err")"; exit 1; }
  read -r FP_PORT FP_CTL <"$WORK/fp.out"
}
fp() { # COMMAND...: one control command; prints the reply, fails unless it is "ok..."
  local r fd
  exec {fd}<>"/dev/tcp/127.0.0.1/$FP_CTL"
  printf '%s\n' "$*" >&"$fd"
  read -r r <&"$fd"
  exec {fd}>&-
  echo "$r"
  [[ $r == ok* ]]
}
fp_stat() { fp status | tr ' ' '\n' | sed -n "s/^$1=//p"; }
down_past() { [ "$(fp_stat down)" -gt "$1" ]; }
start_proxy "$PGPORT"

pg_state() { pg "SELECT count(*) || E'\t' || sum(id) || E'\t' || sum(val) FROM $S.big"; }
ch_state() { ch "SELECT count(), sum(id), sum(val) FROM $DB.big"; }
leftovers() { ch "SELECT count() FROM system.tables WHERE name LIKE '%\\\\_\\\\_eltd\\\\_%'"; }
change_pg() { pg "UPDATE $S.big SET val = val + 1 WHERE id % $1 = 0"; }
cfg() { PGPORT=$FP_PORT make_config fsrc; } # RETRIES / RETRY_DELAY from the environment
copy_backend() {
  pg "SELECT pid FROM pg_stat_activity WHERE application_name = 'eltd' AND query LIKE 'COPY%'
      AND state = 'active'"
}
have_copy_backend() { [ -n "$(copy_backend)" ]; }
start_eltd() { # LOG CONFIG
  "$ELTD" run -c "$2" >"$1" 2>&1 &
  EPID=$!
}
wait_eltd() { # sets RC; bounded
  wait_for 120 eval '! kill -0 $EPID' || fail "eltd still running after 120 s"
  RC=0
  wait "$EPID" || RC=$?
}
# A fault DOWN_BYTES into the COPY of the next run: throttle, start, wait for the bytes.
mid_copy() { # LOG CONFIG DOWN_BYTES
  fp throttle 20000000 down >/dev/null
  local d0
  d0=$(fp_stat down)
  start_eltd "$1" "$2"
  wait_for 60 down_past $((d0 + $3))
}
fails_clean() { # CASE PREV LOG
  check_eq "$1: eltd exits 1" 1 "$RC"
  check_eq "$1: previous table intact" "$2" "$(ch_state)"
  check_eq "$1: no side table" 0 "$(leftovers)"
  grep -m1 'task=load:big.*state=failed' "$3" | cut -c1-260 | sed 's/^/# /' || true
}

# ---- (0) control ----
fp pass >/dev/null
RC=0
"$ELTD" run -c "$(RETRIES=0 cfg)" >"$WORK/c0.log" 2>&1 || RC=$?
check_eq "(0) control run through the proxy exits 0" 0 "$RC"
check_eq "(0) data exact" "$(pg_state)" "$(ch_state)"
D0=$(fp_stat down)
if [ "$D0" -gt $((ROWS * 30)) ]; then pass "(0) the proxy carried the COPY ($D0 bytes down)"
else fail "(0) the proxy carried only $D0 bytes down"; fi
change_pg 3
t0=$(date +%s.%N)
mid_copy "$WORK/c0t.log" "$(RETRIES=0 cfg)" 1 || true
wait_eltd
T_THR=$($PY -c "print(round($(date +%s.%N) - $t0, 2))")
check_eq "(0) throttled control exits 0" 0 "$RC"
check_eq "(0) throttled control exact" "$(pg_state)" "$(ch_state)"
check_eq "(0) the 20 MB/s throttle held (${T_THR}s for $D0 bytes)" True \
  "$($PY -c "print($T_THR >= 0.9 * $D0 / 2e7)")"

# ---- (a) pg_terminate_backend mid-COPY ----
PREV=$(ch_state)
change_pg 4
if mid_copy "$WORK/a.log" "$(RETRIES=0 cfg)" 30000000 && have_copy_backend; then
  n=$(pg "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
          WHERE application_name = 'eltd' AND query LIKE 'COPY%'")
  check_eq "(a) terminated eltd's COPY backend mid-stream" 1 "$n"
else
  fail "(a) never saw the COPY streaming"
fi
wait_eltd
fails_clean "(a) backend terminated" "$PREV" "$WORK/a.log"
# Through the proxy libpq may see the close before the FATAL message (the backend's exit
# resets the connection), so the message is "terminating connection..." or "server closed".
check_contains "(a) the load failed on the COPY" "PostgreSQL COPY of $S.big failed" \
  "$(grep 'task=load:big.*state=failed' "$WORK/a.log" || true)"
fp pass >/dev/null
RC=0
"$ELTD" run -c "$(RETRIES=0 cfg)" >"$WORK/a2.log" 2>&1 || RC=$?
check_eq "(a) control: the same run without the fault exits 0" 0 "$RC"
check_eq "(a) control: exact" "$(pg_state)" "$(ch_state)"

# ---- (b) PostgreSQL stopped -m immediate mid-run ----
PREV=$(ch_state)
change_pg 5
if mid_copy "$WORK/b1.log" "$(RETRIES=0 cfg)" 30000000; then
  PG_DOWN=1
  bash "$SERVERS" stop-postgres "$ELTD_TEST_DIR" immediate
  pass "(b1) PostgreSQL stopped -m immediate mid-COPY"
else
  fail "(b1) never saw the COPY streaming"
fi
wait_eltd
fails_clean "(b1) PostgreSQL gone, no retries" "$PREV" "$WORK/b1.log"
pg_start_again
PG_DOWN=

# With retries: PostgreSQL is started again as soon as the first attempt has failed.
if mid_copy "$WORK/b2.log" "$(RETRIES=2 RETRY_DELAY=3s cfg)" 30000000; then
  PG_DOWN=1
  bash "$SERVERS" stop-postgres "$ELTD_TEST_DIR" immediate
  pass "(b2) PostgreSQL stopped -m immediate mid-COPY"
else
  fail "(b2) never saw the COPY streaming"
fi
wait_for 30 grep -q 'task=load:big.*state=\(up_for_retry\|failed\)' "$WORK/b2.log" || true
pg_start_again
PG_DOWN=
fp pass >/dev/null
wait_eltd
grep -E 'task=load:big.*state=(up_for_retry|failed|success)' "$WORK/b2.log" | cut -c1-260 | sed 's/^/# /' || true
# The run's exported snapshot died with the server: the retry must read its own, not fail
# on "invalid snapshot identifier" until the run gives up.
check_eq "(b2) the retry after the restart succeeds" 0 "$RC"
check_eq "(b2) retried after the restart: exact" "$(pg_state)" "$(ch_state)"
if grep -q 'invalid snapshot identifier' "$WORK/b2.log"; then
  check_contains "(b2) the lost snapshot is logged and dropped" "event=snapshot_lost" \
    "$(cat "$WORK/b2.log")"
fi
check_eq "(b2) no side table" 0 "$(leftovers)"
RC=0
"$ELTD" run -c "$(RETRIES=0 cfg)" >"$WORK/b3.log" 2>&1 || RC=$?
check_eq "(b3) the next run after the restart exits 0" 0 "$RC"
check_eq "(b3) exact" "$(pg_state)" "$(ch_state)"

# ---- (c) the COPY connection reset through the proxy ----
PREV=$(ch_state)
change_pg 6
resets0=$(fp_stat resets)
fp reset-after 30000000 down >/dev/null
start_eltd "$WORK/c1.log" "$(RETRIES=0 cfg)"
wait_eltd
fp pass >/dev/null
check_eq "(c1) the proxy reset the COPY connection" $((resets0 + 1)) "$(fp_stat resets)"
fails_clean "(c1) COPY connection reset, no retries" "$PREV" "$WORK/c1.log"
fp reset-after 30000000 down once >/dev/null
start_eltd "$WORK/c2.log" "$(RETRIES=1 RETRY_DELAY=1s cfg)"
wait_eltd
check_eq "(c2) reset once, retries 1: eltd exits 0" 0 "$RC"
check_eq "(c2) the proxy reset the first attempt" $((resets0 + 2)) "$(fp_stat resets)"
check_eq "(c2) summary: success after 2 attempts" "success 2" \
  "$(awk '$1 == "load:big" {print $2, $3}' "$WORK/c2.log")"
check_eq "(c2) exact after the retry" "$(pg_state)" "$(ch_state)"
check_eq "(c2) no side table" 0 "$(leftovers)"

fp quit >/dev/null || true
ch "DROP DATABASE IF EXISTS $DB" >/dev/null
pg "SET client_min_messages = warning; DROP SCHEMA $S CASCADE"
