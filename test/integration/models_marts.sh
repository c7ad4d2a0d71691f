#!/usr/bin/env bash
# The seed's dbt project (models/) built by `eltd run` after the loads: staging views and
# mart tables land in analytics_marts, every schema.yml test passes, and the marts equal the
# same business rules computed in PostgreSQL on the sample data (test/lib/marts_expected.sql).
# A second run rebuilds over the first without duplicating a row or leaving a side table.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"

A=analytics_marts
cfg=$(make_config marts)
ch "DROP DATABASE IF EXISTS raw_marts" >/dev/null
ch "DROP DATABASE IF EXISTS $A" >/dev/null

# Decimals print as 61553.40 on ClickHouse 18.16 and PostgreSQL but as 61553.4 on a current
# ClickHouse: compare numbers without trailing fractional zeros.
num() { sed -E 's/(\.[0-9]*[1-9])0+($|\t)/\1\2/g; s/\.0+($|\t)/\1/g'; }
chq() { ch "$1 FORMAT TabSeparated" | num; }
# check_rows WHAT EXPECTED ACTUAL: multi-line results; a failure shows the diff.
check_rows() {
  if [ "$2" = "$3" ]; then pass "$1 ($(printf '%s\n' "$3" | wc -l | tr -d ' ') rows)"; else
    fail "$1:
$(diff <(printf '%s\n' "$2") <(printf '%s\n' "$3") | head -20 || true)"; fi
}
pgq() { psql -X -A -t -q -F $'\t' -v ON_ERROR_STOP=1 -c "$1" | num; }

staging="stg_customers stg_products stg_orders stg_order_items"
marts="fact_sales agg_sales_by_state"
n_tests=$("$PY" - "$ROOT/models/schema.yml" <<'EOF'
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
print(sum(len(c.get("tests", [])) for m in d["models"] for c in m.get("columns", [])))
EOF
)

