/* run.c — assembles one run's DAG: `ensure_databases` (creates the ClickHouse databases and
 * reads the server version that decides the type map) and `snapshot` (exports a PostgreSQL
 * snapshot, held open until the loads end) come first, then one `load:<table>` task per
 * selected table, then the selected models and tests (models.c). Logs one line per task
 * state change. */
#include "run.h"

#include "log.h"
#include "models.h"
#include "pg_conn.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

const char *run_state_name(run_state_t s)
{
    static const char *const names[] = {"queued", "running", "success", "failed", "cancelled"};
    return (unsigned)s < 5 ? names[s] : "unknown";
}

/* ---- ensure_databases -------------------------------------------------------------- */

typedef struct setup_task {
    run_t *run;
    dag_task_t *task;
    int step;
    ch_request_t *req;
    /* Issue 8 point 4 (leftovers of a killed eltd): the listing of step 4, one
     * "database\tname\trestore" line each, consumed one DROP/RENAME per step from 5 on. */
    char *leftovers;
    size_t leftover_pos;
    char leftover_db[256], leftover_name[256];
    bool leftover_restore;
} setup_task_t;

static void setup_next(setup_task_t *s);

static void on_setup_step(ch_request_t *req, void *ud, long status, const char *body,
                          size_t len, const char *err)
{
    (void)req, (void)status, (void)len;
    setup_task_t *s = ud;
    s->req = NULL;
    if (err) {
        char msg[1024];
        snprintf(msg, sizeof msg, "ClickHouse: %s", err);
        dag_task_finish(s->task, false, msg);
        return;
    }
    if (s->step == 3) {
        char version[64];
        snprintf(version, sizeof version, "%.*s", (int)strcspn(body, "\t\n"), body);
        typemap_caps_for_version(&s->run->env.caps, version);
        const char *engine = strchr(body, '\t');
        s->run->env.raw_atomic = engine && !strncmp(engine + 1, "Atomic", 6);
        log_info("run=%lld event=clickhouse_version version=%s datetime64=%d raw_atomic=%d",
                 (long long)s->run->id, version, s->run->env.caps.datetime64,
                 s->run->env.raw_atomic);
    } else if (s->step == 4) {
        free(s->leftovers);
        s->leftovers = strdup(body ? body : "");
        s->leftover_pos = 0;
        if (!s->leftovers) {
            dag_task_finish(s->task, false, "out of memory");
            return;
        }
    } else if (s->step >= 5) {
        log_info("run=%lld event=%s table=%s.%s", (long long)s->run->id,
                 s->leftover_restore ? "restored_leftover" : "dropped_leftover",
                 s->leftover_db, s->leftover_name);
    }
    setup_next(s);
}

/* ---- leftovers of a killed eltd (issue 8, point 4) ----------------------------------
 * A process killed mid-load or mid-model leaves its temporaries in ClickHouse: load.c's
 * `<t>__eltd_new` side tables and `__eltd_old` (between a rename pair and its DROP), and
 * materialize.c's `__eltd_tmp` / `__eltd_new` / `__eltd_old`. Before any load starts, every
 * such relation in the raw and analytics databases is dropped and logged
 * (`event=dropped_leftover table=db.name`). One exception: an `__eltd_old` whose base
 * table is missing is the only copy of the previous table (a server stopped inside a
 * rename pair), so it is renamed back (`event=restored_leftover`) instead of dropped.
 * At most one run is active per daemon, and one eltd per state directory (state_lock.h):
 * `eltd run` beside a daemon is refused before it connects. Two eltd with different state
 * directories writing the same databases are not guarded: each would drop the other's
 * temporaries in flight, and the row-count check would fail the load it broke. */

/* Unescapes one TabSeparated field of [p, end) into out (NUL-terminated, truncated). */
static void tsv_field(const char *p, const char *end, char *out, size_t cap)
{
    size_t o = 0;
    for (; p < end && o + 1 < cap; p++) {
        char c = *p;
        if (c == '\\' && p + 1 < end) {
            c = *++p;
            c = c == 't' ? '\t' : c == 'n' ? '\n' : c == '0' ? '\0' : c;
        }
        out[o++] = c;
    }
    out[o] = '\0';
}

