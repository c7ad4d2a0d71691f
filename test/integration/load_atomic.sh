#!/usr/bin/env bash
# Atomic publish (issue 3, point 5). Each case starts from a loaded table with a known count
# and sums, breaks a load of it at one point and asserts: eltd exits non-zero, the output
# carries the server's error text, the previous table is untouched, no side table remains,
# and a following normal run is exact. Cases: (a) PostgreSQL backend terminated mid-COPY,
# (b) ClickHouse SIGKILLed mid-insert and restarted, (c) a value ClickHouse rejects late in
# the stream, (d) a count mismatch (an extra row slipped into the side table mid-load).
# Also: the count check's log line, and repeated runs never duplicate a row.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"

S=eltd_atomic
DB=raw_atomic
ROWS=${ELTD_ATOMIC_ROWS:-4000000}
# `code` is numeric text except one row near the end: cast to UInt32 it fails mid-stream.
pg "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S;
    CREATE TABLE $S.big (id bigint PRIMARY KEY, name text NOT NULL, val bigint NOT NULL,
                         updated_at timestamp NOT NULL, code text NOT NULL);
    INSERT INTO $S.big SELECT g, 'name-' || g || repeat('x', 40), g % 1000,
        timestamp '2024-01-01' + g * interval '1 second',
        CASE WHEN g = $ROWS - 5 THEN 'not-a-number' ELSE g::text END
    FROM generate_series(1, $ROWS) g;"
# Loads only: an empty models project, so no model task joins the run.
mkdir -p "$WORK/no-models"
export MODELS_PATH=$WORK/no-models
export PG_SCHEMA=$S
cfg=$(TABLES_YAML='[big]' make_config atomic)
bad_cfg=$WORK/atomic-bad.yaml
sed 's#^tables: .*#tables: [{name: big, casts: {code: UInt32}}]#' "$cfg" >"$bad_cfg"
ch "DROP DATABASE IF EXISTS $DB" >/dev/null

PG_STATE="SELECT count(*) || E'\t' || sum(id) || E'\t' || sum(val) FROM $S.big"
ch_state() { ch "SELECT count(), sum(id), sum(val) FROM $DB.big"; }
leftovers() {
  ch "SELECT count() FROM system.tables WHERE database = '$DB' AND match(name, '__eltd_(new|old)\$')"
}
# The backend running our COPY (eltd sets application_name).
copy_pid() {
  pg "SELECT pid FROM pg_stat_activity WHERE application_name = 'eltd' AND state = 'active'
      AND query LIKE 'COPY (SELECT %$S%' LIMIT 1"
}
copy_running() { [ -n "$(copy_pid)" ]; }
side_has_rows() { [ "$(ch "SELECT count() FROM $DB.big__eltd_new" 2>/dev/null)" -gt 0 ]; }
side_exists() {
  [ "$(ch "SELECT count() FROM system.tables WHERE database = '$DB' AND name = 'big__eltd_new'")" = 1 ]
}

normal_run() { # WHAT: a run that must succeed and equal PostgreSQL
  local out
  out=$("$ELTD" run -c "$cfg" 2>&1) || { fail "$1: eltd run failed: $out"; return 1; }
  check_eq "$1: count and sums equal PostgreSQL" "$(pg "$PG_STATE")" "$(ch_state)"
  check_eq "$1: no side table left" 0 "$(leftovers)"
  LAST_OUT=$out
}

# Starts a load in the background; its output goes to $WORK/NAME.log.
start_load() { # NAME CONFIG
  "$ELTD" run -c "$2" >"$WORK/$1.log" 2>&1 &
  ELTD_PID=$!
}
# Waits for the background load; asserts the failure and the untouched previous table.
expect_failed_load() { # CASE ERROR_NEEDLE CH_UP
  local rc=0 out
  wait "$ELTD_PID" || rc=$?
  out=$(cat "$WORK/$1.log")
  echo "# $1: $(grep -m1 -o 'event=load_failed.*' "$WORK/$1.log" | cut -c1-300)"
  if [ "$rc" -ne 0 ]; then pass "$1: eltd exits non-zero ($rc)"; else
    fail "$1: eltd exited 0: $(tail -n 8 "$WORK/$1.log")"; fi
  check_contains "$1: the output carries the error text" "$2" "$out"
  check_contains "$1: the summary reports the failed load" "load:big                     failed" "$out"
  if [ "$3" = up ]; then
    check_eq "$1: previous table untouched" "$PREV" "$(ch_state)"
    check_eq "$1: no side table left" 0 "$(leftovers)"
  fi
}

