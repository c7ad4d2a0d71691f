#!/usr/bin/env bash
# `eltd serve` under hostile callers and heavy readers (issue 8, points 9 and 10).
# (9) With a token configured: every POST without it, with a wrong one, or with it in the
#     wrong place is 401 and starts nothing (the /api/runs count is unchanged and ClickHouse
#     never saw a statement: the run's first statement, CREATE DATABASE for the raw
#     database, never ran); an unknown or injected table/model name with the token is 400
#     and reaches no SQL either; the token never appears in the daemon's output, /status,
#     /api/runs, /metrics or any error body. Control: the right token starts a run.
# (10) 200 concurrent clients (wrk, 100 on /status + 100 on /metrics) during a full load,
#     paced to http.rate_during_runs while the run is active, /health never held:
#     no socket error, no non-2xx answer, the load succeeds and is exact. The load's time
#     with and without the traffic is printed (not asserted; test/bench/http_load.sh
#     measures it properly).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/serve.sh"
# serve.sh's trap, with errexit off: it still holds in a trap, and serve_cleanup returning
# the failing status would end the shell before finish prints the summary.
trap 'rc=$?; set +e; (exit $rc); serve_cleanup; finish' EXIT

S=eltd_fapi
ROWS=${ELTD_FAULT_ROWS:-2000000}
pg "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S;
    CREATE TABLE $S.big (id bigint PRIMARY KEY, name text NOT NULL, val bigint NOT NULL);
    INSERT INTO $S.big SELECT g, 'name-' || g || repeat('x', 20), g % 1000
    FROM generate_series(1, $ROWS) g;"
mkdir -p "$WORK/nomodels"
export PG_SCHEMA=$S MODELS_PATH=$WORK/nomodels TABLES_YAML='[big]'
RAW=raw_fapi
ch "DROP DATABASE IF EXISTS $RAW" >/dev/null
ch "DROP DATABASE IF EXISTS analytics_fapi" >/dev/null

TOKEN="eltd-fault-$RANDOM$RANDOM-s3cr3t"
CFG=$(RETRIES=0 make_config fapi)
sed -i "s|^http:|http:\n  token: $TOKEN|" "$CFG"
start_daemon "$CFG"

pg_state() { pg "SELECT count(*) || E'\t' || sum(id) || E'\t' || sum(val) FROM $S.big"; }
ch_state() { ch "SELECT count(), sum(id), sum(val) FROM $RAW.big"; }
runs_total() { jget "$(curl -sS "$BASE/api/runs")" 'j["total"]'; }
raw_exists() { ch "SELECT count() FROM system.databases WHERE name = '$RAW'"; }
BODIES=$WORK/bodies.txt
: >"$BODIES"
# req METHOD PATH [curl args]: prints the status; keeps every body (and header) for the grep
req() {
  local m=$1 p=$2; shift 2
  curl -sS -D "$WORK/h" -o "$WORK/b" -w '%{http_code}' -X "$m" "$BASE$p" "$@" >"$WORK/code" 2>/dev/null || true
  { cat "$WORK/h" "$WORK/b"; echo; } >>"$BODIES"
  cat "$WORK/code"
}

# ---- (9) auth ----
runs0=$(runs_total)
n401=0 nreq=0
for path in /webhook /webhook/manual /api/runs/1/cancel; do
  for hdr in "" "Authorization: Bearer" "Authorization: Bearer " "Authorization: Bearer ${TOKEN}x" \
    "Authorization: Bearer ${TOKEN:0:${#TOKEN}-1}" "Authorization: Bearer ${TOKEN^^}" \
    "Authorization: Basic $TOKEN" "Authorization: $TOKEN" "X-Token: $TOKEN" \
    "Authorization: Bearer x${TOKEN}" "Authorization: Bearer ${TOKEN} junk"; do
    args=()
    [ -n "$hdr" ] && args=(-H "$hdr")
    c=$(req POST "$path" "${args[@]}" -d '{}')
    nreq=$((nreq + 1))
    if [ "$c" = 401 ]; then n401=$((n401 + 1)); else echo "# $path with '${hdr:0:40}': $c"; fi
  done
  c=$(req POST "$path?token=$TOKEN" -d '{}')
  nreq=$((nreq + 1)); [ "$c" = 401 ] && n401=$((n401 + 1))
