#!/usr/bin/env bash
# Split loads (issue 7): a table copied as N ranges at once — ranges of its heap pages
# (split_by: auto/pages, TID range scans) or of a single integer key (split_by: key, and
# views) — one COPY stream (its own connection in the run's snapshot) and one insert each,
# into one side table, checked against the sum of the N COPY tags and published in one step.
# Cases: a few-million-row table with split: 4 by pages equals PostgreSQL (count, sums, md5 of
# the ordered rows) and ran four COPYs at once; an empty and a one-page table; by key: a
# one-row and a sparse table, and int8's extremes; a text key refused by key but split by
# pages, a composite key split by pages; a table never analysed split on the planner's
# estimate; a view (no pages, no key) loads unsplit with the
# reasons; split: auto above and below run.split_rows; incremental with split (ranges AND the
# watermark); one stream's backend terminated mid-load fails the load: previous table
# intact, no side table.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"

S=eltd_split
DB=raw_split
ROWS=${ELTD_SPLIT_ROWS:-2000000}
# Keys from -ROWS to 2*ROWS in steps of 3 (negative and positive), a nullable column, a
# numeric, a timestamp.
pg "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S;
    CREATE TABLE $S.big (id bigint PRIMARY KEY, name text NOT NULL, val int NOT NULL,
                         amount numeric(12,2) NOT NULL, note text,
                         updated_at timestamp(0) NOT NULL);
    INSERT INTO $S.big SELECT 3 * g - $ROWS, 'name-' || g || repeat('y', g % 30), g % 1000,
        (g % 100000) / 100.0, CASE WHEN g % 7 = 0 THEN NULL ELSE 'n' || g END,
        timestamp '2024-01-01' + g * interval '1 second'
    FROM generate_series(1, $ROWS) g;
    CREATE TABLE $S.empty (id int PRIMARY KEY, v text);
    CREATE TABLE $S.one (id smallint PRIMARY KEY, v text);
    INSERT INTO $S.one VALUES (7, 'seven');
    CREATE TABLE $S.sparse (id int PRIMARY KEY, v text);
    INSERT INTO $S.sparse VALUES (-2000000000, 'low'), (5, 'mid'), (2000000000, 'high');
    CREATE TABLE $S.extremes (id bigint PRIMARY KEY, v text);
    INSERT INTO $S.extremes VALUES (-9223372036854775808, 'min'), (-1, 'a'), (0, 'b'),
        (1, 'c'), (9223372036854775806, 'd'), (9223372036854775807, 'max');
    CREATE TABLE $S.texts (code text PRIMARY KEY, v int);
    INSERT INTO $S.texts SELECT 'c' || g, g FROM generate_series(1, 1000) g;
    CREATE TABLE $S.pair (a int, b int, v text, PRIMARY KEY (a, b));
    INSERT INTO $S.pair SELECT g / 10, g % 10, 'v' || g FROM generate_series(1, 1000) g;
    CREATE TABLE $S.autos (id int PRIMARY KEY, v text);
    INSERT INTO $S.autos SELECT g, 'v' || g FROM generate_series(1, 50000) g;
    CREATE TABLE $S.fresh (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false);
    INSERT INTO $S.fresh SELECT g, 'v' || g FROM generate_series(1, 60000) g;
    CREATE TABLE $S.tiny (id int PRIMARY KEY, v text);
    INSERT INTO $S.tiny VALUES (1, 'a'), (2, 'b'), (3, 'c');
    CREATE VIEW $S.autos_v AS SELECT id, v FROM $S.autos WHERE id % 2 = 0;
    CREATE VIEW $S.pair_v AS SELECT a, b, v FROM $S.pair;
    CREATE TABLE $S.inc (id int PRIMARY KEY, v text NOT NULL, updated_at timestamp(0) NOT NULL);
    INSERT INTO $S.inc SELECT g, 'v' || g, timestamp '2024-01-01' + g * interval '1 minute'
    FROM generate_series(1, 30000) g;
    ANALYZE $S.big; ANALYZE $S.autos;"
