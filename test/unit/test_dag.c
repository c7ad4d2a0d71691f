/* test_dag.c — dag.c on a real libuv loop with fake task ops that finish synchronously or
 * later from their own timer: dependency order, per-kind parallelism (measured), failure
 * propagation, retries with delay and capped backoff, timeouts, cancellation, cycles, and a
 * leak-free teardown (on_done once, freed callback, uv_loop_close == 0). */
#include "dag.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MAX_ATTEMPTS 16
#define MAX_EVENTS   64

typedef struct ctx ctx_t;

typedef enum {
    CANCEL_SYNC,  /* the cancel op finishes the attempt at once */
    CANCEL_LATER, /* ... after 1 ms from the fake's timer */
    CANCEL_IGNORE /* the cancel op does nothing (the attempt runs to its end) */
} cancel_mode_t;

typedef struct fake {
    ctx_t *ctx;
    dag_task_t *task;
    uint64_t delay_ms; /* 0: finish inside start */
    int fail_first;    /* the first fail_first attempts fail */
    bool hang;         /* never finish on its own (only a cancel ends it) */
    cancel_mode_t cancel_mode;
    uv_timer_t timer; /* finishes later attempts and later cancels */
    bool pending_ok;
    bool in_flight;
    int starts, cancels, finishes;
    int start_seq[MAX_ATTEMPTS];
    uint64_t start_ms[MAX_ATTEMPTS];
    uint64_t finish_ms[MAX_ATTEMPTS];
    int finish_seq;                        /* of the last finish */
    uint64_t cancel_ms;                    /* of the last cancel */
    uint64_t due_after_fail[MAX_ATTEMPTS]; /* the task timer's due-in right after a failure */
    dag_state_t events[MAX_EVENTS];
    int nevents, finals;
} fake_t;

struct ctx {
    uv_loop_t loop;
    dag_t *d;
    dag_opts_t opts;
    int done_calls, freed_calls, destroyed, nfakes;
    bool done_inside_start; /* on_done was called while dag_start ran */
    bool in_start;
    bool free_in_done; /* dag_free from inside on_done */
    int running[TASK_KIND_N], max_running[TASK_KIND_N];
    int seq;
    uint64_t done_ms;
};

static void finish(fake_t *f, bool ok)
{
    ctx_t *c = f->ctx;
    char msg[64];
    snprintf(msg, sizeof msg, "boom %d", f->starts);
    f->in_flight = false;
    f->finishes++;
    f->finish_seq = ++c->seq;
    f->finish_ms[f->starts - 1] = uv_now(&c->loop);
    c->running[f->task->kind]--;
    dag_task_t *t = f->task;
    dag_task_finish(t, ok, ok ? NULL : msg);
    /* The task is alive until dag_free's close callbacks: its timer can be inspected. */
    if (!ok && t->state == TASK_RETRY_WAIT)
        f->due_after_fail[f->starts - 1] = uv_timer_get_due_in(&t->timer);
}

static void on_fake_timer(uv_timer_t *h)
{
    fake_t *f = h->data;
    finish(f, f->pending_ok);
}

static void fake_start(dag_task_t *t)
{
    fake_t *f = t->impl;
    ctx_t *c = f->ctx;
    assert_false(f->in_flight);
    assert_true(f->starts < MAX_ATTEMPTS);
    assert_int_equal(t->state, TASK_RUNNING);
    f->in_flight = true;
    f->starts++;
    assert_int_equal(t->attempt, f->starts);
    f->start_seq[f->starts - 1] = ++c->seq;
    f->start_ms[f->starts - 1] = uv_now(&c->loop);
    int k = t->kind;
    c->running[k]++;
    if (c->running[k] > c->max_running[k])
        c->max_running[k] = c->running[k];
    /* Measured by the ops themselves, not only by the engine's own counter. */
    if (c->opts.limit[k] > 0)
        assert_true(c->running[k] <= c->opts.limit[k]);
    assert_int_equal(c->d->running[k], c->running[k]);
    bool ok = f->starts > f->fail_first;
    if (f->hang)
        return;
    if (f->delay_ms == 0) {
        finish(f, ok);
        return;
    }
    f->pending_ok = ok;
    uv_timer_start(&f->timer, on_fake_timer, f->delay_ms, 0);
}

