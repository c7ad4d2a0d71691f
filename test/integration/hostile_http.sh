#!/usr/bin/env bash
# Hostile HTTP against a running `eltd serve` (issue 8, point 7), from raw sockets
# (test/lib/rawhttp.py).
# First daemon (a token, http.max_connections: 50, http.header_timeout: 4s): each case asserts
# the exact status (or that the connection is dropped) and that GET /health answers 200 right
# after: smuggling shapes (CL+TE, duplicate CL, stacked codings), oversized request line,
# headers and body, three pipelined GETs answered in order, NUL and non-UTF-8 bytes in the
# path, bad JSON bodies on POST /webhook (non-UTF-8, NUL, nested 10,000 deep), header syntax
# refused by RFC 9112 (space before the colon, obs-fold), and slowloris (one byte per 200 ms,
# cut at the configured 4 s with a 408, /health polled meanwhile). Every error status the
# clients saw, whether the API or the server itself answered it, is counted exactly once in
# eltd_http_requests_total{code}.
# Second daemon (http.max_connections: 50, http.header_timeout: 30s, so that nothing here can
# pass by a timeout): with all 50 slots held by idle clients (one silent, one part way through
# a head, 48 between keep-alive requests) GET /health answers 200 at once by evicting the
# longest idle, which reads EOF, and the next eviction takes the next oldest;
# eltd_http_connections_evicted_total counts them. Control: with all 50 slots reading a
# request body, nothing is evicted and a new client gets 503 (counted); once one is idle again
# it is the one evicted. Then 60 and 1,000 idle connections: exactly the oldest beyond 50 are
# closed, none is answered 503, /health answers 200 while they are held.
# At the end each daemon is alive, no POST started a run, its log holds no sanitizer report or
# crash, and SIGTERM exits cleanly.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/serve.sh"
trap 'rc=$?; set +e; (exit $rc); serve_cleanup; finish' EXIT
RAW="$PY $ROOT/test/lib/rawhttp.py"
# 1,000 idle connections plus ours need descriptors on both ends.
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 4096 ] || ulimit -n 4096 2>/dev/null ||
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

mkdir -p "$WORK/nomodels"
export MODELS_PATH=$WORK/nomodels TABLES_YAML='[customers]'
TOKEN="tok-$RANDOM-$RANDOM"
CFG=$(make_config hostile)
sed -i "s|^http:|http:\n  token: $TOKEN\n  max_connections: 50\n  header_timeout: 4s|" "$CFG"
start_daemon "$CFG"
LOGS=("$DAEMON_LOG")
runs0=$(jget "$(curl -sS "$BASE/api/runs")" 'j["total"]')

# Statuses the clients saw, by code, to compare with eltd_http_requests_total.
declare -A SEEN=()
seen() { local st; for st in "$@"; do [[ "$st" =~ ^[0-9]{3}$ ]] && SEEN[$st]=$((${SEEN[$st]:-0} + 1)); done; return 0; }
# metric 'NAME{LABELS}': its value in a fresh /metrics scrape ("" when absent).
metric() { curl -sS -m 5 "$BASE/metrics" | awk -v k="$1" '$1 == k {print $2}'; }

health_ok() {
  check_eq "  then GET /health" 200 "$(curl -sS -m 3 -o /dev/null -w '%{http_code}' "$BASE/health" || true)"
}
# hit NAME "ALLOWED..." EXPR [TIMEOUT]: the first answer's status (or "closed") is one of
# ALLOWED; then /health answers 200. The first response's body is left in $BODY.
hit() {
  local out first
  out=$($RAW send "$PORT" "$3" "${4:-5}")
  # shellcheck disable=SC2046
  seen $(head -1 <<<"$out")
  first=$(head -1 <<<"$out" | cut -d' ' -f1)
  BODY=$(sed -n 2p <<<"$out")
  if [[ " $2 " == *" $first "* ]]; then pass "$1 -> $first"; else
    fail "$1: expected one of '$2', got '$first' ($BODY)"; fi
  health_ok
}
H='b"Host: x\r\n"'
P="b\"POST /webhook/manual HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $TOKEN\r\n"

# ---- control ----
hit "control: GET /health" 200 "b\"GET /health HTTP/1.1\r\n\" + $H + b\"Connection: close\r\n\r\n\""

# ---- smuggling shapes ----
hit "Content-Length + Transfer-Encoding" 400 \
  "$P"'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"'
hit "Transfer-Encoding + Content-Length" 400 \
  "$P"'Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"'
