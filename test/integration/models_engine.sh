#!/usr/bin/env bash
# The model engine against real servers, on the fixture project test/unit/models/shop:
# views, tables and both incremental strategies hold the right rows; the second run takes
# the is_incremental() path; a model with a SQL error leaves the previous table readable,
# its dependents upstream_failed and an independent model built; a failing unique test
# fails the run with its count while a warn-severity one does not; --select subsets; compile
# and plan print what they should.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"

S=models_engine
shop_fixture $S me
trap 'drop_fixture; finish' EXIT

engine() { ch "SELECT engine FROM system.tables WHERE database = '$A' AND name = '$1'"; }
leftovers() {
  ch "SELECT count() FROM system.tables WHERE database = '$A' AND name LIKE '%\\_\\_eltd\\_%'"
}
# state TASK OUTPUT: the task's state in eltd run's summary table.
state() { printf '%s\n' "$2" | awk -v t="$1" '$1 == t { print $2 }' | tail -1; }

# ---- round 1: everything builds ---------------------------------------------------------
out=$("$ELTD" run -c "$cfg" 2>&1) || { fail "round 1 failed: $out"; exit 1; }
pass "round 1 exits 0"
check_eq "stg_orders is a view" "View" "$(engine stg_orders)"
check_eq "order_totals is a MergeTree table" "MergeTree" "$(engine order_totals)"
check_eq "stg_orders rows" "$(pg "SELECT count(*) FROM $S.orders")" \
  "$(ch "SELECT count() FROM $A.stg_orders")"
check_eq "order_totals: one row per order with items" \
  "$(pg "SELECT count(DISTINCT order_id) FROM $S.order_items")" \
  "$(ch "SELECT count() FROM $A.order_totals")"
check_eq "order_totals: revenue" "$(pg "SELECT sum(subtotal) FROM $S.order_items")" \
  "$(ch "SELECT sum(total) FROM $A.order_totals")"
check_eq "order_summary (table on a table)" \
  "$(pg "SELECT count(DISTINCT order_id) || E'\t' || sum(subtotal) FROM $S.order_items")" \
  "$(ch "SELECT orders, revenue FROM $A.order_summary")"
check_eq "customer_orders: states joined" \
  "$(pg "SELECT count(*) FROM $S.orders o JOIN $S.customers c USING (customer_id) WHERE c.state = 'SP'")" \
  "$(ch "SELECT count() FROM $A.customer_orders WHERE state = 'SP'")"
n_orders=$(pg "SELECT count(*) FROM $S.orders")
check_eq "orders_latest (incremental, first run) rows" "$n_orders" \
  "$(ch "SELECT count() FROM $A.orders_latest")"
check_eq "order_events (append, first run) rows" "$n_orders" \
  "$(ch "SELECT count() FROM $A.order_events")"
not_sp=$(pg "SELECT count(*) FROM $S.orders o JOIN $S.customers c USING (customer_id) WHERE c.state <> 'SP'")
check_contains "warn-severity test reports its count without failing the run" \
  "warning: $not_sp rows failed accepted_values(state)" "$out"
check_eq "warn test state" "success" "$(state test:customer_orders.accepted_values_state "$out")"
check_eq "relationships test passes" "success" \
  "$(state test:stg_orders.relationships_customer_id "$out")"
check_contains "first incremental build is a full build" \
  "task=model:orders_latest attempt=1 event=model_built materialized=incremental incremental=0" "$out"
check_eq "no temporaries left (round 1)" "0" "$(leftovers)"

# ---- round 2: is_incremental() ----------------------------------------------------------
pg "UPDATE $S.orders SET status = 'cancelled', updated_at = now() + interval '1 day'
    WHERE order_id = 7" >/dev/null
out=$("$ELTD" run -c "$cfg" 2>&1) || { fail "round 2 failed: $out"; exit 1; }
pass "round 2 exits 0"
check_contains "delete+insert takes the is_incremental() path" \
  "task=model:orders_latest attempt=1 event=model_built materialized=incremental incremental=1 method=rename_pair" "$out"
check_contains "append takes the is_incremental() path" \
  "task=model:order_events attempt=1 event=model_built materialized=incremental incremental=1 method=attach_partition rows=1" "$out"