static void fake_cancel(dag_task_t *t)
{
    fake_t *f = t->impl;
    assert_true(f->in_flight);
    f->cancels++;
    f->cancel_ms = uv_now(&f->ctx->loop);
    switch (f->cancel_mode) {
    case CANCEL_SYNC:
        uv_timer_stop(&f->timer);
        finish(f, false);
        break;
    case CANCEL_LATER:
        f->pending_ok = false;
        uv_timer_start(&f->timer, on_fake_timer, 1, 0);
        break;
    case CANCEL_IGNORE:
        break;
    }
}

static void on_fake_closed(uv_handle_t *h)
{
    fake_t *f = h->data;
    f->ctx->destroyed++;
    free(f);
}

static void fake_destroy(dag_task_t *t)
{
    fake_t *f = t->impl;
    uv_close((uv_handle_t *)&f->timer, on_fake_closed);
}

static const dag_task_ops_t fake_ops = {fake_start, fake_cancel, fake_destroy};

static void on_event(dag_t *d, dag_task_t *t, void *ud)
{
    ctx_t *c = ud;
    fake_t *f = t->impl;
    assert_ptr_equal(d, c->d);
    assert_true(f->nevents < MAX_EVENTS);
    assert_int_equal(f->finals, 0); /* nothing after the final state */
    f->events[f->nevents++] = t->state;
    if (dag_state_final(t->state)) {
        f->finals++;
        assert_true(t->finished_at > 0);
    }
    for (int k = 0; k < TASK_KIND_N; k++)
        if (c->opts.limit[k] > 0)
            assert_true(d->running[k] <= c->opts.limit[k]);
}

static void on_freed(void *ud)
{
    ctx_t *c = ud;
    c->freed_calls++;
}

static void on_done(dag_t *d, void *ud)
{
    ctx_t *c = ud;
    assert_ptr_equal(d, c->d);
    c->done_calls++;
    c->done_ms = uv_now(&c->loop);
    if (c->in_start)
        c->done_inside_start = true;
    assert_true(d->done);
    for (size_t i = 0; i < d->ntasks; i++)
        assert_true(dag_state_final(d->tasks[i]->state));
    if (c->free_in_done)
        dag_free(d, on_freed, c);
}

static void ctx_init(ctx_t *c, const dag_opts_t *opts)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(uv_loop_init(&c->loop), 0);
    c->opts = *opts;
    c->d = dag_new(&c->loop, opts);
    assert_non_null(c->d);
}

static fake_t *add(ctx_t *c, const char *name, dag_kind_t kind, int retries)
{
    fake_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->ctx = c;
    assert_int_equal(uv_timer_init(&c->loop, &f->timer), 0);
    f->timer.data = f;
    f->task = dag_add(c->d, name, kind, &fake_ops, f, retries);
    assert_non_null(f->task);
    assert_ptr_equal(dag_find(c->d, name), f->task);
    c->nfakes++;
    return f;
}

static void dep(ctx_t *c, fake_t *t, fake_t *on)
{
    assert_true(dag_depend(c->d, t->task, on->task));
}

/* Starts the DAG and runs the loop until it is idle; on_done must have been called once. */
static void run(ctx_t *c)
{
    char err[256] = "";
    c->in_start = true;
    bool ok = dag_start(c->d, on_event, on_done, c, err, sizeof err);
    c->in_start = false;
    if (!ok)
        print_error("dag_start: %s\n", err);
    assert_true(ok);
    assert_int_equal(c->done_calls, 0); /* never inside dag_start */
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_int_equal(c->done_calls, 1);
    assert_false(c->done_inside_start);
}

/* Frees the DAG (unless on_done did) and checks that everything was released. */
static void teardown(ctx_t *c)
{
    if (!c->free_in_done)
        dag_free(c->d, on_freed, c);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_int_equal(c->freed_calls, 1);
    assert_int_equal(c->destroyed, c->nfakes);
    assert_int_equal(uv_loop_close(&c->loop), 0);
}

static void expect_final(fake_t *f, dag_state_t want)
{
    if (f->task->state != want)
        print_error("%s: %s, want %s (error '%s')\n", f->task->name, dag_state_name(f->task->state),
                    dag_state_name(want), f->task->error);
    assert_int_equal(f->task->state, want);
    assert_int_equal(f->finals, 1);
    assert_int_equal(f->events[f->nevents - 1], want);
}

/* Every start of t came after every dependency's (last) finish. */
static void expect_after(fake_t *t, fake_t *on)
{
    assert_true(t->starts > 0);
    assert_true(on->finishes > 0);
    assert_true(t->start_seq[0] > on->finish_seq);
}

static const dag_opts_t no_retries = {.retries = 0, .retry_delay = 0.01};

