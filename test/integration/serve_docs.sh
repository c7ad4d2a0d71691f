#!/usr/bin/env bash
# eltd serve's /docs (dbt docs serve, kept current): built at start from the project on
# disk, rebuilt after every run so the catalog shows what the run left. Before the first run
# the catalog holds nothing; after it, order_totals' rows equal ClickHouse's and
# PostgreSQL's; a description changed on disk shows after the next run; the page carries a
# Content-Security-Policy that allows no script.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/serve.sh"

S=serve_docs
shop_fixture $S sdocs
trap 'serve_cleanup; drop_fixture; finish' EXIT
n_models=$("$ELTD" plan -c "$cfg" 2>&1 | sed -n 's/.*loads, \([0-9]*\) models.*/\1/p')

start_daemon "$cfg"
docs_ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/docs")" = 200 ]; }
wait_for 30 docs_ready || fail "/docs never answered 200: $(curl -s "$BASE/docs")"
pass "/docs answers 200 after start"
curl -sS -D "$WORK/h" -o "$WORK/page.html" "$BASE/docs"
check_contains "/docs is HTML" "Content-Type: text/html; charset=utf-8" "$(cat "$WORK/h")"
check_contains "/docs allows no script" "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'" "$(cat "$WORK/h")"
check_eq "/docs: an anchor per model" "$n_models" \
  "$($PY -c 'import re,sys; print(len(set(re.findall(r"id=\"(model\.shop\.[a-z_]+)\"", open(sys.argv[1]).read()))))' "$WORK/page.html")"
mj() { curl -sS "$BASE/docs/manifest.json" | $PY -c 'import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
cj() { curl -sS "$BASE/docs/catalog.json" | $PY -c 'import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
check_eq "/docs/manifest.json: the project's models" "$n_models" \
  "$(mj 'sum(1 for n in j["nodes"].values() if n["resource_type"] == "model")')"
check_eq "before any run the catalog holds no model" "0" "$(cj 'len(j["nodes"])')"

# ---- a run, then the rebuilt catalog ----
id=$(jget "$(curl -sS -X POST "$BASE/webhook/manual")" 'j["run_id"]')
wait_run_final 120 "$id" || true
check_eq "the run succeeded" success "$(run_state "$id")"
built() { [ "$(cj '"model.shop.order_totals" in j["nodes"]')" = True ]; }
wait_for 30 built || fail "the catalog was not rebuilt after the run: $(curl -sS "$BASE/docs/catalog.json" | head -c 300)"
check_eq "after the run: order_totals' rows are ClickHouse's" "$(ch "SELECT count() FROM $A.order_totals")" \
  "$(cj 'j["nodes"]["model.shop.order_totals"]["stats"]["row_count"]["value"]')"
check_eq "... and PostgreSQL's orders with items" "$(pg "SELECT count(DISTINCT order_id) FROM $S.order_items")" \
  "$(cj 'j["nodes"]["model.shop.order_totals"]["stats"]["row_count"]["value"]')"
check_eq "after the run: every model is in the catalog" "$n_models" \
  "$(cj 'sum(1 for u in j["nodes"] if u.startswith("model."))')"
check_contains "the daemon logged the build" "event=docs_built" "$(cat "$DAEMON_LOG")"

# ---- the project changes on disk: the next run's docs show it ----
sed -i 's|description: Orders, one row each.|description: Orders, one row each, documented again.|' \
  "$PROJ/models/schema.yml"
id=$(jget "$(curl -sS -X POST "$BASE/webhook/manual")" 'j["run_id"]')
wait_run_final 120 "$id" || true
redone() { [ "$(mj 'j["nodes"]["model.shop.stg_orders"]["description"]')" = "Orders, one row each, documented again." ]; }
if wait_for 30 redone; then pass "a description changed on disk shows after the next run"; else
  fail "the docs kept the old description: $(mj 'j["nodes"]["model.shop.stg_orders"]["description"]')"; fi
check_eq "HEAD /docs" 200 "$(curl -s -o /dev/null -I -w '%{http_code}' "$BASE/docs")"
stop_daemon TERM
check_eq "the daemon stops cleanly" 0 "$DAEMON_RC"
