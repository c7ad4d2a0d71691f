#!/usr/bin/env bash
# eltd serve's /metrics: every eltd_* family the issue names is there after a run, the text
# passes `promtool check metrics`, and a real Prometheus server scraping eltd every second
# reads eltd_rows_loaded_total back through its query API with PostgreSQL's row counts.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/serve.sh"

mkdir -p "$WORK/no-models"
ch "DROP DATABASE IF EXISTS raw_serve_metrics" >/dev/null
cfg=$(MODELS_PATH=$WORK/no-models make_config serve_metrics "$(printf 'schedule:\n  cron: "@daily"\n')")
start_daemon "$cfg"

r=$(api POST /webhook)
id=$(jget "${r#* }" 'j["run_id"]')
wait_run_final 60 "$id" || true
check_eq "run succeeded" success "$(run_state "$id")"
api GET /nope >/dev/null

curl -sS "$BASE/metrics" >"$WORK/metrics.txt"
ctype=$(curl -sS -o /dev/null -w '%{content_type}' "$BASE/metrics")
check_eq "content type" "text/plain; version=0.0.4; charset=utf-8" "$ctype"
if out=$(promtool check metrics <"$WORK/metrics.txt" 2>&1); then pass "promtool check metrics"
else fail "promtool check metrics: $out"; fi
for fam in eltd_runs_total eltd_run_duration_seconds eltd_task_duration_seconds \
  eltd_rows_loaded_total eltd_bytes_loaded_total eltd_task_retries_total \
  eltd_last_success_timestamp_seconds \
  eltd_next_run_timestamp_seconds eltd_active_runs eltd_http_requests_total eltd_build_info \
  process_resident_memory_bytes process_open_fds; do
  check_contains "# TYPE $fam" "# TYPE $fam " "$(cat "$WORK/metrics.txt")"
done
# eltd_model_test_failures{test} is labelled: it shows once a model test has run (this
# pipeline has no models, so loads only).
m() { awk -v k="$1" '$1 == k {print $2}' "$WORK/metrics.txt"; }
check_eq "runs_total{webhook,success}" 1 "$(m 'eltd_runs_total{trigger="webhook",status="success"}')"
check_eq "rows_loaded_total{orders}" "$(pg "SELECT count(*) FROM orders")" "$(m 'eltd_rows_loaded_total{table="orders"}')"
check_eq "rows_loaded_total{order_items}" "$(pg "SELECT count(*) FROM order_items")" "$(m 'eltd_rows_loaded_total{table="order_items"}')"
check_eq "run_duration count" 1 "$(m eltd_run_duration_seconds_count)"
check_eq "task_duration{load} count" 4 "$(m 'eltd_task_duration_seconds_count{kind="load"}')"
check_eq "http 404 counted" 1 "$(m 'eltd_http_requests_total{code="404"}')"
check_eq "active_runs" 0 "$(m eltd_active_runs)"
check_eq "build_info" 1 "$(m "eltd_build_info{version=\"$("$ELTD" version | cut -d' ' -f2)\"}")"
check_eq "last success is recent" True "$($PY -c "import time; print(abs(time.time() - $(m eltd_last_success_timestamp_seconds)) < 120)")"
check_eq "resident memory > 0" True "$($PY -c "print($(m process_resident_memory_bytes) > 0)")"

# ---- a real Prometheus scrapes eltd and answers a query on rows loaded ----
PROM_PORT=$(free_port)
cat >"$WORK/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: eltd
    static_configs:
      - targets: ["127.0.0.1:$PORT"]
YAML
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prom" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
CLEANUP_PIDS+=($!)
query() {
  curl -sS --get "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1"
}
rows_seen() {
  local out
  out=$(query 'eltd_rows_loaded_total{table="orders"}') || return 1
  [ "$(jget "$out" 'j["data"]["result"][0]["value"][1] if j["data"]["result"] else ""')" = 100 ]
}
if wait_for 60 rows_seen; then pass "Prometheus reads eltd_rows_loaded_total{table=\"orders\"} = 100"
else fail "Prometheus never saw the rows: $(query 'eltd_rows_loaded_total' 2>&1 | head -c 500) $(tail -5 "$WORK/prometheus.log")"; fi
out=$(query 'up{job="eltd"}')
check_eq "Prometheus: target up" 1 "$(jget "$out" 'j["data"]["result"][0]["value"][1]')"
out=$(query 'sum(eltd_rows_loaded_total)')
check_eq "Prometheus: all rows" "$(pg "SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM products) + (SELECT count(*) FROM orders) + (SELECT count(*) FROM order_items)")" \
  "$(jget "$out" 'j["data"]["result"][0]["value"][1]')"

ch "DROP DATABASE IF EXISTS raw_serve_metrics" >/dev/null
