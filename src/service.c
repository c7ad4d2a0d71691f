/* service.c — the daemon's run queue and memory: one active run, one queued run that later
 * triggers coalesce into, cancel, the history replayed from and appended to the journal
 * (queued, started and finished records per run, plus the schedule's covered instant), the
 * eltd_* metrics fed from task events, and the shutdown sequence. */
#include "service.h"

#include "log.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#ifndef ELTD_VERSION
#define ELTD_VERSION "dev"
#endif

void service_iso_time(double t, char *buf, size_t len)
{
    time_t secs = (time_t)floor(t);
    int ms = (int)llround((t - (double)secs) * 1000.0);
    if (ms >= 1000) {
        secs++;
        ms = 0;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    if (ms)
        snprintf(buf + n, len - n, ".%03dZ", ms);
    else
        snprintf(buf + n, len - n, "Z");
}

static run_state_t state_from_name(const char *name)
{
    for (int i = RUN_QUEUED; i <= RUN_CANCELLED; i++)
        if (name && !strcmp(name, run_state_name((run_state_t)i)))
            return (run_state_t)i;
    return RUN_FAILED;
}

/* ---- history ----------------------------------------------------------------------- */

static void svc_run_free(svc_run_t *r)
{
    if (!r)
        return;
    json_decref(r->request);
    json_decref(r->tasks);
    free(r->req.tables);
    free(r->req.select);
    free(r->req.exclude);
    free(r);
}

svc_run_t *service_find(service_t *s, int64_t id)
{
    size_t lo = 0, hi = s->nruns;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->runs[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->nruns && s->runs[lo]->id == id ? s->runs[lo] : NULL;
}

/* Inserts keeping ids ascending (appending is the usual case). */
static bool history_add(service_t *s, svc_run_t *r)
{
    if (s->nruns == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        svc_run_t **t = realloc(s->runs, cap * sizeof *t);
        if (!t)
            return false;
        s->runs = t;
        s->cap = cap;
    }
    size_t i = s->nruns;
    while (i > 0 && s->runs[i - 1]->id > r->id) {
        s->runs[i] = s->runs[i - 1];
        i--;
    }
    s->runs[i] = r;
    s->nruns++;
    if (r->id >= s->next_id)
        s->next_id = r->id + 1;
    return true;
}

/* Drops the oldest runs beyond keep from memory. The active and the queued run are the two
 * newest and run.keep_runs is at least 2, so they are never reached; the loop stops at them
 * all the same. */
static void history_trim(service_t *s, size_t keep)
{
    size_t drop = 0;
    while (s->nruns - drop > keep && s->runs[drop] != s->active && s->runs[drop] != s->queued)
        svc_run_free(s->runs[drop++]);
    memmove(s->runs, s->runs + drop, (s->nruns - drop) * sizeof *s->runs);
    s->nruns -= drop;
}

/* The journal holds a fifth more runs than run.keep_runs: time to compact. Asked at start
 * and each time a run finishes, so a daemon that runs for months keeps a bounded file. */
static bool history_due(const service_t *s)
{
    size_t keep = (size_t)s->cfg->run.keep_runs;
    return s->journal_runs > keep + keep / 5;
}

/* Keeps the newest run.keep_runs runs, in memory and in the journal, so /api/runs after a
 * restart shows what it showed before. The rewrite blocks the loop for a moment (one read
 * and one atomic write of the file), once per keep_runs / 5 runs. On failure memory is
 * trimmed all the same and the journal, still whole and open, is compacted next time. */
static bool history_compact(service_t *s, char *err, size_t errlen)
{
    size_t keep = (size_t)s->cfg->run.keep_runs;
    history_trim(s, keep);
    if (!journal_compact(&s->journal, keep, err, errlen))
        return false;
    s->journal_runs = s->nruns;
    return true;
}

/* ---- journal records --------------------------------------------------------------- */

/* Appends rec (stolen). A failed append is logged, never fatal: the run goes on. */
static void journal_put(service_t *s, json_t *rec)
{
    char err[512];
    if (!rec) {
        log_error("event=journal_append_failed error=\"out of memory\"");
        return;
    }
    if (!journal_append(&s->journal, rec, err, sizeof err))
        log_error("event=journal_append_failed error=%s", log_quote(err));
    json_decref(rec);
}

static json_t *run_record(const svc_run_t *r, const char *event)
{
    return json_pack("{s:s, s:I, s:s}", "type", "run", "id", (json_int_t)r->id, "event", event);
}

/* A run's first record: from here on the run counts towards the next compaction. */
static void journal_queued(service_t *s, const svc_run_t *r)
{
    s->journal_runs++;
    json_t *rec = run_record(r, "queued");
    if (rec) {
        json_object_set_new(rec, "trigger", json_string(r->trigger));
        json_object_set_new(rec, "queued_at", json_real(r->queued_at));
        json_object_set(rec, "request", r->request);
    }
    journal_put(s, rec);
}

static void journal_started(service_t *s, const svc_run_t *r)
{
    json_t *rec = run_record(r, "started");
    if (rec) {
        json_object_set_new(rec, "started_at", json_real(r->started_at));
        json_object_set_new(rec, "triggers", json_integer(r->triggers));
        json_object_set(rec, "request", r->request);
    }
    journal_put(s, rec);
}

static void journal_finished(service_t *s, const svc_run_t *r)
{
    json_t *rec = run_record(r, "finished");
    if (rec) {
        json_object_set_new(rec, "state", json_string(run_state_name(r->state)));
        /* The run's own start, a moment after the one in its "started" record. */
        if (r->started_at > 0)
            json_object_set_new(rec, "started_at", json_real(r->started_at));
        json_object_set_new(rec, "finished_at", json_real(r->finished_at));
        json_object_set_new(rec, "triggers", json_integer(r->triggers));
        json_object_set_new(rec, "error", r->error[0] ? json_string(r->error) : json_null());
        if (r->tasks)
            json_object_set(rec, "tasks", r->tasks);
    }
    journal_put(s, rec);
}

typedef struct replay_ctx {
    service_t *s;
    int64_t covered; /* the schedule's, 0 = none recorded */
} replay_ctx_t;

static double num(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : 0;
}

static bool on_replay(json_t *rec, size_t line, void *ud, char *err, size_t errlen)
{
    (void)line;
    replay_ctx_t *c = ud;
    service_t *s = c->s;
    const char *type = json_string_value(json_object_get(rec, "type"));
    if (type && !strcmp(type, "schedule")) {
        const char *name = json_string_value(json_object_get(rec, "name"));
        json_int_t cov = json_integer_value(json_object_get(rec, "covered"));
        if (name && !strcmp(name, "last_fire") && cov > c->covered)
            c->covered = cov;
        return true;
    }
    if (!type || strcmp(type, "run"))
        return true; /* another module's state: not ours */
    json_t *idv = json_object_get(rec, "id");
    const char *event = json_string_value(json_object_get(rec, "event"));
    if (!json_is_integer(idv) || json_integer_value(idv) <= 0 || !event) {
        snprintf(err, errlen, "run record without a positive id or an event");
        return false;
    }
    int64_t id = json_integer_value(idv);
    svc_run_t *r = service_find(s, id);
    if (!r) {
        r = calloc(1, sizeof *r);
        if (r)
            r->id = id;
        if (!r || !history_add(s, r)) {
            free(r);
            snprintf(err, errlen, "out of memory");
            return false;
        }
        r->state = RUN_QUEUED;
        r->triggers = 1;
        snprintf(r->trigger, sizeof r->trigger, "unknown");
    }
    const char *trig = json_string_value(json_object_get(rec, "trigger"));
    if (trig)
        snprintf(r->trigger, sizeof r->trigger, "%s", trig);
    json_t *req = json_object_get(rec, "request");
    if (json_is_object(req)) {
        json_decref(r->request);
        r->request = json_incref(req);
    }
    json_t *trg = json_object_get(rec, "triggers");
    if (json_is_integer(trg) && json_integer_value(trg) > 0)
        r->triggers = (unsigned)json_integer_value(trg);
    if (!strcmp(event, "queued")) {
        r->queued_at = num(rec, "queued_at");
    } else if (!strcmp(event, "started")) {
        r->state = RUN_RUNNING;
        r->started_at = num(rec, "started_at");
    } else if (!strcmp(event, "finished")) {
        r->state = state_from_name(json_string_value(json_object_get(rec, "state")));
        if (num(rec, "started_at") > 0)
            r->started_at = num(rec, "started_at");
        r->finished_at = num(rec, "finished_at");
        const char *e = json_string_value(json_object_get(rec, "error"));
        snprintf(r->error, sizeof r->error, "%s", e ? e : "");
        json_t *tasks = json_object_get(rec, "tasks");
        if (json_is_array(tasks)) {
            json_decref(r->tasks);
            r->tasks = json_incref(tasks);
        }
    }
    return true;
}

/* ---- metrics ----------------------------------------------------------------------- */

static const double run_buckets[] = {1,   5,    10,   30,   60,   120,  300,
                                     600, 1200, 1800, 3600, 7200, 14400};

static bool register_metrics(service_t *s)
{
    metrics_registry_t *m = s->metrics;
    s->m.runs_total = metrics_counter(m, "eltd_runs_total", "Finished runs by trigger and status",
                                      METRICS_LABELS("trigger", "status"));
    s->m.run_duration =
        metrics_histogram(m, "eltd_run_duration_seconds", "Wall time of finished runs",
                          METRICS_NO_LABELS, run_buckets, sizeof run_buckets / sizeof *run_buckets);
    s->m.task_duration = metrics_histogram(m, "eltd_task_duration_seconds",
                                           "Wall time of finished tasks, all attempts included",
                                           METRICS_LABELS("kind"), NULL, 0);
    s->m.rows = metrics_counter(m, "eltd_rows_loaded_total", "Rows loaded into ClickHouse",
                                METRICS_LABELS("table"));
    s->m.bytes =
        metrics_counter(m, "eltd_bytes_loaded_total", "Bytes of row data loaded into ClickHouse",
                        METRICS_LABELS("table"));
    s->m.retries = metrics_counter(m, "eltd_task_retries_total", "Task attempts that were retried",
                                   METRICS_NO_LABELS);
    s->m.test_failures =
        metrics_gauge(m, "eltd_model_test_failures", "Failing rows of each model test's last run",
                      METRICS_LABELS("test"));
    s->m.last_success =
        metrics_gauge(m, "eltd_last_success_timestamp_seconds",
                      "End of the last successful run (unix seconds)", METRICS_NO_LABELS);
    s->m.next_run =
        metrics_gauge(m, "eltd_next_run_timestamp_seconds",
                      "Next scheduled fire (unix seconds), 0 = none", METRICS_NO_LABELS);
    s->m.active_runs =
        metrics_gauge(m, "eltd_active_runs", "Runs in progress (0 or 1)", METRICS_NO_LABELS);
    s->m.build_info = metrics_gauge(m, "eltd_build_info", "Always 1; the version is a label",
                                    METRICS_LABELS("version"));
    if (!s->m.runs_total || !s->m.run_duration || !s->m.task_duration || !s->m.rows ||
        !s->m.bytes || !s->m.retries || !s->m.test_failures || !s->m.last_success ||
        !s->m.next_run || !s->m.active_runs || !s->m.build_info ||
        !metrics_register_process_collectors(m))
        return false;
    metrics_gauge_set(s->m.build_info, 1, METRICS_LABELS(ELTD_VERSION));
    return true;
}

/* ---- tasks ------------------------------------------------------------------------- */

static json_t *task_json(const dag_task_t *t)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:f, s:f}", "name", t->name, "kind",
                          dag_kind_name(t->kind), "state", dag_state_name(t->state), "attempts",
                          t->attempt, "rows", (json_int_t)t->rows, "bytes", (json_int_t)t->bytes,
                          "failures", (json_int_t)t->failures, "started_at", t->started_at,
                          "finished_at", t->finished_at);
    if (o)
        json_object_set_new(o, "error",
                            t->error[0] && t->state != TASK_SUCCESS ? json_string(t->error)
                                                                    : json_null());
    return o;
}

