#!/usr/bin/env bash
# eltd docs (dbt docs generate) on the fixture project after a real run: manifest.json has
# every model, test and source with the project's descriptions and a lineage that agrees
# with `eltd plan`; catalog.json has, for each built relation, the engine, the columns and
# types ClickHouse reports and the row count ClickHouse (and PostgreSQL) hold; index.html is
# one self-contained, well-formed page with an anchor per model and the project's text
# escaped. The warehouse is only read. --empty-catalog needs no server; without it an
# unreachable warehouse is exit 3 naming its URL.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"

S=models_docs
shop_fixture $S md
trap 'drop_fixture; finish' EXIT
# A description with markup, quotes and an ampersand: the page must show it as text.
sed -i 's|description: Orders, one row each.|description: "Orders <b>one</b> row \& \\"each\\" <script>alert(1)</script>"|' \
  "$PROJ/models/schema.yml"

out=$("$ELTD" run -c "$cfg" 2>&1) || { fail "the run before the docs failed: $out"; exit 1; }
pass "a run builds the project"
tables_before=$(ch "SELECT count() FROM system.tables WHERE database IN ('raw_md', '$A')")

D=$WORK/docs
rc=0; out=$("$ELTD" docs -c "$cfg" --out "$D" 2>&1) || rc=$?
check_eq "eltd docs exits 0" 0 "$rc"
check_contains "it says what it wrote" "docs: $D/index.html, manifest.json, catalog.json" "$out"
check_eq "the warehouse is only read" "$tables_before" \
  "$(ch "SELECT count() FROM system.tables WHERE database IN ('raw_md', '$A')")"

plan=$("$ELTD" plan -c "$cfg" 2>&1)
n_models=$(sed -n 's/.*loads, \([0-9]*\) models.*/\1/p' <<<"$plan")
n_tests=$(sed -n 's/.*models, \([0-9]*\) tests).*/\1/p' <<<"$plan")

# ---- manifest.json ----
mj() { $PY -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$D/manifest.json" "$1"; }
check_eq "manifest: one node per model (as eltd plan counts)" "$n_models" \
  "$(mj 'sum(1 for n in j["nodes"].values() if n["resource_type"] == "model")')"
check_eq "manifest: one node per test" "$n_tests" \
  "$(mj 'sum(1 for n in j["nodes"].values() if n["resource_type"] == "test")')"
check_eq "manifest: the sources of sources.yml" "5" "$(mj 'len(j["sources"])')"
check_eq "manifest: stg_orders' description from schema.yml" \
  'Orders <b>one</b> row & "each" <script>alert(1)</script>' \
  "$(mj 'j["nodes"]["model.shop.stg_orders"]["description"]')"
check_eq "manifest: stg_orders' documented columns" "customer_id order_id status" \
  "$(mj '" ".join(sorted(j["nodes"]["model.shop.stg_orders"]["columns"]))')"
check_eq "manifest: order_summary depends on order_totals" "['model.shop.order_totals']" \
  "$(mj 'j["nodes"]["model.shop.order_summary"]["depends_on"]["nodes"]')"
check_eq "manifest: parent_map and child_map agree" "True" \
  "$(mj 'all(p in j["parent_map"] and c in j["child_map"][p] for c, ps in j["parent_map"].items() for p in ps)')"
check_eq "manifest: every model's parents are its depends_on" "True" \
  "$(mj 'all(sorted(j["parent_map"][u]) == sorted(n["depends_on"]["nodes"]) for u, n in j["nodes"].items())')"
"$ELTD" compile -c "$cfg" --select order_totals >"$WORK/compile.txt" 2>&1
check_eq "manifest: compiled code is what eltd compile prints" "True" \
  "$(mj 'j["nodes"]["model.shop.order_totals"]["compiled_code"].strip() in open("'"$WORK/compile.txt"'").read()')"
check_eq "manifest: the source raw.orders is filled by the load of orders" \
  "$S.orders raw_md.orders" \
  "$(mj '" ".join([j["sources"]["source.shop.raw.orders"]["eltd_load"]["postgres"], j["sources"]["source.shop.raw.orders"]["eltd_load"]["clickhouse"]])')"

# ---- catalog.json against ClickHouse ----
cj() { $PY -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$D/catalog.json" "$1"; }
for m in order_totals stg_orders customer_orders; do
  check_eq "catalog: $m's columns and types are ClickHouse's" \
    "$(ch "SELECT arrayStringConcat(groupArray(concat(name, ':', type)), ' ') FROM (SELECT name, type FROM system.columns WHERE database = '$A' AND table = '$m')" | sed "s/\\\\'/'/g")" \
    "$(cj '" ".join("%s:%s" % (c["name"], c["type"]) for c in sorted(j["nodes"]["model.shop.'$m'"]["columns"].values(), key=lambda c: c["index"]))')"
done
check_eq "catalog: order_totals' engine" "$(ch "SELECT engine FROM system.tables WHERE database = '$A' AND name = 'order_totals'")" \
  "$(cj 'j["nodes"]["model.shop.order_totals"]["metadata"]["type"]')"
check_eq "catalog: order_totals' row count is ClickHouse's" "$(ch "SELECT count() FROM $A.order_totals")" \
  "$(cj 'j["nodes"]["model.shop.order_totals"]["stats"]["row_count"]["value"]')"
check_eq "catalog: ... and PostgreSQL's orders with items" \
  "$(pg "SELECT count(DISTINCT order_id) FROM $S.order_items")" \
  "$(cj 'j["nodes"]["model.shop.order_totals"]["stats"]["row_count"]["value"]')"
check_eq "catalog: a view has no row count" "False" \
  "$(cj '"row_count" in j["nodes"]["model.shop.stg_orders"].get("stats", {})')"
check_eq "catalog: the loaded source orders holds PostgreSQL's rows" "$(pg "SELECT count(*) FROM $S.orders")" \
  "$(cj 'j["sources"]["source.shop.raw.orders"]["stats"]["row_count"]["value"]')"

# ---- index.html ----
H=$D/index.html
check_eq "index.html: an anchor per model" "$n_models" \
  "$($PY -c 'import re,sys; h=open(sys.argv[1]).read(); print(len(set(re.findall(r"id=\"(model\.shop\.[a-z_]+)\"", h))))' "$H")"