static void test_empty(void **state)
{
    (void)state;
    ctx_t c;
    ctx_init(&c, &no_retries);
    run(&c);
    teardown(&c);
}

static void test_free_before_start(void **state)
{
    (void)state;
    ctx_t c;
    ctx_init(&c, &no_retries);
    fake_t *a = add(&c, "a", TASK_KIND_LOAD, -1);
    fake_t *b = add(&c, "b", TASK_KIND_MODEL, -1);
    dep(&c, b, a);
    assert_int_equal(a->starts + b->starts, 0);
    teardown(&c);
    assert_int_equal(c.done_calls, 0);
}

static void test_dependency_order(void **state)
{
    (void)state;
    ctx_t c;
    ctx_init(&c, &no_retries);
    /* Added in reverse so that index order is not dependency order. */
    fake_t *t = add(&c, "test:agg.not_null", TASK_KIND_TEST, -1);
    fake_t *agg = add(&c, "model:agg", TASK_KIND_MODEL, -1);
    fake_t *fact = add(&c, "model:fact", TASK_KIND_MODEL, -1);
    fake_t *stg_c = add(&c, "model:stg_customers", TASK_KIND_MODEL, -1);
    fake_t *stg_o = add(&c, "model:stg_orders", TASK_KIND_MODEL, -1);
    fake_t *lc = add(&c, "load:customers", TASK_KIND_LOAD, -1);
    fake_t *lo = add(&c, "load:orders", TASK_KIND_LOAD, -1);
    fake_t *setup = add(&c, "ensure_databases", TASK_KIND_SETUP, -1);
    setup->delay_ms = 5;
    lc->delay_ms = 5;
    lo->delay_ms = 60; /* slow: stg_customers must not wait for it */
    stg_o->delay_ms = 0;
    fact->delay_ms = 3;
    dep(&c, lc, setup);
    dep(&c, lo, setup);
    dep(&c, stg_c, lc);
    dep(&c, stg_o, lo);
    dep(&c, fact, stg_c);
    dep(&c, fact, stg_o);
    dep(&c, fact, stg_o); /* a duplicate edge is kept once */
    assert_int_equal(fact->task->ndeps, 2);
    dep(&c, agg, fact);
    dep(&c, t, agg);

    char err[128];
    size_t *order = dag_topo_order(c.d, err, sizeof err);
    assert_non_null(order);
    size_t pos[16];
    for (size_t i = 0; i < c.d->ntasks; i++)
        pos[order[i]] = i;
    for (size_t i = 0; i < c.d->ntasks; i++)
        for (size_t k = 0; k < c.d->tasks[i]->ndeps; k++)
            assert_true(pos[c.d->tasks[i]->deps[k]] < pos[i]);
    free(order);

    run(&c);
    fake_t *all[] = {t, agg, fact, stg_c, stg_o, lc, lo, setup};
    for (size_t i = 0; i < 8; i++) {
        expect_final(all[i], TASK_SUCCESS);
        assert_int_equal(all[i]->starts, 1);
        assert_int_equal(all[i]->task->attempt, 1);
        assert_true(all[i]->task->started_at > 0);
        assert_true(all[i]->task->finished_at >= all[i]->task->started_at);
        assert_string_equal(all[i]->task->error, "");
        /* pending? -> running -> success */
        assert_int_equal(all[i]->events[0], TASK_RUNNING);
        assert_int_equal(all[i]->nevents, 2);
    }
    expect_after(lc, setup);
    expect_after(lo, setup);
    expect_after(stg_c, lc);
    expect_after(stg_o, lo);
    expect_after(fact, stg_c);
    expect_after(fact, stg_o);
    expect_after(agg, fact);
    expect_after(t, agg);
    /* A model starts as soon as its own inputs are done, not when every load is. */
    assert_true(stg_c->start_seq[0] < lo->finish_seq);
    teardown(&c);
}

