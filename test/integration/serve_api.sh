#!/usr/bin/env bash
# eltd serve's HTTP API against real servers: health, ready, status; a trigger loads the
# data exactly; the bearer token (401 without, 202 with, never logged); 400 for unknown
# names and bad JSON, 413, 404, 405, 408 for a slow client; a storm of 100 triggers leaves
# one active and one queued run and no 5xx; cancel leaves no half table; the history
# survives a restart and a crash; SIGTERM lets a run finish within the grace or cancels it.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/serve.sh"

export PG_SCHEMA=serve_api
clone_schema serve_api
ch "DROP DATABASE IF EXISTS raw_serve_api" >/dev/null
TOKEN="tok-$RANDOM-$RANDOM-secret"
# Loads only: the models have tests of their own.
mkdir -p "$WORK/no-models"
cfg=$(MODELS_PATH=$WORK/no-models make_config serve_api)
sed -i "s|^http:|http:\n  token: $TOKEN\n  max_body_bytes: 4KiB|" "$cfg"
sed -i "s|^run:|run:\n  shutdown_grace: 20s|" "$cfg"
# The same pipeline with a short grace, for the shutdown that must cancel.
sed "s|shutdown_grace: 20s|shutdown_grace: 2s|" "$cfg" >"$WORK/short_grace.yaml"
AUTH=(-H "Authorization: Bearer $TOKEN")

start_daemon "$cfg"