mkdir -p "$WORK/no-models"
export MODELS_PATH=$WORK/no-models
export PG_SCHEMA=$S
cfg=$(TABLES_YAML='[{name: big, split: 4}, {name: empty, split: 4}, {name: tiny, split: 4},
  {name: one, split: 4, split_by: key}, {name: sparse, split: 4, split_by: key},
  {name: extremes, split: 3, split_by: key}, {name: texts, split: 4, split_by: key},
  {name: texts, target: texts_p, split: 4}, {name: pair, split: 2},
  {name: autos_v, split: 2}, {name: pair_v, split: 2, split_by: pages},
  {name: autos, split: auto}, {name: fresh, split: auto}, {name: inc, split: 3, mode: incremental, cursor: updated_at}]' \
  SPLIT_ROWS=10000 make_config split)
ch "DROP DATABASE IF EXISTS $DB" >/dev/null

leftovers() {
  ch "SELECT count() FROM system.tables WHERE database = '$DB' AND match(name, '__eltd_(new|old)\$')"
}
PG_STATE="SELECT count(*) || E'\t' || sum(id) || E'\t' || sum(val) || E'\t' || sum(amount)
          || E'\t' || count(note) FROM $S.big"
ch_state() { ch "SELECT count(), sum(id), sum(val), sum(amount), count(note) FROM $DB.big"; }
pg_md5() {
  psql -X -q -c "COPY (SELECT id, name, val, amount, note, updated_at FROM $S.big ORDER BY id)
                 TO STDOUT" | md5sum | cut -c1-32
}
ch_md5() {
  ch "SELECT id, name, val, amount, note, updated_at FROM $DB.big ORDER BY id
      FORMAT TabSeparated" | md5sum | cut -c1-32
}
# Active COPY backends of eltd on the big table, sampled while a load runs.
copies() {
  pg "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'eltd'
      AND state = 'active' AND query LIKE 'COPY (SELECT %$S%big%'"
}
sample_copies() { # PID: prints the largest number of concurrent COPYs seen
  local max=0 n
  while kill -0 "$1" 2>/dev/null; do
    n=$(copies 2>/dev/null || echo 0)
    [ "${n:-0}" -gt "$max" ] && max=$n
    sleep 0.05
  done
  echo "$max"
}

# ---- 1. every table, split where it can be
ELTD_LOG_LEVEL=debug "$ELTD" run -c "$cfg" >"$WORK/run1.log" 2>&1 &
EPID=$!
MAXC=$(sample_copies $EPID)
rc=0
wait $EPID || rc=$?
OUT=$(cat "$WORK/run1.log")
check_eq "run 1 exits 0" 0 "$rc"
[ "$rc" = 0 ] || tail -n 30 "$WORK/run1.log"
check_contains "big: split into 4 ranges of its pages" \
  "table=big event=split by=pages streams=4 pages=$(pg "SELECT pg_relation_size('$S.big') / 8192")" "$OUT"
check_contains "big: the loaded line names 4 streams" "task=load:big attempt=1 event=loaded rows=$ROWS" "$OUT"
if grep -q "task=load:big attempt=1 event=loaded.* streams=4" <<<"$OUT"; then
  pass "big: event=loaded ... streams=4"; else fail "big: no 'streams=4' on the loaded line"; fi
if [ "$MAXC" -ge 2 ]; then pass "big: $MAXC COPYs ran at once (sampled)"; else
  fail "big: never saw more than $MAXC COPY at once"; fi
check_contains "big: the page ranges are in the COPYs" "WHERE ctid >= '(" "$OUT"
check_eq "big: count and sums equal PostgreSQL" "$(pg "$PG_STATE")" "$(ch_state)"
check_eq "big: md5 of the ordered rows equals PostgreSQL's" "$(pg_md5)" "$(ch_md5)"
check_contains "big: the count check is the sum of the COPY tags" \
  "table=big event=publish method=rename rows=$ROWS" "$OUT"

for t in empty tiny fresh one sparse extremes texts pair autos_v pair_v autos inc; do
  check_eq "$t: rows equal PostgreSQL" "$(pg "SELECT count(*) FROM $S.$t")" \
    "$(ch "SELECT count() FROM $DB.$t")"
done
check_eq "texts split by pages: rows and sum equal PostgreSQL" \
  "$(pg "SELECT count(*) || E'\t' || sum(v) FROM $S.texts")" "$(ch "SELECT count(), sum(v) FROM $DB.texts_p")"
