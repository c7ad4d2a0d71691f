#!/usr/bin/env bash
# Schema from the catalog (issue 3, point 4): ClickHouse columns come in PostgreSQL's order,
# Nullable exactly where PostgreSQL allows NULL, ORDER BY is the primary key in its own
# order (tuple() without one); a column added, retyped or dropped in PostgreSQL follows on
# the next run (logged as a structure change); an unchanged run publishes by REPLACE
# PARTITION without duplicating; an emptied source table publishes an empty target.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"

S=load_schema
DB=raw_schema
export PG_SCHEMA=$S
FP=("$PY" "$ROOT/test/lib/fingerprint.py")
TABLES='[{name: sch_orders}, {name: sch_nokey}, {name: sch_single}]'

pg_script() { PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 -f -; }
eltd_run() {
  local cfg
  cfg=$(TABLES_YAML=$TABLES make_config schema)
  RC=0
  OUT=$("$ELTD" run -c "$cfg" 2>&1) || RC=$?
  if [ "$RC" -eq 0 ]; then pass "$1: eltd exits 0"; else
    fail "$1: eltd exited $RC: $(printf '%s' "$OUT" | grep -m3 error)"; fi
}
check_fp_equal() {
  local out rc=0
  out=$("${FP[@]}" --pg "$S.$1" --ch "$DB.$1" --key "$2" 2>&1) || rc=$?
  if [ "$rc" -eq 0 ]; then pass "$3: $(printf '%s' "$out" | tail -n1)"; else
    fail "$3: fingerprint differs:
$out"; fi
}
# PostgreSQL's columns in order as name:Y|N (Y = nullable), from the catalog.
pg_shape() {
  pg "SELECT string_agg(attname || ':' || CASE WHEN attnotnull THEN 'N' ELSE 'Y' END, ','
      ORDER BY attnum) FROM pg_attribute
      WHERE attrelid = '$S.$1'::regclass AND attnum > 0 AND NOT attisdropped"
}
# The same for ClickHouse, from DESCRIBE (which lists columns in table order).
ch_shape() {
  ch "DESCRIBE TABLE $DB.$1 FORMAT TSVRaw" |
    awk -F'\t' '{ printf "%s%s:%s", (NR > 1 ? "," : ""), $1, ($2 ~ /^Nullable\(/ ? "Y" : "N") }'
}
order_by() {
  ch "SHOW CREATE TABLE $DB.$1 FORMAT TSVRaw" | grep -o 'ORDER BY .*' | sed 's/ SETTINGS.*//'
}
count() { ch "SELECT count() FROM $DB.$1"; }

ch "DROP DATABASE IF EXISTS $DB" >/dev/null
pg_script <<SQL
DROP SCHEMA IF EXISTS $S CASCADE;
CREATE SCHEMA $S;
SET search_path = $S;
-- Column order deliberately not alphabetical; the key is (region, id), not column order.
CREATE TABLE sch_orders (
  status text NOT NULL,
  id int8 NOT NULL,
  amount numeric(12,2),
  region varchar(8) NOT NULL,
  "Mixed Case" text,
  created_at timestamp NOT NULL,
  PRIMARY KEY (region, id)
);
INSERT INTO sch_orders
  SELECT CASE WHEN g % 3 = 0 THEN 'new' ELSE 'paid' END, g, CASE WHEN g % 5 = 0 THEN NULL
    ELSE g * 1.25 END, 'r' || (g % 4), 'm' || g, '2024-01-01'::timestamp + g * interval '1 hour'
  FROM generate_series(1, 500) g;
CREATE TABLE sch_nokey (a int4, b text NOT NULL);
INSERT INTO sch_nokey VALUES (1, 'x'), (NULL, 'y'), (1, 'x');
CREATE TABLE sch_single (id int4 PRIMARY KEY, v text);
INSERT INTO sch_single SELECT g, 'v' || g FROM generate_series(1, 50) g;
SQL

# ---- first load: shape, nullability, keys -------------------------------------------------
eltd_run "first run"
for t in sch_orders sch_nokey sch_single; do
  check_eq "$t: columns in PostgreSQL's order, Nullable exactly where nullable" \
    "$(pg_shape $t)" "$(ch_shape $t)"
done
check_eq "sch_orders types" \
  "status String;id Int64;amount Nullable(Decimal(12, 2));region String;Mixed Case Nullable(String);created_at DateTime('UTC');" \
  "$(ch "DESCRIBE TABLE $DB.sch_orders FORMAT TSVRaw" | cut -f1,2 | sed 's/\t/ /' | tr '\n' ';')"
check_eq "sch_orders: ORDER BY is the primary key in key order" "ORDER BY (region, id)" \
  "$(order_by sch_orders)"