for round in 1 2; do
  out=$("$ELTD" run -c "$cfg" 2>&1) || { fail "eltd run (round $round) failed: $out"; exit 1; }
  pass "eltd run round $round exits 0"

  # Every model and every schema.yml test ran and succeeded (summary table: task, state, ...).
  for m in $staging $marts; do
    check_eq "round $round: model:$m state" "success" \
      "$(printf '%s\n' "$out" | awk -v t="model:$m" '$1 == t { print $2 }')"
  done
  check_eq "round $round: test tasks that succeeded" "$n_tests" \
    "$(printf '%s\n' "$out" | awk '$1 ~ /^test:/ && $2 == "success"' | wc -l | tr -d ' ')"
  check_eq "round $round: test tasks not succeeded" "" \
    "$(printf '%s\n' "$out" | awk '$1 ~ /^test:/ && $2 != "success" { print $1, $2 }')"

  # Materializations from dbt_project.yml folder defaults and the marts' config().
  for m in $staging; do
    check_eq "round $round: $m is a view" "View" \
      "$(ch "SELECT engine FROM system.tables WHERE database = '$A' AND name = '$m'")"
  done
  for m in $marts; do
    check_eq "round $round: $m is a MergeTree table" "MergeTree" \
      "$(ch "SELECT engine FROM system.tables WHERE database = '$A' AND name = '$m'")"
  done
  check_eq "round $round: no side tables left" "0" \
    "$(ch "SELECT count() FROM system.tables WHERE database = '$A' AND name LIKE '%__eltd_%'")"

  # agg_sales_by_state: every state, every measure, against PostgreSQL.
  expected=$(psql -X -A -t -q -F $'\t' -v ON_ERROR_STOP=1 -f "$ROOT/test/lib/marts_expected.sql" | num)
  actual=$(chq "SELECT state, total_orders, total_customers, total_items, total_revenue,
                       avg_order_value, total_profit
                FROM $A.agg_sales_by_state ORDER BY state")
  check_rows "round $round: agg_sales_by_state equals PostgreSQL" "$expected" "$actual"
  check_eq "round $round: agg_sales_by_state column types" \
    "String UInt64 UInt64 Int64 Decimal(18, 2) Decimal(18, 2) Decimal(18, 2)" \
    "$(ch "DESCRIBE TABLE $A.agg_sales_by_state FORMAT TabSeparated" | cut -f2 | paste -sd' ' -)"

  # fact_sales: one row per order item, profit = subtotal - quantity * cost.
  check_eq "round $round: fact_sales rows = order_items rows" \
    "$(pg "SELECT count(*) FROM order_items")" "$(ch "SELECT count() FROM $A.fact_sales")"
  check_eq "round $round: fact_sales distinct order_item_id" \
    "$(pg "SELECT count(*) FROM order_items")" \
    "$(ch "SELECT uniqExact(order_item_id) FROM $A.fact_sales")"
  check_eq "round $round: fact_sales sum(subtotal), sum(quantity), sum(profit)" \
    "$(pgq "SELECT sum(oi.subtotal), sum(oi.quantity), sum(oi.subtotal - oi.quantity * p.cost)
            FROM order_items oi JOIN products p USING (product_id)")" \
    "$(chq "SELECT sum(subtotal), sum(quantity), sum(profit) FROM $A.fact_sales")"
  check_eq "round $round: fact_sales profit type" "Decimal(18, 2)" \
    "$(ch "SELECT type FROM system.columns WHERE database = '$A' AND table = 'fact_sales'
           AND name = 'profit'")"
  check_rows "round $round: fact_sales rows (denormalized) equal PostgreSQL's join" \
    "$(pgq "SELECT oi.order_item_id, o.order_id, o.order_date, o.status, c.customer_id, c.state,
                   c.city, p.product_id, p.product_name, p.category, oi.quantity, oi.unit_price,
                   oi.subtotal, p.cost, oi.subtotal - oi.quantity * p.cost
            FROM order_items oi JOIN orders o USING (order_id)
            JOIN customers c ON c.customer_id = o.customer_id
            JOIN products p ON p.product_id = oi.product_id
            ORDER BY oi.order_item_id")" \
    "$(chq "SELECT order_item_id, order_id, order_date, status, customer_id, state, city,
                   product_id, product_name, category, quantity, unit_price, subtotal, cost, profit
            FROM $A.fact_sales ORDER BY order_item_id")"
  check_eq "round $round: cancelled items kept in fact_sales" \
    "$(pg "SELECT count(*) FROM order_items JOIN orders USING (order_id)
           WHERE status = 'cancelled'")" \
    "$(ch "SELECT count() FROM $A.fact_sales WHERE status = 'cancelled'")"

  # Staging: calendar fields of every order, profit_margin of every product, row counts.
  check_rows "round $round: stg_orders year/month/quarter of every order" \
    "$(pgq "SELECT order_id, extract(year FROM order_date), extract(month FROM order_date),
                   extract(quarter FROM order_date) FROM orders ORDER BY order_id")" \
    "$(chq "SELECT order_id, order_year, order_month, order_quarter
            FROM $A.stg_orders ORDER BY order_id")"
  check_eq "round $round: stg_orders orders per quarter" \
    "$(pgq "SELECT string_agg(q || ':' || n, ' ' ORDER BY q) FROM
            (SELECT extract(quarter FROM order_date)::int AS q, count(*) AS n FROM orders GROUP BY 1) s")" \
    "$(chq "SELECT arrayStringConcat(groupArray(concat(toString(order_quarter), ':', toString(n))), ' ')
            FROM (SELECT order_quarter, count() AS n FROM $A.stg_orders GROUP BY order_quarter
                  ORDER BY order_quarter)")"
  check_rows "round $round: stg_products profit_margin of every product" \
    "$(pgq "SELECT product_id, coalesce(round((price - cost) / nullif(price, 0), 4), 0)
            FROM products ORDER BY product_id")" \
    "$(chq "SELECT product_id, profit_margin FROM $A.stg_products ORDER BY product_id")"
  for t in customers products orders order_items; do
    check_eq "round $round: stg_$t rows" "$(pg "SELECT count(*) FROM $t")" \
      "$(ch "SELECT count() FROM $A.stg_$t")"
  done
done

ch "DROP DATABASE IF EXISTS $A" >/dev/null
ch "DROP DATABASE IF EXISTS raw_marts" >/dev/null
