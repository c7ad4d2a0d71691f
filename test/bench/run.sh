#!/usr/bin/env bash
# eltd benchmark: eltd against the shell pipe and the seed's Python approach, same data, one run.
#
#   test/bench/run.sh [--scale small|default|large] [--rounds N] [--keep-servers]
#                     [--eltd PATH] [--out FILE] [--no-python]
#
#   --scale     small = 10k customers, 1k products, 100k orders, 0.3M order_items
#               default = 100k / 1k / 1M / 3M        large = 1M / 1k / 10M / 30M
#               (large needs ~30 GB disk and several minutes; Python is skipped there:
#               fetchall() of 30M rows needs ~17 GB)
#   --rounds    rounds of the interleaved measurements (default 3); median and min-max
#   --keep-servers   leave the servers running (their env file is printed); rerunning with
#               ELTD_TEST_ENV=that/env.sh skips the data generation when it already matches
#   --eltd      the binary (default: build-bench/eltd, configured Release and built if missing)
#   --out       also write the Markdown report to FILE
#   --queue-bytes SIZE   eltd's run.queue_bytes (default: eltd's own default, 1MiB)
#   --split "N ..."  also load order_items alone with `split: N` for each N (e.g. "1 2 4"),
#               interleaved in every round as eltd-sN: N page-range COPY streams and inserts
#
# Servers: test/servers.sh starts PostgreSQL 15 + ClickHouse in a temporary directory, or
# ELTD_TEST_ENV=DIR/env.sh points at running ones (their public.{customers,products,orders,
# order_items} are REPLACED by conf/postgres/generate.sql's deterministic rows).
#
# Measured, interleaved in each round, each with wall seconds, rows/s, MB/s (COPY text bytes),
# the client's peak RSS (/usr/bin/time; max over psql and curl for the pipe) and CPU seconds
# (user+sys of the client processes only):
#   a. source    psql -c "COPY order_items TO STDOUT" > /dev/null
#   b. pipe      psql -c "COPY (SELECT <eltd's exact text>) TO STDOUT" | curl -T - INSERT ...
#                FORMAT TabSeparated into bench.order_items_pipe (same structure, emptied first)
#   c. python    test/bench/py_load.py: psycopg2 fetchall() + clickhouse-driver INSERT VALUES
#                (native protocol) into bench.order_items_py
#   d. eltd-1    eltd run -s order_items  (ClickHouse database bench_raw; eltd's defaults,
#                so split: auto: 3 page-range streams for 3M rows)
#      eltd-4    eltd run -s customers,products,orders,order_items
# After every run ClickHouse's count() must equal PostgreSQL's count(*), or the bench fails.
# Then: flat memory (eltd peak RSS at 0.3M, 3M [, 30M] rows) and a back-pressure run with
# ClickHouse SIGSTOPped 200 ms of every 400 ms during the load (at most 300 bursts).
# Targets (reported, never asserted): eltd-1/pipe <= 1.0, python/eltd-1 >= 7, eltd-1 peak
# RSS < 16 MiB, eltd-1 CPU < 0.15 s per 3M rows.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SCALE=default ROUNDS=3 KEEP=0 ELTD="" OUT="" PYTHON=1 QUEUE="" SPLITS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --keep-servers) KEEP=1; shift ;;
    --eltd) ELTD=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --no-python) PYTHON=0; shift ;;
    --queue-bytes) QUEUE=$2; shift 2 ;;
    --split) SPLITS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$SCALE" in
  small) CUST=10000 PROD=1000 ORD=100000 ;;
  default) CUST=100000 PROD=1000 ORD=1000000 ;;
  large) CUST=1000000 PROD=1000 ORD=10000000; PYTHON=0 ;;
  *) echo "run.sh: --scale small|default|large" >&2; exit 2 ;;
esac
IPO=3
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --rounds N (N >= 1)" >&2; exit 2; }
for n in $SPLITS; do
  [[ "$n" =~ ^([1-9]|1[0-6])$ ]] || { echo "run.sh: --split \"N ...\" with N in 1..16" >&2; exit 2; }
done

