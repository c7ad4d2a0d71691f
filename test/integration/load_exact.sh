#!/usr/bin/env bash
# Exact values (issue 3, point 3): a table holding every hard case (NULL vs '', control
# characters, a literal \N, 4-byte UTF-8, padded char(n), max-digit and negative numerics,
# integer limits, ±Infinity/NaN, fractional seconds that must truncate, timestamptz, uuid,
# jsonb, enum, a domain over numeric) loads so that test/lib/fingerprint.py finds every
# column of every row equal. Values ClickHouse cannot hold, numerics without a precision and
# unmappable types fail with an error naming table, column (and value), leave the previous
# table as it was and no side table; a configured cast then loads them. A control shows the
# fingerprint does see a one-value difference.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"

S=load_exact
DB=raw_exact
export PG_SCHEMA=$S
FP=("$PY" "$ROOT/test/lib/fingerprint.py")

pg_script() { PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 -f -; }
# eltd_run TABLES_YAML: one eltd run into $DB; sets OUT and RC.
eltd_run() {
  local cfg
  cfg=$(TABLES_YAML=$1 make_config exact)
  RC=0
  OUT=$("$ELTD" run -c "$cfg" 2>&1) || RC=$?
}
# fp TABLE [KEY]: the fingerprint of $S.TABLE against $DB.TABLE; sets FP_OUT, returns its code.
fp() {
  local rc=0
  FP_OUT=$("${FP[@]}" --pg "$S.$1" --ch "$DB.$1" --key "${2:-id}" 2>&1) || rc=$?
  return $rc
}
check_fp_equal() {
  if fp "$1"; then pass "$2: $(printf '%s' "$FP_OUT" | tail -n1)"; else
    fail "$2: fingerprint differs:
$FP_OUT"; fi
}
digest() { "${FP[@]}" --ch "$DB.$1" --key id --ch-digest; }
side_tables() {
  ch "SELECT count() FROM system.tables WHERE database = '$DB' AND position(name, '__eltd_') > 0"
}
ch_type() {
  ch "SELECT type FROM system.columns WHERE database = '$DB' AND table = '$1' AND name = '$2' FORMAT TSVRaw"
}

# expect_refused WHAT TABLES_YAML TABLE NEEDLE...: the run fails, its output contains every
# NEEDLE, and $DB.TABLE is exactly what it was (same rows digest), with no side table left.
expect_refused() {
  local what=$1 tables=$2 table=$3 before after
  shift 3
  before=$(digest "$table")
  eltd_run "$tables"
  if [ "$RC" -ne 0 ]; then pass "$what: eltd exits $RC"; else
    fail "$what: eltd exited 0: $(printf '%s' "$OUT" | tail -n 5)"; fi
  local needle
  for needle in "$@"; do check_contains "$what: error names '$needle'" "$needle" "$OUT"; done
  after=$(digest "$table")
  check_eq "$what: $DB.$table unchanged" "$before" "$after"
  check_eq "$what: no side table left" "0" "$(side_tables)"
}

