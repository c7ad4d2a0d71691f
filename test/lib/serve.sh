# Helpers for the `eltd serve` integration tests (test/integration/serve_*.sh), sourced after
# common.sh: start the daemon on a free port read back from its `event=listening` line, call
# its API, and always stop it (and anything else registered) when the test exits.
# shellcheck shell=bash
DAEMON_PID=
DAEMON_LOG=
PORT=
CLEANUP_PIDS=()

DAEMON_N=0
# start_daemon CONFIG: starts eltd serve in the background (log in $DAEMON_LOG, a new file
# each time: $WORK/daemon.N.log) and waits for it to listen.
start_daemon() {
  DAEMON_N=$((DAEMON_N + 1))
  DAEMON_LOG=$WORK/daemon.$DAEMON_N.log
  "$ELTD" serve -c "$1" >>"$DAEMON_LOG" 2>&1 &
  DAEMON_PID=$!
  if ! wait_for 20 grep -q 'event=listening' "$DAEMON_LOG"; then
    fail "daemon did not start: $(tail -20 "$DAEMON_LOG")"
    return 1
  fi
  PORT=$(grep -o 'event=listening addr=[^ ]*' "$DAEMON_LOG" | tail -1 | sed 's/.*://')
  BASE="http://127.0.0.1:$PORT"
}

# stop_daemon [SIGNAL]: signals the daemon and waits for it; sets DAEMON_RC.
stop_daemon() {
  DAEMON_RC=
  [ -n "$DAEMON_PID" ] || return 0
  kill -"${1:-TERM}" "$DAEMON_PID" 2>/dev/null || true
  DAEMON_RC=0
  wait "$DAEMON_PID" || DAEMON_RC=$?
  DAEMON_PID=
}

# wait_daemon: waits for a daemon already asked to stop; sets DAEMON_RC.
wait_daemon() {
  DAEMON_RC=0
  wait "$DAEMON_PID" || DAEMON_RC=$?
  DAEMON_PID=
}

serve_cleanup() {
  local rc=$?
  stop_daemon KILL
  local p
  for p in "${CLEANUP_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  return $rc
}
trap 'serve_cleanup; finish' EXIT

# api METHOD PATH [curl args...]: prints "STATUS BODY".
api() {
  local m=$1 p=$2; shift 2
  curl -sS -o "$WORK/body" -w '%{http_code}' -X "$m" "$BASE$p" "$@" >"$WORK/code" || true
  printf '%s %s' "$(cat "$WORK/code")" "$(cat "$WORK/body")"
}
# jget JSON EXPR: evaluates a Python expression over the parsed JSON `j`.
jget() { $PY -c 'import json,sys; j=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }

# run_state ID: the state of run ID from /api/runs/ID.
run_state() {
  local out
  out=$(curl -sS "$BASE/api/runs/$1") || return 1
  jget "$out" 'j["state"]'
}
# wait_run_final SECONDS ID: waits until run ID is success, failed or cancelled.
run_is_final() { case "$(run_state "$1")" in success | failed | cancelled) return 0 ;; esac; return 1; }
wait_run_final() { wait_for "$1" run_is_final "$2"; }

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# hold_lock TABLE: a PostgreSQL session holds an ACCESS EXCLUSIVE lock on TABLE (so a load
# of it blocks) until release_lock; waits until the lock is granted.
hold_lock() {
  psql -X -q -c "BEGIN; LOCK TABLE $1 IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120);" \
    >/dev/null 2>&1 &
  LOCK_PID=$!
  CLEANUP_PIDS+=("$LOCK_PID")
  wait_for 10 lock_held "$1"
}
lock_held() {
  [ "$(pg "SELECT count(*) FROM pg_locks WHERE relation = '$1'::regclass
           AND mode = 'AccessExclusiveLock' AND granted")" = 1 ]
}
release_lock() {
  pg "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'BEGIN; LOCK TABLE%' AND pid <> pg_backend_pid()" >/dev/null
  wait "$LOCK_PID" 2>/dev/null || true
}