check_eq "delete+insert: no duplicate keys" "$n_orders" \
  "$(ch "SELECT count() FROM $A.orders_latest")"
check_eq "delete+insert: the changed row replaced" "cancelled" \
  "$(ch "SELECT status FROM $A.orders_latest WHERE order_id = 7")"
check_eq "append: one more row" "$((n_orders + 1))" "$(ch "SELECT count() FROM $A.order_events")"
check_eq "views republished" "View" "$(engine stg_orders)"
check_eq "no temporaries left (round 2)" "0" "$(leftovers)"

out=$("$ELTD" run -c "$cfg" --full-refresh --select order_events 2>&1) ||
  { fail "full refresh failed: $out"; exit 1; }
check_eq "--full-refresh rebuilds the incremental model" "$n_orders" \
  "$(ch "SELECT count() FROM $A.order_events")"

# ---- a model with a SQL error ----------------------------------------------------------
before=$(ch "SELECT count(), sum(total) FROM $A.order_totals")
cp "$PROJ/models/marts/order_totals.sql" "$WORK/order_totals.sql"
printf 'SELECT no_such_column FROM {{ ref("stg_order_items") }}\n' \
  > "$PROJ/models/marts/order_totals.sql"
rc=0; out=$("$ELTD" run -c "$cfg" 2>&1) || rc=$?
check_eq "a failed model fails the run" "1" "$rc"
check_eq "the broken model failed" "failed" "$(state model:order_totals "$out")"
check_contains "the error is ClickHouse's" "no_such_column" "$out"
check_eq "its dependent is upstream_failed" "upstream_failed" "$(state model:order_summary "$out")"
check_eq "its test is upstream_failed" "upstream_failed" \
  "$(state test:order_totals.unique_order_id "$out")"
check_eq "an independent model still builds" "success" "$(state model:customer_orders "$out")"
check_eq "the previous table is readable and untouched" "$before" \
  "$(ch "SELECT count(), sum(total) FROM $A.order_totals")"
check_eq "no temporaries left after the failure" "0" "$(leftovers)"
cp "$WORK/order_totals.sql" "$PROJ/models/marts/order_totals.sql"

# ---- a failing unique test, with --select ----------------------------------------------
cat > "$PROJ/models/extra.yml" <<'YAML'
version: 2
models:
  - name: stg_order_items
    columns:
      - name: order_id
        tests: [unique]
YAML
dups=$(pg "SELECT count(*) FROM (SELECT order_id FROM $S.order_items GROUP BY order_id
           HAVING count(*) > 1) d")
rc=0; out=$("$ELTD" run -c "$cfg" --select stg_order_items 2>&1) || rc=$?
check_eq "a failing unique test fails the run" "1" "$rc"
check_contains "with the failing count" "$dups rows failed unique(order_id)" "$out"
check_eq "the test task failed" "failed" "$(state test:stg_order_items.unique_order_id "$out")"
check_eq "--select builds the model alone" "success" "$(state model:stg_order_items "$out")"
check_eq "--select runs no load (it reads what ClickHouse holds)" "" \
  "$(printf '%s\n' "$out" | awk '$1 ~ /^load:/' | head -1)"
check_eq "--select leaves other models out" "" "$(state model:order_totals "$out")"
# eltd test (dbt test): the same test, and nothing built or loaded.
rc=0; out=$("$ELTD" test -c "$cfg" --select stg_order_items 2>&1) || rc=$?
check_eq "eltd test: a failing test exits 1" "1" "$rc"
check_eq "eltd test: the model's test ran and failed" "failed" \
  "$(state test:stg_order_items.unique_order_id "$out")"
check_eq "eltd test: no model, load or other model's test" "" \
  "$(printf '%s\n' "$out" | awk '$1 ~ /^(load|model):/ || ($1 ~ /^test:/ && $1 !~ /^test:stg_order_items\./)')"