ch "DROP DATABASE IF EXISTS $DB" >/dev/null
pg_script <<SQL
DROP SCHEMA IF EXISTS $S CASCADE;
CREATE SCHEMA $S;
SET search_path = $S;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'it''s "fine"', 'ünïcødé 😀');
CREATE DOMAIN money3 AS numeric(8,3);
CREATE TABLE exact_types (
  id int4 PRIMARY KEY,
  t text, vc varchar(40), cp char(6), tn text NOT NULL DEFAULT '',
  n1 numeric(10,2), n2 numeric(18,6), n3 numeric(38,10),
  i2 int2, i4 int4, i8 int8, f8 float8, f4 float4,
  b bool, d date, ts timestamp, tstz timestamptz,
  u uuid, j jsonb, e mood
);
INSERT INTO exact_types (id, t, tn) VALUES (1, NULL, ''), (2, '', 'x');
INSERT INTO exact_types VALUES
 (3, E'tab\there', 'a', 'ab', E'nl\nx', 99999999.99, 999999999999.999999,
  9999999999999999999999999999.9999999999, 32767, 2147483647, 9223372036854775807, 0.1, 1.5,
  true, '2024-02-29', '2024-12-31 23:59:59.999999', '2024-06-30 23:59:59.999999+05',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": "tab\tq", "b": [1, 2.50, null], "é": "\\\\N"}',
  'sad'),
 (4, E'cr\rlf\r\n', 'trailing  ', 'abcdef', E'back\\\\slash', -99999999.99, -999999999999.999999,
  -9999999999999999999999999999.9999999999, -32768, -2147483648, -9223372036854775808,
  'Infinity', '-Infinity', false, '1970-01-01', '1970-01-01 00:00:00', '1970-01-01 00:00:00+00',
  '00000000-0000-0000-0000-000000000000', '[]', 'ok'),
 (5, E'\\\\N', ' lead', '', E'\\\\', 0.01, 0.000001, 0.0000000001, 0, 0, 0, '-Infinity', 'NaN',
  NULL, '2105-12-31', '2105-12-31 23:59:59.999999', '2105-12-31 23:59:59+00',
  'ffffffff-ffff-ffff-ffff-ffffffffffff', 'null', 'it''s "fine"'),
 (6, E'\\\\\\\\N \\\\t', 'q''uo"te\`', 'x y', E'\v\f\b', 1.1, 1.1, 1.1, 1, 1, 1, 'NaN',
  3.4028235e38, true, '2000-01-01', '2000-02-29 12:00:00.5', '1999-12-31 23:59:59.5-08', NULL,
  '{"k": "\u00e9\ud83d\ude00"}', 'ünïcødé 😀'),
 (7, '😀 🇫🇷 e' || chr(769) || ' שלום עולם ' || chr(8238) || 'rtl', 'ñ', 'é', 'Ω≈ç√', 12.3, -0.5,
  123456789012345678901234567.8901234567, -1, -1, -1, 1.7976931348623157e308, 1e-30, false,
  '1999-12-31', '2038-01-19 03:14:08', '2038-01-19 03:14:08.000001+00',
  'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12', '"str"', NULL),
 (8, E'\x01\x02\x1f\x7f', NULL, NULL, E'\t\n\r\\\\', NULL, NULL, NULL, NULL, NULL, NULL,
  2.2250738585072014e-308, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (9, E'ends with backslash \\\\', E'multi\nline\ttab', E'a\tb', E'\'"', 3.14, 2.718281,
  0.3333333333, 12345, 123456789, 1234567890123456789, -0.0, -0.0, true, '2024-01-01',
  '2024-01-01 00:00:00.000001', '2024-01-01 00:00:00.999999+00',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13', '{"nested": {"deep": [true, false]}}', 'sad'),
 (10, 'plain', 'x', 'x', 'x', 5, 5, 5, 5, 5, 5, 123456.789e-3, 0.1, false, '2024-01-01',
  '2024-01-01 00:00:00', '2024-01-01 00:00:00+00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a14', '{}',
  'ok');
CREATE TABLE exact_domain (id int4 PRIMARY KEY, amount money3, amount_nn money3 NOT NULL);
INSERT INTO exact_domain VALUES (1, 12345.678, 0), (2, -99999.999, 99999.999), (3, NULL, -0.001);
CREATE TABLE neg_date (id int4 PRIMARY KEY, d date);
INSERT INTO neg_date VALUES (1, '2024-01-02'), (2, NULL);
CREATE TABLE neg_ts (id int4 PRIMARY KEY, ts timestamp, tstz timestamptz);
INSERT INTO neg_ts VALUES (1, '2024-01-02 03:04:05', '2024-01-02 03:04:05+00');
CREATE TABLE neg_numeric (id int4 PRIMARY KEY, amount numeric(20,4));
INSERT INTO neg_numeric VALUES (1, 1234567890123456.1234), (2, NULL);
CREATE TABLE neg_unmappable (id int4 PRIMARY KEY, name text);
INSERT INTO neg_unmappable VALUES (1, 'one'), (2, 'two');
SQL

# ---- every hard case, exactly ------------------------------------------------------------
eltd_run '[{name: exact_types}]'
if [ "$RC" -eq 0 ]; then pass "exact_types loads"; else
  fail "exact_types load failed: $(printf '%s' "$OUT" | grep -E 'error' | head -n 3)"; fi
check_fp_equal exact_types "exact_types: every column of every row equal"
check_eq "rows" "10" "$(ch "SELECT count() FROM $DB.exact_types")"
check_eq "NULL stays NULL, '' stays ''" "1 1" \
  "$(ch "SELECT countIf(isNull(t)), countIf(t = '') FROM $DB.exact_types" | tr '\t' ' ')"
check_eq ".999999 truncates to the second, never rounds up" \
  "2024-12-31 23:59:59 2024-06-30 18:59:59" \
  "$(ch "SELECT toString(ts), toString(tstz) FROM $DB.exact_types WHERE id = 3" | tr '\t' ' ')"
check_eq "literal backslash-N is text, not NULL" '\N' \
  "$(ch "SELECT t FROM $DB.exact_types WHERE id = 5 FORMAT TSVRaw")"
check_eq "emoji and combining marks byte for byte" \
  "$(pg "SELECT encode(convert_to(t, 'UTF8'), 'hex') FROM $S.exact_types WHERE id = 7")" \
  "$(ch "SELECT lower(hex(t)) FROM $DB.exact_types WHERE id = 7")"
for c in "tn String" "t Nullable(String)" "cp Nullable(String)" "n1 Nullable(Decimal(10, 2))" \
  "n3 Nullable(Decimal(38, 10))" "i8 Nullable(Int64)" "f4 Nullable(Float32)" \
  "b Nullable(UInt8)" "d Nullable(Date)" "u Nullable(UUID)" "e Nullable(String)"; do
  check_eq "column ${c%% *} type" "${c#* }" "$(ch_type exact_types "${c%% *}")"
done
check_contains "timestamps are DateTime('UTC') or DateTime64(6, 'UTC')" "'UTC')" \
  "$(ch_type exact_types tstz)"

eltd_run '[{name: exact_types}]'
check_eq "second run exits 0" "0" "$RC"
check_contains "second run publishes by a swap" "method=rename_pair" "$OUT"
check_fp_equal exact_types "second run: still equal, no duplicates"

# ---- control: the oracle sees a single changed value -------------------------------------
pg "UPDATE $S.exact_types SET n3 = n3 - 0.0000000001 WHERE id = 3"
rc=0; fp exact_types || rc=$?
check_eq "control: fingerprint exits 1 after one numeric digit changed in PostgreSQL" "1" "$rc"
check_contains "control: the difference names key and column" "key=(3,) column=n3" "$FP_OUT"
pg "UPDATE $S.exact_types SET n3 = n3 + 0.0000000001 WHERE id = 3;
    UPDATE $S.exact_types SET t = '' WHERE id = 1"
rc=0; fp exact_types || rc=$?
check_eq "control: NULL turned '' in PostgreSQL is a difference" "1" "$rc"
check_contains "control: names the NULL/'' column" "key=(1,) column=t" "$FP_OUT"
pg "UPDATE $S.exact_types SET t = NULL WHERE id = 1"
check_fp_equal exact_types "control: equal again once PostgreSQL is restored"

# ---- a domain over numeric(8,3) keeps its precision ---------------------------------------
eltd_run '[{name: exact_domain}]'
if [ "$RC" -eq 0 ]; then pass "exact_domain loads"; else
  fail "domain over numeric(8,3) refused: $(printf '%s' "$OUT" | grep -m1 -o 'error=.*')"; fi
check_eq "domain column type" "Nullable(Decimal(8, 3))" "$(ch_type exact_domain amount)"
check_eq "NOT NULL domain column type" "Decimal(8, 3)" "$(ch_type exact_domain amount_nn)"
check_fp_equal exact_domain "exact_domain equal"

# ---- values the target type cannot hold --------------------------------------------------
eltd_run '[{name: neg_date}, {name: neg_ts}]'
check_eq "neg_date and neg_ts load first" "0" "$RC"
for bad in 1969-12-31 2106-01-01; do
  pg "INSERT INTO $S.neg_date VALUES (3, '$bad')"
  expect_refused "date $bad" '[{name: neg_date}]' neg_date "neg_date.d = $bad" "Date range"
  pg "DELETE FROM $S.neg_date WHERE id = 3"
done
for bad in "ts:2106-02-07 06:28:15" "ts:2200-01-01 00:00:00" "ts:1969-12-31 23:59:59" \
  "tstz:2106-02-07 06:28:15"; do
  col=${bad%%:*} val=${bad#*:}
  pg "INSERT INTO $S.neg_ts (id, $col) VALUES (2, '$val+00')"
  expect_refused "$col $val" '[{name: neg_ts}]' neg_ts "neg_ts.$col = $val" "DateTime"
  pg "DELETE FROM $S.neg_ts WHERE id = 2"
done
eltd_run '[{name: neg_date}]'
check_eq "neg_date loads again once the value is gone" "0" "$RC"

# ---- numeric without precision: refused, then loaded with a cast --------------------------
eltd_run '[{name: neg_numeric}, {name: neg_unmappable}]'
check_eq "neg_numeric and neg_unmappable load first" "0" "$RC"
pg "ALTER TABLE $S.neg_numeric ALTER COLUMN amount TYPE numeric;
    INSERT INTO $S.neg_numeric VALUES (3, -1234567890123456789012345678.0123456789)"
expect_refused "unconstrained numeric" '[{name: neg_numeric}]' neg_numeric \
  "table neg_numeric, column amount" "configure a cast"
eltd_run '[{name: neg_numeric, casts: {amount: "Decimal(38, 10)"}}]'
check_eq "unconstrained numeric with casts: {amount: Decimal(38, 10)} loads" "0" "$RC"
check_eq "cast column type" "Nullable(Decimal(38, 10))" "$(ch_type neg_numeric amount)"
check_contains "changed type is logged as a structure change" "event=structure_changed" "$OUT"
check_fp_equal neg_numeric "neg_numeric equal after the cast"

# ---- unmappable types: refused naming table and column, then cast to String ---------------
pg "ALTER TABLE $S.neg_unmappable ADD COLUMN span interval DEFAULT '1 day 02:03:04.5',
                                   ADD COLUMN tags int4[] DEFAULT '{1,2,NULL}';
    INSERT INTO $S.neg_unmappable VALUES (3, 'three', NULL, '{}')"
expect_refused "interval" '[{name: neg_unmappable}]' neg_unmappable \
  "table neg_unmappable, column span" "interval" "configure a cast"
expect_refused "int4[]" '[{name: neg_unmappable, casts: {span: String}}]' neg_unmappable \
  "table neg_unmappable, column tags" "configure a cast"
eltd_run '[{name: neg_unmappable, casts: {span: String, tags: String}}]'
check_eq "interval and int4[] cast to String load" "0" "$RC"
check_eq "cast columns are Nullable(String)" "Nullable(String) Nullable(String)" \
  "$(ch_type neg_unmappable span) $(ch_type neg_unmappable tags)"
check_fp_equal neg_unmappable "neg_unmappable equal (PostgreSQL's text of interval and int4[])"
check_eq "no side table left at the end" "0" "$(side_tables)"

ch "DROP DATABASE IF EXISTS $DB" >/dev/null
pg_script <<<"DROP SCHEMA IF EXISTS $S CASCADE"