json_t *service_tasks_json(const svc_run_t *r)
{
    if (!r->run)
        return r->tasks ? json_deep_copy(r->tasks) : json_array();
    json_t *a = json_array();
    const dag_t *d = r->run->dag;
    for (size_t i = 0; a && i < d->ntasks; i++)
        json_array_append_new(a, task_json(d->tasks[i]));
    return a;
}

static void on_task_event(dag_t *d, dag_task_t *t, void *ud)
{
    (void)d;
    service_t *s = ud;
    if (t->state == TASK_RETRY_WAIT)
        metrics_counter_add(s->m.retries, 1, METRICS_NO_LABELS);
    if (!dag_state_final(t->state))
        return;
    if (t->started_at > 0 && t->finished_at >= t->started_at)
        metrics_histogram_observe(s->m.task_duration, t->finished_at - t->started_at,
                                  METRICS_LABELS(dag_kind_name(t->kind)));
    const char *colon = strchr(t->name, ':');
    const char *what = colon ? colon + 1 : t->name;
    if (t->kind == TASK_KIND_LOAD && t->state == TASK_SUCCESS) {
        metrics_counter_add(s->m.rows, (double)t->rows, METRICS_LABELS(what));
        metrics_counter_add(s->m.bytes, (double)t->bytes, METRICS_LABELS(what));
    }
    if (t->kind == TASK_KIND_TEST && (t->state == TASK_SUCCESS || t->state == TASK_FAILED))
        metrics_gauge_set(s->m.test_failures, (double)t->failures, METRICS_LABELS(what));
}