/* The statement of the next leftover, or NULL (and *done) when none is left. */
static char *next_leftover_sql(setup_task_t *s, bool *done)
{
    *done = false;
    const char *p = s->leftovers + s->leftover_pos;
    if (!*p) {
        *done = true;
        return NULL;
    }
    const char *eol = strchr(p, '\n');
    if (!eol)
        eol = p + strlen(p);
    s->leftover_pos = (size_t)(eol - s->leftovers) + (*eol ? 1 : 0);
    const char *t1 = memchr(p, '\t', (size_t)(eol - p));
    const char *t2 = t1 ? memchr(t1 + 1, '\t', (size_t)(eol - t1 - 1)) : NULL;
    if (!t1 || !t2)
        return next_leftover_sql(s, done); /* not a row of ours: skip */
    tsv_field(p, t1, s->leftover_db, sizeof s->leftover_db);
    tsv_field(t1 + 1, t2, s->leftover_name, sizeof s->leftover_name);
    s->leftover_restore = t2[1] == '1';
    char *db = ch_quote_ident(s->leftover_db), *name = ch_quote_ident(s->leftover_name);
    char *sql = NULL;
    size_t nl = strlen(s->leftover_name);
    if (db && name && s->leftover_restore && nl > strlen(LOAD_OLD_SUFFIX)) {
        char base[256];
        snprintf(base, sizeof base, "%.*s", (int)(nl - strlen(LOAD_OLD_SUFFIX)),
                 s->leftover_name);
        char *qb = ch_quote_ident(base);
        if (qb && (sql = malloc(2 * strlen(db) + strlen(name) + strlen(qb) + 32)))
            sprintf(sql, "RENAME TABLE %s.%s TO %s.%s", db, name, db, qb);
        free(qb);
    } else if (db && name && (sql = malloc(strlen(db) + strlen(name) + 32))) {
        s->leftover_restore = false;
        sprintf(sql, "DROP TABLE IF EXISTS %s.%s", db, name);
    }
    free(db);
    free(name);
    return sql;
}

/* Lists the leftovers: database, name, and 1 when it is an `__eltd_old` without its base. */
static char *leftovers_list_sql(const config_t *cfg)
{
    char *raw = ch_quote_string(cfg->warehouse.raw_database);
    char *an = ch_quote_string(cfg->warehouse.analytics_database);
    char *sql = NULL;
    if (raw && an && (sql = malloc(strlen(raw) + strlen(an) + 1024)))
        sprintf(sql,
                "SELECT database, name, endsWith(name, '" LOAD_OLD_SUFFIX "') AND "
                "(database, substring(name, 1, length(name) - %d)) NOT IN "
                "(SELECT database, name FROM system.tables) "
                "FROM system.tables WHERE database IN (%s, %s) AND ("
                "endsWith(name, '" LOAD_SIDE_SUFFIX "') OR endsWith(name, '" LOAD_OLD_SUFFIX
                "') OR endsWith(name, '__eltd_tmp' /* MATERIALIZE_TMP_SUFFIX */)) "
                "ORDER BY database, name FORMAT TabSeparated",
                (int)strlen(LOAD_OLD_SUFFIX), raw, an);
    free(raw);
    free(an);
    return sql;
}

static void setup_next(setup_task_t *s)
{
    const config_t *cfg = s->run->cfg;
    char *sql = NULL;
    s->step++;
    if (s->step == 1 || s->step == 2) {
        char *q = ch_quote_ident(s->step == 1 ? cfg->warehouse.raw_database
                                              : cfg->warehouse.analytics_database);
        if (q && (sql = malloc(strlen(q) + 64)))
            sprintf(sql, "CREATE DATABASE IF NOT EXISTS %s", q);
        free(q);
    } else if (s->step == 3) {
        /* The version decides the type map; the raw database's engine decides how a full
         * refresh is published (EXCHANGE TABLES needs an Atomic database). */
        char *lit = ch_quote_string(cfg->warehouse.raw_database);
        sql = lit ? util_asprintf("SELECT version(), (SELECT any(engine) FROM system.databases "
                                  "WHERE name = %s)",
                                  lit)
                  : NULL;
        free(lit);
    } else if (s->step == 4) {
        sql = leftovers_list_sql(cfg); /* issue 8 point 4, see above */
    } else {
        bool done;
        sql = next_leftover_sql(s, &done);
        if (done) {
            dag_task_finish(s->task, true, NULL);
            return;
        }
    }
    s->req = sql ? ch_query(s->run->env.ch, sql, NULL, on_setup_step, s) : NULL;
    free(sql);
    if (!s->req)
        dag_task_finish(s->task, false, "out of memory");
}

