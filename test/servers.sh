#!/usr/bin/env bash
# Real PostgreSQL 15 + ClickHouse servers for eltd's tests and local runs.
#
#   test/servers.sh start DIR             create DIR, start both servers on free 127.0.0.1 ports,
#                                         load conf/postgres/[0-9]*.sql, write DIR/env.sh
#   test/servers.sh stop DIR              stop both, remove DIR (safe when already stopped)
#   test/servers.sh {start,stop,restart}-postgres DIR [mode]   mode: smart|fast|immediate
#   test/servers.sh {start,stop,restart}-clickhouse DIR [signal]  signal: TERM (default)|KILL
#   test/servers.sh psql DIR [psql args...]   psql as the seed's user on ecommerce_db
#   test/servers.sh ch DIR "SQL"|-            query ClickHouse over HTTP (- reads stdin);
#                                         prints the answer, non-zero exit on HTTP error
#   test/servers.sh env DIR               print the env file path
#
# Credentials are the seed's: PostgreSQL ecommerce/ecommerce123 on ecommerce_db,
# ClickHouse default/clickhouse123. PostgreSQL runs as the `postgres` user (it refuses root),
# ClickHouse 18.16 runs as the invoking user. Restarts reuse the same ports and data.
# Environment: ELTD_SERVERS_TIMEOUT (seconds to wait for a server, default 30),
# ELTD_PG_SQL_DIR (default: conf/postgres next to this script).
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
CH_SERVER=${CH_SERVER:-}
TIMEOUT=${ELTD_SERVERS_TIMEOUT:-30}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SQL_DIR=${ELTD_PG_SQL_DIR:-$HERE/../conf/postgres}
MARKER=.eltd-servers

PG_DB=ecommerce_db
PG_USER=ecommerce
PG_PASSWORD=ecommerce123
CH_USER=default
CH_PASSWORD=clickhouse123

die() { echo "servers.sh: $*" >&2; exit 1; }
log() { echo "servers.sh: $*" >&2; }

find_ch_server() {
  if [ -n "$CH_SERVER" ]; then echo "$CH_SERVER"; return; fi
  local c
  for c in /usr/bin/clickhouse-server /usr/sbin/clickhouse-server; do
    [ -x "$c" ] && { echo "$c"; return; }
  done
  if command -v clickhouse-server >/dev/null 2>&1; then command -v clickhouse-server; return; fi
  if command -v clickhouse >/dev/null 2>&1; then echo "$(command -v clickhouse) server"; return; fi
  die "clickhouse-server not found (deps/install.sh)"
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"   # not root: run as ourselves (we own the data dir)
  fi
}

# Three distinct free TCP ports on 127.0.0.1 (all held open while choosing).
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

port_in_use() {
  python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
# Servers bind with SO_REUSEADDR: a port left in TIME_WAIT by a killed server is free to them.
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)
EOF
}