static void test_parallelism(void **state)
{
    (void)state;
    dag_opts_t o = no_retries;
    o.limit[TASK_KIND_LOAD] = 3;
    o.limit[TASK_KIND_MODEL] = 2;
    o.limit[TASK_KIND_TEST] = 0; /* unlimited */
    ctx_t c;
    ctx_init(&c, &o);
    fake_t *loads[10], *models[6], *tests[5];
    char name[32];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof name, "load:%d", i);
        loads[i] = add(&c, name, TASK_KIND_LOAD, -1);
        loads[i]->delay_ms = 5 + (uint64_t)(i % 3) * 3;
    }
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof name, "model:%d", i);
        models[i] = add(&c, name, TASK_KIND_MODEL, -1);
        models[i]->delay_ms = 4;
    }
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "test:%d", i);
        tests[i] = add(&c, name, TASK_KIND_TEST, -1);
        tests[i]->delay_ms = 10;
    }
    /* Synchronous finishers share the limit too. */
    fake_t *sync_loads[4];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "load:sync%d", i);
        sync_loads[i] = add(&c, name, TASK_KIND_LOAD, -1);
    }
    run(&c);
    for (int i = 0; i < 10; i++)
        expect_final(loads[i], TASK_SUCCESS);
    for (int i = 0; i < 6; i++)
        expect_final(models[i], TASK_SUCCESS);
    for (int i = 0; i < 5; i++)
        expect_final(tests[i], TASK_SUCCESS);
    for (int i = 0; i < 4; i++)
        expect_final(sync_loads[i], TASK_SUCCESS);
    assert_int_equal(c.max_running[TASK_KIND_LOAD], 3);
    assert_int_equal(c.max_running[TASK_KIND_MODEL], 2);
    assert_int_equal(c.max_running[TASK_KIND_TEST], 5);
    for (int k = 0; k < TASK_KIND_N; k++) {
        assert_int_equal(c.running[k], 0);
        assert_int_equal(c.d->running[k], 0);
    }
    teardown(&c);
}

static void test_limit_one_serialises(void **state)
{
    (void)state;
    dag_opts_t o = no_retries;
    o.limit[TASK_KIND_MODEL] = 1;
    ctx_t c;
    ctx_init(&c, &o);
    fake_t *m[5];
    char name[16];
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "m%d", i);
        m[i] = add(&c, name, TASK_KIND_MODEL, -1);
        m[i]->delay_ms = (uint64_t)(i % 2) * 3;
    }
    run(&c);
    assert_int_equal(c.max_running[TASK_KIND_MODEL], 1);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++)
            if (i != j)
                assert_true(m[i]->start_seq[0] > m[j]->finish_seq ||
                            m[j]->start_seq[0] > m[i]->finish_seq);
    teardown(&c);
}

static void test_failure_propagation(void **state)
{
    (void)state;
    ctx_t c;
    ctx_init(&c, &no_retries);
    fake_t *setup = add(&c, "ensure_databases", TASK_KIND_SETUP, -1);
    fake_t *la = add(&c, "load:a", TASK_KIND_LOAD, -1);
    fake_t *lb = add(&c, "load:b", TASK_KIND_LOAD, -1);
    fake_t *ma = add(&c, "model:ma", TASK_KIND_MODEL, -1);
    fake_t *mab = add(&c, "model:mab", TASK_KIND_MODEL, -1);
    fake_t *ta = add(&c, "test:ma.unique", TASK_KIND_TEST, -1);
    fake_t *mb = add(&c, "model:mb", TASK_KIND_MODEL, -1);
    fake_t *tb = add(&c, "test:mb.unique", TASK_KIND_TEST, -1);
    la->delay_ms = 5;
    la->fail_first = 100;
    lb->delay_ms = 30; /* still running when load:a fails */
    mb->delay_ms = 2;
    dep(&c, la, setup);
    dep(&c, lb, setup);
    dep(&c, ma, la);
    dep(&c, mab, la);
    dep(&c, mab, lb);
    dep(&c, ta, ma);
    dep(&c, mb, lb);
    dep(&c, tb, mb);
    run(&c);
    expect_final(setup, TASK_SUCCESS);
    expect_final(la, TASK_FAILED);
    assert_string_equal(la->task->error, "boom 1");
    assert_int_equal(la->starts, 1);
    expect_final(ma, TASK_UPSTREAM_FAILED);
    assert_string_equal(ma->task->error, "upstream load:a failed");
    expect_final(mab, TASK_UPSTREAM_FAILED);
    expect_final(ta, TASK_UPSTREAM_FAILED);
    assert_string_equal(ta->task->error, "upstream model:ma upstream_failed");
    fake_t *never[] = {ma, mab, ta};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(never[i]->starts, 0);
        assert_int_equal(never[i]->task->attempt, 0);
        assert_true(never[i]->task->started_at == 0);
        assert_int_equal(never[i]->nevents, 1);
    }
    /* The independent branch goes on, and finishes after the failure. */
    expect_final(lb, TASK_SUCCESS);
    expect_final(mb, TASK_SUCCESS);
    expect_final(tb, TASK_SUCCESS);
    assert_true(lb->finish_seq > la->finish_seq);
    teardown(&c);
}