# ---- liveness, readiness, status ----
check_eq "GET /health" 200 "$(api GET /health | cut -d' ' -f1)"
r=$(api GET /ready)
check_eq "GET /ready" "200" "${r%% *}"
check_contains "/ready names both" '"postgres":"ok","clickhouse":"ok"' "$r"
r=$(api GET /status)
check_eq "GET /status" 200 "${r%% *}"
check_eq "/status version" "$("$ELTD" version | cut -d' ' -f2)" "$(jget "${r#* }" 'j["version"]')"
check_eq "/status without schedule" "None" "$(jget "${r#* }" 'j["schedule"]')"
if "$ELTD" health --url "$BASE" >/dev/null; then pass "eltd health exits 0"; else fail "eltd health"; fi
dead=$(free_port)
if "$ELTD" health --url "http://127.0.0.1:$dead" 2>/dev/null; then fail "eltd health on a dead port"
else pass "eltd health on a dead port exits 1"; fi

# ---- errors ----
check_eq "unknown path" "404" "$(api GET /nope | cut -d' ' -f1)"
check_eq "wrong method" "405" "$(api DELETE /api/runs | cut -d' ' -f1)"
allow=$(curl -sS -i -X PUT "$BASE/health" | tr -d '\r' | grep -i '^Allow:' || true)
check_eq "405 names Allow" "Allow: GET, HEAD" "$allow"
check_eq "POST without token" "401" "$(api POST /webhook | cut -d' ' -f1)"
check_eq "POST with a wrong token" "401" \
  "$(api POST /webhook/manual -H "Authorization: Bearer ${TOKEN}x" | cut -d' ' -f1)"
check_eq "cancel without token" "401" "$(api POST /api/runs/1/cancel | cut -d' ' -f1)"
r=$(api POST /webhook "${AUTH[@]}" -d '{"tables": ["customers", "no_such_table"]}')
check_eq "unknown table" "400" "${r%% *}"
check_contains "unknown table named" "no_such_table" "$r"
check_eq "unknown model" "400" "$(api POST /webhook "${AUTH[@]}" -d '{"models": ["x; DROP TABLE y"]}' | cut -d' ' -f1)"
check_eq "unknown key" "400" "$(api POST /webhook "${AUTH[@]}" -d '{"tablez": []}' | cut -d' ' -f1)"
check_eq "malformed JSON" "400" "$(api POST /webhook "${AUTH[@]}" -d '{"tables": [' | cut -d' ' -f1)"
check_eq "duplicate key" "400" "$(api POST /webhook "${AUTH[@]}" -d '{"full_refresh": true, "full_refresh": false}' | cut -d' ' -f1)"
deep=$($PY -c 'print("{\"vars\":" + "[" * 100 + "]" * 100 + "}")')
check_eq "deep JSON" "400" "$(api POST /webhook "${AUTH[@]}" -d "$deep" | cut -d' ' -f1)"
big=$($PY -c 'print("{\"vars\": {\"x\": \"" + "a" * 8000 + "\"}}")')
check_eq "oversized body" "413" "$(api POST /webhook "${AUTH[@]}" -d "$big" | cut -d' ' -f1)"
check_eq "no such run" "404" "$(api GET /api/runs/999 | cut -d' ' -f1)"
check_eq "bad state filter" "400" "$(api GET '/api/runs?state=bogus' | cut -d' ' -f1)"
# A client that sends half a head and stalls gets 408 after the header timeout (10 s).
slow=$($PY - "$PORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
s.settimeout(20)
data = b""
try:
    while True:
        b = s.recv(4096)
        if not b:
            break
        data += b
except socket.timeout:
    pass
print(data.split(b"\r\n")[0].decode())
PY
)
check_eq "slow client" "HTTP/1.1 408 Request Timeout" "$slow"
check_eq "still serving after the errors" 200 "$(api GET /health | cut -d' ' -f1)"

# ---- a trigger loads the data exactly ----
r=$(api POST /webhook "${AUTH[@]}" -d '{"tables": ["customers", "orders"], "full_refresh": true}')
check_eq "trigger answers 202" 202 "${r%% *}"
id=$(jget "${r#* }" 'j["run_id"]')
check_eq "first trigger runs at once" "running False" "$(jget "${r#* }" 'j["state"], j["coalesced"]' | tr -d "(),'")"
wait_run_final 60 "$id" || true
check_eq "run $id succeeded" success "$(run_state "$id")"
for t in customers orders; do
  check_eq "$t count" "$(pg "SELECT count(*) FROM serve_api.$t")" "$(ch "SELECT count() FROM raw_serve_api.$t")"
done
check_eq "sum(total_amount)" "$(pg "SELECT sum(total_amount) FROM serve_api.orders")" \
  "$(ch "SELECT sum(total_amount) FROM raw_serve_api.orders")"
check_eq "unselected table not loaded" 0 "$(ch "SELECT count() FROM system.tables WHERE database = 'raw_serve_api' AND name = 'products'")"
r=$(curl -sS "$BASE/api/runs/$id")
check_eq "run detail: load tasks" "['load:customers', 'load:orders']" \
  "$(jget "$r" 'sorted(t["name"] for t in j["tasks"] if t["kind"] == "load")')"
check_eq "run detail: rows of load:orders" 100 \
  "$(jget "$r" '[t["rows"] for t in j["tasks"] if t["name"] == "load:orders"][0]')"
check_eq "run detail: task fields" "True" \
  "$(jget "$r" 'all(set(t) >= {"state","attempts","rows","bytes","started_at","finished_at","duration_seconds","error"} for t in j["tasks"])')"
check_eq "cancel of a finished run" 409 "$(api POST "/api/runs/$id/cancel" "${AUTH[@]}" | cut -d' ' -f1)"
if grep -qF -- "$TOKEN" "$DAEMON_LOG"; then fail "the token appears in the log"; else pass "the token is never logged"; fi

# ---- a storm of 100 triggers within a second: one active, one queued, no 5xx ----
hold_lock serve_api.orders
storm=$($PY - "$BASE" "$TOKEN" <<'PY'
import json, sys, threading, time, urllib.request, urllib.error
base, token = sys.argv[1], sys.argv[2]
res, lock = [], threading.Lock()
def go(i):
    path = "/webhook" if i % 2 else "/webhook/manual"
    req = urllib.request.Request(base + path, data=b"", method="POST",
                                 headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            out = (r.status, json.load(r))
    except urllib.error.HTTPError as e:
        out = (e.code, None)
    with lock:
        res.append(out)
t0 = time.time()
ts = [threading.Thread(target=go, args=(i,)) for i in range(100)]
for t in ts: t.start()
for t in ts: t.join()
codes = sorted(set(c for c, _ in res))
ids = sorted(set(b["run_id"] for c, b in res if b))
coalesced = sum(1 for c, b in res if b and b["coalesced"])
print(json.dumps({"codes": codes, "ids": ids, "coalesced": coalesced, "secs": time.time() - t0}))
PY
)
check_eq "storm: every answer 202" "[202]" "$(jget "$storm" 'j["codes"]')"
check_eq "storm: two run ids" 2 "$(jget "$storm" 'len(j["ids"])')"
check_eq "storm: 98 coalesced" 98 "$(jget "$storm" 'j["coalesced"]')"
check_eq "storm: within a second or two" True "$(jget "$storm" 'j["secs"] < 3')"
active=$(jget "$storm" 'j["ids"][0]'); queued=$(jget "$storm" 'j["ids"][1]')
st=$(curl -sS "$BASE/status")
check_eq "storm: active run" "$active running" "$(jget "$st" 'j["active_run"]["id"], j["active_run"]["state"]' | tr -d "(),'")"
check_eq "storm: queued run" "$queued queued" "$(jget "$st" 'j["queued_run"]["id"], j["queued_run"]["state"]' | tr -d "(),'")"
check_eq "storm: queued run counts its triggers" 99 "$(jget "$st" 'j["queued_run"]["triggers"]')"
check_eq "storm: one running in /api/runs" 1 "$(jget "$(curl -sS "$BASE/api/runs?state=running")" 'j["total"]')"
check_eq "storm: one queued in /api/runs" 1 "$(jget "$(curl -sS "$BASE/api/runs?state=queued")" 'j["total"]')"
check_eq "storm: /status shows the active run's tasks" True \
  "$(jget "$st" 'any(t["name"] == "load:orders" and t["state"] == "running" for t in j["active_run"]["tasks"])')"

# ---- cancel: the queued run at once, the active one cleanly ----
r=$(api POST "/api/runs/$queued/cancel" "${AUTH[@]}")
check_eq "cancel queued" "202 cancelled" "$(echo "${r%% *}" "$(jget "${r#* }" 'j["state"]')")"
check_eq "cancel active answers 202" 202 "$(api POST "/api/runs/$active/cancel" "${AUTH[@]}" | cut -d' ' -f1)"
wait_run_final 30 "$active" || true
check_eq "active run cancelled" cancelled "$(run_state "$active")"
release_lock
check_eq "no half table: orders as before" 100 "$(ch "SELECT count() FROM raw_serve_api.orders")"
check_eq "no side table left" 0 \
  "$(ch "SELECT count() FROM system.tables WHERE database = 'raw_serve_api' AND name LIKE '%__eltd_%'")"
total=$(jget "$(curl -sS "$BASE/api/runs")" 'j["total"]')
check_eq "history: three runs" 3 "$total"
check_eq "newest first" "$queued $active $id" "$(jget "$(curl -sS "$BASE/api/runs")" '" ".join(str(r["id"]) for r in j["runs"])')"
check_eq "limit/offset" "$active" "$(jget "$(curl -sS "$BASE/api/runs?limit=1&offset=1")" 'j["runs"][0]["id"]')"

# ---- restart: the history survives ----
stop_daemon TERM
check_eq "SIGTERM when idle exits 0" 0 "$DAEMON_RC"
start_daemon "$cfg"
check_eq "after restart: same history" "$queued $active $id" \
  "$(jget "$(curl -sS "$BASE/api/runs")" '" ".join(str(r["id"]) for r in j["runs"])')"
check_eq "after restart: states kept" "cancelled cancelled success" \
  "$(jget "$(curl -sS "$BASE/api/runs")" '" ".join(r["state"] for r in j["runs"])')"

# ---- a crash mid-run: the run is recorded as interrupted at the next start ----
hold_lock serve_api.orders
r=$(api POST /webhook "${AUTH[@]}")
crashed=$(jget "${r#* }" 'j["run_id"]')
wait_for 10 grep -q "\"id\":$crashed,\"event\":\"started\"" "$WORK/state-serve_api/runs.jsonl"
stop_daemon KILL
release_lock
start_daemon "$cfg"
r=$(curl -sS "$BASE/api/runs/$crashed")
check_eq "crashed run marked failed" failed "$(jget "$r" 'j["state"]')"
check_contains "crashed run says interrupted" "interrupted" "$r"
check_eq "ids continue after the crash" "$((crashed + 1))" \
  "$(jget "$(api POST /webhook/manual "${AUTH[@]}" | cut -d' ' -f2-)" 'j["run_id"]')"
wait_run_final 60 "$((crashed + 1))" || true

# ---- SIGTERM during a run: finishes within the grace ... ----
hold_lock serve_api.orders
r=$(api POST /webhook "${AUTH[@]}")
graced=$(jget "${r#* }" 'j["run_id"]')
kill -TERM "$DAEMON_PID"
wait_for 5 grep -q 'event=shutdown ' "$DAEMON_LOG"
release_lock
wait_daemon
check_eq "SIGTERM, run done within grace: exit 0" 0 "$DAEMON_RC"
graced_state=$($PY -c 'import json,sys; print([r["state"] for r in map(json.loads, open(sys.argv[1])) if r.get("id") == int(sys.argv[2]) and r.get("event") == "finished"][-1])' "$WORK/state-serve_api/runs.jsonl" "$graced")
check_eq "journal: run finished in the grace" success "$graced_state"
if [ "$graced_state" != success ]; then
  grep "\"id\":$graced," "$WORK/state-serve_api/runs.jsonl" | sed 's/^/# journal: /'
  grep -E "level=(warn|error)" "$DAEMON_LOG" | tail -20 | sed 's/^/# daemon: /'
fi

# ---- ... or is cancelled when the grace runs out ----
start_daemon "$WORK/short_grace.yaml"
hold_lock serve_api.orders
r=$(api POST /webhook "${AUTH[@]}")
late=$(jget "${r#* }" 'j["run_id"]')
t0=$(date +%s)
stop_daemon TERM
check_eq "SIGTERM, grace ran out: exit 0" 0 "$DAEMON_RC"
check_eq "exit within grace + 5 s" True "$($PY -c "print($(date +%s) - $t0 <= 7)")"
check_eq "journal: run cancelled after the grace" cancelled \
  "$($PY -c 'import json,sys; print([r["state"] for r in map(json.loads, open(sys.argv[1])) if r.get("id") == int(sys.argv[2]) and r.get("event") == "finished"][-1])' "$WORK/state-serve_api/runs.jsonl" "$late")"
release_lock
check_eq "no half table after shutdown" 100 "$(ch "SELECT count() FROM raw_serve_api.orders")"
if grep -qF -- "$TOKEN" "$WORK"/daemon.*.log; then fail "the token appears in a log"; else pass "the token is never logged (all $DAEMON_N daemons)"; fi

ch "DROP DATABASE IF EXISTS raw_serve_api" >/dev/null
pg "DROP SCHEMA serve_api CASCADE" >/dev/null
