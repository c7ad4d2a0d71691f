#!/usr/bin/env bash
# eltd benchmark: how much a load slows while 200 HTTP clients hammer the API (issue 8,
# point 10: target under 1.5x the idle time, reported here, never asserted in a test).
#
#   test/bench/http_load.sh [--rows N] [--rounds N] [--eltd PATH] [--keep-servers] [--out FILE]
#
#   --rows      rows of the generated source table (default 2000000)
#   --rounds    rounds; each runs one idle load and one load under traffic (default 3)
#   --eltd      the binary (default: build-bench/eltd, configured Release and built if missing)
#   --keep-servers   leave the servers this script started running (their env file is printed)
#   --out       also write the Markdown report to FILE
#
# Servers: test/servers.sh starts PostgreSQL 15 + ClickHouse in a temporary directory, or
# ELTD_TEST_ENV=DIR/env.sh points at running ones. The source is eltd_hbench.big, a
# generate_series table (id bigint, name text, val bigint; ~45 bytes of COPY text a row),
# made once and reused while its row count matches.
#
# One `eltd serve` runs all rounds. In each round, interleaved:
#   idle   POST /webhook/manual, wait for the run; the time is the load:big task's
#          duration_seconds from /api/runs/ID
#   busy   wrk -t2 -c200 on /status and /metrics (alternating per request, a Lua script)
#          started 1 s before the same trigger and stopped (SIGINT) once the run is final,
#          so the traffic covers the whole load however long it takes
#   control  the same wrk traffic aimed at a second, otherwise idle `eltd serve` while the
#          first one loads: the machine's CPU contention alone (wrk, both servers and eltd
#          share the cores), without the load and the traffic sharing eltd's loop
# After every run ClickHouse's count() and sum(id) must equal PostgreSQL's, or the bench
# fails. The report: idle, busy and control seconds per round, the ratios of the medians,
# wrk's requests, non-2xx answers and socket errors, and eltd's CPU seconds per run.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ROWS=2000000 ROUNDS=3 KEEP=0 ELTD="" OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) ROWS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --keep-servers) KEEP=1; shift ;;
    --eltd) ELTD=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "http_load.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$ROWS" =~ ^[1-9][0-9]*$ ]] || { echo "http_load.sh: --rows N (N >= 1)" >&2; exit 2; }
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "http_load.sh: --rounds N (N >= 1)" >&2; exit 2; }

die() { echo "http_load.sh: FAIL: $*" >&2; exit 1; }
log() { echo "http_load.sh: $*" >&2; }
PY=/usr/bin/python3
command -v wrk >/dev/null || die "wrk missing (apt-get install wrk)"

# shellcheck source=test/bench/lib.sh
. "$HERE/lib.sh"
bench_eltd