done
check_eq "(9) every POST without the right bearer token is 401 ($nreq tried)" "$nreq" "$n401"
check_eq "(9) no run was started (/api/runs count)" "$runs0" "$(runs_total)"
check_eq "(9) ClickHouse saw no statement (raw database never created)" 0 "$(raw_exists)"

# unknown or injected names, with the right token: 400, no run, no SQL
AUTH=(-H "Authorization: Bearer $TOKEN")
n400=0 nbad=0
while IFS= read -r body; do
  c=$(req POST /webhook "${AUTH[@]}" --data-binary "$body")
  nbad=$((nbad + 1))
  if [ "$c" = 400 ]; then n400=$((n400 + 1)); else echo "# body ${body:0:60}: $c"; fi
done <<'BODIES'
{"tables": ["no_such_table"]}
{"tables": ["big; DROP DATABASE raw_fapi"]}
{"tables": ["big`"]}
{"tables": ["big' OR '1'='1"]}
{"tables": ["../big"]}
{"tables": ["BIG"]}
{"tables": ["big\u0000"]}
{"tables": ["big", "nope"]}
{"tables": [""]}
{"tables": [1]}
{"tables": "big"}
{"models": ["x; DROP TABLE y"]}
{"select": ["nope+"]}
{"exclude": ["`; DROP"]}
BODIES
check_eq "(9) unknown or injected names are 400 ($nbad tried)" "$nbad" "$n400"
check_eq "(9) still no run" "$runs0" "$(runs_total)"
check_eq "(9) still no statement reached ClickHouse" 0 "$(raw_exists)"
# A method selector (source:, tag:, path:) is only checked for its characters: one that
# matches nothing is accepted and makes an empty run (dbt warns "nothing selected"). It must
# reach no SQL either.
c=$(req POST /webhook "${AUTH[@]}" -d '{"select": ["source:nope"]}')
if [ "$c" = 202 ]; then
  eid=$(jget "$(cat "$WORK/b")" 'j["run_id"]')
  wait_run_final 30 "$eid" || true
  echo "# note: select source:nope -> 202, run $eid $(run_state "$eid"):" \
    "$(jget "$(curl -sS "$BASE/api/runs/$eid")" '([t["name"] for t in j["tasks"]], j["error"])')"
  runs0=$((runs0 + 1))
else
  check_eq "(9) a selector matching nothing is 400" 400 "$c"
fi
check_eq "(9) the unmatched selector reached no SQL" 0 "$(raw_exists)"

# the token never shows
for p in /status /api/runs /metrics /health /nope; do req GET "$p" >/dev/null; done
if grep -qF -- "$TOKEN" "$BODIES"; then fail "(9) the token appears in a response: $(grep -F -- "$TOKEN" "$BODIES" | head -3)"
else pass "(9) the token is in no response body or header ($(wc -l <"$BODIES") lines)"; fi

# control: the right token starts a run
c=$(req POST /webhook/manual "${AUTH[@]}")
check_eq "(9) control: the right token is 202" 202 "$c"
id=$(jget "$(cat "$WORK/b")" 'j["run_id"]')
wait_run_final 120 "$id" || true
check_eq "(9) control: the run succeeded" success "$(run_state "$id")"
check_eq "(9) control: exact" "$(pg_state)" "$(ch_state)"
T_IDLE=$(jget "$(curl -sS "$BASE/api/runs/$id")" '[t["duration_seconds"] for t in j["tasks"] if t["name"] == "load:big"][0]')
echo "# load:big without traffic: ${T_IDLE}s"