hit "duplicate Content-Length (same value)" 400 "$P"'Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}"'
hit "duplicate Content-Length (different values)" 400 "$P"'Content-Length: 2\r\nContent-Length: 7\r\n\r\n{}"'
hit "TE: chunked, gzip" "400 501" "$P"'Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"'
hit "TE: gzip, chunked" "400 501" "$P"'Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"'

# ---- oversized ----
hit "request line of 100 KB" "414 431" 'b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"'
hit "request line of 100 KB: exactly 414" 414 'b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"'
hit "one header of 100 KB" 431 "b\"GET /health HTTP/1.1\r\n\" + $H + b\"X-Big: \" + b\"b\" * 100000 + b\"\r\n\r\n\""
hit "200 headers of 100 bytes" 431 "b\"GET /health HTTP/1.1\r\n\" + $H + b\"\".join(b\"X-%03d: \" % i + b\"v\" * 93 + b\"\r\n\" for i in range(200)) + b\"\r\n\""
hit "POST body of 2 MiB (Content-Length)" 413 "$P"'Content-Type: application/json\r\nContent-Length: 2097152\r\n\r\n" + b"{" + b" " * 2097150 + b"}"'
hit "POST body of 2 MiB (chunked)" 413 "$P"'Transfer-Encoding: chunked\r\n\r\n" + (b"10000\r\n" + b" " * 65536 + b"\r\n") * 32 + b"0\r\n\r\n"'

# ---- header syntax ----
hit "space before a header colon" 400 "b\"GET /health HTTP/1.1\r\n\" + $H + b\"X-A : b\r\n\r\n\""
hit "space before the Content-Length colon" 400 "$P"'Content-Length : 2\r\n\r\n{}"'
hit "obs-fold header" 400 "b\"GET /health HTTP/1.1\r\n\" + $H + b\"X-A: b\r\n  c\r\n\r\n\""

# ---- pipelining: three GETs in one write, answered in order ----
out=$($RAW send "$PORT" 'b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"')
check_eq "3 pipelined GETs (/health, /nope, /status) answered in order" "200 404 200" "$(head -1 <<<"$out")"
# shellcheck disable=SC2046
seen $(head -1 <<<"$out")
health_ok

# ---- NUL and non-UTF-8 in the path ----
hit "NUL byte in the path" 400 "b\"GET /he\x00alth HTTP/1.1\r\n\" + $H + b\"\r\n\""
hit "non-UTF-8 path" "400 404" "b\"GET /\xff\xfe\xc0\xaf HTTP/1.1\r\n\" + $H + b\"\r\n\""
hit "non-UTF-8 after a known path" "400 404" "b\"GET /health\xff HTTP/1.1\r\n\" + $H + b\"\r\n\""
hit "%00 in the path" "400 404" "b\"GET /health%00 HTTP/1.1\r\n\" + $H + b\"\r\n\""
hit "%FF in the path" "400 404" "b\"GET /api/runs/%FF HTTP/1.1\r\n\" + $H + b\"\r\n\""

# ---- bad JSON on POST /webhook (with the token): 400 and a JSON error ----
post() { # post NAME BODY_EXPR
  hit "POST /webhook $1" 400 "b\"POST /webhook HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $TOKEN\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n\" % len($2) + $2"
  if [ "$($PY -c 'import json,sys; print(isinstance(json.loads(sys.argv[1]).get("error"), str))' "$BODY" 2>/dev/null)" = True ]; then
    pass "  a JSON error: $BODY"; else fail "  not a JSON error: $BODY"; fi
}
post "non-UTF-8 JSON" 'b"{\"tables\": [\"\xff\xfe\xc3\"]}"'
post "raw NUL inside a JSON string" 'b"{\"tables\": [\"cust\x00omers\"]}"'
post "escaped NUL inside a JSON string" 'b"{\"tables\": [\"customers\\u0000\"]}"'
post "JSON nested 10,000 deep (arrays)" 'b"{\"vars\": " + b"[" * 10000 + b"]" * 10000 + b"}"'
post "JSON nested 10,000 deep (objects)" 'b"{\"vars\": " + b"{\"a\":" * 10000 + b"1" + b"}" * 10000 + b"}"'

# ---- slowloris: one byte per 200 ms past the 4 s header timeout configured above ----
$RAW trickle "$PORT" 'b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 1000' 0.2 25 >"$WORK/slow" &
SLOW=$!
CLEANUP_PIDS+=("$SLOW")
polls=0 bad=0
while kill -0 "$SLOW" 2>/dev/null; do
  c=$(curl -sS -m 1 -o /dev/null -w '%{http_code}' "$BASE/health" || true)
  polls=$((polls + 1))
  [ "$c" = 200 ] || bad=$((bad + 1))
  sleep 0.2
