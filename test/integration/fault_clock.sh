#!/usr/bin/env bash
# Wall-clock jumps under `eltd serve` (issue 8, point 6), with libfaketime (Debian's
# faketime package) preloaded into the daemon only: its wall clock is real time plus an
# offset read from a file the test rewrites; the monotonic clock (libuv's timers) is left
# alone, as a real clock step would leave it. Schedule: every minute.
# (1) control: a fire at the next minute boundary runs once;
# (2) a jump forward of 10 minutes (over 10 fires) runs once, not 10 times (one run, one
#     trigger), within the scheduler's 30 s re-check;
# (3) a jump backward of 10 minutes: the fires already covered are never run again (no run
#     for 40 s, across a minute boundary and a re-check).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/serve.sh"
trap 'rc=$?; set +e; (exit $rc); serve_cleanup; finish' EXIT

LIBFT=
for f in /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 /usr/lib/*/faketime/libfaketime.so.1; do
  [ -e "$f" ] && { LIBFT=$f; break; }
done
if [ -z "$LIBFT" ]; then
  echo "# libfaketime not installed (apt-get install faketime): skipped"
  exit 0
fi

mkdir -p "$WORK/nomodels"
export MODELS_PATH=$WORK/nomodels TABLES_YAML='[customers]'
ch "DROP DATABASE IF EXISTS raw_fclock" >/dev/null
CFG=$(RETRIES=0 make_config fclock "schedule:
  cron: '* * * * *'")

FT=$WORK/faketime
OFFSET=0
# set_clock SECONDS_PAST_MINUTE [MINUTES]: the daemon's clock jumps so that it reads
# :SS of the current minute, MINUTES (default 0) minutes away from the current fake time.
set_clock() {
  local now fake
  now=$(date +%s)
  fake=$((now + OFFSET + ${2:-0} * 60))
  fake=$((fake - fake % 60 + $1))
  OFFSET=$((fake - now))
  if [ "$OFFSET" -ge 0 ]; then echo "+$OFFSET" >"$FT"; else echo "$OFFSET" >"$FT"; fi
}
fake_now() { echo $(( $(date +%s) + OFFSET )); }
sched_runs() { # "count triggers-of-each" of the runs the schedule made
  jget "$(curl -sS "$BASE/api/runs?limit=1000")" \
    '" ".join([str(len([r for r in j["runs"] if r["trigger"] == "schedule"]))] + [str(r.get("triggers", 1)) for r in j["runs"] if r["trigger"] == "schedule"])'
}
sched_count() { sched_runs | cut -d' ' -f1; }
count_is() { [ "$(sched_count)" = "$1" ]; }

set_clock 50
LD_PRELOAD=$LIBFT FAKETIME_TIMESTAMP_FILE=$FT FAKETIME_NO_CACHE=1 FAKETIME_DONT_FAKE_MONOTONIC=1 \
  start_daemon "$CFG"
drift=$(( $(jget "$(curl -sS "$BASE/status")" 'j["schedule"]["next_fire_unix"]') - $(fake_now) ))
check_eq "the daemon runs on the fake clock (next fire within 15 s of its now)" True \
  "$([ "$drift" -ge 0 ] && [ "$drift" -le 15 ] && echo True || echo False)"

# (1) control: the next boundary fires once
if wait_for 30 count_is 1; then pass "(1) control: the minute boundary fired"; else fail "(1) no scheduled run within 30 s"; fi
sleep 3
check_eq "(1) one run, one trigger" "1 1" "$(sched_runs)"

# (2) forward 10 minutes, landing at :05 (the next legitimate fire 55 s away)
set_clock 5 10
t0=$(date +%s)
if wait_for 40 count_is 2; then
  pass "(2) the jump forward was noticed after $(( $(date +%s) - t0 )) s"
else
  fail "(2) no run within 40 s of a 10-minute jump"
fi
sleep 5
check_eq "(2) one run (one trigger) for the 10 fires jumped over" "2 1 1" "$(sched_runs)"

# (3) backward 10 minutes, to :50 (a boundary 10 s away, long covered)
set_clock 50 -10
sleep 40
check_eq "(3) after the jump back no covered fire ran again (40 s, one boundary)" "2 1 1" "$(sched_runs)"
check_eq "the daemon is healthy" 200 "$(api GET /health | cut -d' ' -f1)"
stop_daemon TERM
grep -E 'event=(schedule|fire|clock)[a-z_]*' "$DAEMON_LOG" | cut -c1-200 | sed 's/^/# /' | tail -8 || true
ch "DROP DATABASE IF EXISTS raw_fclock" >/dev/null
