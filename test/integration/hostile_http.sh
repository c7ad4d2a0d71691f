#!/usr/bin/env bash
# Hostile HTTP against a running `eltd serve` with a token and http.max_connections: 50
# (issue 8, point 7), from raw sockets (test/lib/rawhttp.py). Each case asserts the exact
# status (or that the connection is dropped) and that GET /health answers 200 right after:
# smuggling shapes (CL+TE, duplicate CL, stacked codings), oversized request line, headers
# and body, slowloris (one byte per 200 ms past the 10 s header timeout, /health polled
# meanwhile), 60 and 1,000 idle connections over the limit (503 or dropped, /health back
# once some close), three pipelined GETs answered in order, NUL and non-UTF-8 bytes in the
# path, bad JSON bodies on POST /webhook (non-UTF-8, NUL, nested 10,000 deep) and header
# syntax refused by RFC 9112 (space before the colon, obs-fold). At the end the daemon is
# alive, no POST started a run, and its log holds no sanitizer report or crash.
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
sed -i "s|^http:|http:\n  token: $TOKEN\n  max_connections: 50|" "$CFG"
start_daemon "$CFG"
runs0=$(jget "$(curl -sS "$BASE/api/runs")" 'j["total"]')

health_ok() {
  check_eq "  then GET /health" 200 "$(curl -sS -m 3 -o /dev/null -w '%{http_code}' "$BASE/health" || true)"
}
# hit NAME "ALLOWED..." EXPR [TIMEOUT]: the first answer's status (or "closed") is one of
# ALLOWED; then /health answers 200. The first response's body is left in $BODY.
hit() {
  local out first
  out=$($RAW send "$PORT" "$3" "${4:-5}")
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

# ---- slowloris: one byte per 200 ms past the 10 s header timeout (not configurable) ----
$RAW trickle "$PORT" 'b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 1000' 0.2 25 >"$WORK/slow" &
SLOW=$!
CLEANUP_PIDS+=("$SLOW")
polls=0 bad=0
while kill -0 "$SLOW" 2>/dev/null; do
  c=$(curl -sS -m 1 -o /dev/null -w '%{http_code}' "$BASE/health" || true)
  polls=$((polls + 1))
  [ "$c" = 200 ] || bad=$((bad + 1))
  sleep 0.5
done
wait "$SLOW" || true
read -r st secs <"$WORK/slow"
if [ "$st" = 408 ] || [ "$st" = closed ]; then pass "slowloris: $st after ${secs}s"; else fail "slowloris: got '$st' after ${secs}s"; fi
if awk -v s="$secs" 'BEGIN { exit !(s >= 9 && s <= 13) }'; then pass "slowloris cut at the 10 s header timeout (${secs}s)"
else fail "slowloris cut after ${secs}s, not ~10 s"; fi
if [ "$polls" -ge 10 ] && [ "$bad" = 0 ]; then pass "/health answered 200 during the slowloris ($polls polls)"
else fail "/health during the slowloris: $bad of $polls polls not 200"; fi
health_ok

# ---- idle connections over http.max_connections (50) ----
# 60: the 50 counted stay open and silent, the 10 over the limit get 503 at once.
read -r o s5 dr op hf ha <<<"$($RAW flood "$PORT" 60 2)"
check_eq "60 idle connections: opened" opened=60 "$o"
check_eq "60 idle connections: over the limit get 503" s503=10 "$s5"
check_eq "60 idle connections: none dropped unanswered" dropped=0 "$dr"
check_eq "60 idle connections: 50 held open" open=50 "$op"
check_eq "60 idle connections: /health while full is refused with 503" health_full=503 "$hf"
check_eq "60 idle connections: /health once 40 closed" health_after=200 "$ha"
health_ok
# 1,000: past 64 rejections in flight the rest are closed unanswered; none hangs.
read -r o s5 dr op hf ha <<<"$($RAW flood "$PORT" 1000 2)"
check_eq "1,000 idle connections: opened" opened=1000 "$o"
check_eq "1,000 idle connections: 50 held open" open=50 "$op"
n503=${s5#s503=} ndrop=${dr#dropped=}
if [ "$n503" -ge 1 ] && [ $((n503 + ndrop)) = 950 ]; then pass "1,000 idle connections: 950 over the limit answered 503 ($n503) or dropped ($ndrop)"
else fail "1,000 idle connections: $s5 $dr $op"; fi
if [[ "$hf" == health_full=503 || "$hf" == health_full=closed ]]; then pass "1,000 idle connections: /health while full: ${hf#*=}"
else fail "1,000 idle connections: /health while full: $hf"; fi
check_eq "1,000 idle connections: /health once 990 closed" health_after=200 "$ha"
health_ok

# ---- the daemon survived all of it ----
if kill -0 "$DAEMON_PID" 2>/dev/null; then pass "daemon pid $DAEMON_PID alive"; else fail "daemon died"; fi
check_eq "no POST of the battery started a run" "$runs0" "$(jget "$(curl -sS "$BASE/api/runs")" 'j["total"]')"
if grep -Eq 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|Segmentation fault|SIGSEGV|SIGABRT|Aborted|double free|stack-overflow' "$DAEMON_LOG"; then
  fail "sanitizer report or crash in the log: $(grep -Em3 'Sanitizer|runtime error|SIG|Abort|free|overflow' "$DAEMON_LOG")"
else pass "no sanitizer report or crash in the daemon log"; fi
if grep -qF -- "$TOKEN" "$DAEMON_LOG"; then fail "the token appears in the log"; else pass "the token is never logged"; fi
stop_daemon TERM
check_eq "SIGTERM after the battery: clean exit" 0 "$DAEMON_RC"