done
wait "$SLOW" || true
read -r st secs <"$WORK/slow"
seen "$st"
check_eq "slowloris: answered 408" 408 "$st"
if awk -v s="$secs" 'BEGIN { exit !(s >= 3.5 && s <= 6.5) }'; then pass "slowloris cut at the configured 4 s header timeout (${secs}s)"
else fail "slowloris cut after ${secs}s, not ~4 s"; fi
if [ "$polls" -ge 5 ] && [ "$bad" = 0 ]; then pass "/health answered 200 during the slowloris ($polls polls)"
else fail "/health during the slowloris: $bad of $polls polls not 200"; fi
health_ok

# ---- every error status seen above is counted once, whoever answered it ----
curl -sS "$BASE/metrics" >"$WORK/metrics1.txt"
for code in $(printf '%s\n' "${!SEEN[@]}" | sort -n); do
  [ "$code" = 200 ] && continue # /health and /metrics are also asked outside this count
  check_eq "eltd_http_requests_total{code=\"$code\"} counts the ${SEEN[$code]} seen" "${SEEN[$code]}" \
    "$(awk -v k="eltd_http_requests_total{code=\"$code\"}" '$1 == k {print $2}' "$WORK/metrics1.txt")"
done
for code in 408 413 414 431; do
  [ -n "${SEEN[$code]:-}" ] || fail "the battery saw no $code: the counts above do not cover the server's own answers"
done
check_eq "no eviction while at most 3 connections were open" 0 \
  "$(awk '$1 == "eltd_http_connections_evicted_total" {print $2}' "$WORK/metrics1.txt")"
if out=$(promtool check metrics <"$WORK/metrics1.txt" 2>&1); then pass "promtool check metrics"
else fail "promtool check metrics: $out"; fi

# ---- the first daemon survived all of it ----
if kill -0 "$DAEMON_PID" 2>/dev/null; then pass "daemon pid $DAEMON_PID alive"; else fail "daemon died"; fi
check_eq "no POST of the battery started a run" "$runs0" "$(jget "$(curl -sS "$BASE/api/runs")" 'j["total"]')"
stop_daemon TERM
check_eq "SIGTERM after the battery: clean exit" 0 "$DAEMON_RC"

# ==== second daemon: all of http.max_connections (50) held ====
CFG2=$(make_config hostile2)
sed -i "s|^http:|http:\n  max_connections: 50\n  header_timeout: 30s|" "$CFG2"
start_daemon "$CFG2"
LOGS+=("$DAEMON_LOG")
runs0=$(jget "$(curl -sS "$BASE/api/runs")" 'j["total"]')

# One silent client, then one part way through a head, then 48 that each had one keep-alive
# exchange (so all 50 are known to be accepted: the accept queue is first in, first out).
# Then /health on a fresh connection, twice (the slot filled again between); the evictions are read from /metrics asked on one
# of the held keep-alive connections, which takes no new slot.
$PY - "$PORT" 50 "$ROOT/test/lib" >"$WORK/evict.txt" <<'PY'
import re, socket, sys, time
sys.path.insert(0, sys.argv[3])
import rawhttp

port, n = int(sys.argv[1]), int(sys.argv[2])
GET = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"

def conn():
    return socket.create_connection(("127.0.0.1", port), timeout=5)

def one_response(s, timeout=5):
    """(status, body) of the next response, read whole by its Content-Length."""
    s.settimeout(timeout)
    data = b""
    while True:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            m = re.search(rb"\r\ncontent-length: *(\d+)", data[:end], re.I)
            n = int(m.group(1)) if m else 0
            if len(data) >= end + 4 + n:
                return int(data[9:12]), data[end + 4:end + 4 + n]
        b = s.recv(65536)
        if not b:
            return "closed", b""
        data += b

def closed(s, timeout):
    """EOF (or reset) within timeout: the server closed it."""
    s.settimeout(timeout)
    try:
        return s.recv(65536) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False

def timed_health():
    t0 = time.monotonic()
    st = rawhttp.status_of(port, rawhttp.HEALTH, 30)
    return st, time.monotonic() - t0

silent = conn()
partial = conn()
partial.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: z")
kept, ok = [], 0
for _ in range(n - 2):
    s = conn()
    s.sendall(GET)
    st, _ = one_response(s)
    ok += st == 200
    kept.append(s)