static void test_sync_failure_propagation(void **state)
{
    (void)state;
    ctx_t c;
    ctx_init(&c, &no_retries);
    c.free_in_done = true;
    fake_t *a = add(&c, "a", TASK_KIND_LOAD, -1);
    fake_t *b = add(&c, "b", TASK_KIND_MODEL, -1);
    fake_t *x = add(&c, "x", TASK_KIND_LOAD, -1);
    a->fail_first = 1;
    dep(&c, b, a);
    (void)x;
    run(&c);
    /* on_done freed the DAG; the same uv_run already closed every handle. */
    assert_int_equal(c.freed_calls, 1);
    assert_int_equal(c.destroyed, 3);
    teardown(&c);
}

static void test_retries(void **state)
{
    (void)state;
    dag_opts_t o = no_retries;
    o.retries = 2;
    o.retry_delay = 0.02;
    ctx_t c;
    ctx_init(&c, &o);
    fake_t *flaky = add(&c, "load:flaky", TASK_KIND_LOAD, -1);   /* fails twice, then ok */
    fake_t *bad = add(&c, "load:bad", TASK_KIND_LOAD, -1);       /* always fails */
    fake_t *once = add(&c, "load:once", TASK_KIND_LOAD, 0);      /* override: no retry */
    fake_t *more = add(&c, "model:more", TASK_KIND_MODEL, 4);    /* override: 4 retries */
    fake_t *after = add(&c, "model:after", TASK_KIND_MODEL, -1); /* needs flaky */
    flaky->fail_first = 2;
    flaky->delay_ms = 3;
    bad->fail_first = 100;
    once->fail_first = 1;
    more->fail_first = 4;
    dep(&c, after, flaky);
    assert_int_equal(flaky->task->max_attempts, 3);
    assert_int_equal(once->task->max_attempts, 1);
    assert_int_equal(more->task->max_attempts, 5);
    run(&c);

    expect_final(flaky, TASK_SUCCESS);
    assert_int_equal(flaky->starts, 3);
    assert_int_equal(flaky->task->attempt, 3);
    assert_string_equal(flaky->task->error, ""); /* cleared by the successful attempt */
    /* running, up_for_retry, running, up_for_retry, running, success */
    static const dag_state_t want[] = {TASK_RUNNING,    TASK_RETRY_WAIT, TASK_RUNNING,
                                       TASK_RETRY_WAIT, TASK_RUNNING,    TASK_SUCCESS};
    assert_int_equal(flaky->nevents, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(flaky->events[i], want[i]);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(flaky->due_after_fail[i - 1], 20);
        assert_true(flaky->start_ms[i] - flaky->finish_ms[i - 1] >= 20);
    }
    expect_after(after, flaky);
    expect_final(after, TASK_SUCCESS);

    expect_final(bad, TASK_FAILED);
    assert_int_equal(bad->starts, 3);
    assert_int_equal(bad->task->attempt, 3);
    assert_string_equal(bad->task->error, "boom 3");

    expect_final(once, TASK_FAILED);
    assert_int_equal(once->starts, 1);

    expect_final(more, TASK_SUCCESS);
    assert_int_equal(more->starts, 5);
    for (int i = 1; i < 5; i++)
        assert_true(more->start_ms[i] - more->finish_ms[i - 1] >= 20);
    teardown(&c);
}

static void test_backoff(void **state)
{
    (void)state;
    dag_opts_t o = no_retries;
    o.retries = 5;
    o.retry_delay = 0.02;
    o.retry_backoff = true;
    o.max_retry_delay = 0.07;
    ctx_t c;
    ctx_init(&c, &o);
    fake_t *f = add(&c, "load:backoff", TASK_KIND_LOAD, -1);
    f->fail_first = 100;
    f->delay_ms = 1;
    run(&c);
    expect_final(f, TASK_FAILED);
    assert_int_equal(f->starts, 6);
    /* 20, 40, then 80 and 160 capped at 70 ms. */
    static const uint64_t want[] = {20, 40, 70, 70, 70};
    for (int i = 0; i < 5; i++) {
        if (f->due_after_fail[i] != want[i])
            print_error("retry %d: due in %llu ms, want %llu\n", i + 1,
                        (unsigned long long)f->due_after_fail[i], (unsigned long long)want[i]);
        assert_int_equal(f->due_after_fail[i], want[i]);
        assert_true(f->start_ms[i + 1] - f->finish_ms[i] >= want[i]);
    }
    teardown(&c);

    /* Without backoff the delay stays flat; max_retry_delay also caps a plain delay. */
    o.retry_backoff = false;
    o.retries = 2;
    o.retry_delay = 0.03;
    o.max_retry_delay = 0.01;
    ctx_init(&c, &o);
    f = add(&c, "load:flat", TASK_KIND_LOAD, -1);
    f->fail_first = 100;
    run(&c);
    assert_int_equal(f->due_after_fail[0], 10);
    assert_int_equal(f->due_after_fail[1], 10);
    teardown(&c);

    /* Seconds become whole milliseconds by rounding: 0.29 s is 290 ms, not 289. */
    o.retries = 1;
    o.retry_delay = 0.29;
    o.max_retry_delay = 0;
    ctx_init(&c, &o);
    f = add(&c, "load:rounding", TASK_KIND_LOAD, -1);
    f->fail_first = 100;
    run(&c);
    assert_int_equal(f->due_after_fail[0], 290);
    teardown(&c);
}

