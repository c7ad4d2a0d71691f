#!/usr/bin/env bash
# The run journal of `eltd serve` (issue 8, point 5), STATE_DIR/runs.jsonl:
# (1) a torn last line (half a JSON object, no newline) appended while the daemon is down:
#     it restarts, warns naming the file and the line, /api/runs shows the earlier runs, and
#     the torn bytes are cut (the file is the good journal again);
#     a corrupt last line that does end in a newline is skipped the same way;
# (2) a corrupt line in the middle: `eltd serve` refuses to start, exits non-zero with an
#     error naming FILE:LINE, and the journal is left byte for byte as it was (md5);
# (3) compaction while serving, with run.keep_runs: 5 (run.keep_runs: 1 is refused at start,
#     naming FILE:LINE:COL): 14 runs triggered one after another through the API; after
#     each the journal holds at most 6 runs (5 + 5/5), compacted 4 times; the daemon's
#     journal descriptor is the compacted file, not a deleted one, and the records of run 14
#     (after the last compaction) are in it; /api/runs lists runs 9..14; after a restart
#     /api/runs is the same, the next run is 15 and the journal is compacted again to 11..15;
# (4) how state is written, seen with strace: every journal append is one write(2) on a
#     descriptor opened O_APPEND (or, after a compaction, on the new file's own descriptor,
#     set O_APPEND), followed by fdatasync(2) of that file before anything else is written
#     to it; the compaction at start (more than 1,200 runs: 1,000 kept) writes a temporary
#     file, fsyncs it, renames it over runs.jsonl and fsyncs the directory; no temporary
#     file is left and the history after compaction is the newest 1,000 runs.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/serve.sh"
trap 'rc=$?; set +e; (exit $rc); serve_cleanup; finish' EXIT

mkdir -p "$WORK/nomodels"
export MODELS_PATH=$WORK/nomodels TABLES_YAML='[customers]'
ch "DROP DATABASE IF EXISTS raw_sjournal" >/dev/null
CFG=$(RETRIES=0 make_config sjournal)
SD=$WORK/state-sjournal
J=$SD/runs.jsonl

ids() { jget "$(curl -sS "$BASE/api/runs?limit=1000")" '" ".join(str(r["id"]) for r in reversed(j["runs"]))'; }
run_one() {
  local r id
  r=$(api POST /webhook/manual)
  id=$(jget "${r#* }" 'j["run_id"]')
  wait_run_final 60 "$id" >/dev/null || true
  echo "$id"
}

start_daemon "$CFG"
a=$(run_one)
b=$(run_one)
check_eq "two runs succeeded" "success success" "$(run_state "$a") $(run_state "$b")"
stop_daemon TERM
check_eq "clean stop" 0 "$DAEMON_RC"
cp "$J" "$WORK/good.jsonl"
L=$(wc -l <"$J")

# ---- (1) a torn last line ----
printf '{"type":"run","id":%d,"trigger":"man' "$((b + 1))" >>"$J"
start_daemon "$CFG"
warn=$(grep 'torn last journal record' "$DAEMON_LOG" || true)
check_contains "torn tail: a warning" "level=warn" "$warn"
check_contains "torn tail: the warning names the file" "file=\"$J\"" "$warn"
check_contains "torn tail: the warning names the line" "line=$((L + 1))" "$warn"
check_eq "torn tail: /api/runs shows the earlier runs" "$a $b" "$(ids)"
stop_daemon TERM
if cmp -s "$J" "$WORK/good.jsonl"; then pass "torn tail: the torn bytes are cut, the rest untouched"
else fail "torn tail: journal differs from the good one: $(diff <(cat "$WORK/good.jsonl") "$J" | head -5)"; fi

# a corrupt last line that ends in a newline is a torn write too
printf '{"type":"run","id":%d,"trig\n' "$((b + 1))" >>"$J"
start_daemon "$CFG"
check_contains "corrupt last line with a newline: a warning naming the line" "line=$((L + 1))" \
  "$(grep 'torn last journal record' "$DAEMON_LOG" || true)"