normal_run "initial load"
PREV=$(ch_state)
check_eq "initial load has every row" "$ROWS" "$(cut -f1 <<<"$PREV")"
check_contains "the target is ordered by PostgreSQL's primary key" "ORDER BY id" \
  "$(ch "SHOW CREATE TABLE $DB.big")"
# (d, the check itself) The count check compares the side table with COPY's tag.
check_contains "log shows the checked row count at publish" \
  "event=publish method=rename rows=$ROWS" "$LAST_OUT"

# Running twice never duplicates (and publishes over the live table in one step).
normal_run "second run"
check_contains "second run publishes by a swap" "method=rename_pair rows=$ROWS" \
  "$LAST_OUT"
check_eq "second run leaves the same table" "$PREV" "$(ch_state)"

# Change the source so a successful publish would be visible in the target.
pg "UPDATE $S.big SET val = val + 1 WHERE id <= 1000"
NEW=$(pg "$PG_STATE")

# (a) PostgreSQL backend terminated mid-COPY: the stream ends cleanly on a row boundary,
# only the final result tells it from success.
start_load a "$cfg"
if wait_for 60 side_has_rows && pid=$(copy_pid) && [ -n "$pid" ]; then
  pg "SELECT pg_terminate_backend($pid)" >/dev/null
  pass "(a) terminated backend $pid while the side table held rows"
else
  fail "(a) never saw the COPY running with rows in the side table"
fi
expect_failed_load a "terminating connection due to administrator command" up

# (b) ClickHouse SIGKILLed mid-insert, then restarted.
start_load b "$cfg"
if wait_for 60 side_has_rows && copy_running; then
  bash "$SERVERS" stop-clickhouse "$ELTD_TEST_DIR" KILL
  pass "(b) ClickHouse killed mid-insert"
else
  fail "(b) never saw the insert in flight"
fi
expect_failed_load b "ClickHouse insert into \`$DB\`.\`big__eltd_new\` failed" down
# servers.sh may find the port still held (TIME_WAIT of the killed server) for a while.
wait_for 90 bash "$SERVERS" start-clickhouse "$ELTD_TEST_DIR" || fail "(b) ClickHouse did not restart"
check_eq "(b) previous table intact after the restart" "$PREV" "$(ch_state)"

# (c) A value ClickHouse rejects, five rows before the end (blocks before it were already
# committed into the side table).
start_load c "$bad_cfg"
expect_failed_load c "DB::Exception: Cannot parse" up
check_contains "(c) error names the side table's insert" "ClickHouse insert into" \
  "$(cat "$WORK/c.log")"

# (d) A count mismatch: one extra row slips into the side table while the load streams.
start_load d "$cfg"
if wait_for 60 side_exists; then
  ch "INSERT INTO $DB.big__eltd_new (id, name, val, updated_at, code)
      VALUES (0, 'intruder', 0, '2024-01-01 00:00:00', '0')" >/dev/null
  pass "(d) extra row inserted into the side table"
else
  fail "(d) side table never appeared"
fi
expect_failed_load d "row count mismatch: PostgreSQL COPY sent $ROWS rows" up

# After all of that, a normal run publishes exactly the new source, once; and again.
normal_run "run after the failures"
check_eq "the changed rows arrived" "$NEW" "$(ch_state)"
normal_run "one more run"
check_eq "no duplicates after another run" "$ROWS" "$(ch "SELECT uniqExact(id) FROM $DB.big")"

ch "DROP DATABASE IF EXISTS $DB" >/dev/null
pg "SET client_min_messages = warning; DROP SCHEMA $S CASCADE"