# ---- (10) 200 clients on /status and /metrics during a full load ----
# wrk runs 15 s; the load starts 1 s in, so the traffic covers it (or its first 14 s). Its
# time is compared with the idle run above (reported, not asserted: the issue's target is
# under 1.5x).
pg "UPDATE $S.big SET val = val + 1 WHERE id % 3 = 0"
wrk -t1 -c100 -d15s --timeout 5s --latency "$BASE/status" >"$WORK/wrk-status.txt" 2>&1 &
W1=$!
wrk -t1 -c100 -d15s --timeout 5s --latency "$BASE/metrics" >"$WORK/wrk-metrics.txt" 2>&1 &
W2=$!
CLEANUP_PIDS+=("$W1" "$W2")
sleep 1
cpu0=$(awk '{print $14 + $15}' "/proc/$DAEMON_PID/stat")
c=$(req POST /webhook/manual "${AUTH[@]}")
check_eq "(10) trigger under traffic" 202 "$c"
id=$(jget "$(cat "$WORK/b")" 'j["run_id"]')
wrk_up=$(kill -0 "$W1" 2>/dev/null && kill -0 "$W2" 2>/dev/null && echo True || echo False)
# /health is never held by the pacing (http.rate_during_runs): polled through the load.
( while :; do curl -sS -o /dev/null -m 5 -w '%{http_code} %{time_total}\n' "$BASE/health"; sleep 0.05; done ) \
  >"$WORK/health-polls.txt" 2>&1 &
HP=$!
CLEANUP_PIDS+=("$HP")
wait_run_final 120 "$id" || true
kill "$HP" 2>/dev/null; wait "$HP" 2>/dev/null || true
cpu1=$(awk '{print $14 + $15}' "/proc/$DAEMON_PID/stat")
wait "$W1" || true
wait "$W2" || true
for w in status metrics; do
  f=$WORK/wrk-$w.txt
  reqs=$(awk '/requests in/ {print $1}' "$f")
  non2xx=$(awk -F: '/Non-2xx/ {gsub(/ /, "", $2); print $2}' "$f")
  sockerr=$(grep -o 'Socket errors:.*' "$f" || true)
  echo "# wrk /$w: $reqs requests, $(awk '/Requests\/sec/ {print $2}' "$f") req/s, p99 $(awk '$1 == "99%" {print $2}' "$f")"
  check_eq "(10) /$w: no non-2xx answer" "" "$non2xx"
  check_eq "(10) /$w: no socket error" "" "$sockerr"
  check_eq "(10) /$w: wrk made requests" True "$([ "${reqs:-0}" -gt 1000 ] && echo True || echo False)"
done
check_eq "(10) the 200 clients were running when the load started" True "$wrk_up"
check_eq "(10) /health during the load: every poll 200 within 1 s" True "$($PY -c "
import sys
p = [l.split() for l in open('$WORK/health-polls.txt') if l.strip()]
print(len(p) >= 3 and all(len(x) == 2 and x[0] == '200' and float(x[1]) < 1 for x in p))")"
echo "# /health polls during the load: $(wc -l <"$WORK/health-polls.txt"), slowest $(sort -k2 -n "$WORK/health-polls.txt" | tail -1)"
paced=$(curl -sS "$BASE/metrics" | awk '$1 == "eltd_http_requests_paced_total" {print $2}')
check_eq "(10) the flood was paced during the run (eltd_http_requests_paced_total > 0)" True \
  "$($PY -c "print(float('${paced:-0}') > 0)")"
check_eq "(10) the run succeeded" success "$(run_state "$id")"
check_eq "(10) exact" "$(pg_state)" "$(ch_state)"
T_BUSY=$(jget "$(curl -sS "$BASE/api/runs/$id")" '[t["duration_seconds"] for t in j["tasks"] if t["name"] == "load:big"][0]')
echo "# load:big of $ROWS rows: ${T_BUSY}s with 200 clients for its first 14 s, ${T_IDLE}s idle" \
  "($($PY -c "print(round($T_BUSY / $T_IDLE, 2))")x; target < 1.5x, reported, not asserted);" \
  "daemon CPU $(( (cpu1 - cpu0) / $(getconf CLK_TCK) ))s, $(nproc) cores shared with wrk"

stop_daemon TERM
if grep -qF -- "$TOKEN" "$WORK"/daemon.*.log; then fail "(9) the token appears in the daemon's output"
else pass "(9) the token is not in the daemon's output ($(cat "$WORK"/daemon.*.log | wc -l) lines)"; fi
check_eq "(9) the 401s were logged" True \
  "$([ "$(grep -c 'event=unauthorized' "$WORK"/daemon.*.log)" -ge "$nreq" ] && echo True || echo False)"

ch "DROP DATABASE IF EXISTS $RAW" >/dev/null
ch "DROP DATABASE IF EXISTS analytics_fapi" >/dev/null
pg "SET client_min_messages = warning; DROP SCHEMA $S CASCADE"