/* ---- runs -------------------------------------------------------------------------- */

static void start_next(service_t *s);
static void maybe_close(service_t *s);

/* Records the final state of r (queued, never started, or done). */
static void finish(service_t *s, svc_run_t *r, run_state_t state, double finished_at,
                   const char *error)
{
    r->state = state;
    r->finished_at = finished_at;
    if (error && !r->error[0])
        snprintf(r->error, sizeof r->error, "%s", error);
    if (r->run) {
        json_decref(r->tasks);
        r->tasks = service_tasks_json(r);
    }
    journal_finished(s, r);
    metrics_counter_add(s->m.runs_total, 1, METRICS_LABELS(r->trigger, run_state_name(state)));
    if (r->started_at > 0 && finished_at >= r->started_at)
        metrics_histogram_observe(s->m.run_duration, finished_at - r->started_at,
                                  METRICS_NO_LABELS);
    if (state == RUN_SUCCESS)
        metrics_gauge_set(s->m.last_success, finished_at, METRICS_NO_LABELS);
    log_msg(state == RUN_SUCCESS ? LOG_INFO : LOG_WARN,
            "event=run_recorded run=%lld state=%s trigger=%s triggers=%u error=%s",
            (long long)r->id, run_state_name(state), r->trigger, r->triggers, log_quote(r->error));
    /* r is the newest run or the active one before the queued: compaction keeps it. */
    char err[512];
    if (history_due(s) && !history_compact(s, err, sizeof err))
        log_warn("event=journal_compact_failed runs=%zu error=%s", s->journal_runs, log_quote(err));
}