check_eq "autos_v (a view): ids equal PostgreSQL" "$(pg "SELECT sum(id) FROM $S.autos_v")" \
  "$(ch "SELECT sum(id) FROM $DB.autos_v")"
check_eq "sparse: the rows" "$(pg "SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM $S.sparse")" \
  "$(ch "SELECT arrayStringConcat(groupArray(concat(toString(id), ':', v)), ',') FROM (SELECT * FROM $DB.sparse ORDER BY id)")"
check_eq "extremes: int8's ends and the rows between" \
  "$(pg "SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM $S.extremes")" \
  "$(ch "SELECT arrayStringConcat(groupArray(concat(toString(id), ':', v)), ',') FROM (SELECT * FROM $DB.extremes ORDER BY id)")"
check_contains "empty: no split, logged why" \
  'table=empty event=no_split split=4 reason="the table is empty"' "$OUT"
check_contains "tiny: no split by pages, logged why" \
  'table=tiny event=no_split split=4 reason="the table has one page"' "$OUT"
check_contains "one: no split, logged why" 'table=one event=no_split split=4 reason="the key has one value"' "$OUT"
check_contains "sparse: split in 4 (two ranges empty)" "table=sparse event=split key=id streams=4" "$OUT"
check_contains "extremes: split in 3 over all of int8" \
  "table=extremes event=split key=id streams=3 min=-9223372036854775808 max=9223372036854775807" "$OUT"
check_contains "texts: split_by key refuses a text key with a log line" \
  'table=texts event=no_split split=4 reason="the key is not an integer column (int2, int4 or int8)"' "$OUT"
check_contains "texts: split by pages whatever its key" "table=texts event=split by=pages streams=" "$OUT"
check_contains "pair: a composite key splits by pages" "table=pair event=split by=pages streams=2" "$OUT"
check_contains "autos_v: a view without a key loads unsplit, both reasons logged" \
  'table=autos_v event=no_split split=2 reason="page ranges need a table or materialized view; no primary key and no configured key"' "$OUT"
check_contains "pair_v: a view has no pages to split, logged why" \
  'table=pair_v event=no_split split=2 reason="page ranges need a table or materialized view"' "$OUT"
check_contains "autos: auto above run.split_rows splits (at most 4)" \
  "table=autos event=split by=pages streams=4" "$OUT"
check_eq "fresh: never analysed (reltuples -1)" -1 "$(pg "SELECT reltuples FROM pg_class WHERE oid = '$S.fresh'::regclass")"
if grep -Eq "table=fresh event=split by=pages streams=[2-4] pages=[0-9]+ estimated_rows=[1-9][0-9]+ " <<<"$OUT"; then
  pass "fresh: auto splits a never-analysed table on the planner's row estimate"
else fail "fresh: no split on the planner's estimate: $(grep 'table=fresh' <<<"$OUT" | head -3)"; fi
check_contains "inc: first incremental run (no target yet) split in 3" \
  "table=inc event=split by=pages streams=3" "$OUT"
check_eq "no side table left" 0 "$(leftovers)"

# ---- 2. incremental with split: the ranges are ANDed with the watermark
pg "UPDATE $S.inc SET v = v || '-new', updated_at = updated_at + interval '1 year' WHERE id % 1000 = 0;
    INSERT INTO $S.inc SELECT g, 'v' || g, timestamp '2026-01-01' + g * interval '1 minute'
    FROM generate_series(30001, 31000) g;"
OUT=$(ELTD_LOG_LEVEL=debug "$ELTD" run -c "$cfg" -s inc 2>&1) || fail "run 2 (incremental) failed: $OUT"
check_contains "inc: incremental run split in 3" "table=inc event=split by=pages streams=3" "$OUT"
check_contains "inc: ranges combined with the watermark" '\"updated_at\" >= ' \
  "$(grep 'table=inc copy=' <<<"$OUT" | grep "ctid >= '(" | head -1)"
check_eq "inc: rows, sum and changed values equal PostgreSQL" \
  "$(pg "SELECT count(*) || E'\t' || sum(id) || E'\t' || count(*) FILTER (WHERE v LIKE '%-new') FROM $S.inc")" \
  "$(ch "SELECT count(), sum(id), countIf(v LIKE '%-new') FROM $DB.inc FINAL")"