static void test_timeout(void **state)
{
    (void)state;
    dag_opts_t o = no_retries;
    o.retries = 1;
    o.retry_delay = 0.005;
    o.task_timeout = 0.03;
    ctx_t c;
    ctx_init(&c, &o);
    fake_t *stuck = add(&c, "load:stuck", TASK_KIND_LOAD, -1);   /* hangs every attempt */
    fake_t *fast = add(&c, "load:fast", TASK_KIND_LOAD, -1);     /* within the timeout */
    fake_t *later = add(&c, "model:later", TASK_KIND_MODEL, -1); /* cancel ends it later */
    fake_t *down = add(&c, "model:down", TASK_KIND_MODEL, -1);   /* needs stuck */
    stuck->hang = true;
    stuck->cancel_mode = CANCEL_SYNC;
    fast->delay_ms = 5;
    later->hang = true;
    later->cancel_mode = CANCEL_LATER;
    dep(&c, down, stuck);
    run(&c);

    expect_final(stuck, TASK_FAILED);
    assert_int_equal(stuck->starts, 2);
    assert_int_equal(stuck->cancels, 2);
    assert_true(stuck->task->timed_out);
    assert_non_null(strstr(stuck->task->error, "timed out"));
    assert_string_equal(stuck->task->error, "timed out after 0.03s: boom 2");
    for (int i = 0; i < 2; i++)
        assert_true(stuck->finish_ms[i] - stuck->start_ms[i] >= 30);
    expect_final(down, TASK_UPSTREAM_FAILED);

    expect_final(fast, TASK_SUCCESS);
    assert_int_equal(fast->cancels, 0);
    assert_false(fast->task->timed_out);

    expect_final(later, TASK_FAILED);
    assert_int_equal(later->cancels, 2);
    assert_true(strncmp(later->task->error, "timed out after 0.03s", 21) == 0);
    teardown(&c);
}

static void test_timeout_every_attempt(void **state)
{
    (void)state;
    dag_opts_t o = no_retries;
    o.retries = 2;
    o.retry_delay = 0.005;
    o.task_timeout = 0.025;
    ctx_t c;
    ctx_init(&c, &o);
    fake_t *f = add(&c, "load:slow_once", TASK_KIND_LOAD, -1);
    f->hang = true;
    f->cancel_mode = CANCEL_LATER;
    run(&c);
    /* Every attempt hangs: 3 attempts, 3 cancels. */
    expect_final(f, TASK_FAILED);
    assert_int_equal(f->starts, 3);
    assert_int_equal(f->cancels, 3);
    assert_int_equal(f->events[1], TASK_RETRY_WAIT);
    assert_string_equal(f->task->error, "timed out after 0.025s: boom 3");
    teardown(&c);
}

/* A task whose first attempt hangs and whose second attempt finishes: the fake's hang flag
 * is cleared from the event callback when the first retry is armed. */
static void on_event_unhang(dag_t *d, dag_task_t *t, void *ud)
{
    on_event(d, t, ud);
    fake_t *f = t->impl;
    if (t->state == TASK_RETRY_WAIT) {
        f->hang = false;
        f->delay_ms = 2;
    }
}

static void test_timeout_retry_succeeds(void **state)
{
    (void)state;
    dag_opts_t o = no_retries;
    o.retries = 1;
    o.retry_delay = 0.005;
    o.task_timeout = 0.025;
    ctx_t c;
    ctx_init(&c, &o);
    fake_t *f = add(&c, "load:recovers", TASK_KIND_LOAD, -1);
    f->hang = true;
    f->cancel_mode = CANCEL_SYNC;
    char err[64];
    assert_true(dag_start(c.d, on_event_unhang, on_done, &c, err, sizeof err));
    uv_run(&c.loop, UV_RUN_DEFAULT);
    assert_int_equal(c.done_calls, 1);
    expect_final(f, TASK_SUCCESS);
    assert_int_equal(f->starts, 2);
    assert_int_equal(f->cancels, 1);
    assert_false(f->task->timed_out);
    assert_string_equal(f->task->error, "");
    teardown(&c);
}