die() { echo "run.sh: FAIL: $*" >&2; exit 1; }
log() { echo "run.sh: $*" >&2; }
PY=/usr/bin/python3   # Debian's, with python3-psycopg2 and python3-clickhouse-driver
TIME=/usr/bin/time
[ -x "$TIME" ] || die "/usr/bin/time missing (apt-get install time)"
"$PY" -c 'import psycopg2, clickhouse_driver' 2>/dev/null ||
  { [ $PYTHON = 0 ] || die "apt-get install python3-psycopg2 python3-clickhouse-driver"; }

# ---------------------------------------------------------------- eltd binary
# shellcheck source=test/bench/lib.sh
. "$HERE/lib.sh"
bench_eltd

# ---------------------------------------------------------------- servers
WORK=$(mktemp -d /tmp/eltd-bench.XXXXXX)
chmod 755 "$WORK"
STOPPED_CH=0
cleanup() {
  local rc=$?
  # never leave ClickHouse stopped by the back-pressure run
  if [ "$STOPPED_CH" = 1 ] && [ -n "${CH_PID:-}" ]; then kill -CONT "$CH_PID" 2>/dev/null || true; fi
  bench_servers_release
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_servers eltd-bench-servers
[ -n "${CH_PID:-}" ] && kill -0 "$CH_PID" 2>/dev/null || die "CH_PID not set or not running"
CH_TCP_PORT=${CLICKHOUSE_TCP_PORT:?}
export PGOPTIONS="-c DateStyle=ISO -c TimeZone=UTC -c extra_float_digits=3 -c IntervalStyle=iso_8601"

pg() { psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }
ch() { # ch "SQL": answer on stdout, non-zero on an HTTP error
  local out code
  out=$(curl -sS -w '\n%{http_code}' -H "X-ClickHouse-User: $CLICKHOUSE_USER" \
    -H "X-ClickHouse-Key: $CLICKHOUSE_PASSWORD" --data-binary "$1" \
    "$CLICKHOUSE_URL/?wait_end_of_query=1") || return 1
  code=${out##*$'\n'}
  out=${out%$'\n'*}
  [ "$code" = 200 ] || { echo "clickhouse HTTP $code: $out" >&2; return 1; }
  printf '%s\n' "$out"
}

# ---------------------------------------------------------------- data
TABLES="customers products orders order_items"
want="$CUST $PROD $ORD $((ORD * IPO))"
have() { pg -F' ' -c "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM products),
  (SELECT count(*) FROM orders), (SELECT count(*) FROM order_items)"; }
marker=$(pg -c "SELECT to_regclass('bench_src.generated') IS NOT NULL" 2>/dev/null || echo f)
if [ "$marker" = t ] && [ "$(pg -c 'SELECT params FROM bench_src.generated')" = "$want" ] &&
   [ "$(have)" = "$want" ]; then
  log "data already generated at scale $SCALE ($want)"
else
  log "generating scale $SCALE: customers=$CUST products=$PROD orders=$ORD items_per_order=$IPO"
  t0=$EPOCHREALTIME
  pg -v customers=$CUST -v products=$PROD -v orders=$ORD -v items_per_order=$IPO \
    -f "$ROOT/conf/postgres/generate.sql" >/dev/null
  pg -c "VACUUM ANALYZE customers, products, orders, order_items" >/dev/null
  pg -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS bench_src CASCADE; CREATE SCHEMA bench_src;
    CREATE TABLE bench_src.generated(params text); INSERT INTO bench_src.generated VALUES ('$want')"
  [ "$(have)" = "$want" ] || die "generate.sql made $(have), expected $want"
  log "generated in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}') s"
fi
N=$(pg -c "SELECT count(*) FROM order_items")

# ---------------------------------------------------------------- eltd config
mkcfg() { # mkcfg FILE "table entries (YAML lines)"
  cat >"$1" <<EOF
source:
  host: \${PGHOST}
  port: \${PGPORT}
  database: \${POSTGRES_DB}
  user: \${POSTGRES_USER}
  password: \${POSTGRES_PASSWORD}
warehouse:
  url: \${CLICKHOUSE_URL}
  user: \${CLICKHOUSE_USER}
  password: \${CLICKHOUSE_PASSWORD}
  raw_database: bench_raw
  analytics_database: bench_analytics
tables:
$2
run:${QUEUE:+
  queue_bytes: $QUEUE}
  retries: 0
  task_timeout: 1h
  load_parallelism: 4
models:
  path: $ROOT/models
state_dir: $WORK/state
EOF
}
CFG=$WORK/pipeline.yaml
mkcfg "$CFG" "  - customers
  - products
  - order_items
  - name: orders
    mode: full"
# The unsplit COPY statement for the pipe and Python comes from a one-stream warm-up.
mkcfg "$WORK/warm.yaml" "  - name: order_items
    split: 1"
for n in $SPLITS; do
  mkcfg "$WORK/split-$n.yaml" "  - name: order_items
    split: $n"
done

ch "CREATE DATABASE IF NOT EXISTS bench" >/dev/null
ch "CREATE DATABASE IF NOT EXISTS bench_raw" >/dev/null

# eltd once (debug log) for warm caches, the table's ClickHouse structure and its exact COPY.
log "warm-up eltd run"
ELTD_LOG_LEVEL=debug "$ELTD" run -c "$WORK/warm.yaml" -s order_items >"$WORK/warm.log" 2>&1 ||
  { tail -20 "$WORK/warm.log" >&2; die "eltd warm-up run failed"; }
COPY_SQL=$(sed -n 's/.* table=order_items copy="\(.*\)"$/\1/p' "$WORK/warm.log" | head -1 | sed 's/\\"/"/g')
case "$COPY_SQL" in "COPY (SELECT "*") TO STDOUT") ;; *) die "no COPY statement in eltd's debug log" ;; esac
SELECT_SQL=${COPY_SQL#COPY (}
SELECT_SQL=${SELECT_SQL%) TO STDOUT}
BYTES=$(psql -XAtq -c "$COPY_SQL" | wc -c)
for t in order_items_pipe order_items_py; do
  ch "DROP TABLE IF EXISTS bench.$t" >/dev/null
  ch "CREATE TABLE bench.$t AS bench_raw.order_items" >/dev/null
done
log "order_items: $N rows, $BYTES bytes of COPY text; ClickHouse: $(ch 'SHOW CREATE TABLE bench_raw.order_items' | sed 's/\\n/ /g')"

# ---------------------------------------------------------------- measuring
RES=$WORK/results.tsv   # method round wall cpu rss_kb rows bytes
: >"$RES"
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b-a}'; }
# timefile -> "cpu rss_kb" (time -f "%U %S %M")
tf_read() { awk '{printf "%.2f %d\n", $1+$2, $3}' "$1"; }
TF="%U %S %M"

