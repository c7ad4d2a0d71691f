#!/usr/bin/env bash
# Wall-clock jumps under `eltd serve` with an hourly schedule (issue 8, point 6), using
# Debian's libfaketime preloaded into the daemon only. Its wall clock is real time plus an
# offset the test rewrites in FAKETIME_TIMESTAMP_FILE (FAKETIME_NO_CACHE=1, so each
# gettimeofday re-reads it). CLOCK_MONOTONIC, libuv's timer clock, is left real
# (FAKETIME_DONT_FAKE_MONOTONIC=1), as a real clock step leaves it: the scheduler notices a
# jump at its next wall-clock re-read (at most every 30 s), so each step waits for that with
# a deadline. Schedule '0 * * * *'; the fake clock starts at HH:20.
# (1) start: no fire (the baseline is now), next fire HH+1:00;
# (2) +5 h (to HH+5:20, over 5 fires) -> exactly ONE run with trigger=schedule, one trigger,
#     for fire HH+5:00; next fire HH+6:00;
# (3) -2 h (to HH+3:20, two fires already covered ahead) -> nothing runs across a re-read;
#     the next fire stays HH+6:00, not HH+4:00;
# (4) forward to HH+6:05, past the last fired instant again -> exactly one more run, for
#     HH+6:00; the journal's fired instants are distinct, in order, on the hour.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/serve.sh"
trap 'rc=$?; set +e; (exit $rc); serve_cleanup; finish' EXIT

if sanitized; then
  # libfaketime's clock_gettime wrapper recurses inside ASan's start-up; the gcc pass runs
  # this test.
  skip "clock jumps need libfaketime, which cannot preload into a sanitizer build"
  exit 0
fi

LIBFT=
for f in /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 /usr/lib/*/faketime/libfaketime.so.1; do
  [ -e "$f" ] && { LIBFT=$f; break; }
done
if [ -z "$LIBFT" ]; then
  fail "libfaketime not installed (apt-get install faketime)"
  exit 1
fi

mkdir -p "$WORK/nomodels"
export MODELS_PATH=$WORK/nomodels TABLES_YAML='[customers]'
ch "DROP DATABASE IF EXISTS raw_sclock" >/dev/null
CFG=$(RETRIES=0 make_config sclock "schedule:
  cron: '0 * * * *'")
J=$WORK/state-sclock/runs.jsonl

FT=$WORK/faketime
OFFSET=0
# set_clock HOURS SECONDS_PAST_HOUR: the daemon's clock jumps to HH0+HOURS:MM:SS, where HH0
# is the hour the test started in (fake), SECONDS_PAST_HOUR = MM*60+SS.
set_clock() {
  local now
  now=$(date +%s)
  OFFSET=$((HOUR0 + $1 * 3600 + $2 - now))
  if [ "$OFFSET" -ge 0 ]; then echo "+$OFFSET" >"$FT"; else echo "$OFFSET" >"$FT"; fi
}
fake_now() { echo $(($(date +%s) + OFFSET)); }
status_sched() { jget "$(curl -sS "$BASE/status")" "j['schedule']['$1']"; }
sched_runs() { # "COUNT TRIGGERS..." of the runs the schedule made
  jget "$(curl -sS "$BASE/api/runs?limit=100")" \
    '" ".join([str(len([r for r in j["runs"] if r["trigger"] == "schedule"]))] + [str(r.get("triggers", 1)) for r in j["runs"] if r["trigger"] == "schedule"])'
}
count_is() { [ "$(sched_runs | cut -d' ' -f1)" = "$1" ]; }
fired() { # the instants the journal records as fired and run, relative to HOUR0 in hours
  $PY - "$J" "$HOUR0" <<'PY'
import json, sys
h0 = int(sys.argv[2])
out = []
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("type") == "schedule" and r.get("how") == "run":
        f = r["fire"]
        out.append("%+d" % ((f - h0) // 3600) if (f - h0) % 3600 == 0 else "off-hour:%d" % f)
print(" ".join(out))
PY
}

HOUR0=$(( $(date +%s) / 3600 * 3600 ))
set_clock 0 1200
T0=$(date +%s)
# A sanitizer build would refuse a preload ahead of its runtime.
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
  LD_PRELOAD=$LIBFT FAKETIME_TIMESTAMP_FILE=$FT FAKETIME_NO_CACHE=1 FAKETIME_DONT_FAKE_MONOTONIC=1 \
  start_daemon "$CFG"

# (1) start at HH:20
check_eq "(1) the daemon runs on the fake clock: next fire HH+1:00" $((HOUR0 + 3600)) "$(status_sched next_fire_unix)"
sleep 1
check_eq "(1) no scheduled run at start" "0" "$(sched_runs)"

# (2) +5 h
set_clock 5 1200
t=$(date +%s)
if wait_for 40 count_is 1; then pass "(2) +5 h noticed after $(($(date +%s) - t)) s"
else fail "(2) no scheduled run within 40 s of a 5-hour jump"; fi
sleep 2
check_eq "(2) exactly one scheduled run (one trigger) for 5 fires jumped over" "1 1" "$(sched_runs)"
check_eq "(2) it ran the latest fire, HH+5:00" "+5" "$(fired)"
check_eq "(2) next fire HH+6:00" $((HOUR0 + 6 * 3600)) "$(status_sched next_fire_unix)"
id1=$(jget "$(curl -sS "$BASE/api/runs?limit=1")" 'j["runs"][0]["id"]')
wait_run_final 60 "$id1" || true
check_eq "(2) the scheduled run succeeded" success "$(run_state "$id1")"

# (3) -2 h: two covered fires (HH+4:00, HH+5:00) now lie ahead of the clock
set_clock 3 1200
sleep 32 # one re-read of the wall clock (at most 30 s apart) at the earlier time
check_eq "(3) after -2 h: no scheduled run again" "1 1" "$(sched_runs)"
check_eq "(3) after -2 h: fired instants unchanged" "+5" "$(fired)"
check_eq "(3) after -2 h: next fire still HH+6:00 (not HH+4:00)" $((HOUR0 + 6 * 3600)) "$(status_sched next_fire_unix)"
check_eq "(3) the daemon logged no second fire" 1 "$(grep -c 'event=schedule_fire ' "$DAEMON_LOG" || true)"

# (4) forward past the last fired instant again: HH+6:05
set_clock 6 300
t=$(date +%s)
if wait_for 40 count_is 2; then pass "(4) the fire of HH+6:00 ran, $(($(date +%s) - t)) s after the jump"
else fail "(4) no scheduled run within 40 s of passing HH+6:00"; fi
sleep 2
check_eq "(4) exactly one more scheduled run" "2 1 1" "$(sched_runs)"
check_eq "(4) fired instants: distinct, in order, on the hour" "+5 +6" "$(fired)"
check_eq "(4) schedule_fire logged twice in all" 2 "$(grep -c 'event=schedule_fire ' "$DAEMON_LOG" || true)"
check_eq "the daemon is healthy" 200 "$(api GET /health | cut -d' ' -f1)"
id2=$(jget "$(curl -sS "$BASE/api/runs?limit=1")" 'j["runs"][0]["id"]')
wait_run_final 60 "$id2" || true
stop_daemon TERM
check_eq "clean stop" 0 "$DAEMON_RC"
grep -E 'event=schedule' "$DAEMON_LOG" | cut -c1-160 | sed 's/^/# /' | tail -6 || true
echo "# total $(($(date +%s) - T0)) s"
ch "DROP DATABASE IF EXISTS raw_sclock" >/dev/null