static void on_cancel_timer(uv_timer_t *h)
{
    ctx_t *c = h->data;
    dag_cancel(c->d);
    dag_cancel(c->d); /* twice is harmless */
    uv_close((uv_handle_t *)h, NULL);
}

static void test_cancel_running(void **state)
{
    (void)state;
    dag_opts_t o = no_retries;
    o.retries = 3;
    o.retry_delay = 10; /* a waiting retry must not hold the cancel up */
    o.limit[TASK_KIND_LOAD] = 2;
    ctx_t c;
    ctx_init(&c, &o);
    fake_t *setup = add(&c, "ensure_databases", TASK_KIND_SETUP, -1);
    fake_t *run_later = add(&c, "load:running_later", TASK_KIND_LOAD, -1);
    fake_t *run_sync = add(&c, "load:running_sync", TASK_KIND_LOAD, -1);
    fake_t *waiting = add(&c, "test:retry_wait", TASK_KIND_TEST, -1);
    fake_t *queued = add(&c, "load:no_slot", TASK_KIND_LOAD, -1);
    fake_t *model = add(&c, "model:m", TASK_KIND_MODEL, -1);
    run_later->hang = true;
    run_later->cancel_mode = CANCEL_LATER;
    run_sync->hang = true;
    run_sync->cancel_mode = CANCEL_SYNC;
    waiting->fail_first = 100;
    dep(&c, run_later, setup);
    dep(&c, run_sync, setup);
    dep(&c, waiting, setup);
    dep(&c, queued, setup);
    dep(&c, model, run_later);

    uv_timer_t cancel_timer;
    uv_timer_init(&c.loop, &cancel_timer);
    cancel_timer.data = &c;
    uv_timer_start(&cancel_timer, on_cancel_timer, 20, 0);
    uint64_t t0 = uv_now(&c.loop);
    run(&c);
    assert_true(c.done_ms - t0 < 1000);

    expect_final(setup, TASK_SUCCESS);
    expect_final(run_later, TASK_CANCELLED);
    assert_int_equal(run_later->cancels, 1);
    expect_final(run_sync, TASK_CANCELLED);
    assert_int_equal(run_sync->cancels, 1);
    expect_final(waiting, TASK_CANCELLED);
    assert_int_equal(waiting->starts, 1);
    assert_int_equal(waiting->cancels, 0);
    assert_string_equal(waiting->task->error, "cancelled");
    expect_final(queued, TASK_CANCELLED);
    assert_int_equal(queued->starts, 0);
    expect_final(model, TASK_CANCELLED);
    assert_int_equal(model->starts, 0);
    assert_int_equal(c.running[TASK_KIND_LOAD], 0);

    dag_cancel(c.d); /* after done: nothing happens, on_done is not called again */
    assert_int_equal(c.done_calls, 1);
    teardown(&c);
}

static void test_cancel_before_first_pass(void **state)
{
    (void)state;
    ctx_t c;
    ctx_init(&c, &no_retries);
    fake_t *a = add(&c, "a", TASK_KIND_LOAD, -1);
    fake_t *b = add(&c, "b", TASK_KIND_MODEL, -1);
    dep(&c, b, a);
    char err[64];
    assert_true(dag_start(c.d, on_event, on_done, &c, err, sizeof err));
    dag_cancel(c.d);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    assert_int_equal(c.done_calls, 1);
    expect_final(a, TASK_CANCELLED);
    expect_final(b, TASK_CANCELLED);
    assert_int_equal(a->starts + b->starts, 0);
    teardown(&c);
}