/* The names of a JSON string array as a borrowed char* array (NULL when absent). */
static bool borrow_list(const json_t *arr, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!json_is_array(arr))
        return true;
    size_t k = json_array_size(arr);
    *out = calloc(k ? k : 1, sizeof **out);
    if (!*out)
        return false;
    for (size_t i = 0; i < k; i++) {
        const char *v = json_string_value(json_array_get(arr, i));
        if (v)
            (*out)[(*n)++] = (char *)v;
    }
    return true;
}

static bool build_request(svc_run_t *r)
{
    run_request_t *q = &r->req;
    memset(q, 0, sizeof *q);
    snprintf(q->trigger, sizeof q->trigger, "%s", r->trigger);
    const json_t *rq = r->request;
    q->full_refresh = json_is_true(json_object_get(rq, "full_refresh"));
    json_t *vars = json_object_get(rq, "vars");
    q->vars = json_is_object(vars) ? vars : NULL;
    return borrow_list(json_object_get(rq, "tables"), &q->tables, &q->ntables) &&
           borrow_list(json_object_get(rq, "select"), &q->select, &q->nselect) &&
           borrow_list(json_object_get(rq, "exclude"), &q->exclude, &q->nexclude);
}

static void free_request(svc_run_t *r)
{
    free(r->req.tables);
    free(r->req.select);
    free(r->req.exclude);
    memset(&r->req, 0, sizeof r->req);
}

static void on_run_freed(void *ud)
{
    service_t *s = ud;
    svc_run_t *r = s->active;
    r->run = NULL;
    free_request(r);
    s->active = NULL;
    metrics_gauge_set(s->m.active_runs, 0, METRICS_NO_LABELS);
    if (s->active_cb)
        s->active_cb(s, false, s->active_ud);
    if (s->shutting_down) {
        uv_timer_stop(&s->grace);
        maybe_close(s);
    } else {
        docs_live_refresh(&s->docs); /* what the run built, in the catalog */
        start_next(s);
    }
}

