/* test_scheduler.c — the scheduler's decisions (scheduler_plan) on plain numbers: a due fire,
 * catch-up collapsing many missed fires into one, wall-clock jumps forward and backward, a
 * zone with daylight saving. */
#include "scheduler.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* 2025-01-01T00:00:00Z */
#define T0 1735689600LL

static cron_expr_t parse(const char *text)
{
    cron_expr_t e;
    char err[256];
    assert_true(cron_parse(&e, text, err, sizeof err));
    return e;
}

static void test_not_due(void **state)
{
    (void)state;
    cron_expr_t e = parse("0 * * * *");
    scheduler_step_t st = scheduler_plan(&e, NULL, T0, T0 + 1800);
    assert_int_equal(st.fire, -1);
    assert_int_equal(st.covered, T0);
    assert_int_equal(st.next, T0 + 3600);
}

static void test_due_exactly(void **state)
{
    (void)state;
    cron_expr_t e = parse("0 * * * *");
    scheduler_step_t st = scheduler_plan(&e, NULL, T0, T0 + 3600);
    assert_int_equal(st.fire, T0 + 3600);
    assert_int_equal(st.covered, T0 + 3600);
    assert_int_equal(st.next, T0 + 7200);
}

/* Down for three days with an hourly schedule: one fire, the latest, not 72. */
static void test_catch_up_once(void **state)
{
    (void)state;
    cron_expr_t e = parse("0 * * * *");
    int64_t now = T0 + 3 * 86400 + 1234;
    scheduler_step_t st = scheduler_plan(&e, NULL, T0, now);
    assert_int_equal(st.fire, T0 + 3 * 86400);
    assert_int_equal(st.covered, T0 + 3 * 86400);
    assert_int_equal(st.next, T0 + 3 * 86400 + 3600);
    /* Planning again at the same instant fires nothing more. */
    scheduler_step_t again = scheduler_plan(&e, NULL, st.covered, now);
    assert_int_equal(again.fire, -1);
}

/* The clock jumps forward over five fires: one fire; then the normal cadence resumes. */
static void test_jump_forward(void **state)
{
    (void)state;
    cron_expr_t e = parse("*/10 * * * *");
    int64_t covered = T0;
    scheduler_step_t st = scheduler_plan(&e, NULL, covered, T0 + 5 * 600 + 30);
    assert_int_equal(st.fire, T0 + 3000);
    st = scheduler_plan(&e, NULL, st.covered, T0 + 3000 + 60);
    assert_int_equal(st.fire, -1);
    assert_int_equal(st.next, T0 + 3600);
}

/* The clock jumps backward by an hour after a fire: the fires already handled are never
 * run again; the next one is the first after what was covered. */
static void test_jump_backward(void **state)
{
    (void)state;
    cron_expr_t e = parse("*/10 * * * *");
    scheduler_step_t st = scheduler_plan(&e, NULL, T0 + 3600, T0 + 60);
    assert_int_equal(st.fire, -1);
    assert_int_equal(st.covered, T0 + 3600);
    assert_int_equal(st.next, T0 + 3600 + 600);
    /* As the clock walks forward again through the hour, nothing fires. */
    for (int64_t t = T0; t <= T0 + 3600; t += 60)
        assert_int_equal(scheduler_plan(&e, NULL, T0 + 3600, t).fire, -1);
    assert_int_equal(scheduler_plan(&e, NULL, T0 + 3600, T0 + 4200).fire, T0 + 4200);
}

/* Europe/Berlin, 30 2 * * * over the spring-forward night (2025-03-30, 02:00 -> 03:00): the
 * day still fires once, at 03:00 CEST (01:00Z), and the fall-back night (2025-10-26) fires
 * once, at the first 02:30 (00:30Z). */
static void test_dst_zone(void **state)
{
    (void)state;
    cron_tz_t tz;
    char err[256];
    if (!cron_tz_load(&tz, "Europe/Berlin", err, sizeof err))
        skip();
    cron_expr_t e = parse("30 2 * * *");
    int64_t spring_eve = 1743282000; /* 2025-03-29T21:00:00Z */
    scheduler_step_t st = scheduler_plan(&e, &tz, spring_eve, spring_eve + 6 * 3600);
    assert_int_equal(st.fire, 1743296400); /* 2025-03-30T01:00:00Z */
    int64_t fall_eve = 1761426000;         /* 2025-10-25T21:00:00Z */
    st = scheduler_plan(&e, &tz, fall_eve, fall_eve + 6 * 3600);
    assert_int_equal(st.fire, 1761438600); /* 2025-10-26T00:30:00Z */
    assert_int_equal(scheduler_plan(&e, &tz, st.covered, fall_eve + 7 * 3600).fire, -1);
    cron_tz_free(&tz);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_due),       cmocka_unit_test(test_due_exactly),
        cmocka_unit_test(test_catch_up_once), cmocka_unit_test(test_jump_forward),
        cmocka_unit_test(test_jump_backward), cmocka_unit_test(test_dst_zone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
