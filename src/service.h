/* service.h — the daemon behind `eltd serve`: the run queue (at most one active run, later
 * triggers coalesce into one queued run), cancel, the run history kept in the journal and
 * replayed at start, the schedule, the eltd_* metrics, and an orderly shutdown. The HTTP
 * face is api.c; this file knows nothing of HTTP. */
#ifndef ELTD_SERVICE_H
#define ELTD_SERVICE_H

#include "ch_client.h"
#include "config.h"
#include "docs_live.h"
#include "journal.h"
#include "metrics.h"
#include "models.h"
#include "run.h"
#include "scheduler.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define SERVICE_MUST_CHECK __attribute__((warn_unused_result))

/* One run of the history, live or finished. */
typedef struct svc_run {
    int64_t id;
    run_state_t state;
    char trigger[32];   /* schedule | manual | webhook (the first trigger's) */
    double queued_at;   /* wall clock, unix seconds */
    double started_at;  /* 0 = never started */
    double finished_at; /* 0 = not finished */
    unsigned triggers;  /* triggers coalesced into this run (1 = just its own) */
    json_t *request;    /* {"tables":[..],"select":[..],"exclude":[..],"full_refresh":b,
                           "vars":{..}}; an absent list means everything */
    json_t *tasks;      /* task summaries once finished (see service_task_json), or NULL */
    char error[1024];   /* why it failed or was cancelled, "" otherwise */
    run_t *run;         /* the live run while active, else NULL */
    run_request_t req;  /* what run_new got; its arrays live while the run does */
} svc_run_t;

typedef struct service service_t;
typedef void (*service_done_cb)(service_t *s, void *ud);
/* Told when a run starts (true) and when it has ended and freed its handles (false). */
typedef void (*service_active_cb)(service_t *s, bool active, void *ud);

struct service {
    uv_loop_t *loop;
    const config_t *cfg;
    ch_client_t *ch;   /* shared by every run and the readiness check */
    journal_t journal; /* runs.jsonl in cfg->state_dir, open for append */
    metrics_registry_t *metrics;
    struct {
        metrics_family_t *runs_total, *run_duration, *task_duration, *rows, *bytes, *retries,
            *test_failures, *last_success, *next_run, *active_runs, *build_info;
    } m;              /* eltd_* families, see service.c */
    svc_run_t **runs; /* the history, ascending id; run.keep_runs of them after a compaction */
    size_t nruns, cap;
    size_t journal_runs;      /* runs recorded in the journal: kept by the last compaction
                                 (or replayed at start) plus each run queued since */
    int64_t next_id;          /* id of the next run */
    svc_run_t *active;        /* the run in progress (until its handles are freed) */
    svc_run_t *queued;        /* the one queued run, or NULL */
    double started_at;        /* wall clock of service_new */
    bool has_schedule;        /* schedule.cron is set */
    scheduler_t sched;        /* valid when has_schedule */
    docs_live_t docs;         /* /docs: rebuilt at start and after every run */
    models_project_t project; /* the dbt project as loaded at start (names, selectors) */
    bool project_ok;          /* project loaded; else models are known by file name only */
    char **models;            /* fallback: model names found under models.path (*.sql) */
    size_t nmodels;
    uv_timer_t grace;        /* shutdown grace for the active run */
    bool shutting_down;      /* service_shutdown was called */
    bool closing;            /* handles are being closed */
    int open_handles;        /* handles and clients not yet closed */
    service_done_cb done_cb; /* service_shutdown's callback */
    void *done_ud;
    service_active_cb active_cb; /* see service_set_active_cb, or NULL */
    void *active_ud;
};

/* Opens the journal, replays the history (a run left queued or running by a crash is
 * recorded as interrupted), registers the metrics, makes the ClickHouse client and starts
 * the schedule (catching up once if a fire was missed). NULL with err set on failure. */
service_t *service_new(uv_loop_t *loop, const config_t *cfg, char *err,
                       size_t errlen) SERVICE_MUST_CHECK;

/* cb (NULL removes it) learns when a run becomes active and when it is over. */
void service_set_active_cb(service_t *s, service_active_cb cb, void *ud);

/* What a trigger got. */
typedef struct svc_trigger_result {
    int64_t run_id;    /* the run that will serve this trigger */
    run_state_t state; /* queued or running (failed if the run could not even start) */
    bool coalesced;    /* joined an already queued run */
} svc_trigger_result_t;

/* Asks for a run. request (borrowed; may be NULL for everything) is in svc_run_t.request's
 * shape and already checked. Returns false only while shutting down or out of memory. */
bool service_trigger(service_t *s, const char *trigger, const json_t *request,
                     svc_trigger_result_t *out, char *err, size_t errlen) SERVICE_MUST_CHECK;

typedef enum {
    SVC_CANCEL_OK,        /* a queued run is cancelled, or an active one is stopping */
    SVC_CANCEL_NOT_FOUND, /* no such run */
    SVC_CANCEL_FINISHED,  /* already final */
} svc_cancel_t;
svc_cancel_t service_cancel(service_t *s, int64_t id);

/* The run with this id, or NULL. */
svc_run_t *service_find(service_t *s, int64_t id);

/* A model with this name exists in the project. */
bool service_known_model(const service_t *s, const char *name);

/* Checks a request's select/exclude/tables with the project's selector evaluation (when
 * the project loaded at start). False with the reason in err. */
bool service_check_selection(service_t *s, const json_t *request, char *err, size_t errlen);

/* Task summaries of a live or finished run as a new JSON array of objects with name,
 * kind, state, attempts, rows, bytes, failures, started_at, finished_at (unix seconds, 0 =
 * not yet), error. */
json_t *service_tasks_json(const svc_run_t *r);

/* Stops the schedule and new runs, cancels the queued run, lets the active run finish
 * within run.shutdown_grace (then cancels it), closes the ClickHouse client and the
 * journal; done runs once everything is closed. A second call cancels the active run at
 * once. */
void service_shutdown(service_t *s, service_done_cb done, void *ud);

/* Frees the service after done was called. */
void service_free(service_t *s);

/* ISO 8601 UTC with milliseconds when t is not whole ("2025-01-01T02:00:00Z"). */
void service_iso_time(double t, char *buf, size_t len);

#endif