# ---- 3. auto below run.split_rows: one stream
sed -i 's/split_rows: 10000/split_rows: 100000/' "$cfg"
OUT=$(ELTD_LOG_LEVEL=debug "$ELTD" run -c "$cfg" -s autos 2>&1) || fail "run 3 failed: $OUT"
check_contains "autos: below 2 x run.split_rows, one stream" \
  'table=autos event=no_split split=auto reason="about 50000 rows, below 2 x run.split_rows"' "$OUT"
sed -i 's/split_rows: 100000/split_rows: 10000/' "$cfg"

# ---- 4. one stream's backend terminated mid-load: the whole load fails, once
PREV=$(ch_state)
pg "UPDATE $S.big SET val = val + 1 WHERE id < 0"
# the second stream's backend (its range has both bounds)
stream_pid() {
  pg "SELECT pid FROM pg_stat_activity WHERE application_name = 'eltd' AND state = 'active'
      AND query LIKE 'COPY (SELECT %$S%big%>=%AND%<%' ORDER BY query LIMIT 1"
}
"$ELTD" run -c "$cfg" -s big >"$WORK/kill.log" 2>&1 &
EPID=$!
# The load takes a second or two: ClickHouse is stopped once the streams run, so every
# stream stays mid-COPY (back-pressure) while one of them is terminated.
two_copies() { [ "$(copies)" -ge 2 ]; }
if wait_for 60 two_copies; then
  kill -STOP "$CH_PID"
  sleep 0.3
  pid=$(stream_pid)
  others=$(copies)
  if [ -n "$pid" ]; then
    pg "SELECT pg_terminate_backend($pid)" >/dev/null
    pass "terminated stream backend $pid while $others COPYs ran"
  else
    fail "no range COPY with both bounds running"
  fi
  sleep 0.3
  kill -CONT "$CH_PID"
else
  fail "never saw two COPY streams running"
fi
rc=0
wait $EPID || rc=$?
OUT=$(cat "$WORK/kill.log")
echo "# $(grep -m1 -o 'event=load_failed.*' <<<"$OUT" | cut -c1-300)"
if [ "$rc" -ne 0 ]; then pass "killed stream: eltd exits non-zero ($rc)"; else
  fail "killed stream: eltd exited 0: $(tail -n 8 <<<"$OUT")"; fi
# (the server's text depends on whether libpq read the termination notice before the
# close: "terminating connection due to administrator command" or "server closed the
# connection unexpectedly")
check_contains "killed stream: the error names the COPY" "PostgreSQL COPY of $S.big failed: " "$OUT"
if grep -Eq "\(stream [23] of 4: ctid >= '\([0-9]+,0\)' AND ctid < '\([0-9]+,0\)'\)" <<<"$OUT"; then
  pass "killed stream: the error names the stream and its page range"
else fail "killed stream: no '(stream N of 4: ctid >= ... AND ctid < ...)' in the error"; fi
check_contains "killed stream: the summary reports the failed load" "load:big                     failed" "$OUT"
check_eq "killed stream: load_failed logged once" 1 "$(grep -c 'event=load_failed' <<<"$OUT")"
check_eq "killed stream: previous table untouched" "$PREV" "$(ch_state)"
check_eq "killed stream: no side table left" 0 "$(leftovers)"
no_eltd_backend() {
  [ "$(pg "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'eltd'")" = 0 ]
}
if wait_for 10 no_eltd_backend; then pass "killed stream: no eltd connection left in PostgreSQL"
else fail "killed stream: eltd connections left in PostgreSQL"; fi

# ---- 5. and the next run is exact again
OUT=$("$ELTD" run -c "$cfg" -s big 2>&1) || fail "run after the kill failed: $OUT"
check_eq "after the kill: count and sums equal PostgreSQL" "$(pg "$PG_STATE")" "$(ch_state)"
check_eq "after the kill: md5 equal" "$(pg_md5)" "$(ch_md5)"
check_eq "after the kill: no side table left" 0 "$(leftovers)"

ch "DROP DATABASE IF EXISTS $DB" >/dev/null
pg "SET client_min_messages = warning; DROP SCHEMA $S CASCADE"
