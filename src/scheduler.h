/* scheduler.h — the cron schedule of `eltd serve`: one uv_timer_t armed for the next fire,
 * catch-up of a fire missed while the service was down (once, never once per missed
 * interval), and wall-clock jumps. The decision itself is scheduler_plan, a pure function.
 *
 * What is remembered is `covered`: every fire at or before that instant has been handled
 * (run or deliberately skipped). The owner persists it at each change and hands it back at
 * the next start. A clock that jumps forward over several fires yields one fire; a clock
 * that jumps backward never yields a fire at or before `covered` again. */
#ifndef ELTD_SCHEDULER_H
#define ELTD_SCHEDULER_H

#include "cron.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* The longest single wait of the timer: the wall clock is looked at again at least this
 * often, which is how a jump of the clock is noticed. */
#define SCHEDULER_MAX_WAIT_MS 30000

/* What to do at wall-clock instant `now` given `covered`. */
typedef struct scheduler_step {
    int64_t fire;    /* the fire to run now (the latest one due), or -1 when none is due */
    int64_t covered; /* covered after this step */
    int64_t next;    /* the next fire strictly after both now and covered, -1 = never */
} scheduler_step_t;

/* Pure: every fire in (covered, now] collapses into one, the latest. */
scheduler_step_t scheduler_plan(const cron_expr_t *e, const cron_tz_t *tz, int64_t covered,
                                int64_t now);

typedef struct scheduler scheduler_t;

/* A fire was handled: run is false for a catch-up fire skipped because catch_up is off.
 * covered is the value to persist. */
typedef void (*scheduler_fire_cb)(scheduler_t *s, int64_t fire, bool run, int64_t covered,
                                  void *ud);
/* The next fire changed (for /status and eltd_next_run_timestamp_seconds). */
typedef void (*scheduler_next_cb)(scheduler_t *s, int64_t next, void *ud);

struct scheduler {
    uv_timer_t timer;          /* armed for min(next fire, SCHEDULER_MAX_WAIT_MS) */
    cron_expr_t expr;          /* the parsed expression */
    cron_tz_t tz;              /* the zone the expression is read in */
    char text[128];            /* the expression as configured */
    char normalized[128];      /* cron_format of expr */
    int64_t covered;           /* see the top of this file */
    int64_t next;              /* the armed fire (unix seconds), -1 = never */
    int64_t last_fire;         /* the last fire handled since start, -1 = none */
    scheduler_fire_cb on_fire; /* called for each fire (and skipped catch-up) */
    scheduler_next_cb on_next; /* may be NULL */
    void *ud;                  /* for both callbacks */
    int64_t (*clock)(void);    /* wall clock in ms; tests may replace it */
    bool timer_open;           /* timer initialised and not yet closed */
    void (*closed)(void *ud);  /* scheduler_close's callback */
    void *closed_ud;
};

/* Parses the expression and loads the zone; arms nothing. On failure nothing needs
 * closing and err holds the reason. */
bool scheduler_init(scheduler_t *s, uv_loop_t *loop, const char *cron_text, const char *zone,
                    char *err, size_t errlen) __attribute__((warn_unused_result));

/* Starts from a persisted covered (0 = none known: the schedule starts now, nothing is
 * caught up). A fire missed since then is handled at once: run when catch_up, else
 * reported with run = false. */
void scheduler_start(scheduler_t *s, int64_t covered, bool catch_up, scheduler_fire_cb on_fire,
                     scheduler_next_cb on_next, void *ud);

/* Stops the timer and closes it; closed (may be NULL) runs when it is closed. */
void scheduler_close(scheduler_t *s, void (*closed)(void *ud), void *ud);

/* Wall-clock milliseconds since the epoch. */
int64_t scheduler_wall_ms(void);

#endif
