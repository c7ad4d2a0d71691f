/* scheduler.c — the cron timer of `eltd serve`: plans each wake-up from the wall clock and
 * the covered instant (scheduler_plan), fires at most once per wake-up, and re-reads the
 * clock at least every SCHEDULER_MAX_WAIT_MS so that a jump of the clock is noticed. */
#include "scheduler.h"

#include "log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

/* A cap on the walk over missed fires: "* * * * *" down for two years is ~1M fires. Past
 * it the latest fire found is used; it only matters for what `covered` records. */
#define SCHEDULER_MAX_WALK 2000000

int64_t scheduler_wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

scheduler_step_t scheduler_plan(const cron_expr_t *e, const cron_tz_t *tz, int64_t covered,
                                int64_t now)
{
    scheduler_step_t st = {.fire = -1, .covered = covered, .next = -1};
    int64_t due = cron_next(e, tz, covered);
    if (due < 0)
        return st;
    if (due > now) {
        st.next = due;
        return st;
    }
    int64_t latest = due;
    for (long i = 0; i < SCHEDULER_MAX_WALK; i++) {
        int64_t n = cron_next(e, tz, latest);
        if (n < 0 || n > now)
            break;
        latest = n;
    }
    st.fire = latest;
    st.covered = latest;
    st.next = cron_next(e, tz, now > latest ? now : latest);
    return st;
}

bool scheduler_init(scheduler_t *s, uv_loop_t *loop, const char *cron_text, const char *zone,
                    char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->next = -1;
    s->last_fire = -1;
    s->clock = scheduler_wall_ms;
    char why[256];
    if (!cron_parse(&s->expr, cron_text, why, sizeof why)) {
        snprintf(err, errlen, "schedule.cron: %s", why);
        return false;
    }
    if (!cron_tz_load(&s->tz, zone && *zone ? zone : "UTC", why, sizeof why)) {
        snprintf(err, errlen, "schedule.timezone: %s", why);
        return false;
    }
    snprintf(s->text, sizeof s->text, "%s", cron_text);
    cron_format(&s->expr, s->normalized, sizeof s->normalized);
    int rc = uv_timer_init(loop, &s->timer);
    if (rc != 0) {
        cron_tz_free(&s->tz);
        snprintf(err, errlen, "scheduler timer: %s", uv_strerror(rc));
        return false;
    }
    s->timer.data = s;
    s->timer_open = true;
    return true;
}

static void on_timer(uv_timer_t *t);

static void arm(scheduler_t *s, int64_t now_ms)
{
    if (s->on_next)
        s->on_next(s, s->next, s->ud);
    if (s->next < 0) {
        uv_timer_stop(&s->timer);
        log_warn("event=schedule_never cron=%s", log_quote(s->text));
        return;
    }
    int64_t wait = s->next * 1000 - now_ms;
    if (wait < 0)
        wait = 0;
    if (wait > SCHEDULER_MAX_WAIT_MS)
        wait = SCHEDULER_MAX_WAIT_MS;
    uv_timer_start(&s->timer, on_timer, (uint64_t)wait, 0);
}

/* One planning step at the current wall clock; run decides whether a due fire runs. */
static void step(scheduler_t *s, bool run)
{
    int64_t now_ms = s->clock();
    scheduler_step_t st = scheduler_plan(&s->expr, &s->tz, s->covered, now_ms / 1000);
    s->covered = st.covered;
    s->next = st.next;
    if (st.fire >= 0) {
        s->last_fire = st.fire;
        s->on_fire(s, st.fire, run, st.covered, s->ud);
    }
    /* Re-armed even when nothing changed: the wait is capped, see SCHEDULER_MAX_WAIT_MS. */
    arm(s, now_ms);
}

static void on_timer(uv_timer_t *t)
{
    step(t->data, true);
}

void scheduler_start(scheduler_t *s, int64_t covered, bool catch_up, scheduler_fire_cb on_fire,
                     scheduler_next_cb on_next, void *ud)
{
    s->on_fire = on_fire;
    s->on_next = on_next;
    s->ud = ud;
    int64_t now_ms = s->clock();
    s->covered = covered > 0 ? covered : now_ms / 1000;
    if (covered > now_ms / 1000)
        log_warn("event=schedule_clock_behind covered=%lld now=%lld", (long long)covered,
                 (long long)(now_ms / 1000));
    step(s, catch_up);
}

static void on_timer_closed(uv_handle_t *h)
{
    scheduler_t *s = h->data;
    cron_tz_free(&s->tz);
    if (s->closed)
        s->closed(s->closed_ud);
}

void scheduler_close(scheduler_t *s, void (*closed)(void *ud), void *ud)
{
    if (!s->timer_open) {
        if (closed)
            closed(ud);
        return;
    }
    s->timer_open = false;
    s->closed = closed;
    s->closed_ud = ud;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}