static void setup_start(dag_task_t *t)
{
    setup_task_t *s = t->impl;
    s->task = t;
    s->step = 0;
    free(s->leftovers);
    s->leftovers = NULL;
    setup_next(s);
}

static void setup_cancel(dag_task_t *t)
{
    setup_task_t *s = t->impl;
    if (s->req)
        ch_request_cancel(s->req);
}

static void free_impl(dag_task_t *t)
{
    free(t->impl);
}

static void setup_free(dag_task_t *t)
{
    setup_task_t *s = t->impl;
    if (s)
        free(s->leftovers);
    free(s);
}

static const dag_task_ops_t setup_ops = {setup_start, setup_cancel, setup_free};

/* ---- snapshot ---------------------------------------------------------------------- */

typedef struct snap_task {
    run_t *run;
    dag_task_t *task;
} snap_task_t;

static void on_snap_closed(void *ud)
{
    (void)ud;
}

static void close_snapshot(run_t *r)
{
    if (r->snap) {
        pg_conn_close(r->snap, on_snap_closed, NULL);
        r->snap = NULL;
    }
}

static void on_snap_result(pg_conn_t *pg, void *ud, const PGresult *res, const char *err)
{
    (void)pg;
    snap_task_t *s = ud;
    if (err || PQntuples(res) != 1) {
        char msg[1024];
        snprintf(msg, sizeof msg, "PostgreSQL: cannot export a snapshot: %s",
                 err ? err : "no result");
        close_snapshot(s->run);
        dag_task_finish(s->task, false, msg);
        return;
    }
    snprintf(s->run->env.snapshot, sizeof s->run->env.snapshot, "%s", PQgetvalue(res, 0, 0));
    dag_task_finish(s->task, true, NULL);
}

static void on_snap_connected(pg_conn_t *pg, void *ud, const char *err)
{
    snap_task_t *s = ud;
    if (err) {
        char msg[1024];
        snprintf(msg, sizeof msg, "PostgreSQL connection failed: %s", err);
        close_snapshot(s->run);
        dag_task_finish(s->task, false, msg);
        return;
    }
    if (pg_conn_query(pg,
                      "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "
                      "SELECT pg_export_snapshot()",
                      on_snap_result, s) != 0) {
        close_snapshot(s->run);
        dag_task_finish(s->task, false, "PostgreSQL: cannot start the snapshot transaction");
    }
}

static void snap_start(dag_task_t *t)
{
    snap_task_t *s = t->impl;
    s->task = t;
    close_snapshot(s->run);
    s->run->env.snapshot[0] = '\0';
    s->run->snap = pg_conn_new(s->run->loop);
    if (!s->run->snap) {
        dag_task_finish(t, false, "out of memory");
        return;
    }
    const char *keys[16], *values[16];
    char port[16], timeout[16];
    load_pg_params(s->run->cfg, keys, values, port, timeout);
    if (pg_conn_connect(s->run->snap, keys, values, s->run->cfg->source.connect_timeout,
                        on_snap_connected, s) != 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "PostgreSQL: %s", pg_conn_error(s->run->snap));
        close_snapshot(s->run);
        dag_task_finish(t, false, msg);
    }
}

static void snap_cancel(dag_task_t *t)
{
    snap_task_t *s = t->impl;
    close_snapshot(s->run);
    dag_task_finish(t, false, "cancelled");
}

static const dag_task_ops_t snap_ops = {snap_start, snap_cancel, free_impl};

/* ---- the run ----------------------------------------------------------------------- */

