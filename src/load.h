/* load.h — one table's extract-load task: PostgreSQL COPY OUT streamed into a ClickHouse
 * side table through a bounded queue, checked against the COPY row count, then published
 * in one step. Full refresh or incremental (watermark read back from the target). */
#ifndef ELTD_LOAD_H
#define ELTD_LOAD_H

#include "ch_client.h"
#include "config.h"
#include "dag.h"
#include "typemap.h"

/* What every load of one run shares; owned by the run. */
typedef struct load_env {
    const config_t *cfg;
    uv_loop_t *loop;
    ch_client_t *ch;
    typemap_caps_t caps;  /* of the ClickHouse server, set by the setup task */
    bool raw_atomic;      /* the raw database is Atomic: EXCHANGE TABLES publishes */
    char snapshot[128];   /* exported PostgreSQL snapshot, "" = none */
    char run_id[32];
    bool full_refresh;    /* incremental tables reload fully this run */
} load_env_t;

extern const dag_task_ops_t load_task_ops;

/* A load task's impl for table (which must outlive the task). */
void *load_task_new(load_env_t *env, const config_table_t *table);

/* libpq keyword/value arrays for the configured source (static storage inside cfg's
 * lifetime plus the fixed session options eltd needs: UTC, ISO dates, UTF-8). */
void load_pg_params(const config_t *cfg, const char *keys[16], const char *values[16],
                    char port_buf[16], char timeout_buf[16]);

/* The ClickHouse client options of the configured warehouse. */
void load_ch_opts(const config_t *cfg, ch_client_opts_t *opts);

/* The suffix of side tables; anything named <table><suffix> is eltd's leftover. */
#define LOAD_SIDE_SUFFIX "__eltd_new"
#define LOAD_OLD_SUFFIX "__eltd_old"

#endif