static void on_run_done(run_t *run, void *ud)
{
    service_t *s = ud;
    svc_run_t *r = s->active;
    r->started_at = run->started_at;
    char error[1024] = "";
    if (run->state == RUN_FAILED) {
        const dag_t *d = run->dag;
        for (size_t i = 0; i < d->ntasks && !error[0]; i++)
            if (d->tasks[i]->state == TASK_FAILED)
                snprintf(error, sizeof error, "%.200s: %.800s", d->tasks[i]->name,
                         d->tasks[i]->error);
        if (!error[0])
            snprintf(error, sizeof error, "%s", run->error[0] ? run->error : "a task failed");
    } else if (run->state == RUN_CANCELLED) {
        snprintf(error, sizeof error, "cancelled");
    } else {
        r->error[0] = '\0'; /* a cancel that came too late to matter */
    }
    finish(s, r, run->state, run->finished_at, error[0] ? error : NULL);
    run_free(run, on_run_freed, s);
}

static void start_next(service_t *s)
{
    while (!s->active && s->queued && !s->shutting_down) {
        svc_run_t *r = s->queued;
        s->queued = NULL;
        char err[1024];
        if (!build_request(r)) {
            free_request(r);
            finish(s, r, RUN_FAILED, util_wall_now(), "out of memory");
            continue;
        }
        run_t *run = run_new(s->loop, s->cfg, s->ch, r->id, &r->req, err, sizeof err);
        if (!run) {
            free_request(r);
            finish(s, r, RUN_FAILED, util_wall_now(), err);
            continue;
        }
        run->on_task_event = on_task_event;
        run->observer_ud = s;
        r->run = run;
        s->active = r;
        r->state = RUN_RUNNING;
        r->started_at = util_wall_now();
        journal_started(s, r);
        metrics_gauge_set(s->m.active_runs, 1, METRICS_NO_LABELS);
        if (s->active_cb)
            s->active_cb(s, true, s->active_ud);
        if (!run_start(run, on_run_done, s, err, sizeof err)) {
            finish(s, r, RUN_FAILED, util_wall_now(), err);
            run_free(run, on_run_freed, s);
            return;
        }
    }
}

static bool in_list(const json_t *arr, const char *v)
{
    size_t i;
    json_t *it;
    json_array_foreach(arr, i, it) if (!strcmp(json_string_value(it), v)) return true;
    return false;
}

/* A queued run serves every trigger merged into it, so selections are unioned (an absent
 * list means everything and wins), excludes intersected, full_refresh ORed, vars updated
 * (the later trigger's value wins). */
static void merge_request(json_t *into, const json_t *from)
{
    static const char *const unions[] = {"tables", "select"};
    for (size_t k = 0; k < 2; k++) {
        json_t *a = json_object_get(into, unions[k]);
        json_t *b = from ? json_object_get(from, unions[k]) : NULL;
        if (!a)
            continue;
        if (!b) {
            json_object_del(into, unions[k]);
            continue;
        }
        size_t i;
        json_t *it;
        json_array_foreach(b, i, it) if (!in_list(a, json_string_value(it)))
            json_array_append(a, it);
    }
    json_t *a = json_object_get(into, "exclude");
    json_t *b = from ? json_object_get(from, "exclude") : NULL;
    if (a && !b) {
        json_object_del(into, "exclude");
    } else if (a) {
        json_t *keep = json_array();
        size_t i;
        json_t *it;
        json_array_foreach(a, i, it) if (in_list(b, json_string_value(it)))
            json_array_append(keep, it);
        json_object_set_new(into, "exclude", keep);
    }
    if (from && json_is_true(json_object_get(from, "full_refresh")))
        json_object_set_new(into, "full_refresh", json_true());
    json_t *bv = from ? json_object_get(from, "vars") : NULL;
    if (json_is_object(bv)) {
        json_t *av = json_object_get(into, "vars");
        if (json_is_object(av))
            json_object_update(av, bv);
        else
            json_object_set_new(into, "vars", json_deep_copy(bv));
    }
}