check_eq "sch_single: ORDER BY id" "ORDER BY id" "$(order_by sch_single)"
check_eq "sch_nokey: no primary key gives ORDER BY tuple()" "ORDER BY tuple()" \
  "$(order_by sch_nokey)"
check_fp_equal sch_orders region,id "sch_orders equal"
check_fp_equal sch_single id "sch_single equal"
check_eq "sch_nokey rows (duplicates kept)" "3" "$(count sch_nokey)"
check_eq "sch_nokey content" \
  "$(pg "SELECT coalesce(a::text, 'N') || b FROM $S.sch_nokey" | LC_ALL=C sort | tr '\n' ' ')" \
  "$(ch "SELECT ifNull(toString(a), 'N') || b FROM $DB.sch_nokey" | LC_ALL=C sort | tr '\n' ' ')"

# ---- no change: a swap, never duplicates --------------------------------------
for round in 2 3; do
  eltd_run "unchanged run $round"
  check_eq "run $round: every table publishes by a swap" "3" \
    "$(printf '%s\n' "$OUT" | grep -c 'event=publish method=\(rename_pair\|exchange_tables\) ')"
  check_eq "run $round: no structure change logged" "0" \
    "$(printf '%s\n' "$OUT" | grep -c 'event=structure_changed' || true)"
  check_eq "run $round: sch_orders rows, distinct keys" "500 500" \
    "$(ch "SELECT count(), uniqExact(region, id) FROM $DB.sch_orders" | tr '\t' ' ')"
  check_eq "run $round: sch_nokey rows" "3" "$(count sch_nokey)"
done

# ---- a column added in PostgreSQL appears on the next run -------------------------------
pg "ALTER TABLE $S.sch_orders ADD COLUMN note text, ADD COLUMN qty int4 NOT NULL DEFAULT 7;
    UPDATE $S.sch_orders SET note = 'note ' || id, qty = id % 11 WHERE id % 2 = 0"
eltd_run "after ADD COLUMN"
check_contains "ADD COLUMN: log says the structure changed" \
  "table=sch_orders event=structure_changed" "$OUT"
check_contains "ADD COLUMN: published by the structure-change rename" \
  "table=sch_orders event=publish method=rename_pair_structure_changed" "$OUT"
check_eq "ADD COLUMN: shape follows" "$(pg_shape sch_orders)" "$(ch_shape sch_orders)"
check_fp_equal sch_orders region,id "ADD COLUMN: new columns carry PostgreSQL's values"
check_eq "ADD COLUMN: spot value" "note 10	10" \
  "$(ch "SELECT note, qty FROM $DB.sch_orders WHERE id = 10 FORMAT TSVRaw")"

# ---- a type change and a dropped column follow too --------------------------------------
pg "ALTER TABLE $S.sch_single ALTER COLUMN v TYPE int8 USING (substr(v, 2))::int8;
    ALTER TABLE $S.sch_orders DROP COLUMN \"Mixed Case\""
eltd_run "after DROP COLUMN and ALTER TYPE"
check_contains "DROP COLUMN: log says the structure changed" \
  "table=sch_orders event=structure_changed" "$OUT"
check_eq "DROP COLUMN: column gone, shape follows" "$(pg_shape sch_orders)" \
  "$(ch_shape sch_orders)"
check_fp_equal sch_orders region,id "DROP COLUMN: data equal"
check_contains "ALTER TYPE: log says the structure changed" \
  "table=sch_single event=structure_changed" "$OUT"
check_eq "ALTER TYPE: text -> int8 becomes Nullable(Int64)" "Nullable(Int64)" \
  "$(ch "SELECT type FROM system.columns WHERE database = '$DB' AND table = 'sch_single' AND name = 'v' FORMAT TSVRaw")"
check_fp_equal sch_single id "ALTER TYPE: data equal"
check_eq "no __eltd_ side or old tables left" "0" \
  "$(ch "SELECT count() FROM system.tables WHERE database = '$DB' AND position(name, '__eltd_') > 0")"

# ---- an emptied source publishes an empty target ----------------------------------------
pg "DELETE FROM $S.sch_single; DELETE FROM $S.sch_nokey"
eltd_run "after emptying sources"
check_eq "empty source: sch_single target empty (previous 50 rows gone)" "0" "$(count sch_single)"
check_eq "empty source: sch_nokey target empty (previous 3 rows gone)" "0" "$(count sch_nokey)"
check_eq "empty source: sch_orders untouched" "500" "$(count sch_orders)"
pg "INSERT INTO $S.sch_single VALUES (1, 1)"
eltd_run "after refilling"
check_eq "refilled source: one row again" "1" "$(count sch_single)"

ch "DROP DATABASE IF EXISTS $DB" >/dev/null
pg_script <<<"DROP SCHEMA IF EXISTS $S CASCADE"
