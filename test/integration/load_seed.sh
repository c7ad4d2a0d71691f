#!/usr/bin/env bash
# The seed's four tables land in ClickHouse exactly: counts and sums equal PostgreSQL's,
# a second run publishes over the first without duplicating a row, no side table is left.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"

cfg=$(make_config seed)
ch "DROP DATABASE IF EXISTS raw_seed" >/dev/null
for round in 1 2; do
  out=$("$ELTD" run -c "$cfg" 2>&1) || { fail "eltd run (round $round) failed: $out"; exit 1; }
  pass "eltd run round $round exits 0"
  for t in customers products orders order_items; do
    check_eq "round $round: raw_seed.$t count" "$(pg "SELECT count(*) FROM $t")" \
      "$(ch "SELECT count() FROM raw_seed.$t")"
  done
  check_eq "round $round: sum(total_amount)" "$(pg "SELECT sum(total_amount) FROM orders")" \
    "$(ch "SELECT sum(total_amount) FROM raw_seed.orders")"
  check_eq "round $round: sum(subtotal)" "$(pg "SELECT sum(subtotal) FROM order_items")" \
    "$(ch "SELECT sum(subtotal) FROM raw_seed.order_items")"
  check_eq "round $round: distinct customer ids" \
    "$(pg "SELECT count(DISTINCT customer_id) FROM orders")" \
    "$(ch "SELECT uniqExact(customer_id) FROM raw_seed.orders")"
done
check_eq "no side tables left" "0" \
  "$(ch "SELECT count() FROM system.tables WHERE database = 'raw_seed' AND name LIKE '%__eltd_%'")"
check_contains "second run publishes by a swap" "method=rename_pair" "$out"
ch "DROP DATABASE IF EXISTS raw_seed" >/dev/null
