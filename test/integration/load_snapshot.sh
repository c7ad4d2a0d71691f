#!/usr/bin/env bash
# One snapshot per run (issue 3, point 2), back-pressure with flat memory (point 7) and the
# task event log (point 9). While eltd loads a large orders/order_items pair one table after
# the other, a writer keeps committing new orders with two items each: ClickHouse must hold
# no item whose order is missing and counts of one single snapshot. Then a load runs with
# ClickHouse SIGSTOPped for two seconds: eltd's VmRSS stays under 64 MiB, the COPY backend
# waits on the client, and the load completes exactly after SIGCONT.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"

S=eltd_snap
DB=raw_snap
ORDERS=${ELTD_SNAPSHOT_ORDERS:-1000000}
RSS_LIMIT_KB=$((64 * 1024))
pg "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S;
    CREATE TABLE $S.orders (order_id serial PRIMARY KEY, customer_id integer NOT NULL,
                            total numeric(12,2) NOT NULL, note text NOT NULL);
    CREATE TABLE $S.order_items (order_item_id serial PRIMARY KEY,
                                 order_id integer NOT NULL REFERENCES $S.orders,
                                 quantity integer NOT NULL, subtotal numeric(12,2) NOT NULL);
    INSERT INTO $S.orders (customer_id, total, note)
      SELECT g % 5000, (g % 10000) / 100.0, 'order ' || g || repeat('.', 30)
      FROM generate_series(1, $ORDERS) g;
    INSERT INTO $S.order_items (order_id, quantity, subtotal)
      SELECT (g + 2) / 3, 1 + g % 4, (g % 5000) / 100.0 FROM generate_series(1, 3 * $ORDERS) g;
    CREATE TABLE $S.writer_stop (stop boolean);
    -- One order with two items per transaction, until told to stop.
    CREATE PROCEDURE $S.writer() LANGUAGE plpgsql AS \$\$
    DECLARE o integer;
    BEGIN
      WHILE NOT EXISTS (SELECT 1 FROM $S.writer_stop) LOOP
        INSERT INTO $S.orders (customer_id, total, note) VALUES (1, 2.00, 'live')
          RETURNING order_id INTO o;
        INSERT INTO $S.order_items (order_id, quantity, subtotal) VALUES (o, 1, 1.00), (o, 1, 1.00);
        COMMIT;
        PERFORM pg_sleep(0.002);
      END LOOP;
    END \$\$;"
# Loads only: an empty models project, so no model task joins the run.
mkdir -p "$WORK/no-models"
export MODELS_PATH=$WORK/no-models
export PG_SCHEMA=$S TABLES_YAML='[orders, order_items]'
cfg=$(make_config snap)
# One load at a time: order_items starts only after orders is done, so without a shared
# snapshot it would see items of orders that the orders load never saw.
sed -i 's/^  retry_delay: .*/&\n  load_parallelism: 1/' "$cfg"
ch "DROP DATABASE IF EXISTS $DB" >/dev/null

STOPPED=
WRITER=
cleanup() {
  local rc=$?
  [ -n "$STOPPED" ] && kill -CONT "$STOPPED" 2>/dev/null
  [ -n "$WRITER" ] && pg "INSERT INTO $S.writer_stop VALUES (true)" >/dev/null 2>&1
  (exit $rc)
  finish
}
trap cleanup EXIT

# ---- (2) one snapshot while a writer commits ------------------------------------------
pg "CALL $S.writer()" &
WRITER=$!
writer_going() { [ "$(pg "SELECT count(*) FROM $S.orders WHERE note = 'live'")" -ge 20 ]; }
wait_for 30 writer_going || fail "the writer never committed"
out=$("$ELTD" run -c "$cfg" 2>&1) || fail "eltd run failed: $(tail -n 15 <<<"$out")"
live_after_run=$(pg "SELECT count(*) FROM $S.orders WHERE note = 'live'")
pg "INSERT INTO $S.writer_stop VALUES (true)" >/dev/null
wait "$WRITER" || fail "the writer failed"
WRITER=

ch_orders=$(ch "SELECT count() FROM $DB.orders")
ch_items=$(ch "SELECT count() FROM $DB.order_items")
ch_live=$(ch "SELECT count() FROM $DB.orders WHERE note = 'live'")
echo "# orders=$ch_orders items=$ch_items live orders loaded=$ch_live, committed by the end of the run=$live_after_run"
check_eq "no order_item without its order" 0 \
  "$(ch "SELECT count() FROM $DB.order_items WHERE order_id NOT IN (SELECT order_id FROM $DB.orders)")"
check_eq "items = 3 per seed order + 2 per live order (one snapshot)" \
  "$((3 * ORDERS + 2 * ch_live))" "$ch_items"
# The snapshot is the one where the last loaded order was the newest: PostgreSQL agrees.
max_id=$(ch "SELECT max(order_id) FROM $DB.orders")
check_eq "orders equal PostgreSQL's up to the snapshot's newest order" \
  "$(pg "SELECT count(*) FROM $S.orders WHERE order_id <= $max_id")" "$ch_orders"
