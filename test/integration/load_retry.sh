#!/usr/bin/env bash
# Retries (issue 3, point 8): a load whose first attempt fails is retried after the
# configured delay, each attempt starts clean (the failed attempt's side table is gone
# before the next begins) and the data that lands is exact. Failures: (1) the PostgreSQL
# backend terminated mid-COPY once, (2) ClickHouse SIGKILLed mid-insert and started again
# by the test once the failure is logged, (3) the attempt timeout with ClickHouse SIGSTOPped
# (cancelled, retried after SIGCONT).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"

S=eltd_retry
ROWS=${ELTD_RETRY_ROWS:-3000000}
pg "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S;
    CREATE TABLE $S.big (id bigint PRIMARY KEY, name text NOT NULL, val bigint NOT NULL);
    INSERT INTO $S.big SELECT g, 'name-' || g || repeat('x', 40), g % 1000
    FROM generate_series(1, $ROWS) g;"
# Loads only: an empty models project, so no model task joins the run.
mkdir -p "$WORK/no-models"
export MODELS_PATH=$WORK/no-models
export PG_SCHEMA=$S TABLES_YAML='[big]' RETRIES=2
PG_STATE=$(pg "SELECT count(*) || E'\t' || sum(id) || E'\t' || sum(val) FROM $S.big")

# A SIGSTOPped ClickHouse must never outlive the test.
STOPPED=
trap 'rc=$?; [ -n "$STOPPED" ] && kill -CONT "$STOPPED" 2>/dev/null; (exit $rc); finish' EXIT

ch_state() { ch "SELECT count(), sum(id), sum(val) FROM $1.big"; }
leftovers() {
  ch "SELECT count() FROM system.tables WHERE database = '$1' AND match(name, '__eltd_(new|old)\$')"
}
copy_running() {
  [ -n "$(pg "SELECT pid FROM pg_stat_activity WHERE application_name = 'eltd'
              AND state = 'active' AND query LIKE 'COPY (SELECT %$S%'")" ]
}
side_has_rows() { [ "$(ch "SELECT count() FROM $1.big__eltd_new" 2>/dev/null)" -gt 0 ]; }
logged() { grep -qF -- "$2" "$WORK/$1.log"; }
# The summary row of load:big: "load:big success 2 ..." -> "success 2".
summary() { awk '$1 == "load:big" {print $2, $3}' "$WORK/$1.log"; }

start_load() { # NAME CONFIG
  "$ELTD" run -c "$2" >"$WORK/$1.log" 2>&1 &
  ELTD_PID=$!
}
expect_success() { # NAME DB
  local rc=0
  wait "$ELTD_PID" || rc=$?
  check_eq "$1: eltd exits 0 after retrying" 0 "$rc"
  [ "$rc" = 0 ] || tail -n 20 "$WORK/$1.log"
  check_eq "$1: data exact after the retry" "$PG_STATE" "$(ch_state "$2")"
  check_eq "$1: no side table left" 0 "$(leftovers "$2")"
  grep -E 'task=load:big .*state=(up_for_retry|success)' "$WORK/$1.log" | cut -c1-260 | sed 's/^/# /'
}

# (1) PostgreSQL backend terminated in the first attempt; the second one succeeds.
DB=raw_retry_pg
ch "DROP DATABASE IF EXISTS $DB" >/dev/null
cfg=$(RETRY_DELAY=2s make_config retry_pg)
start_load pg "$cfg"
if wait_for 60 side_has_rows "$DB" && copy_running; then
  pg "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'eltd'
      AND query LIKE 'COPY (SELECT %$S%'" >/dev/null
  pass "(1) terminated the first attempt's COPY backend"
else
  fail "(1) never saw the first attempt streaming"
fi
if wait_for 60 logged pg "state=up_for_retry attempt=1/3"; then
  # The attempt reports its failure only after dropping its side table; the retry is
  # two seconds away.
  check_eq "(1) the failed attempt left no side table" 0 "$(leftovers "$DB")"
  check_contains "(1) the up_for_retry line carries PostgreSQL's error" \
    "terminating connection due to administrator command" "$(grep up_for_retry "$WORK/pg.log")"
else
  fail "(1) no up_for_retry logged"
