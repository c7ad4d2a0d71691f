/* fuzz_cron.c — libFuzzer target for cron_parse, cron_format and cron_next, in UTC and in a
 * loaded zone with daylight saving (Europe/Berlin).
 *
 * Input: "EXPR" or "EXPR|AFTER" (AFTER in unix seconds, clamped to 1900..2200); without
 * AFTER a few fixed instants around Berlin's 2024 changes are used. An input starting with
 * "TZif" is a zone file instead: it is parsed, and if accepted a few schedules run in it.
 *
 * Checked, for every fire n = cron_next(e, tz, after): n > after and within the horizon; the
 * local wall time at n matches the expression (Vixie day rule), or n is the first instant
 * after a spring-forward gap holding a matching wall time of a wall-clock job; a wall-clock
 * job never fires in the second occurrence of a repeated hour; cron_next from any instant in
 * [after, n) answers n (no fire skipped, none invented); short waits are brute-forced minute
 * by minute. cron_format re-parses to the same sets. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "fuzz.h"

#define T_MIN (-2208988800LL) /* 1900-01-01 */
#define T_MAX 7258118400LL    /* 2200-01-01 */
#define ALL_HOURS 0xffffffu

static cron_tz_t berlin;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[256];
    if (!cron_tz_load(&berlin, "Europe/Berlin", err, sizeof err)) {
        fprintf(stderr, "fuzz_cron: %s\n", err);
        abort();
    }
    return 0;
}

/* Does the wall time `local` (seconds, as if UTC) match e? */
static bool wall_matches(const cron_expr_t *e, int64_t local)
{
    time_t t = (time_t)local;
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return false;
    if (!(e->minutes >> tm.tm_min & 1) || !(e->hours >> tm.tm_hour & 1) ||
        !(e->months >> (tm.tm_mon + 1) & 1))
        return false;
    bool dom = e->mdays >> tm.tm_mday & 1, dow = e->wdays >> tm.tm_wday & 1;
    return (e->mday_star || e->wday_star) ? dom && dow : dom || dow;
}

static int32_t off_at(const cron_tz_t *tz, int64_t t)
{
    return cron_tz_offset(tz, t);
}

/* A wall-clock job whose time fell into a spring-forward gap fires at the gap's end. */
static bool is_gap_fire(const cron_expr_t *e, const cron_tz_t *tz, int64_t n)
{
    int32_t before = off_at(tz, n - 1), after = off_at(tz, n);
    if (e->hours == ALL_HOURS || after <= before)
        return false;
    for (int64_t w = n + before; w < n + after; w += 60)
        if (w % 60 == 0 && wall_matches(e, w))
            return true;
    return false;
}

static void check_fire(const cron_expr_t *e, const cron_tz_t *tz, int64_t after, int64_t n,
                       bool exact_zone)
{
    CHECK(n > after);
    CHECK(n - after <= (int64_t)(CRON_HORIZON_YEARS + 1) * 366 * 86400);
    if (!exact_zone)
        return;
    int32_t off = off_at(tz, n);
    int64_t wall = n + off;
    if (!wall_matches(e, wall)) {
        CHECK(is_gap_fire(e, tz, n));
        return;
    }
    CHECK(wall % 60 == 0);
    /* Fall-back: a wall-clock job fires at the first occurrence only. */
    if (e->hours != ALL_HOURS) {
        int32_t earlier = off_at(tz, n - 7200);
        if (earlier != off) {
            int64_t first = wall - earlier;
            CHECK(!(first < n && off_at(tz, first) == earlier));
        }
    }
}

/* Every instant in [after, n) must lead to n again. */
static void check_consistent(const cron_expr_t *e, const cron_tz_t *tz, int64_t after, int64_t n)
{
    int64_t probes[] = {after + 1, after + (n - after) / 2, n - 1, n - 60, n - 3600, n - 86400};
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++)
        if (probes[i] >= after && probes[i] < n)
            CHECK(cron_next(e, tz, probes[i]) == n);
}

