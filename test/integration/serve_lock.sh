#!/usr/bin/env bash
# One eltd per state directory: a run drops the `__eltd_*` temporaries it finds as the
# leftovers of a killed process, so a second eltd on the same warehouse would drop the
# first one's side table in flight. While `eltd serve` lives, `eltd run` and a second
# `eltd serve` on its state directory are refused (exit 3, naming the holder) and the
# daemon's load in flight keeps its side table and ends exact; a run on another state
# directory is not refused (the control); the lock goes with its process, SIGKILL
# included, so nothing stale blocks the next start.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/serve.sh"

export PG_SCHEMA=serve_lock
mkdir -p "$WORK/no-models"
export MODELS_PATH=$WORK/no-models
cleanup_dbs() {
  local db
  for db in raw_slock raw_slock2 analytics_slock analytics_slock2; do
    ch "DROP DATABASE IF EXISTS $db" >/dev/null || true
  done
  pg "DROP SCHEMA IF EXISTS serve_lock CASCADE" >/dev/null || true
}
cleanup_dbs
clone_schema serve_lock
trap 'serve_cleanup; cleanup_dbs; finish' EXIT
# orders in one stream: a split first asks pg_relation_size, which waits for the lock.
TABLES_YAML="[{name: orders, split: 1}, customers]"
export TABLES_YAML
cfg=$(make_config slock)
other=$(make_config slock2)
LOCKFILE=$WORK/state-slock/eltd.lock
# The temporaries of orders (customers' load may end at any moment).
side_tables() {
  ch "SELECT name FROM system.tables WHERE database = 'raw_slock' AND name LIKE 'orders\\_\\_eltd\\_%' ORDER BY name" |
    paste -sd' '
}
n_orders=$(pg "SELECT count(*) FROM serve_lock.orders")
n_customers=$(pg "SELECT count(*) FROM serve_lock.customers")

start_daemon "$cfg"
check_contains "the lock file names the daemon" "pid=$DAEMON_PID command=serve since=" \
  "$(cat "$LOCKFILE")"

# ---- a daemon's load in flight: orders blocked in PostgreSQL, its side table made ----
hold_lock serve_lock.orders
r=$(curl -sS -X POST "$BASE/webhook/manual")
id=$(jget "$r" 'j["run_id"]')
wait_for 20 eval '[ -n "$(side_tables)" ]' || true
before=$(side_tables)
check_contains "control: the daemon's load has its side table in flight" "orders__eltd_new" "$before"

rc=0
out=$("$ELTD" run -c "$cfg" 2>&1) || rc=$?
check_eq "eltd run on the daemon's state directory: refused (exit 3)" 3 "$rc"
check_contains "the refusal names the holder" \
  "state directory $WORK/state-slock is in use by another eltd (pid=$DAEMON_PID command=serve" "$out"
check_contains "the refusal says what to do instead" "POST /webhook" "$out"
check_eq "the refused run dropped nothing: the side table is still there" "$before" "$(side_tables)"

rc=0
"$ELTD" serve -c "$cfg" >"$WORK/second.log" 2>&1 || rc=$?
check_eq "a second eltd serve on the same state directory: refused (exit 3)" 3 "$rc"
check_contains "the second daemon names the first" "pid=$DAEMON_PID command=serve" \
  "$(cat "$WORK/second.log")"
check_eq "the daemon still serves" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")"

# Control: another state directory (and warehouse database) is not refused, daemon or not.
rc=0
out=$("$ELTD" run -c "$other" -s customers 2>&1) || rc=$?
check_eq "control: eltd run on another state directory runs (exit 0)" 0 "$rc"
check_eq "control: it loaded customers exactly" "$n_customers" \
  "$(ch "SELECT count() FROM raw_slock2.customers")"

release_lock
wait_run_final 60 "$id" || true
check_eq "the daemon's run, untouched by the refused ones, succeeded" success "$(run_state "$id")"
check_eq "orders exact" "$n_orders" "$(ch "SELECT count() FROM raw_slock.orders")"
check_eq "customers exact" "$n_customers" "$(ch "SELECT count() FROM raw_slock.customers")"
check_eq "no temporaries left" "" "$(side_tables)"

# ---- the lock goes with its process ----
stop_daemon TERM
check_eq "daemon stopped cleanly" 0 "$DAEMON_RC"
check_eq "a clean stop empties the lock file" "" "$(cat "$LOCKFILE")"
rc=0
"$ELTD" run -c "$cfg" -s orders >"$WORK/after.log" 2>&1 || rc=$?
check_eq "eltd run after the daemon stopped (exit 0)" 0 "$rc"

start_daemon "$cfg"
killed=$DAEMON_PID
stop_daemon KILL
check_contains "control: a SIGKILLed daemon leaves its line in the lock file" "pid=$killed" \
  "$(cat "$LOCKFILE")"
rc=0
"$ELTD" run -c "$cfg" -s orders >"$WORK/after-kill.log" 2>&1 || rc=$?
check_eq "eltd run after SIGKILL: no stale lock (exit 0)" 0 "$rc"
check_eq "and it loaded orders exactly" "$n_orders" "$(ch "SELECT count() FROM raw_slock.orders")"
start_daemon "$cfg" && pass "a daemon starts after a SIGKILLed one"
stop_daemon TERM