bool service_trigger(service_t *s, const char *trigger, const json_t *request,
                     svc_trigger_result_t *out, char *err, size_t errlen)
{
    if (s->shutting_down) {
        snprintf(err, errlen, "the service is shutting down");
        return false;
    }
    if (s->queued) {
        svc_run_t *q = s->queued;
        merge_request(q->request, request);
        q->triggers++;
        *out = (svc_trigger_result_t){q->id, RUN_QUEUED, true};
        log_info("event=trigger trigger=%s run=%lld state=queued coalesced=true triggers=%u",
                 trigger, (long long)q->id, q->triggers);
        return true;
    }
    svc_run_t *r = calloc(1, sizeof *r);
    json_t *rq = request ? json_deep_copy(request) : json_object();
    if (r)
        r->id = s->next_id;
    if (!r || !rq || !history_add(s, r)) {
        free(r);
        json_decref(rq);
        snprintf(err, errlen, "out of memory");
        return false;
    }
    r->state = RUN_QUEUED;
    r->triggers = 1;
    r->queued_at = util_wall_now();
    r->request = rq;
    snprintf(r->trigger, sizeof r->trigger, "%s", trigger);
    journal_queued(s, r);
    s->queued = r;
    start_next(s);
    *out = (svc_trigger_result_t){r->id, r->state, false};
    log_info("event=trigger trigger=%s run=%lld state=%s coalesced=false", trigger,
             (long long)r->id, run_state_name(r->state));
    return true;
}

svc_cancel_t service_cancel(service_t *s, int64_t id)
{
    svc_run_t *r = service_find(s, id);
    if (!r)
        return SVC_CANCEL_NOT_FOUND;
    if (r == s->queued) {
        s->queued = NULL;
        finish(s, r, RUN_CANCELLED, util_wall_now(), "cancelled by request before it started");
        return SVC_CANCEL_OK;
    }
    if (r == s->active && r->run && r->state == RUN_RUNNING) {
        if (!r->error[0])
            snprintf(r->error, sizeof r->error, "cancelled by request");
        log_info("event=cancel run=%lld", (long long)r->id);
        run_cancel(r->run);
        return SVC_CANCEL_OK;
    }
    return SVC_CANCEL_FINISHED;
}

/* ---- models known to the project --------------------------------------------------- */

static bool add_model(service_t *s, const char *file)
{
    size_t n = strlen(file) - 4;
    char **t = realloc(s->models, (s->nmodels + 1) * sizeof *t);
    if (!t)
        return false;
    s->models = t;
    if (!(s->models[s->nmodels] = strndup(file, n)))
        return false;
    s->nmodels++;
    return true;
}

/* dbt's model name is the .sql file's base name, wherever it sits under the project. */
static void scan_models(service_t *s, const char *dir, int depth)
{
    DIR *d = depth < 8 ? opendir(dir) : NULL;
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        size_t n = strlen(e->d_name);
        if (S_ISDIR(st.st_mode))
            scan_models(s, path, depth + 1);
        else if (S_ISREG(st.st_mode) && n > 4 && !strcmp(e->d_name + n - 4, ".sql") &&
                 !service_known_model(s, e->d_name) && !add_model(s, e->d_name))
            break;
    }
    closedir(d);
}

bool service_known_model(const service_t *s, const char *name)
{
    if (s->project_ok)
        return models_find(&s->project, name) >= 0;
    size_t n = strlen(name);
    if (n > 4 && !strcmp(name + n - 4, ".sql"))
        n -= 4;
    for (size_t i = 0; i < s->nmodels; i++)
        if (strlen(s->models[i]) == n && !strncmp(s->models[i], name, n))
            return true;
    return false;
}

bool service_check_selection(service_t *s, const json_t *request, char *err, size_t errlen)
{
    if (!s->project_ok)
        return true;
    char **sel = NULL, **exc = NULL, **tab = NULL;
    size_t nsel = 0, nexc = 0, ntab = 0;
    bool ok = borrow_list(json_object_get(request, "select"), &sel, &nsel) &&
              borrow_list(json_object_get(request, "exclude"), &exc, &nexc) &&
              borrow_list(json_object_get(request, "tables"), &tab, &ntab);
    models_selection_t out = {0};
    if (!ok)
        snprintf(err, errlen, "out of memory");
    else
        ok = models_select(&s->project, (const char *const *)sel, nsel, (const char *const *)exc,
                           nexc, (const char *const *)tab, ntab, &out, err, errlen);
    if (ok)
        models_selection_free(&out);
    free(sel);
    free(exc);
    free(tab);
    return ok;
}

