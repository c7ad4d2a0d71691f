#!/usr/bin/python3
"""cron_oracle.py — regenerates test/unit/cron/oracle.tsv, the table of next fire times that
test_cron.c checks src/cron.c against, using python3-croniter (Debian 1.3.5) as the oracle.

    /usr/bin/python3 test/unit/cron_oracle.py > test/unit/cron/oracle.tsv

Each row is: expression <TAB> zone <TAB> start (unix s) <TAB> the next fires (unix s, space
separated), each fire strictly after the one before. Output is deterministic (fixed seed).

Rows are kept only where croniter and eltd mean the same thing:

* Away from DST and other offset changes. Every fire of a row lies before the zone's first
  offset change after the start. croniter 1.3.5 gets transitions wrong and eltd
  deliberately differs there (test_cron.c tests eltd's rule by hand). In Europe/Berlin:
    - "30 2 * * *" on 2024-03-31 (02:00 -> 03:00): croniter returns the non-existent
      02:30+01:00, i.e. 03:30 CEST; eltd fires at 03:00 CEST, the first instant after the
      gap, as a wall-clock job should.
    - "30 2 * * *" on 2024-10-27 (03:00 -> 02:00): croniter fires 02:30 CEST and then
      03:30 CET on the 28th (its offset correction leaks into the next day); eltd fires
      02:30 CEST once and 02:30 CET on the 28th.
    - "30 * * * *" on 2024-10-27: croniter skips the second 02:30 (CET), a real hour in
      which an hourly job must run; eltd fires at both 02:30s.
* Day-of-month/day-of-week OR rule: croniter decides "restricted" by whether the expanded
  set is full, Vixie cron (and eltd) by whether the field's text starts with '*'. They
  disagree on e.g. "0 0 */2 * 1" (Vixie: AND, croniter: OR) and "0 0 1-31 * 1" (Vixie:
  OR, i.e. every day; croniter: AND). Such expressions are left out of the table.
  croniter also fails outright ("failed to find next date") on "0 0 31 4,6,9,11 5", where
  Vixie's OR rule means every Friday of those months; such rows are dropped too.
* croniter 1.3.5 skips the 1st of March when the day list holds a day February lacks
  ("5 0 1,16,31 * *" after 2019-02-17 gives 03-16, not 03-01). Every croniter answer is
  therefore re-checked by check_fires(), a plain day-by-day enumeration, and rows where
  croniter misses or invents a fire are dropped (and counted on stderr).
* Day-of-week "a/n": croniter reads "1/2" as 1-7/2 = {1,3,5,0}; eltd as 1-6/2 = {1,3,5}
  so that a step never reaches Sunday twice. Left out of the random expressions.
"""
import random
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

ZONES = ["UTC", "America/New_York", "Europe/Berlin", "America/Sao_Paulo", "Asia/Kolkata",
         "Australia/Sydney", "Asia/Kathmandu"]
FIRES = 6

FIXED = [
    "* * * * *", "*/5 * * * *", "0 * * * *", "15,45 * * * *", "0 */2 * * *", "30 9 * * *",
    "0 0 * * *", "@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@quarterly",
    "@yearly", "@annually", "0 0 29 2 *", "0 0 31 * *", "0 0 30 * *", "59 23 31 12 *",
    "0 12 28-31 * *", "0 0 1 1,4,7,10 *", "0 0 13 * 5", "0 0 1 * 1", "0 0 15 * sun",
    "0 8 * * mon-fri", "0 8 * * MON-FRI", "0 8 * * 1-5", "0 8 * * 0,6", "0 8 * * 7",
    "0 8 * * 5-7", "0 8 * * fri-sun", "0 0 * jan-mar *", "0 0 * JAN,jul *", "0 0 1 feb *",
    "*/15 9-17 * * 1-5", "0 0-23/3 * * *", "5/10 * * * *", "0 1/6 * * *", "0 0 1/10 * *",
    "0 0 * 2/5 *", "0 0 * * */2", "0 0 31 4,6,9,11 5", "0 0 29 2 1", "0 0 * * 6#1",
    "0 0 L * *", "0 0 */2 * 1", "0 0 1-31 * 1", "0 0 * * 1/2", "7 7 7 7 *", "0 0 1 * *",
    "0 22 * * 0", "1-59/2 * * * *", "0 0 29,30 2 *",
]


# croniter 1.3.5 knows no @presets; it is given their five-field meaning.
PRESETS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@quarterly": "0 0 1 1,4,7,10 *",
           "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}


def spec(expr):
    """croniter's expansion, or None if croniter refuses the expression."""
    try:
        expanded, nth = croniter.expand(expr)
    except Exception:
        return None
    if nth:
        return None
    return expanded