check_ch() { # check_ch CH_TABLE PG_TABLE
  local c p
  c=$(ch "SELECT count() FROM $1") || die "cannot count $1"
  p=$(pg -c "SELECT count(*) FROM $2")
  [ "$c" = "$p" ] || die "$1 holds $c rows, PostgreSQL's $2 has $p"
}

run_source() {
  local t0 t1
  t0=$(now)
  $TIME -f "$TF" -o "$WORK/t1" psql -XAtq -c "COPY order_items TO STDOUT" >/dev/null || die "source: psql failed"
  t1=$(now)
  echo "source $1 $(elapsed "$t0" "$t1") $(tf_read "$WORK/t1") $N $BYTES" >>"$RES"
}

run_pipe() {
  ch "TRUNCATE TABLE bench.order_items_pipe" >/dev/null
  local t0 t1 rc
  t0=$(now)
  set +e
  $TIME -f "$TF" -o "$WORK/t1" psql -XAtq -c "$COPY_SQL" |
    $TIME -f "$TF" -o "$WORK/t2" curl -sS --fail -T - -H 'Expect:' \
      -H "X-ClickHouse-User: $CLICKHOUSE_USER" -H "X-ClickHouse-Key: $CLICKHOUSE_PASSWORD" \
      "$CLICKHOUSE_URL/?query=INSERT%20INTO%20bench.order_items_pipe%20FORMAT%20TabSeparated"
  rc="${PIPESTATUS[*]}"
  set -e
  t1=$(now)
  [ "$rc" = "0 0" ] || die "pipe: exit codes $rc"
  check_ch bench.order_items_pipe order_items
  local c1 c2 r1 r2
  read -r c1 r1 < <(tf_read "$WORK/t1")
  read -r c2 r2 < <(tf_read "$WORK/t2")
  echo "pipe $1 $(elapsed "$t0" "$t1") $(awk -v a="$c1" -v b="$c2" 'BEGIN{printf "%.2f", a+b}') $((r1 > r2 ? r1 : r2)) $N $BYTES" >>"$RES"
}