/* ---- schedule ---------------------------------------------------------------------- */

static void on_next(scheduler_t *sc, int64_t next, void *ud)
{
    (void)sc;
    service_t *s = ud;
    metrics_gauge_set(s->m.next_run, next > 0 ? (double)next : 0, METRICS_NO_LABELS);
}

static void journal_covered(service_t *s, int64_t fire, int64_t covered, const char *how)
{
    journal_put(s, json_pack("{s:s, s:s, s:I, s:I, s:s, s:f}", "type", "schedule", "name",
                             "last_fire", "fire", (json_int_t)fire, "covered", (json_int_t)covered,
                             "how", how, "at", util_wall_now()));
}

static void on_fire(scheduler_t *sc, int64_t fire, bool run, int64_t covered, void *ud)
{
    (void)sc;
    service_t *s = ud;
    char iso[40];
    service_iso_time((double)fire, iso, sizeof iso);
    journal_covered(s, fire, covered, run ? "run" : "skipped");
    if (!run) {
        log_info("event=schedule_catch_up_skipped fire=%s", iso);
        return;
    }
    svc_trigger_result_t res;
    char err[256];
    if (service_trigger(s, "schedule", NULL, &res, err, sizeof err))
        log_info("event=schedule_fire fire=%s run=%lld coalesced=%s", iso, (long long)res.run_id,
                 res.coalesced ? "true" : "false");
    else
        log_warn("event=schedule_fire_dropped fire=%s error=%s", iso, log_quote(err));
}

/* ---- life cycle -------------------------------------------------------------------- */

service_t *service_new(uv_loop_t *loop, const config_t *cfg, char *err, size_t errlen)
{
    service_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->loop = loop;
    s->cfg = cfg;
    s->journal.fd = -1;
    s->next_id = 1;
    s->started_at = util_wall_now();
    s->metrics = metrics_registry_new();
    if (!s->metrics || !register_metrics(s)) {
        snprintf(err, errlen, "cannot register the metrics");
        goto fail;
    }
    replay_ctx_t rc = {.s = s};
    if (!journal_replay(cfg->state_dir, on_replay, &rc, err, errlen) ||
        !journal_open(&s->journal, cfg->state_dir, err, errlen))
        goto fail;
    s->journal_runs = s->nruns;
    if (history_due(s) && !history_compact(s, err, errlen))
        goto fail;
    double now = util_wall_now();
    for (size_t i = 0; i < s->nruns; i++) {
        svc_run_t *r = s->runs[i];
        if (r->state == RUN_SUCCESS && r->finished_at > 0)
            metrics_gauge_set(s->m.last_success, r->finished_at, METRICS_NO_LABELS);
        if (r->state != RUN_QUEUED && r->state != RUN_RUNNING)
            continue;
        bool started = r->state == RUN_RUNNING;
        snprintf(r->error, sizeof r->error, "%s",
                 started ? "interrupted: the service stopped before the run finished"
                         : "interrupted: the service stopped before the run started");
        r->state = started ? RUN_FAILED : RUN_CANCELLED;
        r->finished_at = now;
        journal_finished(s, r);
        log_warn("event=run_interrupted run=%lld state=%s", (long long)r->id,
                 run_state_name(r->state));
    }
    char merr[1024];
    s->project_ok = models_load(&s->project, cfg, NULL, merr, sizeof merr);
    if (!s->project_ok) {
        log_warn("event=models_not_loaded error=%s", log_quote(merr));
        scan_models(s, cfg->models.path, 0);
    }
    ch_client_opts_t co;
    load_ch_opts(cfg, &co);
    s->has_schedule = cfg->schedule.cron && cfg->schedule.cron[0];
    if (s->has_schedule &&
        !scheduler_init(&s->sched, loop, cfg->schedule.cron, cfg->schedule.timezone, err, errlen))
        goto fail;
    s->ch = ch_client_new(loop, &co, err, errlen);
    if (!s->ch) {
        if (s->has_schedule)
            scheduler_close(&s->sched, NULL, NULL); /* the caller runs the loop to finish */
        goto fail;
    }
    uv_timer_init(loop, &s->grace);
    s->grace.data = s;
    docs_live_init(&s->docs, cfg, s->ch);
    docs_live_refresh(&s->docs);
    log_info("event=service_start runs=%zu next_id=%lld models=%zu schedule=%s", s->nruns,
             (long long)s->next_id, s->project_ok ? s->project.nmodels : s->nmodels,
             s->has_schedule ? log_quote(cfg->schedule.cron) : "none");
    if (s->has_schedule) {
        if (rc.covered <= 0) {
            rc.covered = (int64_t)now;
            journal_covered(s, rc.covered, rc.covered, "baseline");
        }
        scheduler_start(&s->sched, rc.covered, cfg->schedule.catch_up, on_fire, on_next, s);
    }
    return s;
fail:
    for (size_t i = 0; i < s->nruns; i++)
        svc_run_free(s->runs[i]);
    free(s->runs);
    for (size_t i = 0; i < s->nmodels; i++)
        free(s->models[i]);
    free(s->models);
    if (s->project_ok)
        models_free(&s->project);
    journal_close(&s->journal);
    metrics_registry_free(s->metrics);
    free(s);
    return NULL;
}

