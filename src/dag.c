/* dag.c — runs a DAG of tasks on the loop: a task starts once all its inputs succeeded and
 * its kind has a free slot; failures are retried after a (backed-off) delay on the task's
 * timer; a final failure marks everything downstream upstream_failed while independent
 * branches go on. */
#include "dag.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

const char *dag_state_name(dag_state_t s)
{
    static const char *const names[] = {"pending", "running",         "up_for_retry", "success",
                                        "failed",  "upstream_failed", "skipped",      "cancelled"};
    return (unsigned)s < sizeof names / sizeof *names ? names[s] : "unknown";
}

const char *dag_kind_name(dag_kind_t k)
{
    static const char *const names[] = {"setup", "load", "model", "test"};
    return (unsigned)k < TASK_KIND_N ? names[k] : "unknown";
}

bool dag_state_final(dag_state_t s)
{
    return s == TASK_SUCCESS || s == TASK_FAILED || s == TASK_UPSTREAM_FAILED ||
           s == TASK_SKIPPED || s == TASK_CANCELLED;
}

dag_t *dag_new(uv_loop_t *loop, const dag_opts_t *opts)
{
    dag_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->loop = loop;
    d->opts = *opts;
    uv_timer_init(loop, &d->kick);
    d->kick.data = d;
    d->open_handles = 1;
    return d;
}

dag_task_t *dag_add(dag_t *d, const char *name, dag_kind_t kind, const dag_task_ops_t *ops,
                    void *impl, int retries)
{
    if (d->ntasks == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        dag_task_t **t = realloc(d->tasks, cap * sizeof *t);
        if (!t)
            return NULL;
        d->tasks = t;
        d->cap = cap;
    }
    dag_task_t *t = calloc(1, sizeof *t);
    if (!t || !(t->name = strdup(name))) {
        free(t);
        return NULL;
    }
    t->kind = kind;
    t->ops = ops;
    t->impl = impl;
    t->dag = d;
    t->index = d->ntasks;
    t->max_attempts = 1 + (retries >= 0 ? retries : d->opts.retries);
    uv_timer_init(d->loop, &t->timer);
    t->timer.data = t;
    d->open_handles++;
    d->tasks[d->ntasks++] = t;
    return t;
}

bool dag_depend(dag_t *d, dag_task_t *t, dag_task_t *on)
{
    (void)d;
    for (size_t i = 0; i < t->ndeps; i++)
        if (t->deps[i] == on->index)
            return true;
    size_t *n = realloc(t->deps, (t->ndeps + 1) * sizeof *n);
    if (!n)
        return false;
    t->deps = n;
    t->deps[t->ndeps++] = on->index;
    return true;
}

dag_task_t *dag_find(dag_t *d, const char *name)
{
    for (size_t i = 0; i < d->ntasks; i++)
        if (!strcmp(d->tasks[i]->name, name))
            return d->tasks[i];
    return NULL;
}

/* Depth-first search with colours; on a cycle, writes the path "a -> b -> a". */
static bool visit(dag_t *d, size_t i, char *colour, size_t *order, size_t *n, size_t *stack,
                  size_t depth, char *err, size_t errlen)
{
    if (colour[i] == 2)
        return true;
    stack[depth] = i;
    if (colour[i] == 1) {
        size_t start = 0;
        while (stack[start] != i)
            start++;
        size_t o = (size_t)snprintf(err, errlen, "dependency cycle: ");
        for (size_t k = start; k <= depth && o < errlen; k++)
            o += (size_t)snprintf(err + o, errlen - o, "%s%s", k > start ? " -> " : "",
                                  d->tasks[stack[k]]->name);
        return false;
    }
    colour[i] = 1;
    dag_task_t *t = d->tasks[i];
    for (size_t k = 0; k < t->ndeps; k++)
        if (!visit(d, t->deps[k], colour, order, n, stack, depth + 1, err, errlen))
            return false;
    colour[i] = 2;
    order[(*n)++] = i;
    return true;
}

