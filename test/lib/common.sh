# Shared helpers for integration tests (test/integration/*.sh), sourced after `set -euo
# pipefail`. The servers come from test/run.sh through ELTD_TEST_ENV; each test works in
# its own ClickHouse databases and PostgreSQL schema so tests never see each other's data.
# shellcheck shell=bash
: "${ELTD_TEST_ENV:?run integration tests through test/run.sh (it starts the servers)}"
# shellcheck disable=SC1090
. "$ELTD_TEST_ENV"
ROOT=${ELTD_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
ELTD=${ELTD_BINARY:-$ROOT/build/eltd}
SERVERS=${ELTD_SERVERS:-$ROOT/test/servers.sh}
TEST_NAME=$(basename "${BASH_SOURCE[1]:-$0}" .sh)
WORK=$(mktemp -d "/tmp/eltd-$TEST_NAME.XXXXXX")
chmod 0755 "$WORK"
PASSED=0
FAILED=0

# Python with Debian's packages (a pyenv python on PATH may lack them).
PY=/usr/bin/python3

# ch SQL: one statement over HTTP; prints the answer; fails on an HTTP error.
ch() {
  curl -sS --fail-with-body -u "$CLICKHOUSE_USER:$CLICKHOUSE_PASSWORD" \
    "$CLICKHOUSE_URL/?wait_end_of_query=1" --data-binary "$1"
}
# pg SQL: psql as the seed's user, unaligned, tuples only, stops at the first error.
pg() { psql -X -A -t -q -v ON_ERROR_STOP=1 -c "$1"; }

pass() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
skip() { echo "ok - # SKIP $*"; }
# True in CI's sanitizer pass: memory figures there measure ASan's shadow, not eltd, and
# ptrace or LD_PRELOAD tricks collide with the sanitizer runtime.
sanitized() { [ -n "${ELTD_SANITIZER_LOGS:-}" ]; }
fail() { FAILED=$((FAILED + 1)); echo "not ok - $*"; }
# check_eq WHAT EXPECTED ACTUAL
check_eq() {
  if [ "$2" = "$3" ]; then pass "$1 ($3)"; else fail "$1: expected '$2', got '$3'"; fi
}
# check_contains WHAT NEEDLE HAYSTACK
# (A here-string, not a pipe: with pipefail, grep -q leaving early would fail the pipe.)
check_contains() {
  if grep -qF -- "$2" <<<"$3"; then pass "$1"; else
    fail "$1: '$2' not found in: $(printf '%s' "$3" | head -c 2000)"; fi
}

# make_config NAME [extra YAML appended]: a pipeline config using databases
# raw_NAME / analytics_NAME, PostgreSQL schema ${PG_SCHEMA:-public}, state in $WORK.
# The seed's models run only with the seed's tables: a test that sets TABLES_YAML gets no
# models unless it sets MODELS_PATH too. split: auto (the default) is off unless the test
# sets SPLIT_ROWS: whether a multi-million-row table splits would otherwise hang on when
# autovacuum last analysed it, and the fault tests aim at one COPY stream (load_split tests
# the split streams, faults included).
make_config() {
  local name=$1 extra=${2:-}
  local models=${MODELS_PATH:-}
  if [ -z "$models" ]; then
    if [ -n "${TABLES_YAML:-}" ]; then models="$WORK/no-models"; else models="$ROOT/models"; fi
  fi
  cat > "$WORK/$name.yaml" <<YAML
source:
  host: $PGHOST
  port: $PGPORT
  database: $POSTGRES_DB
  user: $POSTGRES_USER
  password: \${POSTGRES_PASSWORD}
  schema: ${PG_SCHEMA:-public}
warehouse:
  url: $CLICKHOUSE_URL
  user: $CLICKHOUSE_USER
  password: \${CLICKHOUSE_PASSWORD}
  raw_database: raw_$name
  analytics_database: analytics_$name
tables: ${TABLES_YAML:-[customers, products, orders, order_items]}
run:
  retries: ${RETRIES:-0}
  retry_delay: ${RETRY_DELAY:-1s}
  split_rows: ${SPLIT_ROWS:-1000000000000}
models:
  path: $models
http:
  listen: 127.0.0.1:0
state_dir: $WORK/state-$name
$extra
YAML
  echo "$WORK/$name.yaml"
}

# Copies the seed tables into a fresh PostgreSQL schema NAME (for tests that change data).
clone_schema() {
  local s=$1
  pg "DROP SCHEMA IF EXISTS $s CASCADE; CREATE SCHEMA $s;
      CREATE TABLE $s.customers (LIKE public.customers INCLUDING ALL);
      CREATE TABLE $s.products (LIKE public.products INCLUDING ALL);
      CREATE TABLE $s.orders (LIKE public.orders INCLUDING ALL);
      CREATE TABLE $s.order_items (LIKE public.order_items INCLUDING ALL);
      INSERT INTO $s.customers SELECT * FROM public.customers;
      INSERT INTO $s.products SELECT * FROM public.products;
      INSERT INTO $s.orders SELECT * FROM public.orders;
      INSERT INTO $s.order_items SELECT * FROM public.order_items;"
}

# shop_fixture SCHEMA NAME: a test on the model fixture test/unit/models/shop. Copies it to
# $PROJ (the test may edit its copy), clones the seed tables into PostgreSQL schema SCHEMA,
# and makes $cfg, a config NAME on that schema and project (databases raw_NAME and $A =
# analytics_NAME, both dropped first). drop_fixture drops them and the schema: put it in the
# test's EXIT trap before finish.
shop_fixture() {
  FIXTURE_SCHEMA=$1 FIXTURE_NAME=$2
  A=analytics_$2
  PROJ=$WORK/shop
  cp -r "$ROOT/test/unit/models/shop" "$PROJ"
  export PGOPTIONS="-c client_min_messages=warning" PG_SCHEMA=$1
  drop_fixture
  clone_schema "$1"
  cfg=$(MODELS_PATH=$PROJ make_config "$2")
}
drop_fixture() {
  ch "DROP DATABASE IF EXISTS raw_$FIXTURE_NAME" >/dev/null || true
  ch "DROP DATABASE IF EXISTS analytics_$FIXTURE_NAME" >/dev/null || true
  pg "DROP SCHEMA IF EXISTS $FIXTURE_SCHEMA CASCADE" >/dev/null || true
}

# wait_for SECONDS COMMAND...: polls until COMMAND succeeds, with a deadline.
wait_for() {
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# A test that stops, pauses or kills a server must not take the others down with it:
# whatever happened, leave both servers running for the next test.
revive_servers() {
  [ -n "${CH_PID:-}" ] && kill -CONT "$CH_PID" 2>/dev/null || true
  # shellcheck disable=SC1090
  . "$ELTD_TEST_ENV"
  [ -n "${CH_PID:-}" ] && kill -CONT "$CH_PID" 2>/dev/null || true
  if ! curl -sf -m 5 "$CLICKHOUSE_URL/ping" >/dev/null 2>&1; then
    echo "# $TEST_NAME left ClickHouse down: restarting it" >&2
    bash "$SERVERS" start-clickhouse "$ELTD_TEST_DIR" >/dev/null 2>&1 ||
      bash "$SERVERS" restart-clickhouse "$ELTD_TEST_DIR" >/dev/null 2>&1 || true
  fi
  if ! pg_isready -q -h "$PGHOST" -p "$PGPORT" -t 5 >/dev/null 2>&1; then
    echo "# $TEST_NAME left PostgreSQL down: restarting it" >&2
    bash "$SERVERS" start-postgres "$ELTD_TEST_DIR" >/dev/null 2>&1 ||
      bash "$SERVERS" restart-postgres "$ELTD_TEST_DIR" >/dev/null 2>&1 || true
  fi
}

finish() {
  local rc=$?
  revive_servers
  rm -rf "$WORK"
  echo "$TEST_NAME: $PASSED passed, $FAILED failed"
  if [ "$FAILED" -gt 0 ] || [ "$rc" -ne 0 ]; then exit 1; fi
  exit 0
}
trap finish EXIT
