/* dag.h — the one engine every run goes through: tasks with dependencies, a ready queue,
 * a parallelism limit per kind, retries with delay (optionally backed off) on a timer, a
 * timeout per attempt, cancellation, and one final state per task. What a task does is
 * behind dag_task_ops_t; the engine knows nothing of PostgreSQL or ClickHouse. */
#ifndef ELTD_DAG_H
#define ELTD_DAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef enum {
    TASK_PENDING,         /* waiting for its inputs or a free slot */
    TASK_RUNNING,         /* an attempt is in flight */
    TASK_RETRY_WAIT,      /* failed, next attempt armed on the timer */
    TASK_SUCCESS,
    TASK_FAILED,
    TASK_UPSTREAM_FAILED, /* an input failed: never started */
    TASK_SKIPPED,
    TASK_CANCELLED,
} dag_state_t;

typedef enum { TASK_KIND_SETUP, TASK_KIND_LOAD, TASK_KIND_MODEL, TASK_KIND_TEST, TASK_KIND_N } dag_kind_t;

typedef struct dag dag_t;
typedef struct dag_task dag_task_t;

typedef struct dag_task_ops {
    /* Starts one attempt. The task must later call dag_task_finish exactly once. */
    void (*start)(dag_task_t *t);
    /* Asks a running attempt to stop (cancel or timeout); it still calls dag_task_finish. */
    void (*cancel)(dag_task_t *t);
    /* Frees impl when the DAG is freed. May be NULL. */
    void (*destroy)(dag_task_t *t);
} dag_task_ops_t;

struct dag_task {
    char *name;                /* "load:orders", "model:fact_sales", ... */
    dag_kind_t kind;
    dag_state_t state;
    int attempt;               /* 1-based number of the current or last attempt */
    int max_attempts;          /* 1 + retries */
    size_t *deps;              /* indices of the tasks this one needs */
    size_t ndeps;
    double started_at;         /* wall clock (unix seconds) of the first attempt, 0 = never */
    double finished_at;        /* wall clock of the final state, 0 = not final */
    uint64_t attempt_start_ms; /* uv_now at the start of the current attempt */
    int64_t rows;              /* rows moved by the last attempt */
    int64_t bytes;             /* bytes moved by the last attempt */
    int64_t failures;          /* failing rows (tests) */
    bool warn;                 /* finished successfully with a warning */
    bool timed_out;            /* the current attempt hit the timeout */
    char error[1024];          /* reason of the last failure, shown by logs and the API */
    const dag_task_ops_t *ops;
    void *impl;                /* the task's own state */
    dag_t *dag;
    size_t index;
    uv_timer_t timer;          /* retry delay and attempt timeout */
};

typedef struct dag_opts {
    int retries;
    double retry_delay;     /* seconds */
    bool retry_backoff;
    double max_retry_delay; /* seconds */
    double task_timeout;    /* seconds, 0 = none */
    int limit[TASK_KIND_N]; /* running tasks per kind at once; 0 = unlimited */
} dag_opts_t;

/* State change of one task (for logs, metrics, journal). */
typedef void (*dag_event_cb)(dag_t *d, dag_task_t *t, void *ud);
/* Every task is final. */
typedef void (*dag_done_cb)(dag_t *d, void *ud);

struct dag {
    uv_loop_t *loop;
    dag_opts_t opts;
    dag_task_t **tasks;
    size_t ntasks, cap;
    int running[TASK_KIND_N];
    size_t nfinal;
    bool started, cancelling, done, pumping, pump_again;
    uv_timer_t kick;  /* runs the first pass from the loop */
    int open_handles; /* timers not yet closed */
    dag_event_cb on_event;
    dag_done_cb on_done;
    void *ud;
    void (*on_freed)(void *ud);
    void *freed_ud;
};

dag_t *dag_new(uv_loop_t *loop, const dag_opts_t *opts);
/* Adds a task; returns it or NULL. Task retries override opts when retries >= 0. */
dag_task_t *dag_add(dag_t *d, const char *name, dag_kind_t kind, const dag_task_ops_t *ops,
                    void *impl, int retries);
__attribute__((warn_unused_result)) bool dag_depend(dag_t *d, dag_task_t *t, dag_task_t *on);
dag_task_t *dag_find(dag_t *d, const char *name);

/* Checks for cycles (message names the path) and starts every ready task. on_done is
 * called once every task is final (from a callback, never inside dag_start). */
__attribute__((warn_unused_result)) bool dag_start(dag_t *d, dag_event_cb on_event,
                                                   dag_done_cb on_done, void *ud, char *err,
                                                   size_t errlen);

/* Called by a task's ops when its attempt ends. err NULL = success. */
void dag_task_finish(dag_task_t *t, bool ok, const char *err);

/* Stops the run: pending and waiting tasks become cancelled, running ones are asked to
 * stop and end cancelled. on_done follows. */
void dag_cancel(dag_t *d);

/* Frees the DAG after closing its timers; freed(ud) is called when done. Only after
 * on_done (or before dag_start). */
void dag_free(dag_t *d, void (*freed)(void *ud), void *ud);

const char *dag_state_name(dag_state_t s);
const char *dag_kind_name(dag_kind_t k);
bool dag_state_final(dag_state_t s);
/* Tasks in a dependency-respecting order (for `eltd plan`); NULL on cycle. */
size_t *dag_topo_order(dag_t *d, char *err, size_t errlen);

#endif