size_t *dag_topo_order(dag_t *d, char *err, size_t errlen)
{
    char *colour = calloc(d->ntasks + 1, 1);
    size_t *order = calloc(d->ntasks + 1, sizeof *order);
    size_t *stack = calloc(d->ntasks + 2, sizeof *stack);
    size_t n = 0;
    bool ok = colour && order && stack;
    for (size_t i = 0; ok && i < d->ntasks; i++)
        ok = visit(d, i, colour, order, &n, stack, 0, err, errlen);
    free(colour);
    free(stack);
    if (!ok) {
        free(order);
        return NULL;
    }
    return order;
}

static void emit(dag_task_t *t)
{
    if (t->dag->on_event)
        t->dag->on_event(t->dag, t, t->dag->ud);
}

static void pump(dag_t *d);

static void set_final(dag_task_t *t, dag_state_t s)
{
    t->state = s;
    t->finished_at = util_wall_now();
    t->dag->nfinal++;
    emit(t);
}

/* Marks every not-yet-started task downstream of a failed one. */
static void propagate_failure(dag_t *d)
{
    bool changed = true;
    while (changed) {
        changed = false;
        for (size_t i = 0; i < d->ntasks; i++) {
            dag_task_t *t = d->tasks[i];
            if (t->state != TASK_PENDING)
                continue;
            for (size_t k = 0; k < t->ndeps; k++) {
                dag_state_t ds = d->tasks[t->deps[k]]->state;
                if (ds == TASK_FAILED || ds == TASK_UPSTREAM_FAILED || ds == TASK_CANCELLED) {
                    snprintf(t->error, sizeof t->error, "upstream %s %s",
                             d->tasks[t->deps[k]]->name, dag_state_name(ds));
                    set_final(t, TASK_UPSTREAM_FAILED);
                    changed = true;
                    break;
                }
            }
        }
    }
}

static void on_timeout(uv_timer_t *h)
{
    dag_task_t *t = h->data;
    if (t->state != TASK_RUNNING)
        return;
    t->timed_out = true;
    if (t->ops->cancel)
        t->ops->cancel(t);
}

static void start_attempt(dag_task_t *t)
{
    dag_t *d = t->dag;
    t->state = TASK_RUNNING;
    t->attempt++;
    t->timed_out = false;
    t->rows = t->bytes = t->failures = 0;
    t->warn = false;
    t->error[0] = '\0';
    if (!t->started_at)
        t->started_at = util_wall_now();
    t->attempt_start_ms = uv_now(d->loop);
    d->running[t->kind]++;
    if (d->opts.task_timeout > 0)
        uv_timer_start(&t->timer, on_timeout, (uint64_t)llround(d->opts.task_timeout * 1000), 0);
    emit(t);
    t->ops->start(t);
}

static void on_retry(uv_timer_t *h)
{
    dag_task_t *t = h->data;
    if (t->state != TASK_RETRY_WAIT)
        return;
    t->state = TASK_PENDING;
    pump(t->dag);
}

static bool ready(dag_t *d, dag_task_t *t)
{
    if (t->state != TASK_PENDING)
        return false;
    for (size_t k = 0; k < t->ndeps; k++)
        if (d->tasks[t->deps[k]]->state != TASK_SUCCESS)
            return false;
    int lim = d->opts.limit[t->kind];
    return lim <= 0 || d->running[t->kind] < lim;
}

static void check_done(dag_t *d)
{
    if (d->done || d->nfinal < d->ntasks)
        return;
    d->done = true;
    if (d->on_done)
        d->on_done(d, d->ud);
}

/* Starts what can start. Guarded against re-entry: a task that finishes synchronously
 * inside its start just asks for another pass. */
static void pump(dag_t *d)
{
    if (d->pumping) {
        d->pump_again = true;
        return;
    }
    d->pumping = true;
    do {
        d->pump_again = false;
        propagate_failure(d);
        if (!d->cancelling) {
            for (size_t i = 0; i < d->ntasks; i++)
                if (ready(d, d->tasks[i]))
                    start_attempt(d->tasks[i]);
        }
    } while (d->pump_again);
    d->pumping = false;
    check_done(d);
}

