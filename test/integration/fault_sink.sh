#!/usr/bin/env bash
# Sink faults (issue 8, point 2): eltd's warehouse.url goes through test/lib/faultproxy.py to
# ClickHouse. (0) control: the proxy in pass mode forwards the whole load, data exact;
# (a) connection reset mid-body: the load fails, the previous table is intact and no side
# table is left; with retries the second attempt succeeds once the proxy passes again;
# (b) ClickHouse throttled to 5 MB/s for a whole load through `eltd serve`: exact, the
# daemon's peak RSS stays under 64 MiB, /health answers within 1 s throughout;
# (c) ClickHouse SIGSTOPped mid-insert past warehouse.query_timeout (3 s): the attempt
# times out, SIGCONT, the retry succeeds, /health answers within 1 s throughout;
# (d) ClickHouse SIGKILLed mid-insert and late in the insert, then restarted: the table is
# the previous one or the new one complete, never partial; the next run drops the side
# table it left and is exact.
# Every case changes the PostgreSQL data first, so "previous" and "new" differ.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/serve.sh"

S=eltd_fsink
ROWS=${ELTD_FAULT_ROWS:-2000000}
MID_ROWS=${ELTD_FAULT_MID_ROWS:-400000}
pg "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S;
    CREATE TABLE $S.big (id bigint PRIMARY KEY, name text NOT NULL, val bigint NOT NULL);
    INSERT INTO $S.big SELECT g, 'name-' || g || repeat('x', 20), g % 1000
    FROM generate_series(1, $ROWS) g;
    CREATE TABLE $S.mid (id bigint PRIMARY KEY, name text NOT NULL, val bigint NOT NULL);
    INSERT INTO $S.mid SELECT g, 'mid-' || g || repeat('y', 20), g % 777
    FROM generate_series(1, $MID_ROWS) g;"
mkdir -p "$WORK/nomodels"
export PG_SCHEMA=$S MODELS_PATH=$WORK/nomodels

# A SIGSTOPped ClickHouse must never outlive the test; the proxy is registered with
# serve.sh's cleanup (and exits by itself when this shell is gone).
STOPPED=
# (set +e: errexit still holds in a trap, and nothing may end the shell before finish)
trap 'rc=$?; set +e; [ -n "$STOPPED" ] && kill -CONT "$STOPPED" 2>/dev/null; (exit $rc); serve_cleanup; finish' EXIT