check_eq "items equal PostgreSQL's for those orders" \
  "$(pg "SELECT count(*) FROM $S.order_items WHERE order_id <= $max_id")" "$ch_items"
if [ "$ch_live" -gt 0 ] && [ "$ch_live" -lt "$live_after_run" ]; then
  pass "the writer committed before ($ch_live) and during the run ($live_after_run in all)"
else
  fail "the run did not overlap the writer: $ch_live of $live_after_run live orders loaded"
fi
load_orders_before_items=$(grep -n 'task=load:orders kind=load state=success' <<<"$out" | cut -d: -f1)
items_start=$(grep -n 'task=load:order_items kind=load state=running' <<<"$out" | cut -d: -f1)
if [ -n "$load_orders_before_items" ] && [ -n "$items_start" ] &&
  [ "$load_orders_before_items" -lt "$items_start" ]; then
  pass "order_items started after orders had finished"
else
  fail "loads overlapped or order unknown"
fi

# ---- (9) one structured line per task event --------------------------------------------
for t in orders order_items; do
  line=$(grep "task=load:$t kind=load state=success" <<<"$out" || true)
  if grep -Eq "run=[0-9]+ task=load:$t kind=load state=success attempt=1 rows=[0-9]+ bytes=[0-9]+ duration=[0-9.]+\$" <<<"${line#* level=info }"; then
    pass "success line of load:$t has run, task, attempt, rows, bytes, duration"
  else
    fail "success line of load:$t: '$line'"
  fi
  check_contains "load:$t logs running with its attempt" "task=load:$t kind=load state=running attempt=1/1" "$out"
done
check_contains "orders' rows in the log equal the table" \
  "task=load:orders kind=load state=success attempt=1 rows=$ch_orders " "$out"

# ---- (7) back-pressure: ClickHouse stopped for two seconds mid-load --------------------
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
"$ELTD" run -c "$cfg" >"$WORK/bp.log" 2>&1 &
ELTD_PID=$!
side_has_rows() { [ "$(ch "SELECT count() FROM $DB.order_items__eltd_new" 2>/dev/null)" -gt 0 ]; }
max_rss=0
if wait_for 60 side_has_rows; then
  STOPPED=$(cat "$ELTD_TEST_DIR/ch/server.pid")
  kill -STOP "$STOPPED"
  # Keep ClickHouse stopped for at least two seconds and until the pressure has reached
  # PostgreSQL (the kernel's socket buffers take a moment to fill), sampling eltd's RSS.
  t0=$(date +%s%N)
  client_write=0
  while :; do
    r=$(rss_kb "$ELTD_PID")
    [ "$r" -gt "$max_rss" ] && max_rss=$r
    if [ "$client_write" = 0 ] && [ "$(pg "SELECT count(*) FROM pg_stat_activity
          WHERE application_name = 'eltd' AND wait_event = 'ClientWrite'")" -gt 0 ]; then
      client_write=1
    fi
    ms=$((($(date +%s%N) - t0) / 1000000))
    if { [ "$client_write" = 1 ] && [ "$ms" -ge 2000 ]; } || [ "$ms" -ge 30000 ]; then break; fi
    sleep 0.1
  done
  kill -CONT "$STOPPED"
  STOPPED=
  pass "ClickHouse stopped for $ms ms mid-insert, then continued"
  check_eq "PostgreSQL's COPY waited on eltd (wait_event ClientWrite)" 1 "$client_write"
else
  fail "never saw order_items streaming"
fi
rc=0
while kill -0 "$ELTD_PID" 2>/dev/null; do
  r=$(rss_kb "$ELTD_PID")
  [ "$r" -gt "$max_rss" ] && max_rss=$r
  sleep 0.1
done
wait "$ELTD_PID" || rc=$?
check_eq "eltd completes after SIGCONT" 0 "$rc"
[ "$rc" = 0 ] || tail -n 20 "$WORK/bp.log"
if [ "$max_rss" -gt 0 ] && [ "$max_rss" -lt "$RSS_LIMIT_KB" ]; then
  pass "eltd's VmRSS stayed under 64 MiB (max $((max_rss / 1024)) MiB)"
else
  fail "eltd's VmRSS peaked at ${max_rss} kB (limit $RSS_LIMIT_KB kB)"
fi
for t in orders order_items; do
  check_eq "after back-pressure: $t count equals PostgreSQL" \
    "$(pg "SELECT count(*) FROM $S.$t")" "$(ch "SELECT count() FROM $DB.$t")"
done
check_eq "after back-pressure: sum(subtotal) equals PostgreSQL" \
  "$(pg "SELECT sum(subtotal) FROM $S.order_items")" "$(ch "SELECT sum(subtotal) FROM $DB.order_items")"
check_eq "no side table left" 0 \
  "$(ch "SELECT count() FROM system.tables WHERE database = '$DB' AND match(name, '__eltd_')")"

ch "DROP DATABASE IF EXISTS $DB" >/dev/null
pg "SET client_min_messages = warning; DROP SCHEMA $S CASCADE"