print("held", 2 + ok)
st, secs = timed_health()
print("health1", st, "%.4f" % secs)
print("silent_closed", closed(silent, 5))
print("partial_open", rawhttp.still_open(partial))
print("kept_open_1", sum(rawhttp.still_open(s) for s in kept))
# That /health freed its slot when it closed: one more keep-alive client fills it again (or,
# if it came before that close was read, evicts the partial head itself).
refill = conn()
refill.sendall(GET)
print("refill", one_response(refill)[0])
st, secs = timed_health()
print("health2", st, "%.4f" % secs)
print("partial_closed", closed(partial, 5))
print("kept_open_2", sum(rawhttp.still_open(s) for s in kept))
last = kept[-1]
last.setblocking(True)
last.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
st, body = one_response(last)
ev = [l.split()[1] for l in body.decode().splitlines()
      if l.startswith("eltd_http_connections_evicted_total ")]
print("metrics_on_held", st, ev[0] if ev else "absent")
print("kept_open_3", sum(rawhttp.still_open(s) for s in kept))
for s in kept + [silent, partial, refill]:
    s.close()
PY
v() { awk -v k="$1" '$1 == k {print $2}' "$WORK/evict.txt"; }
check_eq "50 idle connections held (silent, partial head, 48 keep-alive)" 50 "$(v held)"
check_eq "all slots held: GET /health answers" 200 "$(v health1)"
h1=$(awk '$1 == "health1" {print $3}' "$WORK/evict.txt")
if awk -v s="$h1" 'BEGIN { exit !(s < 2) }'; then pass "all slots held: /health answered in ${h1}s (header timeout 30 s)"
else fail "all slots held: /health took ${h1}s"; fi
check_eq "the longest idle (silent) connection was closed: EOF" True "$(v silent_closed)"
check_eq "  the partial-head one is still open" True "$(v partial_open)"
check_eq "  the 48 keep-alive ones are still open" 48 "$(v kept_open_1)"
check_eq "a 50th keep-alive client fills the slot /health left" 200 "$(v refill)"
check_eq "again: GET /health answers" 200 "$(v health2)"
h2=$(awk '$1 == "health2" {print $3}' "$WORK/evict.txt")
if awk -v s="$h2" 'BEGIN { exit !(s < 2) }'; then pass "again: /health answered in ${h2}s"; else fail "again: /health took ${h2}s"; fi
check_eq "the next oldest (partial head, idle since its last byte) was closed: EOF" True "$(v partial_closed)"
check_eq "  the 48 keep-alive ones are still open" 48 "$(v kept_open_2)"
check_eq "eltd_http_connections_evicted_total (asked on a held connection)" "200 2" \
  "$(awk '$1 == "metrics_on_held" {print $2, $3}' "$WORK/evict.txt")"
check_eq "  asking it evicted nothing" 48 "$(v kept_open_3)"

# ---- control: every slot reading a request body: nothing to evict, so 503 ----
# Each client sends a head with Expect: 100-continue and waits for the 100, so its connection
# is known to be reading the body when /health comes.
$PY - "$PORT" 50 "$ROOT/test/lib" >"$WORK/busy.txt" <<'PY'
import socket, sys, time
sys.path.insert(0, sys.argv[3])
import rawhttp

