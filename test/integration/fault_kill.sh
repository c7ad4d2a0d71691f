#!/usr/bin/env bash
# eltd itself SIGKILLed (issue 8, point 4). A killed eltd cannot clean up: its side table
# (`<t>__eltd_new`) or half-built model (`<m>__eltd_new`, with ClickHouse possibly still
# running the orphaned CREATE ... AS SELECT) stays in ClickHouse. The next run's
# ensure_databases step finds every eltd temporary in the raw and analytics databases,
# drops it (`event=dropped_leftover`), and the run completes exactly.
# (1) `eltd run` killed mid-load; (2) `eltd run` killed mid-model (a table model over the
# loaded table, slow enough to be caught); (3) `eltd serve` killed mid-load: after the
# restart /api/runs shows the interrupted run as failed, and the next triggered run drops
# the leftovers and loads exactly. Controls: the kill really left temporaries behind, and the
# previous table is untouched by the killed run.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/serve.sh"
# serve.sh's trap, with errexit off: it still holds in a trap, and serve_cleanup returning
# the failing status would end the shell before finish prints the summary.
trap 'rc=$?; set +e; (exit $rc); serve_cleanup; finish' EXIT

S=eltd_fkill
ROWS=${ELTD_FAULT_ROWS:-2000000}
pg "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S;
    CREATE TABLE $S.big (id bigint PRIMARY KEY, name text NOT NULL, val bigint NOT NULL);
    INSERT INTO $S.big SELECT g, 'name-' || g || repeat('x', 20), g % 1000
    FROM generate_series(1, $ROWS) g;"

# A models project over the loaded table: a view (built under __eltd_tmp) and a table model
# of 5 rows per source row (built under __eltd_new), slow enough to be killed mid-build.
M=$WORK/models
mkdir -p "$M"
cat >"$M/dbt_project.yml" <<'YAML'
name: fault_kill
version: "1.0.0"
config-version: 2
model-paths: ["."]
YAML
cat >"$M/sources.yml" <<'YAML'
version: 2
sources:
  - name: raw
    tables:
      - name: big
YAML
cat >"$M/stg_big.sql" <<'SQL'
{{ config(materialized='view') }}
SELECT id, name, val FROM {{ source('raw', 'big') }}
SQL
cat >"$M/big_x5.sql" <<'SQL'
{{ config(materialized='table', engine='MergeTree()', order_by='(id, k)') }}
SELECT id, k, val, concat(name, toString(k)) AS name5
FROM {{ ref('stg_big') }}
ARRAY JOIN range(5) AS k
SQL
export PG_SCHEMA=$S MODELS_PATH=$M TABLES_YAML='[big]'
RAW=raw_fkill AN=analytics_fkill
for d in $RAW $AN; do ch "DROP DATABASE IF EXISTS $d" >/dev/null; done
CFG=$(RETRIES=0 make_config fkill)

pg_state() { pg "SELECT count(*) || E'\t' || sum(id) || E'\t' || sum(val) FROM $S.big"; }
ch_state() { ch "SELECT count(), sum(id), sum(val) FROM $RAW.big"; }
# big_x5 holds each row 5 times: its state divided by 5 must equal PostgreSQL's
x5_state() { ch "SELECT intDiv(count(), 5), intDiv(sum(id), 5), intDiv(sum(val), 5) FROM $AN.big_x5"; }
temps() { ch "SELECT count() FROM system.tables WHERE database IN ('$RAW', '$AN') AND name LIKE '%\\\\_\\\\_eltd\\\\_%'"; }
temp_names() { ch "SELECT database || '.' || name FROM system.tables WHERE database IN ('$RAW', '$AN') AND name LIKE '%\\\\_\\\\_eltd\\\\_%' ORDER BY 1" | tr '\n' ' '; }
change_pg() { pg "UPDATE $S.big SET val = val + 1 WHERE id % $1 = 0"; }
side_has_rows() { [ "$(ch "SELECT count() FROM $RAW.big__eltd_new" 2>/dev/null || echo 0)" -gt 0 ]; }
model_building() {
  [ "$(ch "SELECT count() FROM system.tables WHERE database = '$AN' AND name = 'big_x5__eltd_new'")" = 1 ]
}
# After a kill: ClickHouse may still be running the dead client's statement; wait for the
# orphaned queries of these databases to end so that the next assertions see a still state.
no_orphans() {
  [ "$(ch "SELECT count() FROM system.processes WHERE (query LIKE '%$RAW%' OR query LIKE '%$AN%')
            AND query NOT LIKE '%system.processes%'")" = 0 ]
}
# next_run CASE: the run after a kill drops what the kill left and is exact.
next_run() {
  local left=$1 rc=0
  "$ELTD" run -c "$CFG" >"$WORK/$2.log" 2>&1 || rc=$?
  check_eq "$2: the next run exits 0" 0 "$rc"
  [ "$rc" = 0 ] || tail -20 "$WORK/$2.log"
  local t
  for t in $left; do
    check_contains "$2: dropped $t at start" "event=dropped_leftover table=$t" "$(cat "$WORK/$2.log")"
  done
  check_eq "$2: big exact" "$(pg_state)" "$(ch_state)"
  check_eq "$2: big_x5 exact (x5)" "$(pg_state)" "$(x5_state)"
  check_eq "$2: no eltd temporaries" 0 "$(temps)"
}

