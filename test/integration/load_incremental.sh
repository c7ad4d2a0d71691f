#!/usr/bin/env bash
# Incremental mode (issue 3, point 6): `mode: incremental, cursor: updated_at`. The first run
# loads everything into a ReplacingMergeTree keyed on the primary key; after inserts and
# updates in PostgreSQL the next run reads the watermark back from the target (max cursor),
# copies only rows at or after it (the watermark's own second is re-copied by design: the
# target keeps whole seconds) and `FINAL` equals PostgreSQL by count, sums and an md5 of the
# ordered rows. --full-refresh reloads everything and keeps the engine, so the next
# incremental run still goes by watermark.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"

S=eltd_incr
DB=raw_incr
# 10,000 rows, one second apart, with fractions; the last three share the final second.
pg "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S;
    CREATE TABLE $S.items (id integer PRIMARY KEY, name text NOT NULL,
                           amount numeric(12,2) NOT NULL, updated_at timestamp NOT NULL);
    INSERT INTO $S.items SELECT g, 'item ' || g, g * 1.25,
        timestamp '2024-01-01' + least(g, 9998) * interval '1 second'
          + (g % 7) * interval '0.1 second'
    FROM generate_series(1, 10000) g;"
# Loads only: an empty models project, so no model task joins the run.
mkdir -p "$WORK/no-models"
export MODELS_PATH=$WORK/no-models
export PG_SCHEMA=$S
cfg=$(TABLES_YAML='[{name: items, mode: incremental, cursor: updated_at}]' make_config incr)
ch "DROP DATABASE IF EXISTS $DB" >/dev/null

PG_STATE="SELECT count(*) || E'\t' || sum(id) || E'\t' || sum(amount) FROM $S.items"
PG_MD5="SELECT md5(string_agg(id || ',' || name || ',' || amount || ',' ||
          to_char(date_trunc('second', updated_at), 'YYYY-MM-DD HH24:MI:SS'), E'\n' ORDER BY id))
        FROM $S.items"
ch_state() { ch "SELECT count(), sum(id), sum(amount) FROM $DB.items FINAL"; }
ch_md5() {
  ch "SELECT lower(hex(MD5(arrayStringConcat(groupArray(s), '\n')))) FROM (
        SELECT concat(toString(id), ',', name, ',', toString(amount), ',', toString(updated_at))
          AS s FROM $DB.items FINAL ORDER BY id)"
}
run_eltd() { # WHAT [ARGS]: a run that must succeed; its output in $OUT
  local what=$1
  shift
  OUT=$("$ELTD" run -c "$cfg" "$@" 2>&1) || { fail "$what: eltd run failed: $OUT"; exit 1; }
  pass "$what: eltd run exits 0"
}
loaded_rows() { grep -o 'task=load:items attempt=[0-9]* event=loaded rows=[0-9]*' <<<"$OUT" |
  sed 's/.*rows=//'; }
check_equal_to_pg() { # WHAT
  check_eq "$1: FINAL count and sums equal PostgreSQL" "$(pg "$PG_STATE")" "$(ch_state)"
  check_eq "$1: md5 of the ordered rows equals PostgreSQL's" "$(pg "$PG_MD5")" "$(ch_md5)"
}

# Run 1: the target does not exist, everything is copied.
run_eltd "first run"
check_eq "first run copies every row" 10000 "$(loaded_rows)"
ddl=$(ch "SHOW CREATE TABLE $DB.items")
check_contains "target engine is ReplacingMergeTree on the cursor" \
  "ENGINE = ReplacingMergeTree(updated_at)" "$ddl"
check_contains "target is keyed on the primary key" "ORDER BY id" "$ddl"
check_equal_to_pg "first run"

# Change PostgreSQL: 50 new rows, 30 updated rows (cursor bumped), all newer than anything.
pg "INSERT INTO $S.items SELECT g, 'new ' || g, g * 0.5,
        timestamp '2025-06-01 12:00:00' + (g % 5) * interval '1 second' + interval '0.4 second'
    FROM generate_series(20001, 20050) g;
    UPDATE $S.items SET amount = amount + 1, name = name || ' (updated)',
        updated_at = timestamp '2025-06-01 12:00:03.7' WHERE id % 300 = 0 AND id <= 9000;"
changed=80
wm=$(ch "SELECT toString(max(updated_at)) FROM $DB.items")
at_wm=$(pg "SELECT count(*) FROM $S.items WHERE updated_at >= '$wm' AND updated_at < '2025-01-01'")
check_eq "three unchanged rows sit at the watermark's second ($wm)" 3 "$at_wm"

# Run 2: only rows at or after the watermark are copied, appended by ATTACH PARTITION.
run_eltd "incremental run"
check_contains "log shows the watermark read back from the target" \
  "event=watermark cursor=updated_at value=\"$wm\"" "$OUT"
check_eq "copied rows = changed rows + rows at the watermark second" \
  "$((changed + at_wm))" "$(loaded_rows)"
check_contains "incremental rows are appended (ATTACH PARTITION)" "method=attach_partition" "$OUT"
check_equal_to_pg "incremental run"
check_eq "updated rows carry their new values under FINAL" 30 \
  "$(ch "SELECT count() FROM $DB.items FINAL WHERE endsWith(name, ' (updated)')")"

# Run 3 with nothing changed: only the watermark second comes again; FINAL still exact.
wm=$(ch "SELECT toString(max(updated_at)) FROM $DB.items")
run_eltd "unchanged run"
check_eq "unchanged run copies only the watermark second" \
  "$(pg "SELECT count(*) FROM $S.items WHERE updated_at >= '$wm'")" "$(loaded_rows)"
check_equal_to_pg "unchanged run"

# --full-refresh: everything again, published over the target in one step, engine kept.
run_eltd "full refresh" --full-refresh
check_eq "full refresh copies every row" "$(pg "SELECT count(*) FROM $S.items")" "$(loaded_rows)"
check_contains "full refresh swaps the table" "method=rename_pair" "$OUT"
check_eq "full refresh leaves no duplicate even without FINAL" \
  "$(pg "SELECT count(*) FROM $S.items")" "$(ch "SELECT count() FROM $DB.items")"
check_contains "full refresh keeps ReplacingMergeTree" "ENGINE = ReplacingMergeTree(updated_at)" \
  "$(ch "SHOW CREATE TABLE $DB.items")"
check_equal_to_pg "full refresh"

# The next incremental run goes by watermark again (the structure did not change).
wm=$(ch "SELECT toString(max(updated_at)) FROM $DB.items")
at_wm=$(pg "SELECT count(*) FROM $S.items WHERE updated_at >= '$wm'")
pg "UPDATE $S.items SET amount = amount + 2, updated_at = timestamp '2025-07-01 00:00:00'
    WHERE id IN (1, 2, 3)"
run_eltd "incremental after full refresh"
check_contains "no structure change after a full refresh" "event=watermark" "$OUT"
if grep -q "structure_changed" <<<"$OUT"; then fail "structure_changed after --full-refresh"; fi
check_eq "incremental after full refresh copies 3 updated + $at_wm watermark-second rows" \
  "$((3 + at_wm))" "$(loaded_rows)"
check_equal_to_pg "incremental after full refresh"
check_eq "no side table left" 0 \
  "$(ch "SELECT count() FROM system.tables WHERE database = '$DB' AND match(name, '__eltd_')")"

ch "DROP DATABASE IF EXISTS $DB" >/dev/null
pg "SET client_min_messages = warning; DROP SCHEMA $S CASCADE"