static void check_done(service_t *s)
{
    if (!s->closing || s->open_handles > 0)
        return;
    journal_close(&s->journal);
    log_info("event=service_stopped");
    if (s->done_cb)
        s->done_cb(s, s->done_ud);
}

static void on_gone(void *ud)
{
    service_t *s = ud;
    s->open_handles--;
    check_done(s);
}

static void on_grace_closed(uv_handle_t *h)
{
    on_gone(h->data);
}

static void maybe_close(service_t *s)
{
    if (!s->shutting_down || s->closing || s->active)
        return;
    s->closing = true;
    s->open_handles += 2;
    uv_close((uv_handle_t *)&s->grace, on_grace_closed);
    docs_live_close(&s->docs);
    ch_client_close(s->ch, on_gone, s);
    check_done(s);
}

static void cancel_active(service_t *s, const char *why)
{
    svc_run_t *r = s->active;
    if (!r || !r->run || r->state != RUN_RUNNING)
        return;
    if (!r->error[0])
        snprintf(r->error, sizeof r->error, "%s", why);
    log_warn("event=shutdown_cancel run=%lld reason=%s", (long long)r->id, log_quote(why));
    run_cancel(r->run);
}

static void on_grace(uv_timer_t *t)
{
    service_t *s = t->data;
    char why[128];
    snprintf(why, sizeof why, "cancelled: shutdown grace of %gs ran out",
             s->cfg->run.shutdown_grace);
    cancel_active(s, why);
}

void service_shutdown(service_t *s, service_done_cb done, void *ud)
{
    if (s->shutting_down) {
        cancel_active(s, "cancelled: shutdown");
        return;
    }
    s->shutting_down = true;
    s->done_cb = done;
    s->done_ud = ud;
    log_info("event=shutdown active_run=%lld grace=%g", s->active ? (long long)s->active->id : 0LL,
             s->cfg->run.shutdown_grace);
    if (s->has_schedule) {
        s->open_handles++;
        scheduler_close(&s->sched, on_gone, s);
    }
    if (s->queued) {
        svc_run_t *q = s->queued;
        s->queued = NULL;
        finish(s, q, RUN_CANCELLED, util_wall_now(),
               "cancelled: the service shut down before the run started");
    }
    if (s->active && s->active->run && s->active->state == RUN_RUNNING) {
        if (s->cfg->run.shutdown_grace > 0)
            uv_timer_start(&s->grace, on_grace, (uint64_t)(s->cfg->run.shutdown_grace * 1000), 0);
        else
            cancel_active(s, "cancelled: shutdown");
    }
    maybe_close(s);
}

void service_set_active_cb(service_t *s, service_active_cb cb, void *ud)
{
    s->active_cb = cb;
    s->active_ud = ud;
}

void service_free(service_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nruns; i++)
        svc_run_free(s->runs[i]);
    free(s->runs);
    for (size_t i = 0; i < s->nmodels; i++)
        free(s->models[i]);
    free(s->models);
    if (s->project_ok)
        models_free(&s->project);
    journal_close(&s->journal);
    metrics_registry_free(s->metrics);
    docs_files_free(&s->docs.files);
    free(s);
}