# ---- (0) control: a full run, loads and models ----
RC=0
"$ELTD" run -c "$CFG" >"$WORK/c0.log" 2>&1 || RC=$?
check_eq "(0) control run exits 0" 0 "$RC"
[ "$RC" = 0 ] || tail -20 "$WORK/c0.log"
check_eq "(0) big exact" "$(pg_state)" "$(ch_state)"
check_eq "(0) big_x5 exact" "$(pg_state)" "$(x5_state)"
check_eq "(0) no temporaries" 0 "$(temps)"
grep -E 'task=(load|model):[a-z_0-9]+ .*state=success' "$WORK/c0.log" | sed 's/.*task=/# task=/' | cut -c1-120 || true

# ---- (1) eltd run SIGKILLed mid-load ----
PREV=$(ch_state)
change_pg 7
"$ELTD" run -c "$CFG" >"$WORK/k1.log" 2>&1 &
EPID=$!
if wait_for 60 side_has_rows; then
  kill -KILL "$EPID"
  pass "(1) eltd SIGKILLed mid-load"
else
  fail "(1) never saw the side table fill"
fi
wait "$EPID" 2>/dev/null || true
wait_for 30 no_orphans || true
check_eq "(1) the previous table is untouched" "$PREV" "$(ch_state)"
left=$(temp_names)
check_contains "(1) control: the kill left the side table" "$RAW.big__eltd_new" "$left"
echo "# (1) left behind: $left"
next_run "$left" "(1)"

# ---- (2) eltd run SIGKILLed mid-model ----
change_pg 8
"$ELTD" run -c "$CFG" >"$WORK/k2.log" 2>&1 &
EPID=$!
if wait_for 90 model_building; then
  kill -KILL "$EPID"
  pass "(2) eltd SIGKILLed while big_x5 was being built"
else
  fail "(2) never saw big_x5__eltd_new"
fi
wait "$EPID" 2>/dev/null || true
grep -E 'task=model:big_x5 .*state=running' "$WORK/k2.log" | cut -c1-160 | sed 's/^/# /' || true
left=$(temp_names)
check_contains "(2) control: the kill left the half-built model" "$AN.big_x5__eltd_new" "$left"
echo "# (2) left behind: $left"
# The next run starts at once: ClickHouse may still be running the orphaned CREATE AS SELECT.
next_run "$left" "(2)"

# ---- (3) eltd serve SIGKILLed mid-load ----
HAVE_SERVE=0
"$ELTD" --help 2>&1 | grep -q '^ *serve ' && HAVE_SERVE=1
if [ "$HAVE_SERVE" = 1 ]; then
  PREV=$(ch_state)
  change_pg 9
  start_daemon "$CFG"
  r=$(api POST /webhook/manual)
  check_eq "(3) trigger accepted" 202 "${r%% *}"
  id=$(jget "${r#* }" 'j["run_id"]')
  if wait_for 60 side_has_rows; then
    stop_daemon KILL
    pass "(3) eltd serve SIGKILLed mid-load (run $id)"
  else
    fail "(3) never saw the side table fill"
  fi
  wait_for 30 no_orphans || true
  check_eq "(3) the previous table is untouched" "$PREV" "$(ch_state)"
  left=$(temp_names)
  check_contains "(3) control: the kill left the side table" "$RAW.big__eltd_new" "$left"
  start_daemon "$CFG"
  r=$(curl -sS "$BASE/api/runs/$id")
  check_eq "(3) the interrupted run is failed after the restart" failed "$(jget "$r" 'j["state"]')"
  check_contains "(3) ... and says interrupted" "interrupted" "$r"
  check_eq "(3) /api/runs lists it as failed" failed \
    "$(jget "$(curl -sS "$BASE/api/runs")" '[x["state"] for x in j["runs"] if x["id"] == '"$id"'][0]')"
  r=$(api POST /webhook/manual)
  id2=$(jget "${r#* }" 'j["run_id"]')
  wait_run_final 120 "$id2" || true
  check_eq "(3) the next triggered run succeeds" success "$(run_state "$id2")"
  check_contains "(3) it dropped the side table at start" \
    "event=dropped_leftover table=$RAW.big__eltd_new" "$(cat "$DAEMON_LOG")"
  check_eq "(3) big exact" "$(pg_state)" "$(ch_state)"
  check_eq "(3) big_x5 exact (x5)" "$(pg_state)" "$(x5_state)"
  check_eq "(3) no eltd temporaries" 0 "$(temps)"
  stop_daemon TERM
else
  echo "# eltd serve not built: (3) skipped"
fi

for d in $RAW $AN; do ch "DROP DATABASE IF EXISTS $d" >/dev/null; done
pg "SET client_min_messages = warning; DROP SCHEMA $S CASCADE"
