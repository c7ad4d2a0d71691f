#!/usr/bin/env bash
# The run journal under damage (issue 8, point 5): `eltd serve` keeps its history in
# state_dir/runs.jsonl. A torn last record (no newline, a half JSON line, a tail of NUL
# bytes as a crash on a delayed-allocation filesystem leaves) is skipped with a warning and
# cut off; the daemon starts, keeps the history and continues the ids. A corrupt record
# before the last one stops the daemon with FILE:LINE and leaves the file as it was (no
# silent reset of history). Ten SIGKILLs at random moments around triggers: every restart
# succeeds, the journal stays line-valid JSON, ids are unique and increasing, and no
# temporary state file is left behind.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/serve.sh"
trap 'rc=$?; set +e; (exit $rc); serve_cleanup; finish' EXIT

mkdir -p "$WORK/nomodels"
export MODELS_PATH=$WORK/nomodels TABLES_YAML='[customers]'
ch "DROP DATABASE IF EXISTS raw_fjournal" >/dev/null
CFG=$(RETRIES=0 make_config fjournal)
J=$WORK/state-fjournal/runs.jsonl

ids() { jget "$(curl -sS "$BASE/api/runs?limit=1000")" '" ".join(str(r["id"]) for r in reversed(j["runs"]))'; }
valid_lines() { # every line of the journal is a JSON object and the file ends in a newline
  $PY - "$J" <<'PY'
import json, sys
data = open(sys.argv[1], "rb").read()
assert data.endswith(b"\n"), "no final newline"
for i, l in enumerate(data.split(b"\n")[:-1], 1):
    assert isinstance(json.loads(l), dict), "line %d" % i
print("valid")
PY
}
run_one() { # triggers a run and waits for it; prints its id
  local r id
  r=$(api POST /webhook/manual)
  id=$(jget "${r#* }" 'j["run_id"]')
  wait_run_final 60 "$id" >/dev/null || true
  echo "$id"
}
# start_expect_fail WHAT: the daemon must exit non-zero, not listen, and say FILE:LINE
start_expect_fail() {
  local log=$WORK/refused.$RANDOM.log rc=0
  timeout 20 "$ELTD" serve -c "$CFG" >"$log" 2>&1 || rc=$?
  if [ "$rc" != 0 ] && [ "$rc" != 124 ]; then pass "$1: the daemon refuses to start (exit $rc)"
  else fail "$1: exit $rc (124 = still running after 20 s)"; fi
  check_contains "$1: the error names the file and line" "$2" "$(cat "$log")"
  grep -m1 -F "$2" "$log" | cut -c1-200 | sed 's/^/# /' || true
}

# ---- history to damage ----
start_daemon "$CFG"
a=$(run_one); b=$(run_one)
check_eq "two runs succeeded" "success success" "$(run_state "$a") $(run_state "$b")"
stop_daemon TERM
check_eq "journal valid after a clean stop" valid "$(valid_lines 2>&1)"
cp "$J" "$WORK/good.jsonl"
GOOD_IDS="$a $b"

# ---- torn tails: skipped with a warning, cut, history kept, ids continue ----
n=0
for tail in 'no newline' 'half line' 'NUL bytes'; do
  n=$((n + 1))
  cp "$WORK/good.jsonl" "$J"
  case "$tail" in
    'no newline') printf '{"id":%d,"event":"star' "$((b + 1))" >>"$J" ;;
    'half line') printf '{"id":%d,"ev\n' "$((b + 1))" >>"$J" ;;
    'NUL bytes') head -c 4096 /dev/zero >>"$J" ;;
  esac
  start_daemon "$CFG"
  check_contains "torn tail ($tail): a warning" "torn last journal record" "$(cat "$DAEMON_LOG")"
  check_eq "torn tail ($tail): history kept" "$GOOD_IDS" "$(ids)"
  c=$(run_one)
  check_eq "torn tail ($tail): the next run is $((b + 1)) and succeeds" "$((b + 1)) success" "$c $(run_state "$c")"
  stop_daemon TERM
  check_eq "torn tail ($tail): journal valid again" valid "$(valid_lines 2>&1)"
done

# ---- corrupt records before the last: refuse to start, file untouched ----
for shape in garbage duplicate-key not-object empty-line; do
  cp "$WORK/good.jsonl" "$J"
  $PY - "$J" "$shape" <<'PY'
import sys
path, shape = sys.argv[1], sys.argv[2]
lines = open(path, "rb").read().split(b"\n")
bad = {"garbage": b"\x00\xffgarbage{",
       "duplicate-key": b'{"id":1,"id":2,"event":"started"}',
       "not-object": b"[1,2,3]",
       "empty-line": b""}[shape]
lines[1] = bad
open(path, "wb").write(b"\n".join(lines))
PY
  sum0=$(sha256sum <"$J")
  start_expect_fail "corrupt line 2 ($shape)" "runs.jsonl:2:"
  check_eq "corrupt line 2 ($shape): the journal is left as it was" "$sum0" "$(sha256sum <"$J")"
done

# ---- the good journal back: the history is all there ----
cp "$WORK/good.jsonl" "$J"
start_daemon "$CFG"
check_eq "restored journal: history back" "$GOOD_IDS" "$(ids)"
stop_daemon TERM

# ---- ten SIGKILLs around triggers ----
restarts_ok=0
for i in $(seq 1 10); do
  if start_daemon "$CFG"; then restarts_ok=$((restarts_ok + 1)); else break; fi
  api POST /webhook/manual >/dev/null
  sleep "0.$((RANDOM % 4))$((RANDOM % 10))"
  stop_daemon KILL
done
check_eq "10 restarts after SIGKILL all started" 10 "$restarts_ok"
start_daemon "$CFG"
check_eq "journal line-valid after the kills" valid "$(valid_lines 2>&1)"
all=$(ids)
check_eq "ids unique and increasing" True \
  "$($PY -c 'import sys; x=[int(v) for v in sys.argv[1:]]; print(x == sorted(set(x)))' $all)"
check_eq "no run left running or queued" 0 \
  "$(jget "$(curl -sS "$BASE/api/runs?limit=1000")" 'sum(1 for r in j["runs"] if r["state"] in ("running", "queued"))')"
check_eq "no temporary state file left" "" "$(find "$WORK/state-fjournal" -name '*.tmp*' | head -3)"
c=$(run_one)
check_eq "a run after the kills succeeds" success "$(run_state "$c")"
check_eq "customers exact" "$(pg "SELECT count(*) FROM public.customers")" \
  "$(ch "SELECT count() FROM raw_fjournal.customers")"
stop_daemon TERM
ch "DROP DATABASE IF EXISTS raw_fjournal" >/dev/null