static void test_cycle(void **state)
{
    (void)state;
    ctx_t c;
    char err[256];
    ctx_init(&c, &no_retries);
    fake_t *a = add(&c, "a", TASK_KIND_MODEL, -1);
    fake_t *b = add(&c, "b", TASK_KIND_MODEL, -1);
    dep(&c, a, b);
    dep(&c, b, a);
    assert_false(dag_start(c.d, on_event, on_done, &c, err, sizeof err));
    assert_string_equal(err, "dependency cycle: a -> b -> a");
    assert_null(dag_topo_order(c.d, err, sizeof err));
    assert_string_equal(err, "dependency cycle: a -> b -> a");
    teardown(&c);
    assert_int_equal(c.done_calls, 0);

    /* The path leaves out the way into the cycle. */
    ctx_init(&c, &no_retries);
    fake_t *x = add(&c, "x", TASK_KIND_TEST, -1);
    fake_t *m1 = add(&c, "model:m1", TASK_KIND_MODEL, -1);
    fake_t *m2 = add(&c, "model:m2", TASK_KIND_MODEL, -1);
    fake_t *m3 = add(&c, "model:m3", TASK_KIND_MODEL, -1);
    dep(&c, x, m1);
    dep(&c, m1, m2);
    dep(&c, m2, m3);
    dep(&c, m3, m1);
    assert_false(dag_start(c.d, on_event, on_done, &c, err, sizeof err));
    assert_string_equal(err, "dependency cycle: model:m1 -> model:m2 -> model:m3 -> model:m1");
    teardown(&c);

    ctx_init(&c, &no_retries);
    fake_t *s = add(&c, "self", TASK_KIND_MODEL, -1);
    dep(&c, s, s);
    assert_false(dag_start(c.d, on_event, on_done, &c, err, sizeof err));
    assert_string_equal(err, "dependency cycle: self -> self");
    /* A short buffer truncates the message but stays terminated. */
    char small[10];
    assert_null(dag_topo_order(c.d, small, sizeof small));
    assert_string_equal(small, "dependenc");
    teardown(&c);
}

static void test_many_sync(void **state)
{
    (void)state;
    /* A long chain of synchronous tasks: one pass re-enters pump from every finish. */
    dag_opts_t o = no_retries;
    o.limit[TASK_KIND_MODEL] = 2;
    ctx_t c;
    ctx_init(&c, &o);
    fake_t *prev = NULL;
    char name[32];
    fake_t *all[200];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "model:%03d", i);
        all[i] = add(&c, name, TASK_KIND_MODEL, -1);
        if (prev && i % 3)
            dep(&c, all[i], prev);
        prev = all[i];
    }
    run(&c);
    for (int i = 0; i < 200; i++)
        expect_final(all[i], TASK_SUCCESS);
    teardown(&c);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(dag_state_name(TASK_PENDING), "pending");
    assert_string_equal(dag_state_name(TASK_RUNNING), "running");
    assert_string_equal(dag_state_name(TASK_RETRY_WAIT), "up_for_retry");
    assert_string_equal(dag_state_name(TASK_SUCCESS), "success");
    assert_string_equal(dag_state_name(TASK_FAILED), "failed");
    assert_string_equal(dag_state_name(TASK_UPSTREAM_FAILED), "upstream_failed");
    assert_string_equal(dag_state_name(TASK_SKIPPED), "skipped");
    assert_string_equal(dag_state_name(TASK_CANCELLED), "cancelled");
    assert_string_equal(dag_state_name((dag_state_t)99), "unknown");
    assert_string_equal(dag_kind_name(TASK_KIND_SETUP), "setup");
    assert_string_equal(dag_kind_name(TASK_KIND_LOAD), "load");
    assert_string_equal(dag_kind_name(TASK_KIND_MODEL), "model");
    assert_string_equal(dag_kind_name(TASK_KIND_TEST), "test");
    assert_string_equal(dag_kind_name(TASK_KIND_N), "unknown");
    assert_false(dag_state_final(TASK_PENDING));
    assert_false(dag_state_final(TASK_RUNNING));
    assert_false(dag_state_final(TASK_RETRY_WAIT));
    assert_true(dag_state_final(TASK_SUCCESS));
    assert_true(dag_state_final(TASK_FAILED));
    assert_true(dag_state_final(TASK_UPSTREAM_FAILED));
    assert_true(dag_state_final(TASK_SKIPPED));
    assert_true(dag_state_final(TASK_CANCELLED));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_free_before_start),
        cmocka_unit_test(test_dependency_order),
        cmocka_unit_test(test_parallelism),
        cmocka_unit_test(test_limit_one_serialises),
        cmocka_unit_test(test_failure_propagation),
        cmocka_unit_test(test_sync_failure_propagation),
        cmocka_unit_test(test_retries),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_timeout_every_attempt),
        cmocka_unit_test(test_timeout_retry_succeeds),
        cmocka_unit_test(test_cancel_running),
        cmocka_unit_test(test_cancel_before_first_pass),
        cmocka_unit_test(test_cycle),
        cmocka_unit_test(test_many_sync),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