static void on_kick(uv_timer_t *h)
{
    pump(h->data);
}

bool dag_start(dag_t *d, dag_event_cb on_event, dag_done_cb on_done, void *ud, char *err,
               size_t errlen)
{
    size_t *order = dag_topo_order(d, err, errlen);
    if (!order)
        return false;
    free(order);
    d->on_event = on_event;
    d->on_done = on_done;
    d->ud = ud;
    d->started = true;
    /* The first pass runs from the loop, so on_done is never called inside dag_start. */
    uv_timer_start(&d->kick, on_kick, 0, 0);
    return true;
}

static double retry_delay(const dag_t *d, int attempt)
{
    double delay = d->opts.retry_delay;
    if (d->opts.retry_backoff)
        delay *= pow(2.0, attempt - 1);
    if (d->opts.max_retry_delay > 0 && delay > d->opts.max_retry_delay)
        delay = d->opts.max_retry_delay;
    return delay;
}

void dag_task_finish(dag_task_t *t, bool ok, const char *err)
{
    dag_t *d = t->dag;
    if (t->state != TASK_RUNNING)
        return;
    uv_timer_stop(&t->timer);
    d->running[t->kind]--;
    if (ok) {
        set_final(t, TASK_SUCCESS);
    } else {
        if (t->timed_out)
            snprintf(t->error, sizeof t->error, "timed out after %gs%s%s", d->opts.task_timeout,
                     err && *err ? ": " : "", err ? err : "");
        else
            snprintf(t->error, sizeof t->error, "%s", err && *err ? err : "failed");
        if (d->cancelling) {
            set_final(t, TASK_CANCELLED);
        } else if (t->attempt < t->max_attempts) {
            t->state = TASK_RETRY_WAIT;
            emit(t);
            uint64_t ms = (uint64_t)llround(retry_delay(d, t->attempt) * 1000);
            uv_timer_start(&t->timer, on_retry, ms, 0);
        } else {
            set_final(t, TASK_FAILED);
        }
    }
    pump(d);
}

void dag_cancel(dag_t *d)
{
    if (d->done || d->cancelling)
        return;
    d->cancelling = true;
    for (size_t i = 0; i < d->ntasks; i++) {
        dag_task_t *t = d->tasks[i];
        if (t->state == TASK_PENDING || t->state == TASK_RETRY_WAIT) {
            uv_timer_stop(&t->timer);
            snprintf(t->error, sizeof t->error, "cancelled");
            set_final(t, TASK_CANCELLED);
        }
    }
    for (size_t i = 0; i < d->ntasks; i++) {
        dag_task_t *t = d->tasks[i];
        if (t->state == TASK_RUNNING && t->ops->cancel)
            t->ops->cancel(t);
    }
    pump(d);
}

static void release(dag_t *d)
{
    if (--d->open_handles == 0) {
        void (*freed)(void *) = d->on_freed;
        void *ud = d->freed_ud;
        free(d->tasks);
        free(d);
        if (freed)
            freed(ud);
    }
}

static void on_kick_closed(uv_handle_t *h)
{
    release(h->data);
}

static void on_timer_closed(uv_handle_t *h)
{
    dag_task_t *t = h->data;
    dag_t *d = t->dag;
    if (t->ops && t->ops->destroy)
        t->ops->destroy(t);
    free(t->deps);
    free(t->name);
    free(t);
    release(d);
}

void dag_free(dag_t *d, void (*freed)(void *ud), void *ud)
{
    if (!d)
        return;
    d->on_freed = freed;
    d->freed_ud = ud;
    uv_close((uv_handle_t *)&d->kick, on_kick_closed);
    for (size_t i = 0; i < d->ntasks; i++)
        uv_close((uv_handle_t *)&d->tasks[i]->timer, on_timer_closed);
}