/* For a wait under six hours, no minute in between may match (away from offset changes). */
static void check_brute(const cron_expr_t *e, const cron_tz_t *tz, int64_t after, int64_t n)
{
    if (n - after > 6 * 3600)
        return;
    for (int64_t t = after - after % 60 - 120; t < n; t += 60) {
        if (t <= after)
            continue;
        int32_t off = off_at(tz, t);
        if (off_at(tz, t - 10800) != off || off_at(tz, t + 10800) != off)
            continue;
        if ((t + off) % 60 == 0)
            CHECK(!wall_matches(e, t + off));
    }
}

static void run_next(const cron_expr_t *e, const cron_tz_t *tz, int64_t after, bool exact_zone)
{
    int64_t n = cron_next(e, tz, after);
    if (n == -1)
        return;
    check_fire(e, tz, after, n, exact_zone);
    if (!exact_zone)
        return;
    check_consistent(e, tz, after, n);
    check_brute(e, tz, after, n);
    /* The one after that, too: fires come out in increasing order. */
    int64_t n2 = cron_next(e, tz, n);
    if (n2 != -1)
        check_fire(e, tz, n, n2, exact_zone);
}

static void check_format(const cron_expr_t *e, const char *text)
{
    char buf[512], small[8];
    size_t need = cron_format(e, buf, sizeof buf);
    CHECK(need < sizeof buf && strlen(buf) == need);
    CHECK(cron_format(e, small, sizeof small) == need);
    CHECK(strlen(small) < sizeof small);
    cron_expr_t again;
    char err[256];
    if (!cron_parse(&again, buf, err, sizeof err)) {
        fprintf(stderr, "fuzz_cron: \"%s\" formatted as \"%s\", which fails: %s\n", text, buf,
                err);
        abort();
    }
    CHECK(again.minutes == e->minutes && again.hours == e->hours && again.mdays == e->mdays &&
          again.months == e->months && again.wdays == e->wdays);
    if (!strchr(text, ','))
        CHECK(again.mday_star == e->mday_star && again.wday_star == e->wday_star);
}

static void fuzz_zone(const uint8_t *data, size_t size)
{
    cron_tz_t tz;
    char err[256];
    if (!cron_tz_parse(&tz, "fuzz", data, size, err, sizeof err)) {
        CHECK(memchr(err, '\0', sizeof err) && err[0]);
        return;
    }
    static const char *const exprs[] = {"*/7 * * * *", "30 2 * * *", "0 0 29 2 *"};
    static const int64_t afters[] = {0, 1711843200, 1729987200, 4102444800LL};
    for (size_t i = 0; i < 3; i++) {
        cron_expr_t e;
        if (!cron_parse(&e, exprs[i], err, sizeof err))
            abort();
        for (size_t j = 0; j < 4; j++) {
            (void)cron_tz_offset(&tz, afters[j]);
            run_next(&e, &tz, afters[j], false);
        }
    }
    cron_tz_free(&tz);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 4 && memcmp(data, "TZif", 4) == 0) {
        fuzz_zone(data, size);
        return 0;
    }
    if (size > 4096)
        return 0;
    char text[4097];
    memcpy(text, data, size);
    text[size] = '\0';

    int64_t afters[4] = {1711843200 + 1800, 1729987200 + 1800, 1700000000, 4102444799LL};
    size_t nafters = 4;
    char *bar = strchr(text, '|');
    if (bar) {
        *bar = '\0';
        long long a = strtoll(bar + 1, NULL, 10);
        afters[0] = a < T_MIN ? T_MIN : a > T_MAX ? T_MAX : a;
        nafters = 1;
    }

    cron_expr_t e;
    char err[256];
    memset(err, 0x55, sizeof err);
    if (!cron_parse(&e, text, err, sizeof err)) {
        CHECK(memchr(err, '\0', sizeof err) && err[0]);
        return 0;
    }
    CHECK((e.minutes >> 60) == 0 && (e.hours >> 24) == 0 && (e.mdays & 1) == 0 &&
          (e.months & 1) == 0 && (e.months >> 13) == 0 &&
          (e.wdays >> 7) == 0);
    check_format(&e, text);
    for (size_t i = 0; i < nafters; i++) {
        run_next(&e, NULL, afters[i], true);
        run_next(&e, &berlin, afters[i], true);
    }
    return 0;
}