run_t *run_new(uv_loop_t *loop, const config_t *cfg, ch_client_t *ch, int64_t id,
               const run_request_t *req, char *err, size_t errlen)
{
    run_t *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->id = id;
    r->loop = loop;
    r->cfg = cfg;
    r->state = RUN_QUEUED;
    r->created_at = util_wall_now();
    snprintf(r->trigger, sizeof r->trigger, "%s", req && req->trigger[0] ? req->trigger : "cli");
    r->env.cfg = cfg;
    r->env.loop = loop;
    r->env.ch = ch;
    r->env.full_refresh = req && req->full_refresh;
    snprintf(r->env.run_id, sizeof r->env.run_id, "%lld", (long long)id);
    dag_opts_t o = {
        .retries = (int)cfg->run.retries,
        .retry_delay = cfg->run.retry_delay,
        .retry_backoff = cfg->run.retry_backoff,
        .max_retry_delay = cfg->run.max_retry_delay,
        .task_timeout = cfg->run.task_timeout,
        .limit = {0, (int)cfg->run.load_parallelism, (int)cfg->run.model_parallelism,
                  (int)cfg->run.model_parallelism},
    };
    r->dag = dag_new(loop, &o);
    r->models = calloc(1, sizeof *r->models);
    if (!r->dag || !r->models)
        goto oom;
    /* The project is read and every model rendered before anything runs: template and
     * graph errors stop the run here, with FILE:LINE:COL. */
    models_selection_t sel = {0};
    if (!models_load(r->models, cfg, req ? req->vars : NULL, err, errlen)) {
        free(r->models);
        r->models = NULL;
        goto fail;
    }
    if (!models_select(r->models, req ? (const char *const *)req->select : NULL,
                       req && req->select ? req->nselect : 0,
                       req ? (const char *const *)req->exclude : NULL,
                       req && req->exclude ? req->nexclude : 0,
                       req ? (const char *const *)req->tables : NULL,
                       req && req->tables ? req->ntables : 0, &sel, err, errlen))
        goto fail;
    bool any_load = false;
    for (size_t i = 0; i < cfg->ntables; i++)
        any_load = any_load || sel.tables[i];
    setup_task_t *st = calloc(1, sizeof *st);
    snap_task_t *sn = calloc(1, sizeof *sn);
    dag_task_t *t_setup = NULL, *t_snap = NULL;
    if (st && sn) {
        st->run = r;
        sn->run = r;
        t_setup = dag_add(r->dag, "ensure_databases", TASK_KIND_SETUP, &setup_ops, st, -1);
        if (t_setup)
            st = NULL;
        /* Without loads there is nothing to snapshot (models read what ClickHouse holds). */
        t_snap = any_load ? dag_add(r->dag, "snapshot", TASK_KIND_SETUP, &snap_ops, sn, -1)
                          : NULL;
        if (t_snap)
            sn = NULL;
    }
    free(st);
    free(sn);
    if (!t_setup || (any_load && !t_snap))
        goto oom_sel;
    for (size_t i = 0; i < cfg->ntables; i++) {
        const config_table_t *tb = &cfg->tables[i];
        if (!sel.tables[i])
            continue;
        char name[300];
        snprintf(name, sizeof name, "load:%s", tb->target);
        void *impl = load_task_new(&r->env, tb);
        dag_task_t *t = impl ? dag_add(r->dag, name, TASK_KIND_LOAD, &load_task_ops, impl, -1)
                             : NULL;
        if (!t) {
            free(impl);
            goto oom_sel;
        }
        if (!dag_depend(r->dag, t, t_setup) || !dag_depend(r->dag, t, t_snap))
            goto oom_sel;
    }
    if (!models_add_tasks(r->models, r->dag, &r->env, &sel, t_setup, err, errlen)) {
        models_selection_free(&sel);
        goto fail;
    }
    models_selection_free(&sel);
    return r;
oom_sel:
    models_selection_free(&sel);
oom:
    snprintf(err, errlen, "out of memory");
fail:
    if (r->dag)
        dag_free(r->dag, NULL, NULL);
    if (r->models) {
        models_free(r->models);
        free(r->models);
    }
    free(r);
    return NULL;
}