WORK=$(mktemp -d /tmp/eltd-hbench.XXXXXX)
DAEMON_PID="" DAEMON2_PID="" WRK_PID=""
cleanup() {
  local rc=$?
  [ -n "$WRK_PID" ] && { kill "$WRK_PID" 2>/dev/null; wait "$WRK_PID" 2>/dev/null; }
  [ -n "$DAEMON_PID" ] && { kill "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null; }
  [ -n "$DAEMON2_PID" ] && { kill "$DAEMON2_PID" 2>/dev/null; wait "$DAEMON2_PID" 2>/dev/null; }
  bench_servers_release
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_servers eltd-hbench-servers

pg() { psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }
ch() {
  local out code
  out=$(curl -sS -w '\n%{http_code}' -H "X-ClickHouse-User: $CLICKHOUSE_USER" \
    -H "X-ClickHouse-Key: $CLICKHOUSE_PASSWORD" --data-binary "$1" \
    "$CLICKHOUSE_URL/?wait_end_of_query=1") || return 1
  code=${out##*$'\n'}
  out=${out%$'\n'*}
  [ "$code" = 200 ] || { echo "clickhouse HTTP $code: $out" >&2; return 1; }
  printf '%s\n' "$out"
}
now() { echo "$EPOCHREALTIME"; }
wait_for() { # wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds or time is up
  local end=$((SECONDS + $1)); shift
  until "$@"; do [ $SECONDS -lt "$end" ] || return 1; sleep 0.1; done
}

# ---------------------------------------------------------------- data
S=eltd_hbench
have=-1
[ "$(pg -c "SELECT to_regclass('$S.big') IS NOT NULL")" = t ] && have=$(pg -c "SELECT count(*) FROM $S.big")
if [ "$have" = "$ROWS" ]; then
  log "$S.big already holds $ROWS rows"
else
  log "generating $S.big: $ROWS rows"
  pg -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S;
    CREATE TABLE $S.big (id bigint PRIMARY KEY, name text NOT NULL, val bigint NOT NULL);
    INSERT INTO $S.big SELECT g, 'name-' || g || repeat('x', 20), g % 1000
    FROM generate_series(1, $ROWS) g;" >/dev/null
  pg -c "VACUUM ANALYZE $S.big" >/dev/null
fi
PG_STATE=$(pg -c "SELECT count(*) || ' ' || sum(id) FROM $S.big")
BYTES=$(pg -c "SELECT sum(octet_length(id::text) + octet_length(name) + octet_length(val::text) + 3) FROM $S.big")
RAW=raw_hbench
ch "DROP DATABASE IF EXISTS $RAW" >/dev/null

# ---------------------------------------------------------------- daemon
mkdir -p "$WORK/models"
CFG=$WORK/pipeline.yaml
cat >"$CFG" <<EOF
source:
  host: $PGHOST
  port: $PGPORT
  database: $POSTGRES_DB
  user: $POSTGRES_USER
  password: \${POSTGRES_PASSWORD}
  schema: $S
warehouse:
  url: $CLICKHOUSE_URL
  user: $CLICKHOUSE_USER
  password: \${CLICKHOUSE_PASSWORD}
  raw_database: $RAW
  analytics_database: analytics_hbench
tables: [big]
run:
  retries: 0
  task_timeout: 1h
models:
  path: $WORK/models
http:
  listen: 127.0.0.1:0
state_dir: $WORK/state
EOF
DLOG=$WORK/daemon.log
"$ELTD" serve -c "$CFG" >"$DLOG" 2>&1 &
DAEMON_PID=$!
wait_for 20 grep -q 'event=listening' "$DLOG" || die "eltd serve did not start: $(tail -5 "$DLOG")"
PORT=$(grep -o 'event=listening addr=[^ ]*' "$DLOG" | tail -1 | sed 's/.*://')
BASE=http://127.0.0.1:$PORT
# the control's traffic target: same config, its own state, never triggered
sed "s|state_dir: .*|state_dir: $WORK/state2|" "$CFG" >"$WORK/control.yaml"
DLOG2=$WORK/daemon2.log
"$ELTD" serve -c "$WORK/control.yaml" >"$DLOG2" 2>&1 &
DAEMON2_PID=$!
wait_for 20 grep -q 'event=listening' "$DLOG2" || die "control eltd serve did not start: $(tail -5 "$DLOG2")"
BASE2=http://127.0.0.1:$(grep -o 'event=listening addr=[^ ]*' "$DLOG2" | tail -1 | sed 's/.*://')
jget() { $PY -c 'import json,sys; j=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }
run_final() { case "$(jget "$(curl -sS "$BASE/api/runs/$1")" 'j["state"]')" in success | failed | cancelled) return 0 ;; esac; return 1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$DAEMON_PID/stat"; }

cat >"$WORK/paths.lua" <<'EOF'
-- alternate /status and /metrics, one request each in turn
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", (n % 2 == 0) and "/status" or "/metrics")
end
EOF

# one_load KIND ROUND: triggers a run, waits for it, checks the data; appends to RES
RES=$WORK/results.tsv   # kind round seconds requests non2xx sockerr cpu_s req/s
: >"$RES"
one_load() {
  local kind=$1 round=$2 out id secs reqs=0 rps=0 non2xx=0 sockerr=none c0 c1 wf=$WORK/wrk-$1-$2.txt
  if [ "$kind" != idle ]; then
    local target=$BASE
    [ "$kind" = control ] && target=$BASE2
    wrk -t2 -c200 -d600s --timeout 5s -s "$WORK/paths.lua" "$target" >"$wf" 2>&1 &
    WRK_PID=$!
    sleep 1
  fi
  c0=$(cpu_ticks)
  out=$(curl -sS -X POST "$BASE/webhook/manual") || die "trigger failed"
  id=$(jget "$out" 'j["run_id"]')
  wait_for 900 run_final "$id" || die "run $id did not finish"
  c1=$(cpu_ticks)
  if [ "$kind" != idle ]; then
    kill -INT "$WRK_PID"
    wait "$WRK_PID" || true
    WRK_PID=""
    reqs=$(awk '/requests in/ {print $1}' "$wf")
    rps=$(awk '/Requests\/sec/ {printf "%d", $2}' "$wf")
    non2xx=$(awk -F: '/Non-2xx/ {gsub(/ /, "", $2); print $2}' "$wf")
    sockerr=$(grep -o 'Socket errors:.*' "$wf" | sed 's/Socket errors: //' || true)
    [ -n "$reqs" ] || die "no wrk summary: $(cat "$wf")"
  fi
  out=$(curl -sS "$BASE/api/runs/$id")
  [ "$(jget "$out" 'j["state"]')" = success ] || die "$kind run $id: $(jget "$out" 'j.get("error")')"
  secs=$(jget "$out" '[t["duration_seconds"] for t in j["tasks"] if t["name"] == "load:big"][0]')
  local chs
  chs=$(ch "SELECT toString(count()) || ' ' || toString(sum(id)) FROM $RAW.big")
  [ "$chs" = "$PG_STATE" ] || die "$kind round $round: ClickHouse holds '$chs', PostgreSQL '$PG_STATE'"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$round" "$secs" "$reqs" "${non2xx:-0}" \
    "${sockerr:-none}" "$(awk -v a="$c0" -v b="$c1" -v t="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/t}')" \
    "$rps" >>"$RES"
  log "round $round $kind: ${secs}s (wrk: $reqs requests, non-2xx ${non2xx:-0}, socket errors ${sockerr:-none})"
}

log "eltd $ELTD on $BASE; $ROWS rows, $BYTES bytes of COPY text; $ROUNDS rounds"
for r in $(seq 1 "$ROUNDS"); do
  one_load idle "$r"
  one_load busy "$r"
  one_load control "$r"
done

# ---------------------------------------------------------------- report
report() {
  $PY - "$RES" "$ROWS" "$BYTES" "$(nproc)" <<'EOF'
import sys, statistics
res, rows, nbytes, ncpu = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
runs = [l.rstrip("\n").split("\t") for l in open(res) if l.strip()]
def col(kind, i, f=float): return [f(r[i]) for r in runs if r[0] == kind]
def one(kind, r): return next(x for x in runs if x[0] == kind and int(x[1]) == r)
idle, busy, ctl = col("idle", 2), col("busy", 2), col("control", 2)
mi, mb, mc = statistics.median(idle), statistics.median(busy), statistics.median(ctl)
print(f"{rows:,} rows ({nbytes / 1e6:.1f} MB of COPY text), {len(idle)} rounds, {ncpu} cores shared by "
      "eltd, PostgreSQL, ClickHouse and wrk.\n")
print("| round | idle s | busy s | busy/idle | control s | control/idle | busy rows/s | wrk req/s busy | non-2xx | socket errors | eltd CPU s idle / busy |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
for r in sorted({int(x[1]) for x in runs}):
    i, b, c = one("idle", r), one("busy", r), one("control", r)
    ti, tb, tc = float(i[2]), float(b[2]), float(c[2])
    print(f"| {r} | {ti:.2f} | {tb:.2f} | {tb / ti:.2f} | {tc:.2f} | {tc / ti:.2f} | {rows / tb / 1e6:.2f} M "
          f"| {int(b[7]):,} | {int(b[4]) + int(c[4])} | {b[5]}, {c[5]} | {i[6]} / {b[6]} |")
print(f"\n- median idle **{mi:.2f} s** ({min(idle):.2f}–{max(idle):.2f}), under traffic "
      f"**{mb:.2f} s** ({min(busy):.2f}–{max(busy):.2f}), control **{mc:.2f} s** ({min(ctl):.2f}–{max(ctl):.2f})")
print(f"- busy/idle ratio of the medians: **{mb / mi:.2f}×** (target < 1.5×, reported, not asserted); "
      f"control/idle **{mc / mi:.2f}×** (the same traffic on another eltd: CPU contention alone)")
print(f"- wrk: {sum(col('busy', 3, int)) + sum(col('control', 3, int)):,} requests, non-2xx "
      f"{sum(col('busy', 4, int)) + sum(col('control', 4, int))}, socket errors: "
      f"{', '.join(sorted(set(col('busy', 5, str) + col('control', 5, str))))}")
print("- every run: ClickHouse count() and sum(id) = PostgreSQL's")
EOF
}
report | tee "${OUT:-/dev/null}"