fi
expect_success pg "$DB"
check_eq "(1) summary: success after 2 attempts" "success 2" "$(summary pg)"
# One structured line per task event, the failed attempt's too (point 9).
line=$(grep -m1 'state=up_for_retry' "$WORK/pg.log" | sed 's/^ts=[^ ]* level=warn //')
if grep -Eq '^run=[0-9]+ task=load:big kind=load state=up_for_retry attempt=1/3 duration=[0-9]+\.[0-9]{3} error=".+"$' <<<"$line" &&
  ! grep -q 'duration=0.000' <<<"$line"; then
  pass "(1) the retry line has run, task, attempt, the attempt's duration and the error"
else
  fail "(1) retry line: '$line'"
fi
check_contains "(1) the load_failed line has bytes and duration" \
  "task=load:big attempt=1 event=load_failed rows=0 bytes=" "$(cat "$WORK/pg.log")"
check_contains "(1) attempt 2 logged its rows" "task=load:big attempt=2 event=loaded rows=$ROWS" \
  "$(cat "$WORK/pg.log")"

# (2) ClickHouse killed mid-insert, started again once the failure shows in the log.
DB=raw_retry_ch
ch "DROP DATABASE IF EXISTS $DB" >/dev/null
cfg=$(RETRY_DELAY=2s make_config retry_ch)
# Normally ClickHouse is back within a second and attempt 2 or 3 succeeds; but a port
# held in TIME_WAIT by the killed server can delay servers.sh's restart for up to a
# minute, so retries back off long enough to span that.
sed -i 's/^  retries: .*/  retries: 8\n  retry_backoff: true\n  max_retry_delay: 16s/' "$cfg"
start_load ch "$cfg"
if wait_for 60 side_has_rows "$DB" && copy_running; then
  bash "$SERVERS" stop-clickhouse "$ELTD_TEST_DIR" KILL
  pass "(2) ClickHouse killed mid-insert"
else
  fail "(2) never saw the first attempt streaming"
fi
if wait_for 60 logged ch "state=up_for_retry attempt=1/9"; then pass "(2) first attempt failed"; else
  fail "(2) no up_for_retry logged"; fi
t0=$SECONDS
wait_for 90 bash "$SERVERS" start-clickhouse "$ELTD_TEST_DIR" || fail "(2) ClickHouse did not restart"
echo "# ClickHouse back after $((SECONDS - t0)) s"
expect_success ch "$DB"
att=$(summary ch)
case "$att" in
  "success "[2-9]) pass "(2) summary: $att attempts, the last one after ClickHouse came back" ;;
  *) fail "(2) summary: expected success after a retry, got '$att'" ;;
esac
check_eq "(2) one up_for_retry line per failed attempt" "$(($(cut -d' ' -f2 <<<"$att") - 1))" \
  "$(grep -c 'task=load:big kind=load state=up_for_retry' "$WORK/ch.log")"

# (3) Attempt timeout: ClickHouse SIGSTOPped mid-load; the attempt is cancelled at the
# timeout, ClickHouse continues, the retry succeeds.
DB=raw_retry_to
ch "DROP DATABASE IF EXISTS $DB" >/dev/null
cfg=$(RETRY_DELAY=1s make_config retry_to)
sed -i 's/^  retry_delay: .*/&\n  task_timeout: 8s/' "$cfg"
start_load to "$cfg"
if wait_for 60 side_has_rows "$DB" && copy_running; then
  STOPPED=$(cat "$ELTD_TEST_DIR/ch/server.pid")
  kill -STOP "$STOPPED"
  pass "(3) ClickHouse SIGSTOPped mid-insert"
else
  fail "(3) never saw the first attempt streaming"
fi
if wait_for 30 logged to 'error="attempt timed out"'; then
  pass "(3) the attempt was cancelled at the timeout"
else
  fail "(3) no timeout logged"
fi
[ -n "$STOPPED" ] && kill -CONT "$STOPPED"
STOPPED=
expect_success to "$DB"
check_eq "(3) summary: success after 2 attempts" "success 2" "$(summary to)"
check_contains "(3) up_for_retry line says timed out" "error=\"timed out after 8s" \
  "$(grep up_for_retry "$WORK/to.log")"

for d in raw_retry_pg raw_retry_ch raw_retry_to; do ch "DROP DATABASE IF EXISTS $d" >/dev/null; done
pg "SET client_min_messages = warning; DROP SCHEMA $S CASCADE"