port, n = int(sys.argv[1]), int(sys.argv[2])
HEAD = (b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n")

def conn():
    return socket.create_connection(("127.0.0.1", port), timeout=5)

def read_until(s, needle, timeout=5):
    s.settimeout(timeout)
    data = b""
    try:
        while needle not in data:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except OSError:
        pass
    return data

bodies, cont = [], 0
for _ in range(n):
    s = conn()
    s.sendall(HEAD)
    cont += b"HTTP/1.1 100 Continue\r\n\r\n" in read_until(s, b"\r\n\r\n")
    bodies.append(s)
print("continued", cont)
t0 = time.monotonic()
print("health_busy", rawhttp.status_of(port, rawhttp.HEALTH, 30), "%.4f" % (time.monotonic() - t0))
print("busy_open", sum(rawhttp.still_open(s) for s in bodies))
# One body completes (404: no such path, no run); its connection is then idle, and evicted next.
first = bodies[0]
first.sendall(b"{}")
d = read_until(first, b"not found")
print("first_answer", (rawhttp.parse(d) or [("none", b"")])[0][0])
print("health_after", rawhttp.status_of(port, rawhttp.HEALTH, 30))
first.settimeout(5)
try:
    print("first_closed", first.recv(65536) == b"")
except OSError:
    print("first_closed", True)
print("others_open", sum(rawhttp.still_open(s) for s in bodies[1:]))
for s in bodies:
    s.close()
PY
v() { awk -v k="$1" '$1 == k {print $2}' "$WORK/busy.txt"; }
check_eq "50 connections reading a body (100 Continue each)" 50 "$(v continued)"
check_eq "all slots mid-request: a new client gets 503" 503 "$(v health_busy)"
check_eq "  none of them was evicted" 50 "$(v busy_open)"
check_eq "one body completed: answered" 404 "$(v first_answer)"
check_eq "now idle, it is the one evicted: /health answers" 200 "$(v health_after)"
check_eq "  and the completed one read EOF" True "$(v first_closed)"
check_eq "  the 49 still reading a body stay open" 49 "$(v others_open)"
# Once the 49 are gone /metrics answers; each 503 on the way is one more to count.
n503=1
metrics_ok() {
  local c
  c=$(curl -sS -m 5 -o "$WORK/metrics2.txt" -w '%{http_code}' "$BASE/metrics" || true)
  [ "$c" = 503 ] && n503=$((n503 + 1))
  [ "$c" = 200 ]
}
if wait_for 10 metrics_ok; then pass "/metrics answers once the busy clients left"; else fail "/metrics never answered"; fi
check_eq "the 503s are counted in eltd_http_requests_total{code=\"503\"}" "$n503" \
  "$(awk '$1 == "eltd_http_requests_total{code=\"503\"}" {print $2}' "$WORK/metrics2.txt")"
if out=$(promtool check metrics <"$WORK/metrics2.txt" 2>&1); then pass "promtool check metrics (second daemon)"
else fail "promtool check metrics: $out"; fi

# ---- 60 and 1,000 idle connections over http.max_connections (50) ----
# The oldest beyond 50 are closed (EOF, no answer), none gets 503, /health evicts one more.
ev0=$(metric eltd_http_connections_evicted_total)
read -r o s5 dr op hf ha <<<"$($RAW flood "$PORT" 60 2)"
check_eq "60 idle connections: opened" opened=60 "$o"
check_eq "60 idle connections: none answered 503" s503=0 "$s5"
check_eq "60 idle connections: the 10 oldest closed" dropped=10 "$dr"
check_eq "60 idle connections: 50 held open" open=50 "$op"
check_eq "60 idle connections: /health while all are held" health_full=200 "$hf"
check_eq "60 idle connections: /health once 40 closed" health_after=200 "$ha"
health_ok
read -r o s5 dr op hf ha <<<"$($RAW flood "$PORT" 1000 2)"
check_eq "1,000 idle connections: opened" opened=1000 "$o"
check_eq "1,000 idle connections: none answered 503" s503=0 "$s5"
check_eq "1,000 idle connections: the 950 oldest closed" dropped=950 "$dr"
check_eq "1,000 idle connections: 50 held open" open=50 "$op"
check_eq "1,000 idle connections: /health while all are held" health_full=200 "$hf"
check_eq "1,000 idle connections: /health once 990 closed" health_after=200 "$ha"
health_ok
ev1=$(metric eltd_http_connections_evicted_total)
# 10 + 950 by the floods, one by each /health while full; the rest depends on when the
# previous clients' closes were read, so at least that many.
if [ "$((ev1 - ev0))" -ge 962 ]; then pass "evictions counted: $((ev1 - ev0)) more (>= 962)"
else fail "evictions counted: $ev0 -> $ev1, expected >= 962 more"; fi

# ---- the daemons survived all of it ----
if kill -0 "$DAEMON_PID" 2>/dev/null; then pass "daemon pid $DAEMON_PID alive"; else fail "daemon died"; fi
check_eq "no POST started a run" "$runs0" "$(jget "$(curl -sS "$BASE/api/runs")" 'j["total"]')"
stop_daemon TERM
check_eq "SIGTERM after the floods: clean exit" 0 "$DAEMON_RC"
for log in "${LOGS[@]}"; do
  if grep -Eq 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|Segmentation fault|SIGSEGV|SIGABRT|Aborted|double free|stack-overflow' "$log"; then
    fail "sanitizer report or crash in $(basename "$log"): $(grep -Em3 'Sanitizer|runtime error|SIG|Abort|free|overflow' "$log")"
  else pass "no sanitizer report or crash in $(basename "$log")"; fi
done
if grep -qF -- "$TOKEN" "${LOGS[@]}"; then fail "the token appears in a log"; else pass "the token is never logged"; fi