def same_semantics(expr):
    if expr.startswith("@"):
        return True
    fields = expr.split()
    if len(fields) != 5 or "L" in expr.upper().split()[2] or "#" in fields[4]:
        return False
    expanded = spec(expr)
    if expanded is None:
        return False
    vixie_or = not fields[2].startswith("*") and not fields[4].startswith("*")
    croniter_or = expanded[2] != ["*"] and expanded[4] != ["*"]
    if vixie_or != croniter_or:
        return False
    # "a/n" in day-of-week: see the module comment.
    return not any("/" in item and "-" not in item and not item.startswith("*")
                   for item in fields[4].split(","))


def check_fires(expr, zone, start, fires_):
    """True if fires_ are exactly the matching wall times in (start, fires_[-1]]."""
    if not fires_:
        return True
    expanded = spec(PRESETS.get(expr, expr))
    full = [range(60), range(24), range(1, 32), range(1, 13), range(7)]
    sets = [set(full[i]) if e == ["*"] else {int(v) % 7 if i == 4 else int(v) for v in e}
            for i, e in enumerate(expanded)]
    fields = PRESETS.get(expr, expr).split()
    day_or = not fields[2].startswith("*") and not fields[4].startswith("*")
    want = []
    day = datetime.fromtimestamp(start, zone).date()
    last = datetime.fromtimestamp(fires_[-1], zone).date()
    while day <= last:
        dom = day.day in sets[2]
        dow = (day.weekday() + 1) % 7 in sets[4]
        if day.month in sets[3] and ((dom or dow) if day_or else (dom and dow)):
            for h in sorted(sets[1]):
                for m in sorted(sets[0]):
                    ts = int(datetime(day.year, day.month, day.day, h, m,
                                      tzinfo=zone).timestamp())
                    if start < ts <= fires_[-1]:
                        want.append(ts)
        day += timedelta(days=1)
    return want == fires_


def first_change(zone, start):
    """The first instant after start where the zone's UTC offset changes (within ~2y)."""
    if zone.key == "UTC":
        return None
    def off(ts):
        return datetime.fromtimestamp(ts, zone).utcoffset()
    o = off(start)
    t = start
    for _ in range(800):
        if off(t + 86400) != o:
            lo, hi = t, t + 86400
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if off(mid) == o:
                    lo = mid
                else:
                    hi = mid
            return hi
        t += 86400
    return None


def fires(expr, zone, start):
    it = croniter(PRESETS.get(expr, expr), datetime.fromtimestamp(start, zone))
    out = []
    limit = first_change(zone, start)
    for _ in range(FIRES):
        ts = int(it.get_next(datetime).timestamp())
        if limit is not None and ts >= limit - 3 * 3600:
            break
        out.append(ts)
    return out


def random_expr(rng):
    def field(lo, hi, names=None):
        kind = rng.random()
        def val():
            v = rng.randint(lo, hi)
            if names and rng.random() < 0.3:
                return names[v - lo]
            return str(v)
        if kind < 0.25:
            return "*"
        if kind < 0.4:
            return "*/%d" % rng.randint(2, max(2, (hi - lo) // 2))
        items = []
        for _ in range(rng.randint(1, 3)):
            k = rng.random()
            if k < 0.5:
                items.append(val())
            else:
                a, b = sorted(rng.sample(range(lo, hi + 1), 2))
                item = "%d-%d" % (a, b)
                if rng.random() < 0.3:
                    item += "/%d" % rng.randint(2, 4)
                items.append(item)
        return ",".join(items)
    months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    days = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
    return " ".join([field(0, 59), field(0, 23), field(1, 31), field(1, 12, months),
                     field(0, 6, days)])


def main():
    rng = random.Random(20240531)
    exprs = list(FIXED)
    while len(exprs) < len(FIXED) + 250:
        e = random_expr(rng)
        if same_semantics(e):
            exprs.append(e)
    lo = int(datetime(2001, 1, 1, tzinfo=timezone.utc).timestamp())
    hi = int(datetime(2045, 1, 1, tzinfo=timezone.utc).timestamp())
    print("# generated by test/unit/cron_oracle.py with croniter; do not edit")
    print("# expression\tzone\tstart\tnext fires (unix seconds)")
    skipped = 0
    for i, e in enumerate(exprs):
        if not same_semantics(e):
            skipped += 1
            continue
        for zname in (["UTC"] if i % 2 else []) + [ZONES[i % len(ZONES)], rng.choice(ZONES)]:
            zone = ZoneInfo(zname)
            start = rng.randint(lo, hi)
            if rng.random() < 0.3:
                start -= start % 3600  # start exactly on an hour boundary
            try:
                out = fires(e, zone, start)
            except CroniterBadDateError:
                print("# croniter cannot compute %r" % e, file=sys.stderr)
                continue
            if not check_fires(e, zone, start, out):
                print("# croniter is wrong for %r after %d in %s" % (e, start, zname),
                      file=sys.stderr)
                continue
            if out:
                print("%s\t%s\t%d\t%s" % (e, zname, start, " ".join(map(str, out))))
    print("# skipped %d fixed expressions whose meaning differs in croniter" % skipped,
          file=sys.stderr)


if __name__ == "__main__":
    main()