abs_dir() { # absolute path of $1 (need not exist yet)
  case "$1" in
    /*) echo "$1" ;;
    *) echo "$PWD/$1" ;;
  esac
}

load_state() {
  DIR=$(abs_dir "$1")
  [ -f "$DIR/$MARKER" ] || die "$DIR is not a servers.sh directory (no $MARKER)"
  # shellcheck disable=SC1091
  . "$DIR/ports"
  PGDATA="$DIR/pg/data"
  CH_DIR="$DIR/ch"
}

# A pid that exists and is not a zombie (PID 1 in some containers reaps late).
alive() {
  local st
  kill -0 "$1" 2>/dev/null || return 1
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# ---------------------------------------------------------------- PostgreSQL

pg_pid() {
  local f="$PGDATA/postmaster.pid" pid
  [ -f "$f" ] || return 1
  pid=$(head -n1 "$f" 2>/dev/null) || return 1
  [ -n "$pid" ] && alive "$pid" && { echo "$pid"; return 0; }
  return 1
}

pg_init() {
  mkdir -p "$DIR/pg"
  chown postgres: "$DIR/pg" 2>/dev/null || true
  chmod 700 "$DIR/pg"
  # Superuser password: random, readable only by the owner of DIR.
  python3 -c 'import secrets; print(secrets.token_hex(16))' >"$DIR/pg/superpw"
  chmod 600 "$DIR/pg/superpw"
  local pwfile="$DIR/pg/superpw.tmp"
  cp "$DIR/pg/superpw" "$pwfile"
  chown postgres: "$pwfile" 2>/dev/null || true
  as_postgres "$PGBIN/initdb" -D "$PGDATA" -U postgres --pwfile="$pwfile" \
    --auth-local=peer --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
    >"$DIR/pg/initdb.log" 2>&1 || { cat "$DIR/pg/initdb.log" >&2; die "initdb failed"; }
  rm -f "$pwfile"
  cat >>"$PGDATA/postgresql.conf" <<EOF

# --- eltd test/servers.sh ---
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = ''
password_encryption = 'scram-sha-256'
max_connections = 100
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_min_messages = warning
timezone = 'UTC'
EOF
}

pg_start() {
  if pg_pid >/dev/null; then log "postgres already running"; return 0; fi
  port_in_use "$PG_PORT" && die "port $PG_PORT (postgres) is taken by another process"
  # -w waits on postmaster.pid status, not a socket; -t is the deadline.
  as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" -l "$DIR/pg/postgres.log" -w -t "$TIMEOUT" start \
    >/dev/null || { tail -n 30 "$DIR/pg/postgres.log" >&2 || true; die "postgres did not start"; }
  local deadline=$((SECONDS + TIMEOUT))
  until "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2; do
    [ $SECONDS -lt $deadline ] || die "postgres not ready on port $PG_PORT after ${TIMEOUT}s"
    sleep 0.1
  done
}

pg_stop() {
  local mode=${1:-fast}
  [ -d "$PGDATA" ] || return 0
  pg_pid >/dev/null || return 0
  as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" -m "$mode" -w -t "$TIMEOUT" stop >/dev/null 2>&1 || true
  local pid
  if pid=$(pg_pid); then
    log "postgres still running after pg_ctl stop; SIGKILL $pid"
    kill -KILL "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
  fi
}

pg_super() { # psql as the superuser over TCP
  PGPASSWORD=$(cat "$DIR/pg/superpw") "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"
}

pg_user() { # psql as the seed's user on the seed's database
  PGPASSWORD=$PG_PASSWORD "$PGBIN/psql" -X -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB" "$@"
}

pg_setup() {
  pg_super -d postgres <<EOF
CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD';
CREATE DATABASE $PG_DB OWNER $PG_USER;
EOF
  local f n=0
  shopt -s nullglob
  for f in "$SQL_DIR"/[0-9]*.sql; do
    pg_user -q -f "$f" >/dev/null || die "loading $f failed"
    n=$((n + 1))
  done
  shopt -u nullglob
  [ $n -gt 0 ] || log "warning: no $SQL_DIR/[0-9]*.sql files loaded"
}

# ---------------------------------------------------------------- ClickHouse

ch_pid() {
  local pid
  [ -f "$CH_DIR/server.pid" ] || return 1
  pid=$(cat "$CH_DIR/server.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && alive "$pid" || return 1
  # guard against pid reuse: it must be our server, started with our config
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$CH_DIR/config.xml" || return 1
  echo "$pid"
}

ch_init() {
  mkdir -p "$CH_DIR/data" "$CH_DIR/tmp" "$CH_DIR/user_files" "$CH_DIR/format_schemas"
  cat >"$CH_DIR/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>$CH_DIR/server.log</log>
        <errorlog>$CH_DIR/server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$CH_HTTP_PORT</http_port>
    <tcp_port>$CH_TCP_PORT</tcp_port>
    <path>$CH_DIR/data/</path>
    <tmp_path>$CH_DIR/tmp/</tmp_path>
    <user_files_path>$CH_DIR/user_files/</user_files_path>
    <format_schema_path>$CH_DIR/format_schemas/</format_schema_path>
    <users_config>$CH_DIR/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <max_concurrent_queries>100</max_concurrent_queries>
    <timezone>UTC</timezone>
</yandex>
EOF
  cat >"$CH_DIR/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
    <users>
        <$CH_USER>
            <password>$CH_PASSWORD</password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </$CH_USER>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
    </interval></default></quotas>
</yandex>
EOF
  chmod 600 "$CH_DIR/users.xml"
}

ch_start() {
  if ch_pid >/dev/null; then log "clickhouse already running"; return 0; fi
  port_in_use "$CH_HTTP_PORT" && die "port $CH_HTTP_PORT (clickhouse http) is taken"
  port_in_use "$CH_TCP_PORT" && die "port $CH_TCP_PORT (clickhouse tcp) is taken"
  local srv pid
  srv=$(find_ch_server)
  # shellcheck disable=SC2086
  (cd "$CH_DIR" && exec setsid $srv --config-file="$CH_DIR/config.xml" \
     </dev/null >>"$CH_DIR/stdout.log" 2>&1) &
  pid=$!
  echo "$pid" >"$CH_DIR/server.pid"
  local deadline=$((SECONDS + TIMEOUT))
  until curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$CH_HTTP_PORT/ping"; do
    if ! alive "$pid"; then
      tail -n 30 "$CH_DIR/server.err.log" "$CH_DIR/stdout.log" >&2 2>/dev/null || true
      die "clickhouse exited during start"
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -n 30 "$CH_DIR/server.err.log" >&2 2>/dev/null || true
      kill -KILL "$pid" 2>/dev/null || true
      die "clickhouse not answering /ping on $CH_HTTP_PORT after ${TIMEOUT}s"
    fi
    sleep 0.1
  done
  # /ping answers before auth is checked: prove the credentials work too.
  ch_query "SELECT 1" >/dev/null || die "clickhouse answers but rejects the credentials"
}

ch_stop() {
  local sig=${1:-TERM} pid
  pid=$(ch_pid) || { rm -f "$CH_DIR/server.pid"; return 0; }
  kill -"$sig" "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + TIMEOUT))
  while alive "$pid"; do
    if [ $SECONDS -ge $deadline ]; then
      log "clickhouse $pid ignored SIG$sig for ${TIMEOUT}s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10))
      while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
      break
    fi
    sleep 0.05
  done
  rm -f "$CH_DIR/server.pid"
}

# ClickHouse 18.16 takes credentials as X-ClickHouse-User/X-ClickHouse-Key headers, HTTP Basic
# auth, or user=/password= URL parameters (all three checked on 18.16.1; no credentials -> 401
# "Password required"). Headers keep the password out of URLs and logs.
ch_query() {
  local sql=$1 out code
  out=$(mktemp)
  code=$(curl -sS -o "$out" -w '%{http_code}' --max-time 300 \
    -H "X-ClickHouse-User: $CH_USER" -H "X-ClickHouse-Key: $CH_PASSWORD" \
    --data-binary "$sql" "http://127.0.0.1:$CH_HTTP_PORT/?wait_end_of_query=1") || {
    rm -f "$out"; return 1; }
  if [ "$code" = 200 ]; then
    cat "$out"; rm -f "$out"; return 0
  fi
  { echo "servers.sh: clickhouse HTTP $code:"; cat "$out"; } >&2
  rm -f "$out"
  return 1
}

# ---------------------------------------------------------------- env file

write_env() {
  local pgp chp
  pgp=$(pg_pid || true)
  chp=$(ch_pid || true)
  cat >"$DIR/env.sh.tmp" <<EOF
# written by test/servers.sh; source it
export ELTD_TEST_DIR='$DIR'
export PGHOST=127.0.0.1
export PGPORT=$PG_PORT
export PGDATABASE=$PG_DB
export PGUSER=$PG_USER
export PGPASSWORD=$PG_PASSWORD
export POSTGRES_HOST=127.0.0.1
export POSTGRES_PORT=$PG_PORT
export POSTGRES_DB=$PG_DB
export POSTGRES_USER=$PG_USER
export POSTGRES_PASSWORD=$PG_PASSWORD
export CLICKHOUSE_URL=http://127.0.0.1:$CH_HTTP_PORT
export CLICKHOUSE_HOST=127.0.0.1
export CLICKHOUSE_HTTP_PORT=$CH_HTTP_PORT
export CLICKHOUSE_TCP_PORT=$CH_TCP_PORT
export CLICKHOUSE_USER=$CH_USER
export CLICKHOUSE_PASSWORD=$CH_PASSWORD
export PG_PID=$pgp
export CH_PID=$chp
export PGDATA_DIR='$PGDATA'
EOF
  mv "$DIR/env.sh.tmp" "$DIR/env.sh"
}

# ---------------------------------------------------------------- commands

cmd_start() {
  DIR=$(abs_dir "$1")
  if [ -e "$DIR" ]; then
    if [ -f "$DIR/$MARKER" ]; then
      log "$DIR holds a previous run; stopping and removing it"
      cmd_stop "$DIR"
    elif [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
      die "$DIR exists and is not empty"
    fi
  fi
  mkdir -p "$DIR"
  touch "$DIR/$MARKER"
  # postgres must traverse DIR (and its parents) to reach its data dir.
  chmod 755 "$DIR"
  local p
  p=$(dirname "$DIR")
  if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$DIR"; then
    die "user postgres cannot reach $DIR (a parent, e.g. $p, is not searchable); use a dir under /tmp"
  fi
  read -r PG_PORT CH_HTTP_PORT CH_TCP_PORT < <(free_ports 3)
  cat >"$DIR/ports" <<EOF
PG_PORT=$PG_PORT
CH_HTTP_PORT=$CH_HTTP_PORT
CH_TCP_PORT=$CH_TCP_PORT
EOF
  PGDATA="$DIR/pg/data"
  CH_DIR="$DIR/ch"
  pg_init
  ch_init
  pg_start
  ch_start
  pg_setup
  write_env
  echo "$DIR/env.sh"
}

cmd_stop() {
  local d
  d=$(abs_dir "$1")
  [ -e "$d" ] || return 0
  if [ ! -f "$d/$MARKER" ]; then
    die "refusing to remove $d: not a servers.sh directory"
  fi
  load_state "$d"
  ch_stop TERM || true
  pg_stop fast || true
  rm -rf "$DIR"
}

usage() {
  sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 64
}

[ $# -ge 2 ] || usage
cmd=$1 dir=$2
shift 2
case "$cmd" in
  start) cmd_start "$dir" ;;
  stop) cmd_stop "$dir" ;;
  start-postgres) load_state "$dir"; pg_start; write_env ;;
  stop-postgres) load_state "$dir"; pg_stop "${1:-fast}"; write_env ;;
  restart-postgres) load_state "$dir"; pg_stop "${1:-fast}"; pg_start; write_env ;;
  start-clickhouse) load_state "$dir"; ch_start; write_env ;;
  stop-clickhouse) load_state "$dir"; ch_stop "${1:-TERM}"; write_env ;;
  restart-clickhouse) load_state "$dir"; ch_stop "${1:-TERM}"; ch_start; write_env ;;
  psql) load_state "$dir"; pg_user "$@" ;;
  ch)
    load_state "$dir"
    [ $# -ge 1 ] || die "usage: ch DIR \"SQL\" (or - for stdin)"
    if [ "$1" = - ]; then ch_query "$(cat)"; else ch_query "$1"; fi
    ;;
  env) load_state "$dir"; echo "$DIR/env.sh" ;;
  *) usage ;;
esac