static void on_task_event(dag_t *d, dag_task_t *t, void *ud)
{
    (void)d;
    run_t *r = ud;
    /* A final state reports the whole task; a retry wait, the attempt that just failed. */
    double secs = t->finished_at > 0 && t->started_at > 0
                      ? t->finished_at - t->started_at
                      : (double)(uv_now(r->loop) - t->attempt_start_ms) / 1000.0;
    if (t->state == TASK_RUNNING)
        log_info("run=%lld task=%s kind=%s state=running attempt=%d/%d", (long long)r->id,
                 t->name, dag_kind_name(t->kind), t->attempt, t->max_attempts);
    else if (t->state == TASK_SUCCESS)
        log_info("run=%lld task=%s kind=%s state=success attempt=%d rows=%lld bytes=%lld "
                 "duration=%.3f",
                 (long long)r->id, t->name, dag_kind_name(t->kind), t->attempt,
                 (long long)t->rows, (long long)t->bytes, secs);
    else
        log_msg(t->state == TASK_RETRY_WAIT ? LOG_WARN : LOG_ERROR,
                "run=%lld task=%s kind=%s state=%s attempt=%d/%d duration=%.3f error=%s",
                (long long)r->id, t->name, dag_kind_name(t->kind), dag_state_name(t->state),
                t->attempt, t->max_attempts, secs, log_quote(t->error));
    /* The snapshot is needed only while loads may still start (retries included). */
    if (dag_state_final(t->state) && t->kind == TASK_KIND_LOAD) {
        bool loads_left = false;
        for (size_t i = 0; i < r->dag->ntasks; i++)
            if (r->dag->tasks[i]->kind == TASK_KIND_LOAD &&
                !dag_state_final(r->dag->tasks[i]->state))
                loads_left = true;
        if (!loads_left)
            close_snapshot(r);
    }
    if (r->on_task_event)
        r->on_task_event(d, t, r->observer_ud);
}

static void on_dag_done(dag_t *d, void *ud)
{
    run_t *r = ud;
    close_snapshot(r);
    bool failed = false, cancelled = false;
    for (size_t i = 0; i < d->ntasks; i++) {
        dag_state_t s = d->tasks[i]->state;
        if (s == TASK_FAILED || s == TASK_UPSTREAM_FAILED)
            failed = true;
        if (s == TASK_CANCELLED)
            cancelled = true;
    }
    r->state = r->cancel_requested || (cancelled && !failed) ? RUN_CANCELLED
               : failed                                      ? RUN_FAILED
                                                             : RUN_SUCCESS;
    r->finished_at = util_wall_now();
    log_msg(r->state == RUN_SUCCESS ? LOG_INFO : LOG_ERROR,
            "run=%lld event=run_finished state=%s trigger=%s duration=%.3f", (long long)r->id,
            run_state_name(r->state), r->trigger, r->finished_at - r->started_at);
    if (r->on_done)
        r->on_done(r, r->ud);
}

bool run_start(run_t *r, run_done_cb on_done, void *ud, char *err, size_t errlen)
{
    r->on_done = on_done;
    r->ud = ud;
    r->state = RUN_RUNNING;
    r->started_at = util_wall_now();
    log_info("run=%lld event=run_started trigger=%s tasks=%zu", (long long)r->id, r->trigger,
             r->dag->ntasks);
    return dag_start(r->dag, on_task_event, on_dag_done, r, err, errlen);
}

void run_cancel(run_t *r)
{
    if (r->state != RUN_RUNNING)
        return;
    r->cancel_requested = true;
    close_snapshot(r);
    dag_cancel(r->dag);
}

typedef struct run_free_ctx {
    run_t *r;
    void (*freed)(void *);
    void *ud;
} run_free_ctx_t;

static void on_dag_freed(void *ud)
{
    run_free_ctx_t *c = ud;
    if (c->r->models) {
        models_free(c->r->models);
        free(c->r->models);
    }
    free(c->r);
    if (c->freed)
        c->freed(c->ud);
    free(c);
}

void run_free(run_t *r, void (*freed)(void *ud), void *ud)
{
    run_free_ctx_t *c = malloc(sizeof *c);
    if (!c)
        abort();
    c->r = r;
    c->freed = freed;
    c->ud = ud;
    dag_free(r->dag, on_dag_freed, c);
}