check_eq "corrupt last line with a newline: history kept" "$a $b" "$(ids)"
c=$(run_one)
check_eq "corrupt last line with a newline: the next run is $((b + 1)) and succeeds" "$((b + 1)) success" "$c $(run_state "$c")"
stop_daemon TERM
cp "$J" "$WORK/good.jsonl"
L=$(wc -l <"$J")

# ---- (2) a corrupt line in the middle: refuse to start, file untouched ----
mid=$((L / 2))
$PY - "$J" "$mid" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
lines = open(path, "rb").read().split(b"\n")
lines[n - 1] = lines[n - 1][: len(lines[n - 1]) // 2]  # half a record, newline kept
open(path, "wb").write(b"\n".join(lines))
PY
sum0=$(md5sum <"$J")
rc=0
timeout 20 "$ELTD" serve -c "$CFG" >"$WORK/refused.log" 2>&1 || rc=$?
if [ "$rc" != 0 ] && [ "$rc" != 124 ]; then pass "corrupt line $mid of $L: eltd serve refuses to start (exit $rc)"
else fail "corrupt line $mid of $L: exit $rc (124 = still running after 20 s)"; fi
check_contains "the error names FILE:LINE" "$J:$mid: corrupt journal record" "$(cat "$WORK/refused.log")"
grep -m1 -F "$J:$mid" "$WORK/refused.log" | cut -c1-220 | sed 's/^/# /' || true
if grep -q 'event=listening' "$WORK/refused.log"; then fail "it listened before refusing"; else pass "it never listened"; fi
check_eq "the journal is left as it was (md5)" "$sum0" "$(md5sum <"$J")"
cp "$WORK/good.jsonl" "$J"

# ---- (3) compaction while serving ----
ch "DROP DATABASE IF EXISTS raw_sjcompact" >/dev/null
CCFG=$(RETRIES=0 make_config sjcompact)
sed -i 's/^run:$/run:\n  keep_runs: 5/' "$CCFG"
CJ=$WORK/state-sjcompact/runs.jsonl
# "ID ID ..." of the runs with records in the journal, ascending; with -f, "ID:STATE" of
# each finished record instead.
journal_runs() {
  $PY - "$CJ" "${1:-}" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
runs = [r for r in recs if r.get("type") == "run"]
if sys.argv[2] == "-f":
    print(" ".join("%d:%s" % (r["id"], r["state"]) for r in runs if r["event"] == "finished"))
else:
    print(" ".join(str(i) for i in sorted({r["id"] for r in runs})))
PY
}
runs_json() { curl -sS "$BASE/api/runs?limit=1000"; }

BAD=$WORK/sjbad.yaml
sed 's/^  keep_runs: 5$/  keep_runs: 1/' "$CCFG" >"$BAD"
bad_line=$(grep -n '^  keep_runs: 1$' "$BAD" | cut -d: -f1)
rc=0
timeout 20 "$ELTD" serve -c "$BAD" >"$WORK/bad.log" 2>&1 || rc=$?
check_eq "run.keep_runs: 1 is refused at start (exit 2)" 2 "$rc"
check_contains "run.keep_runs: 1: the error names FILE:LINE:COL" \
  "$BAD:$bad_line:14: keep_runs: 1 is out of range 2..1000000" "$(cat "$WORK/bad.log")"

start_daemon "$CCFG"
got= most=0
for _ in $(seq 14); do
  got="$got $(run_one)"
  n=$(journal_runs | wc -w)
  [ "$n" -gt "$most" ] && most=$n
done
check_eq "14 runs through the API get ids 1..14" "$(seq -s ' ' 14)" "${got# }"
check_eq "after each run the journal held at most 6 runs (keep 5, compacted past 5 + 5/5)" 6 "$most"
check_eq "compacted while serving, at the end of runs 7, 9, 11 and 13" 4 \
  "$(grep -c 'msg="journal compacted"' "$DAEMON_LOG" || true)"
check_eq "the journal holds runs 9..14" "9 10 11 12 13 14" "$(journal_runs)"
check_eq "run 14, recorded after the last compaction, is in the compacted file" \
  "9:success 10:success 11:success 12:success 13:success 14:success" "$(journal_runs -f)"
fds=$(for f in /proc/"$DAEMON_PID"/fd/*; do readlink "$f"; done 2>/dev/null | grep -F "$CJ" || true)
check_eq "the daemon appends to the compacted file, not a deleted one" "$CJ" "$fds"
check_eq "/api/runs lists runs 9..14" "9 10 11 12 13 14" "$(ids)"
check_eq "/api/runs: all six succeeded, total 6" "success success success success success success 6" \
  "$(jget "$(runs_json)" '" ".join(r["state"] for r in j["runs"]) + " " + str(j["total"])')"
before=$(runs_json)
stop_daemon TERM
check_eq "compaction: clean stop" 0 "$DAEMON_RC"
start_daemon "$CCFG"
after=$(runs_json)
if $PY -c 'import json, sys; sys.exit(json.loads(sys.argv[1]) != json.loads(sys.argv[2]))' "$before" "$after"; then
  pass "after a restart /api/runs is the same (runs 9..14, every field)"
else
  fail "after a restart /api/runs differs: $(diff <(echo "$before" | $PY -m json.tool) <(echo "$after" | $PY -m json.tool) | head -8 | tr '\n' ' ')"
fi
check_eq "no compaction at that start (6 runs: not over 6)" 0 \
  "$(grep -c 'msg="journal compacted"' "$DAEMON_LOG" || true)"
d=$(run_one)
check_eq "after the restart the next run is 15 and succeeds" "15 success" "$d $(run_state "$d")"
check_eq "and the journal is compacted again, to runs 11..15" "11 12 13 14 15" "$(journal_runs)"
check_eq "/api/runs lists runs 11..15" "11 12 13 14 15" "$(ids)"
stop_daemon TERM
check_eq "compaction: clean stop after the restart" 0 "$DAEMON_RC"
check_eq "no temporary file left by the compactions" "" "$(find "$WORK/state-sjcompact" -name '*.tmp*' | head -3)"
ch "DROP DATABASE IF EXISTS raw_sjcompact" >/dev/null

# ---- (4) how state is written (strace) ----
if sanitized; then
  # LeakSanitizer aborts under ptrace; the gcc pass traces the writes.
  skip "(4) strace of the journal writes: not under a sanitizer build"
  exit 0
fi
# 1,300 synthetic finished runs before the real ones: the start compacts to 1,000.
$PY - "$J" <<'PY'
import json, sys
path = sys.argv[1]
real = open(path, "rb").read()
recs = [json.loads(l) for l in real.splitlines()]
shift = 1300
out = []
for i in range(1, shift + 1):
    t = 1700000000.0 + i
    out.append({"type": "run", "id": i, "event": "queued", "trigger": "manual", "queued_at": t})
    out.append({"type": "run", "id": i, "event": "started", "started_at": t, "triggers": 1})
    out.append({"type": "run", "id": i, "event": "finished", "state": "success",
                "finished_at": t + 0.5, "triggers": 1, "error": None})
for r in recs:
    if isinstance(r.get("id"), int) and r.get("type") == "run":
        r["id"] += shift
    out.append(r)
with open(path, "w") as f:
    for r in out:
        f.write(json.dumps(r, separators=(",", ":")) + "\n")
PY
# LeakSanitizer cannot work under ptrace: a sanitizer build runs without it here.
cat >"$WORK/eltd-strace" <<SH
#!/bin/sh
export ASAN_OPTIONS="\${ASAN_OPTIONS:+\$ASAN_OPTIONS:}detect_leaks=0"
exec strace -f -y -qq -o "$WORK/strace.txt" -e trace=openat,fcntl,write,fsync,fdatasync,rename,renameat,renameat2,ftruncate "$ELTD" "\$@"
SH
chmod +x "$WORK/eltd-strace"
REAL_ELTD=$ELTD
ELTD=$WORK/eltd-strace
start_daemon "$CFG"
ELTD=$REAL_ELTD
tracer=$DAEMON_PID
check_eq "after compaction: 1,000 runs kept, the newest" "1000 $((c + 1300)) $((c + 1300 - 999))" \
  "$(curl -sS "$BASE/api/runs?limit=1000" |
    $PY -c 'import json, sys; j = json.load(sys.stdin); print(j["total"], j["runs"][0]["id"], j["runs"][-1]["id"])')"
c=$(run_one)
check_eq "a run under strace succeeds" success "$(run_state "$c")"
# Stop eltd itself (the tracer's child); strace exits with it.
child=$(pgrep -P "$tracer" | head -1 || true)
[ -n "$child" ] && kill -TERM "$child"
wait_daemon
check_eq "the traced daemon stopped cleanly" 0 "$DAEMON_RC"
verdict=$($PY - "$WORK/strace.txt" "$J" "$SD" <<'PY'
import re, sys
trace, journal, sd = sys.argv[1:4]
lines = open(trace, errors="replace").read().splitlines()
res = []
def ok(cond, what):
    res.append(("PASS " if cond else "FAIL ") + what)
# appends: every write to runs.jsonl is followed by an fdatasync of it before the next write
writes = syncs = 0
pending = False
bad_order = 0
append_fds = set()
for l in lines:
    m = re.search(r'openat\(AT_FDCWD<[^>]*>, "([^"]+)", ([A-Z_|]+)(?:, \d+)?\) = (\d+)<([^>]+)>', l)
    if m and m.group(4) == journal and "O_APPEND" in m.group(2):
        append_fds.add(m.group(3))
    # a compaction appends on from the descriptor of the file it wrote, set O_APPEND
    m = re.search(r'fcntl\((\d+)<([^>]+)>, F_SETFL, ([A-Z_|]+)\) = 0', l)
    if m and m.group(2).startswith(journal + ".tmp.") and "O_APPEND" in m.group(3):
        append_fds.add(m.group(1))
    m = re.search(r'\bwrite\((\d+)<' + re.escape(journal) + r'>', l)
    if m:
        writes += 1
        if pending:
            bad_order += 1
        pending = True
        if m.group(1) not in append_fds:
            bad_order += 1000
    if re.search(r'\bf(data)?sync\(\d+<' + re.escape(journal) + r'>\) = 0', l):
        syncs += 1
        pending = False
ok(writes >= 3, "journal appends seen: %d writes to runs.jsonl" % writes)
ok(bad_order == 0 and not pending,
   "each append is one write on an O_APPEND descriptor, then fdatasync before the next (%d syncs)" % syncs)
# compaction: temp file written, fsynced, renamed over runs.jsonl, then the directory fsynced
tmp = None
seq = []
for l in lines:
    m = re.search(r'rename(?:at2?)?\([^"]*"([^"]+)"[^"]*"([^"]+)"', l)
    if m and m.group(2) == journal and "= 0" in l:
        tmp = m.group(1)
        seq.append("rename")
        continue
    if tmp is None:
        m = re.search(r'\bfsync\(\d+<([^>]+)>\) = 0', l)
        if m and ".tmp." in m.group(1) and m.group(1).startswith(journal):
            seq.append("fsync-tmp")
    else:
        m = re.search(r'\bfsync\(\d+<([^>]+)>\) = 0', l)
        if m and m.group(1) == sd:
            seq.append("fsync-dir")
            break
ok(tmp is not None, "compaction renames %s over runs.jsonl" % (tmp or "nothing"))
ok(seq[:3] == ["fsync-tmp", "rename", "fsync-dir"] or seq[-3:] == ["fsync-tmp", "rename", "fsync-dir"],
   "compaction order: %s" % " -> ".join(seq))
renames = [l for l in lines if re.search(r'\brename', l)]
ok(all(".tmp." in l for l in renames), "every rename is from a temporary file (%d)" % len(renames))
print("\n".join(res))
PY
)
while IFS= read -r line; do
  case "$line" in PASS\ *) pass "strace: ${line#PASS }" ;; FAIL\ *) fail "strace: ${line#FAIL }" ;; esac
done <<<"$verdict"
check_eq "no temporary state file left" "" "$(find "$SD" -name '*.tmp*' | head -3)"
# eltd.lock is state_lock's (one eltd per state directory); nothing else may be left.
check_eq "the state directory holds only the journal and the lock" "eltd.lock runs.jsonl" \
  "$(ls "$SD" | tr '\n' ' ' | sed 's/ $//')"
ch "DROP DATABASE IF EXISTS raw_sjournal" >/dev/null