# ---- the proxy ----
start_proxy() { # TARGET_PORT: sets FP_PORT, FP_CTL
  $PY "$ROOT/test/lib/faultproxy.py" --target "127.0.0.1:$1" --parent $$ --max-lifetime 1500 \
    >"$WORK/fp.out" 2>"$WORK/fp.err" &
  CLEANUP_PIDS+=("$!")
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
fp_stat() { fp status | tr ' ' '\n' | sed -n "s/^$1=//p"; } # KEY: one status field
up_past() { [ "$(fp_stat up)" -gt "$1" ]; }

start_proxy "$CLICKHOUSE_HTTP_PORT"
PROXY_URL="http://127.0.0.1:$FP_PORT"

pg_state() { pg "SELECT count(*) || E'\t' || sum(id) || E'\t' || sum(val) FROM $S.$1"; }
ch_state() { ch "SELECT count(), sum(id), sum(val) FROM $1.$2"; }
leftovers() { ch "SELECT count() FROM system.tables WHERE database = '$1' AND name LIKE '%\\\\_\\\\_eltd\\\\_%'"; }
all_leftovers() { ch "SELECT count() FROM system.tables WHERE name LIKE '%\\\\_\\\\_eltd\\\\_%'"; }
change_pg() { pg "UPDATE $S.$1 SET val = val + 1 WHERE id % ${2:-7} = 0"; }
logged() { grep -qF -- "$2" "$1"; }
summary() { awk -v t="load:$2" '$1 == t {print $2, $3}' "$1"; }
# cfg NAME TABLES [extra yaml]: a config whose warehouse.url is the proxy.
cfg() {
  local c
  c=$(CLICKHOUSE_URL=$PROXY_URL TABLES_YAML=$2 make_config "$1" "${3:-}")
  echo "$c"
}
run_eltd() { # LOG CONFIG: eltd run in the foreground; sets RC
  RC=0
  "$ELTD" run -c "$2" >"$1" 2>&1 || RC=$?
}

# ---- (0) control: pass mode forwards the whole load ----
DB=raw_fsink
ch "DROP DATABASE IF EXISTS $DB" >/dev/null
C0=$(RETRIES=0 cfg fsink '[big, mid]')
fp pass >/dev/null
t0=$(date +%s.%N)
run_eltd "$WORK/c0.log" "$C0"
T_PASS=$($PY -c "print(round($(date +%s.%N) - $t0, 2))")
check_eq "(0) control run through the proxy exits 0" 0 "$RC"
check_eq "(0) big exact" "$(pg_state big)" "$(ch_state $DB big)"
check_eq "(0) mid exact" "$(pg_state mid)" "$(ch_state $DB mid)"
BYTES0=$(fp_stat up)
if [ "$BYTES0" -gt $((ROWS * 30)) ]; then pass "(0) the proxy carried the inserts ($BYTES0 bytes up in ${T_PASS}s)"
else fail "(0) the proxy carried only $BYTES0 bytes up"; fi
echo "# unthrottled load of $ROWS + $MID_ROWS rows: ${T_PASS}s"

# ---- (a) connection reset mid-body ----
PREV=$(ch_state $DB big)
change_pg big 10
NEW=$(pg_state big)
resets0=$(fp_stat resets)
fp reset-after 20000000 up >/dev/null
run_eltd "$WORK/a1.log" "$(RETRIES=0 cfg fsink '[big]')"
fp pass >/dev/null
check_eq "(a1) reset mid-body, no retries: eltd exits 1" 1 "$RC"
check_eq "(a1) the proxy reset a connection" $((resets0 + 1)) "$(fp_stat resets)"
check_contains "(a1) the load failed with a transport error" "task=load:big" \
  "$(grep -E 'state=failed' "$WORK/a1.log" || true)"
grep -E 'state=failed' "$WORK/a1.log" | cut -c1-240 | sed 's/^/# /' || true
check_eq "(a1) previous table intact" "$PREV" "$(ch_state $DB big)"
check_eq "(a1) no side table" 0 "$(leftovers $DB)"

fp reset-after 20000000 up once >/dev/null
run_eltd "$WORK/a2.log" "$(RETRIES=1 RETRY_DELAY=1s cfg fsink '[big]')"
check_eq "(a2) reset once, retries 1: eltd exits 0" 0 "$RC"
check_eq "(a2) the proxy reset the first attempt" $((resets0 + 2)) "$(fp_stat resets)"
check_eq "(a2) summary: success after 2 attempts" "success 2" "$(summary "$WORK/a2.log" big)"
check_eq "(a2) data exact after the retry" "$NEW" "$(ch_state $DB big)"
check_eq "(a2) no side table" 0 "$(leftovers $DB)"
check_eq "(a2) mode back to pass" "pass" "$(fp_stat mode_up)"

# ---- the daemon cases (b) and (c) ----
HAVE_SERVE=0
"$ELTD" --help 2>&1 | grep -q '^ *serve ' && HAVE_SERVE=1
HEALTH_PID=
health_poll_start() { # polls /health every 0.2 s: "CODE SECONDS" per line
  rm -f "$WORK/health.stop"
  (while [ ! -e "$WORK/health.stop" ]; do
     curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 1 "$BASE/health" || echo "000 1"
     sleep 0.2
   done) >"$WORK/health.txt" 2>/dev/null &
  HEALTH_PID=$!
  CLEANUP_PIDS+=("$HEALTH_PID")
}
health_poll_check() { # WHAT
  touch "$WORK/health.stop"
  wait "$HEALTH_PID" 2>/dev/null || true
  local n bad slow
  n=$(wc -l <"$WORK/health.txt")
  bad=$(awk '$1 != 200' "$WORK/health.txt" | wc -l)
  slow=$(awk '$2 + 0 >= 1' "$WORK/health.txt" | wc -l)
  if [ "$n" -ge 5 ] && [ "$bad" = 0 ] && [ "$slow" = 0 ]; then
    pass "$1: /health answered 200 within 1 s $n times in a row (max $(sort -k2 -n "$WORK/health.txt" | tail -1 | cut -d' ' -f2)s)"
  else
    fail "$1: /health polled $n times, $bad not 200, $slow slower than 1 s"
  fi
}
vm_hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
trigger() { # prints the run id
  local r
  r=$(api POST /webhook/manual)
  [ "${r%% *}" = 202 ] || { echo "trigger: $r" >&2; return 1; }
  jget "${r#* }" 'j["run_id"]'
}

if [ "$HAVE_SERVE" = 1 ]; then
  # ---- (b) throttled to 5 MB/s for a whole load ----
  change_pg big 11
  NEW=$(pg_state big)
  CB=$(RETRIES=0 cfg fsink_srv '[big]')
  # the raw database of this config is raw_fsink_srv: seed it with the previous state
  DBS=raw_fsink_srv
  ch "DROP DATABASE IF EXISTS $DBS" >/dev/null
  start_daemon "$CB"
  fp throttle 5000000 up >/dev/null
  up0=$(fp_stat up)
  health_poll_start
  t0=$(date +%s.%N)
  id=$(trigger)
  wait_run_final 300 "$id" || true
  T_THR=$($PY -c "print(round($(date +%s.%N) - $t0, 2))")
  health_poll_check "(b) throttled"
  fp pass >/dev/null
  sent=$(( $(fp_stat up) - up0 ))
  check_eq "(b) throttled run succeeded" success "$(run_state "$id")"
  check_eq "(b) data exact" "$NEW" "$(ch_state $DBS big)"
  check_eq "(b) no side table" 0 "$(leftovers $DBS)"
  # control: the throttle really held the load back (5 MB/s => sent/5e6 seconds)
  check_eq "(b) the throttle held (${sent} bytes in ${T_THR}s, floor $((sent / 5000000))s)" True \
    "$($PY -c "print($T_THR >= 0.9 * $sent / 5e6)")"
  hwm=$(vm_hwm_kib "$DAEMON_PID")
  if sanitized; then
    skip "(b) peak RSS (${hwm} KiB) is ASan's shadow memory in this build; the gcc pass checks it"
  else
    check_eq "(b) daemon peak RSS under 64 MiB (VmHWM ${hwm} KiB)" True "$([ "$hwm" -lt 65536 ] && echo True || echo False)"
  fi
  stop_daemon TERM

  # ---- (c) ClickHouse SIGSTOPped mid-insert past query_timeout ----
  change_pg mid 5
  NEWM=$(pg_state mid)
  CC=$(RETRIES=1 RETRY_DELAY=2s cfg fsink_srv '[mid]')
  sed -i "s|^warehouse:|warehouse:\n  query_timeout: 3s|" "$CC"
  start_daemon "$CC"
  # 12 MB/s keeps the ~20 MB insert inside the 3 s timeout yet gives a window to stop in
  fp throttle 12000000 up >/dev/null
  up0=$(fp_stat up)
  health_poll_start
  id=$(trigger)
  if wait_for 30 up_past $((up0 + 4000000)); then
    STOPPED=$(cat "$ELTD_TEST_DIR/ch/server.pid")
    kill -STOP "$STOPPED"
    pass "(c) ClickHouse SIGSTOPped mid-insert ($(( $(fp_stat up) - up0 )) bytes in)"
  else
    fail "(c) never saw the insert streaming"
  fi
  fp pass >/dev/null
  if wait_for 20 logged "$DAEMON_LOG" "state=up_for_retry"; then
    pass "(c) the attempt failed while ClickHouse was stopped"
    grep -m1 'state=up_for_retry' "$DAEMON_LOG" | cut -c1-240 | sed 's/^/# /' || true
  else
    fail "(c) no up_for_retry logged"
  fi
  [ -n "$STOPPED" ] && kill -CONT "$STOPPED"
  STOPPED=
  check_contains "(c) the failure is a timeout" "timed out" "$(grep 'state=up_for_retry' "$DAEMON_LOG" || true)"
  wait_run_final 60 "$id" || true
  health_poll_check "(c) ClickHouse stopped"
  check_eq "(c) run succeeded after the retry" success "$(run_state "$id")"
  check_eq "(c) data exact" "$NEWM" "$(ch_state $DBS mid)"
  check_eq "(c) no side table" 0 "$(leftovers $DBS)"
  check_contains "(c) /api/runs shows 2 attempts" "2" \
    "$(jget "$(curl -sS "$BASE/api/runs/$id")" '[t["attempts"] for t in j["tasks"] if t["name"] == "load:mid"]')"
  stop_daemon TERM
  ch "DROP DATABASE IF EXISTS $DBS" >/dev/null
else
  echo "# eltd serve not built: (b) and (c) skipped"
fi

# ---- (d) ClickHouse SIGKILLed mid-insert / late in the insert, then restarted ----
CD=$(RETRIES=0 cfg fsink '[big]')
BIGBYTES=$(( BYTES0 * ROWS / (ROWS + MID_ROWS) )) # about the bytes of one load of big
# 20 MB/s: slow enough for the kill to land near the intended byte count
fp throttle 20000000 up >/dev/null
for point in 30 95; do
  PREV=$(ch_state $DB big)
  change_pg big $((13 + point))
  NEW=$(pg_state big)
  up0=$(fp_stat up)
  "$ELTD" run -c "$CD" >"$WORK/d$point.log" 2>&1 &
  EPID=$!
  if wait_for 120 up_past $((up0 + BIGBYTES * point / 100)); then
    bash "$SERVERS" stop-clickhouse "$ELTD_TEST_DIR" KILL
    pass "(d$point) ClickHouse killed at ~$point% of the insert"
  else
    fail "(d$point) never saw the insert reach $point%"
  fi
  wait_for 60 eval '! kill -0 $EPID' || fail "(d$point) eltd still running 60 s after the kill"
  RC=0
  wait "$EPID" || RC=$?
  bash "$SERVERS" start-clickhouse "$ELTD_TEST_DIR"
  got=$(ch_state $DB big)
  if [ "$RC" = 0 ]; then
    check_eq "(d$point) eltd finished before the kill: the new table, complete" "$NEW" "$got"
  else
    if [ "$got" = "$PREV" ] || [ "$got" = "$NEW" ]; then
      pass "(d$point) eltd failed (rc $RC); the table is the previous or the new one, never partial"
    else
      fail "(d$point) partial table: got '$got', previous '$PREV', new '$NEW'"
    fi
  fi
  left=$(leftovers $DB)
  echo "# (d$point) eltd rc $RC; side tables after the crash: $left"
  run_eltd "$WORK/d$point-next.log" "$CD"
  check_eq "(d$point) the next run exits 0" 0 "$RC"
  if [ "$left" -gt 0 ]; then
    check_contains "(d$point) the next run dropped the leftover at start" \
      "event=dropped_leftover table=$DB.big__eltd_new" "$(cat "$WORK/d$point-next.log")"
  fi
  [ "$RC" = 0 ] || tail -5 "$WORK/d$point-next.log"
  check_eq "(d$point) the next run is exact" "$NEW" "$(ch_state $DB big)"
  check_eq "(d$point) no side table after the next run" 0 "$(leftovers $DB)"
done

fp pass >/dev/null
check_eq "no eltd temporaries anywhere" 0 "$(all_leftovers)"
fp quit >/dev/null || true
ch "DROP DATABASE IF EXISTS $DB" >/dev/null
pg "SET client_min_messages = warning; DROP SCHEMA $S CASCADE"
