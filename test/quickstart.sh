#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to data in ClickHouse: installs the packages,
# builds eltd, starts local PostgreSQL 15 + ClickHouse with the seed's sample data (kept
# running under .tmp/servers so you can look around afterwards), runs the pipeline once
# and prints what landed. Safe to run again: it reuses the running servers.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [ "${ELTD_SKIP_INSTALL:-0}" != 1 ]; then
  bash deps/install.sh
fi
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)"

SRV=/tmp/eltd-local
if [ ! -f "$SRV/env.sh" ] || ! bash test/servers.sh ch "$SRV" "SELECT 1" >/dev/null 2>&1; then
  bash test/servers.sh stop "$SRV" >/dev/null 2>&1 || true
  bash test/servers.sh start "$SRV" >/dev/null
fi
# shellcheck disable=SC1091
. "$SRV/env.sh"
export ELTD_STATE_DIR="$SRV/state"

echo "== eltd run (PostgreSQL :$PGPORT -> ClickHouse $CLICKHOUSE_URL)"
./build/eltd run -c conf/pipeline.yaml

echo
echo "== what landed in ClickHouse"
for q in \
  "SELECT 'raw.' || name AS table, total_rows FROM (SELECT name, toString(count()) AS total_rows FROM (SELECT 'customers' AS name FROM raw.customers UNION ALL SELECT 'products' FROM raw.products UNION ALL SELECT 'orders' FROM raw.orders UNION ALL SELECT 'order_items' FROM raw.order_items) GROUP BY name) ORDER BY table FORMAT PrettyCompact" \
  "SELECT count() AS orders, sum(total_amount) AS revenue FROM raw.orders FORMAT PrettyCompact"; do
  bash test/servers.sh ch "$SRV" "$q"
done
if bash test/servers.sh ch "$SRV" "EXISTS TABLE analytics.agg_sales_by_state" 2>/dev/null | grep -q 1; then
  bash test/servers.sh ch "$SRV" "SELECT * FROM analytics.agg_sales_by_state ORDER BY total_revenue DESC FORMAT PrettyCompact"
fi
echo
echo "servers keep running: . $SRV/env.sh; stop them with: bash test/servers.sh stop $SRV"
