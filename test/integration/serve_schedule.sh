#!/usr/bin/env bash
# eltd serve's schedule: a fire missed while the service was down runs once at start (not
# once per missed interval) with trigger=schedule, or is skipped when catch_up is false; a
# first start catches nothing up; the next fire in /status and in /metrics equals
# python3-croniter's; a bad expression or zone is refused at load with FILE:LINE:COL.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/serve.sh"

mkdir -p "$WORK/no-models"
export MODELS_PATH=$WORK/no-models
ch "DROP DATABASE IF EXISTS raw_serve_sched" >/dev/null
now=$(date +%s)

# serve_with NAME CRON ZONE CATCH_UP [JOURNAL_LINE]: a config (and a journal) for one case.
serve_with() {
  local cfg
  cfg=$(make_config serve_sched "$(printf 'schedule:\n  cron: "%s"\n  timezone: %s\n  catch_up: %s\n' "$2" "$3" "$4")")
  rm -rf "$WORK/state-serve_sched"
  if [ -n "${5:-}" ]; then
    mkdir -p "$WORK/state-serve_sched"
    printf '%s\n' "$5" >"$WORK/state-serve_sched/runs.jsonl"
  fi
  start_daemon "$cfg"
}
runs_json() { curl -sS "$BASE/api/runs"; }

# ---- catch-up: last fire three days ago, hourly schedule -> exactly one run ----
old=$((now - 3 * 86400))
serve_with catchup "0 * * * *" UTC true \
  "{\"type\":\"schedule\",\"name\":\"last_fire\",\"fire\":$old,\"covered\":$old,\"how\":\"run\"}"
check_eq "catch-up: one run" 1 "$(jget "$(runs_json)" 'j["total"]')"
check_eq "catch-up: trigger schedule" schedule "$(jget "$(runs_json)" 'j["runs"][0]["trigger"]')"
id=$(jget "$(runs_json)" 'j["runs"][0]["id"]')
wait_run_final 60 "$id" || true
check_eq "catch-up run succeeded" success "$(run_state "$id")"
check_eq "still one run after it finished" 1 "$(jget "$(runs_json)" 'j["total"]')"
covered=$($PY -c 'import json,sys; print([r["covered"] for r in map(json.loads, open(sys.argv[1])) if r.get("type") == "schedule"][-1])' "$WORK/state-serve_sched/runs.jsonl")
latest=$(( now / 3600 * 3600 ))
check_eq "covered is the latest missed fire" "$latest" "$covered"
check_eq "/status last_fire" "True" "$(jget "$(curl -sS "$BASE/status")" 'j["schedule"]["last_fire"] is not None')"
stop_daemon TERM
# A restart right after: nothing is missed any more, nothing runs.
start_daemon "$WORK/serve_sched.yaml"
check_eq "restart after catch-up: no new run" 1 "$(jget "$(runs_json)" 'j["total"]')"
stop_daemon TERM

# ---- catch_up: false -> the missed fire is skipped ----
serve_with skip "0 * * * *" UTC false \
  "{\"type\":\"schedule\",\"name\":\"last_fire\",\"fire\":$old,\"covered\":$old,\"how\":\"run\"}"
check_eq "catch_up false: no run" 0 "$(jget "$(runs_json)" 'j["total"]')"
check_contains "catch_up false: logged" "event=schedule_catch_up_skipped" "$(cat "$DAEMON_LOG")"
stop_daemon TERM

# ---- first start: nothing to catch up, a baseline is recorded ----
serve_with first "* * * * *" UTC true
check_eq "first start: no run" 0 "$(jget "$(runs_json)" 'j["total"]')"
check_contains "first start: baseline recorded" '"how":"baseline"' "$(cat "$WORK/state-serve_sched/runs.jsonl")"
stop_daemon TERM

# ---- the next fire equals croniter's, in /status and /metrics ----
for spec in "17 3 * * 1-5|Europe/Berlin" "@hourly|UTC" "30 2 * * *|America/New_York" \
  "0 0 1 */3 *|Asia/Kolkata" "*/15 9-17 * jan,jul mon|Australia/Sydney" "@weekly|UTC"; do
  expr=${spec%|*} zone=${spec#*|}
  serve_with next "$expr" "$zone" false
  st=$(curl -sS "$BASE/status")
  got=$(jget "$st" 'j["schedule"]["next_fire_unix"]')
  want=$($PY - "$expr" "$zone" <<'PY'
import sys, datetime, zoneinfo
from croniter import croniter
expr, zone = sys.argv[1], sys.argv[2]
presets = {"@hourly": "0 * * * *", "@weekly": "0 0 * * 0"}
start = datetime.datetime.now(zoneinfo.ZoneInfo(zone))
print(int(croniter(presets.get(expr, expr), start).get_next(datetime.datetime).timestamp()))
PY
)
  check_eq "next fire of '$expr' in $zone" "$want" "$got"
  iso=$(jget "$st" 'j["schedule"]["next_fire"]')
  check_eq "next fire ISO of '$expr'" "$($PY -c "import datetime; print(datetime.datetime.fromtimestamp($want, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'))")" "$iso"
  metric=$(curl -sS "$BASE/metrics" | awk '$1 == "eltd_next_run_timestamp_seconds" {print $2}')
  check_eq "eltd_next_run_timestamp_seconds of '$expr'" "$want" "$metric"
  stop_daemon TERM
done

# ---- bad expressions and zones are refused at load ----
bad=$(make_config serve_sched "$(printf 'schedule:\n  cron: "61 * * * *"\n')")
rc=0; out=$("$ELTD" serve -c "$bad" 2>&1) || rc=$?
check_eq "bad cron: exit 2" 2 "$rc"
check_contains "bad cron: FILE:LINE:COL" "serve_sched.yaml:$(grep -n 'cron:' "$bad" | cut -d: -f1):" "$out"
check_contains "bad cron: names the field" "minute field" "$out"
bad=$(make_config serve_sched "$(printf 'schedule:\n  cron: "@daily"\n  timezone: Nowhere/Atlantis\n')")
rc=0; out=$("$ELTD" serve -c "$bad" 2>&1) || rc=$?
check_eq "bad zone: exit 2" 2 "$rc"
check_contains "bad zone: named" "schedule.timezone" "$out"

ch "DROP DATABASE IF EXISTS raw_serve_sched" >/dev/null