rm "$PROJ/models/extra.yml"
rc=0; out=$("$ELTD" test -c "$cfg" 2>&1) || rc=$?
check_eq "eltd test, whole project: exit 0" "0" "$rc"
n_tests=$("$ELTD" plan -c "$cfg" 2>&1 | sed -n 's/.*models, \([0-9]*\) tests).*/\1/p')
check_eq "eltd test ran every test of the project, each a success" "$n_tests" \
  "$(printf '%s\n' "$out" | awk '$1 ~ /^test:/ && $2 == "success"' | wc -l)"
check_eq "eltd test built and loaded nothing" "" \
  "$(printf '%s\n' "$out" | awk '$1 ~ /^(load|model):/')"
rc=0; out=$("$ELTD" test -c "$cfg" --select order_summary 2>&1) || rc=$?
check_eq "eltd test of a model without tests: refused (exit 2)" "2" "$rc"

out=$("$ELTD" run -c "$cfg" --select "+order_summary" --exclude "tag:nothing" 2>&1) ||
  { fail "+order_summary failed: $out"; exit 1; }
check_eq "+name runs the upstream load" "success" "$(state load:order_items "$out")"
check_eq "+name leaves unrelated loads out" "" "$(state load:customers "$out")"
check_eq "+name builds the chain" "success" "$(state model:order_summary "$out")"

# ---- plan and compile -------------------------------------------------------------------
out=$("$ELTD" plan -c "$cfg" --select "path:models/marts" 2>&1)
check_contains "plan counts" "plan: 8 tasks (0 loads, 5 models, 2 tests)" "$out"
check_contains "plan lists dependencies" "model:order_summary" "$out"
check_contains "plan edge" "<- ensure_databases, model:order_totals" "$out"
# dbt's selector sets: a comma intersects, words after --select are a union.
out=$("$ELTD" plan -c "$cfg" --select "path:models/marts,config.materialized:table" 2>&1)
check_contains "plan: marts that are tables (a comma intersects)" "0 loads, 3 models," "$out"
check_contains "plan: the intersection keeps order_totals" "model:order_totals" "$out"
if grep -qF "model:orders_latest" <<<"$out"; then
  fail "plan: the intersection left an incremental mart in: $out"
else pass "plan: the intersection leaves incremental marts out"; fi
out=$("$ELTD" plan -c "$cfg" --select stg_orders stg_customers --exclude tag:nothing x 2>&1)
check_contains "plan: --select a b (a union of words)" "0 loads, 2 models," "$out"
out=$("$ELTD" plan -c "$cfg" --select "+order_summary,resource_type:source" 2>&1)
check_contains "plan: upstream of order_summary that are loads" "(1 loads, 0 models, 0 tests)" "$out"
rc=0; out=$("$ELTD" plan -c "$cfg" --select "stg_orders,stg_customers" 2>&1) || rc=$?
check_eq "plan: an empty intersection is refused (exit 2)" "2" "$rc"
check_contains "plan: the empty intersection is named" \
  "--select 'stg_orders,stg_customers' matches no table, model or test" "$out"
out=$("$ELTD" plan -c "$cfg" 2>&1)
first_model=$(printf '%s\n' "$out" | grep -n 'model:stg_orders ' | cut -d: -f1)
load_orders=$(printf '%s\n' "$out" | grep -n 'load:orders ' | cut -d: -f1)
if [ "$load_orders" -lt "$first_model" ]; then pass "plan: loads before their models"; else
  fail "plan order: $out"; fi
out=$("$ELTD" compile -c "$cfg" --select order_summary --vars '{"currency": "EUR"}' 2>&1)
check_contains "compile header" \
  "-- model order_summary: table into \`$A\`.\`order_summary\` (models/marts/order_summary.sql)" "$out"
check_contains "compile renders ref and --vars" "FROM \`$A\`.\`order_totals\`" "$out"
check_contains "compile --vars overrides the project's" "in EUR" "$out"
printf 'SELECT 1\n{{ nope() }}\n' > "$PROJ/models/staging/bad.sql"
rc=0; out=$("$ELTD" run -c "$cfg" 2>&1) || rc=$?
check_eq "a template error stops the run before any SQL" "2" "$rc"
check_contains "with FILE:LINE:COL" "$PROJ/models/staging/bad.sql:2:4:" "$out"
rm "$PROJ/models/staging/bad.sql"