run_python() {
  ch "TRUNCATE TABLE bench.order_items_py" >/dev/null
  local t0 t1 n
  t0=$(now)
  n=$($TIME -f "$TF" -o "$WORK/t1" "$PY" "$HERE/py_load.py" "$SELECT_SQL" bench.order_items_py) ||
    die "python loader failed"
  t1=$(now)
  [ "$n" = "$N" ] || die "python sent $n rows, expected $N"
  check_ch bench.order_items_py order_items
  echo "python $1 $(elapsed "$t0" "$t1") $(tf_read "$WORK/t1") $N $BYTES" >>"$RES"
}

# run_eltd METHOD ROUND CONFIG SELECT PG_SCHEMA -> also leaves the log in $WORK/eltd.log
run_eltd() {
  local t0 t1 rows bytes t
  t0=$(now)
  $TIME -f "$TF" -o "$WORK/t1" "$ELTD" run -c "$3" -s "$4" >"$WORK/eltd.log" 2>&1 ||
    { tail -20 "$WORK/eltd.log" >&2; die "$1: eltd run failed"; }
  t1=$(now)
  rows=0 bytes=0
  for t in ${4//,/ }; do
    check_ch "bench_raw.$t" "$5.$t"
    r="" b=""
    read -r r b < <(sed -n "s/.*task=load:$t attempt=[0-9]* event=loaded rows=\([0-9]*\) bytes=\([0-9]*\).*/\1 \2/p" "$WORK/eltd.log" | tail -1) || true
    [ -n "$r" ] || die "$1: no 'loaded' log line for $t"
    rows=$((rows + ${r:-0})) bytes=$((bytes + ${b:-0}))
  done
  echo "$1 $2 $(elapsed "$t0" "$t1") $(tf_read "$WORK/t1") $rows $bytes" >>"$RES"
}

for r in $(seq 1 "$ROUNDS"); do
  log "round $r/$ROUNDS"
  run_source "$r"
  run_pipe "$r"
  run_eltd eltd-1 "$r" "$CFG" order_items public
  [ $PYTHON = 1 ] && run_python "$r"
  run_eltd eltd-4 "$r" "$CFG" customers,products,orders,order_items public
  for n in $SPLITS; do
    run_eltd "eltd-s$n" "$r" "$WORK/split-$n.yaml" order_items public
    grep -q "task=load:order_items attempt=1 event=loaded.* streams=$n\$" "$WORK/eltd.log" ||
      die "eltd-s$n: the load did not run $n streams"
  done
done

# ---------------------------------------------------------------- flat memory
# order_items-shaped tables of 0.3M, 3M (and 30M at --scale large) rows in schema bench_src:
# a prefix of order_items, or copies of it with shifted ids.
SIZES="300000 3000000"
[ "$SCALE" = large ] && SIZES="$SIZES 30000000"
FLAT=""
for s in $SIZES; do
  name=items_$s
  if [ "$(pg -c "SELECT to_regclass('bench_src.$name') IS NOT NULL")" != t ] ||
     [ "$(pg -c "SELECT count(*) FROM bench_src.$name")" != "$s" ]; then
    log "making bench_src.$name"
    pg -c "DROP TABLE IF EXISTS bench_src.$name" >/dev/null
    if [ "$s" -le "$N" ]; then
      pg -c "CREATE TABLE bench_src.$name AS SELECT * FROM order_items
             WHERE order_item_id <= $s ORDER BY order_item_id" >/dev/null
    else
      k=$(( (s + N - 1) / N ))
      pg -c "CREATE TABLE bench_src.$name AS SELECT o.order_item_id + g * $N AS order_item_id,
               o.order_id, o.product_id, o.quantity, o.unit_price, o.subtotal
             FROM generate_series(0, $((k - 1))) g, order_items o
             WHERE o.order_item_id + g * $N <= $s ORDER BY 1" >/dev/null
    fi
    pg -c "VACUUM ANALYZE bench_src.$name" >/dev/null
  fi
  mkcfg "$WORK/flat.yaml" "  - name: $name
    schema: bench_src"
  run_eltd "flat-$s" 1 "$WORK/flat.yaml" "$name" bench_src
done

# ---------------------------------------------------------------- back-pressure
# ClickHouse frozen 200 ms of every 400 ms while eltd loads the 3M-row table alone.
BP=items_3000000
log "back-pressure run on bench_src.$BP (ClickHouse SIGSTOP 200 ms / SIGCONT 200 ms)"
mkcfg "$WORK/bp.yaml" "  - name: $BP
    schema: bench_src"
BURSTS=0
t0=$(now)
$TIME -f "$TF" -o "$WORK/t1" "$ELTD" run -c "$WORK/bp.yaml" -s $BP >"$WORK/eltd.log" 2>&1 &
EPID=$!
# VmRSS samples every 50 ms, to show RSS stays flat over time and not only at its peak
( while kill -0 $EPID 2>/dev/null; do
    pid=$(pgrep -P $EPID -x eltd 2>/dev/null || true)   # eltd runs under /usr/bin/time
    [ -n "$pid" ] && { awk '/^VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null || true; }
    sleep 0.05
  done >"$WORK/rss.samples" ) &
SAMPLER=$!
sleep 0.1
while kill -0 $EPID 2>/dev/null && [ $BURSTS -lt 300 ]; do
  STOPPED_CH=1
  kill -STOP "$CH_PID"
  sleep 0.2
  kill -CONT "$CH_PID"
  STOPPED_CH=0
  BURSTS=$((BURSTS + 1))
  sleep 0.2
done
set +e
wait $EPID
erc=$?
set -e
wait $SAMPLER 2>/dev/null || true
t1=$(now)
[ $erc = 0 ] || { tail -20 "$WORK/eltd.log" >&2; die "back-pressure: eltd run failed"; }
check_ch bench_raw.$BP bench_src.$BP
BPN=$(pg -c "SELECT count(*) FROM bench_src.$BP")
r="" b=""
read -r r b < <(sed -n "s/.*task=load:$BP attempt=[0-9]* event=loaded rows=\([0-9]*\) bytes=\([0-9]*\).*/\1 \2/p" "$WORK/eltd.log" | tail -1) || true
[ "$r" = "$BPN" ] || die "back-pressure: eltd loaded '$r' rows, PostgreSQL has $BPN"
echo "backpressure 1 $(elapsed "$t0" "$t1") $(tf_read "$WORK/t1") $r $b" >>"$RES"
RSS_SAMPLES=$(sort -n "$WORK/rss.samples" | awk '{a[NR]=$1} END{if(NR) printf "%d samples, VmRSS min %.1f / median %.1f / max %.1f MiB", NR, a[1]/1024, a[int((NR+1)/2)]/1024, a[NR]/1024}')

# ---------------------------------------------------------------- report
REPORT=$WORK/report.md
"$PY" - "$RES" "$SCALE" "$ROUNDS" "$N" "$BURSTS" "$RSS_SAMPLES" "${QUEUE:-default (1MiB)}" >"$REPORT" <<'EOF'
import sys, statistics
res, scale, rounds, n, bursts, samples, queue = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7]
runs = {}
for line in open(res):
    m, r, wall, cpu, rss, rows, byts = line.split()
    runs.setdefault(m, []).append((float(wall), float(cpu), int(rss), int(rows), int(byts)))
def med(xs): return statistics.median(xs)
def rng(xs, f):
    return f % med(xs) if len(xs) == 1 else (f % med(xs)) + " (" + (f % min(xs)) + "–" + (f % max(xs)) + ")"
labels = {"source": "a. source: psql COPY > /dev/null", "pipe": "b. pipe: psql COPY \\| curl -T -",
          "python": "c. python: psycopg2 fetchall + clickhouse-driver", "eltd-1": "d. eltd, order_items alone",
          "eltd-4": "d. eltd, all four tables"}
print(f"Scale **{scale}**: order_items = {n:,} rows; {rounds} interleaved rounds; median (min–max); "
      f"eltd queue_bytes: {queue}.\n")
print("| run | rows | wall s | rows/s | MB/s | client peak RSS MiB | client CPU s |")
print("|---|---:|---:|---:|---:|---:|---:|")
splits = sorted((int(m[6:]) for m in runs if m.startswith("eltd-s")))
for k in splits: labels[f"eltd-s{k}"] = f"e. eltd, order_items, split: {k}"
for m in ["source", "pipe", "python", "eltd-1", "eltd-4"] + [f"eltd-s{k}" for k in splits]:
    if m not in runs: continue
    v = runs[m]
    walls = [x[0] for x in v]; rows = v[0][3]; byts = v[0][4]
    print(f"| {labels[m]} | {rows:,} | {rng(walls, '%.2f')} | {rows / med(walls) / 1e6:.2f} M | "
          f"{byts / med(walls) / 1e6:.1f} | {rng([x[2] / 1024 for x in v], '%.1f')} | {rng([x[1] for x in v], '%.2f')} |")
def mw(m): return med([x[0] for x in runs[m]])
print()
if "pipe" in runs: print(f"- eltd/pipe wall ratio: **{mw('eltd-1') / mw('pipe'):.2f}** (target ≤ 1.0)")
if "python" in runs: print(f"- python/eltd wall ratio: **{mw('python') / mw('eltd-1'):.1f}×** (target ≥ 7)")
for k in splits:
    m = f"eltd-s{k}"
    line = f"- split: {k}: eltd/pipe **{mw(m) / mw('pipe'):.2f}**" if "pipe" in runs else f"- split: {k}:"
    if "python" in runs: line += f", python/eltd **{mw('python') / mw(m):.1f}×**"
    if "source" in runs: line += f", eltd/source **{mw(m) / mw('source'):.2f}**"
    print(line + f"; peak RSS {med([x[2] for x in runs[m]]) / 1024:.1f} MiB, CPU {med([x[1] for x in runs[m]]):.2f} s")
e = runs["eltd-1"]
print(f"- eltd peak RSS: **{med([x[2] for x in e]) / 1024:.1f} MiB** (target < 16); "
      f"CPU per 3M rows: **{med([x[1] for x in e]) * 3e6 / n:.2f} s** (target < 0.15)")
print("\nFlat memory (eltd alone, one run each, order_items-shaped tables):\n")
flats = sorted((int(m[5:]), v[0]) for m, v in runs.items() if m.startswith("flat-"))
print("| rows | " + " | ".join(f"{s:,}" for s, _ in flats) + " |")
print("|---|" + "---:|" * len(flats))
print("| peak RSS MiB | " + " | ".join(f"{v[2] / 1024:.1f}" for _, v in flats) + " |")
print("| wall s | " + " | ".join(f"{v[0]:.2f}" for _, v in flats) + " |")
print("| CPU s | " + " | ".join(f"{v[1]:.2f}" for _, v in flats) + " |")
b = runs["backpressure"][0]
print(f"\nBack-pressure: ClickHouse SIGSTOPped 200 ms of every 400 ms ({bursts} bursts) while eltd "
      f"loads a 3M-row order_items copy: {b[3]:,} rows exactly, wall {b[0]:.2f} s, peak RSS **{b[2] / 1024:.1f} MiB**, "
      f"CPU {b[1]:.2f} s; {samples}.")
EOF
cat "$REPORT"
[ -n "$OUT" ] && cp "$REPORT" "$OUT"
exit 0