check_eq "index.html: no script, no external resource" "0" \
  "$(grep -ciE '<script|src=\"http|href=\"http|<link ' "$H" || true)"
check_contains "index.html: the description is shown escaped" \
  'Orders &lt;b&gt;one&lt;/b&gt; row &amp; &quot;each&quot; &lt;script&gt;' "$(cat "$H")"
check_eq "index.html: well-formed (every opened element closed in order)" "ok" "$($PY - "$H" <<'PY'
import sys
from html.parser import HTMLParser
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr"}
class P(HTMLParser):
    def __init__(self):
        super().__init__(); self.stack = []; self.bad = []
    def handle_starttag(self, t, a):
        if t not in VOID: self.stack.append(t)
    def handle_endtag(self, t):
        if not self.stack or self.stack[-1] != t: self.bad.append((t, self.getpos(), self.stack[-3:]))
        else: self.stack.pop()
p = P(); p.feed(open(sys.argv[1]).read()); p.close()
print("ok" if not p.bad and not p.stack else "bad: %s open: %s" % (p.bad[:3], p.stack[-5:]))
PY
)"

# ---- without the warehouse ----
sed "s|url: $CLICKHOUSE_URL|url: http://127.0.0.1:$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')|" \
  "$cfg" >"$WORK/down.yaml"
rc=0; out=$("$ELTD" docs -c "$WORK/down.yaml" --out "$WORK/docs-down" 2>&1) || rc=$?
check_eq "an unreachable warehouse: exit 3" 3 "$rc"
check_contains "naming its URL and the way out" "--empty-catalog writes it without" "$out"
if [ -e "$WORK/docs-down/index.html" ]; then fail "a failed docs run wrote files"; else
  pass "a failed docs run writes nothing"; fi
rc=0; out=$("$ELTD" docs -c "$WORK/down.yaml" --out "$WORK/docs-empty" --empty-catalog 2>&1) || rc=$?
check_eq "--empty-catalog needs no server (exit 0)" 0 "$rc"
check_eq "--empty-catalog: the manifest is complete" "$n_models" \
  "$($PY -c 'import json,sys; j=json.load(open(sys.argv[1])); print(sum(1 for n in j["nodes"].values() if n["resource_type"] == "model"))' "$WORK/docs-empty/manifest.json")"
check_eq "--empty-catalog: the catalog is empty" "0 0" \
  "$($PY -c 'import json,sys; j=json.load(open(sys.argv[1])); print(len(j["nodes"]), len(j["sources"]))' "$WORK/docs-empty/catalog.json")"
