/* run.h — one run of the pipeline: builds its DAG (setup, loads, models, tests) from the
 * config and a selection, holds the PostgreSQL snapshot every load shares, and reports
 * a final state. The same run object serves `eltd run`, the scheduler and HTTP triggers. */
#ifndef ELTD_RUN_H
#define ELTD_RUN_H

#include "ch_client.h"
#include "config.h"
#include "dag.h"
#include "load.h"

#include <jansson.h>

typedef enum { RUN_QUEUED, RUN_RUNNING, RUN_SUCCESS, RUN_FAILED, RUN_CANCELLED } run_state_t;

typedef struct run run_t;
struct models_project;
typedef void (*run_done_cb)(run_t *r, void *ud);

/* What a trigger asks for. Names are checked against the config before a run is made. */
typedef struct run_request {
    char **tables;     /* loads to run by table name; NULL = all configured tables */
    size_t ntables;
    char **select;     /* dbt selectors over tables and models (name, +name, name+,
                          path:..., tag:...); NULL = everything */
    size_t nselect;
    char **exclude;    /* dbt selectors to leave out */
    size_t nexclude;
    json_t *vars;      /* per-run vars over the project's and the config's; may be NULL */
    bool full_refresh; /* incremental tables and models rebuild fully */
    char trigger[32];  /* cli | schedule | manual | webhook */
} run_request_t;

struct run {
    int64_t id;
    run_state_t state;
    char trigger[32];
    double created_at, started_at, finished_at; /* wall clock, unix seconds */
    uv_loop_t *loop;
    const config_t *cfg;
    dag_t *dag;
    load_env_t env;
    struct pg_conn *snap; /* holds the exported snapshot open while loads run */
    struct models_project *models; /* the dbt project the run builds; owned */
    run_done_cb on_done;
    void *ud;
    dag_event_cb on_task_event; /* optional observer (metrics, journal) */
    void *observer_ud;
    bool cancel_requested;
    char error[256];
};

/* Makes a run with its DAG built; nothing starts yet. Returns NULL with err set. */
run_t *run_new(uv_loop_t *loop, const config_t *cfg, ch_client_t *ch, int64_t id,
               const run_request_t *req, char *err, size_t errlen);

/* Starts the DAG; on_done is called once when every task is final. */
__attribute__((warn_unused_result)) bool run_start(run_t *r, run_done_cb on_done, void *ud,
                                                   char *err, size_t errlen);
void run_cancel(run_t *r);

/* Frees the run once its handles are closed; freed may be NULL. Only after on_done. */
void run_free(run_t *r, void (*freed)(void *ud), void *ud);

const char *run_state_name(run_state_t s);

#endif
