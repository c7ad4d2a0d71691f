/* materialize.c — the model and test tasks. A model is built under a temporary name and
 * published by RENAME (EXCHANGE TABLES on Atomic databases), so a SQL error leaves the
 * previous relation untouched and the temporaries dropped. ClickHouse 18.16 has no CREATE
 * OR REPLACE, DELETE or multi-statement requests: every step is one statement. */
#include "materialize.h"

#include "log.h"
#include "util.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- SQL shapes -------------------------------------------------------------------- */

char *materialize_strip_sql(const char *sql)
{
    size_t n = strlen(sql);
    while (n > 0 && (isspace((unsigned char)sql[n - 1]) || sql[n - 1] == ';'))
        n--;
    size_t b = 0;
    while (b < n && isspace((unsigned char)sql[b]))
        b++;
    return strndup(sql + b, n - b);
}

char *materialize_create_table_sql(const models_config_t *c, const char *relation, const char *sql)
{
    char *body = materialize_strip_sql(sql);
    if (!body)
        return NULL;
    char *s = util_asprintf(
        "CREATE TABLE %s ENGINE = %s%s%s ORDER BY %s%s%s%s%s AS\n%s", relation,
        c->engine ? c->engine : "MergeTree()", c->partition_by ? " PARTITION BY " : "",
        c->partition_by ? c->partition_by : "", c->order_by ? c->order_by : "tuple()",
        c->primary_key ? " PRIMARY KEY " : "", c->primary_key ? c->primary_key : "",
        c->settings ? " SETTINGS " : "", c->settings ? c->settings : "", body);
    free(body);
    return s;
}

static bool plain_ident(const char *s)
{
    if (!isalpha((unsigned char)*s) && *s != '_')
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return false;
    return true;
}

/* A column name quoted; an expression (lower(email)) as written. */
static char *column_sql(const char *c)
{
    return plain_ident(c) ? ch_quote_ident(c) : strdup(c);
}

char *materialize_test_label(const models_project_t *p, const models_test_t *t)
{
    if (t->kind == MODELS_TEST_RELATIONSHIPS)
        return util_asprintf("relationships(%s -> %s.%s)", t->column, p->models[t->parent].name,
                             t->field);
    return util_asprintf("%s(%s)", models_test_kind_name(t->kind), t->column);
}

char *materialize_test_sql(const models_project_t *p, const models_test_t *t)
{
    const char *rel = p->models[t->model].relation;
    char *col = column_sql(t->column), *s = NULL;
    if (!col)
        return NULL;
    switch (t->kind) {
    case MODELS_TEST_UNIQUE:
        s = util_asprintf("SELECT count() FROM (SELECT %s FROM %s WHERE %s IS NOT NULL GROUP BY %s "
                          "HAVING count() > 1)",
                          col, rel, col, col);
        break;
    case MODELS_TEST_NOT_NULL:
        s = util_asprintf("SELECT count() FROM %s WHERE %s IS NULL", rel, col);
        break;
    case MODELS_TEST_ACCEPTED_VALUES: {
        size_t cap = 1;
        for (size_t i = 0; i < t->nvalues; i++)
            cap += 2 * strlen(t->values[i]) + 4;
        char *list = malloc(cap), *o = list;
        if (!list)
            break;
        *o = '\0';
        for (size_t i = 0; i < t->nvalues; i++) {
            if (i)
                o += sprintf(o, ", ");
            if (t->quote) {
                char *q = ch_quote_string(t->values[i]);
                if (!q) {
                    free(list);
                    list = NULL;
                    break;
                }
                o += sprintf(o, "%s", q);
                free(q);
            } else {
                o += sprintf(o, "%s", t->values[i]);
            }
        }
        if (list)
            s = util_asprintf("SELECT count() FROM %s WHERE %s NOT IN (%s)", rel, col,
                              t->nvalues ? list : "NULL");
        free(list);
        break;
    }
    case MODELS_TEST_RELATIONSHIPS: {
        /* NOT IN rather than a join: a missing parent row counts, and ClickHouse 18.16's
         * joins fill non-Nullable misses with defaults. toString on both sides because IN
         * refuses differing integer types (UInt32 against Int64). */
        char *field = column_sql(t->field);
        if (field)
            s = util_asprintf("SELECT count() FROM %s WHERE %s IS NOT NULL AND toString(%s) NOT IN "
                              "(SELECT toString(%s) FROM %s WHERE %s IS NOT NULL)",
                              rel, col, col, field, p->models[t->parent].relation, field);
        free(field);
        break;
    }
    }
    free(col);
    return s;
}

/* ---- model task -------------------------------------------------------------------- */

typedef struct model_task model_task_t;
typedef void (*step_fn)(model_task_t *m, const char *body);

struct model_task {
    load_env_t *env;
    const models_project_t *p;
    size_t model;
    dag_task_t *task;
    ch_request_t *req;
    step_fn next;
    char *stmt;                   /* statement in flight, for error messages */
    char *sql;                    /* rendered for this attempt */
    char *rel, *tmp, *side, *old; /* quoted relation names */
    bool exists;                  /* the relation existed at start */
    bool atomic;                  /* database engine Atomic: EXCHANGE TABLES works */
    bool incremental;             /* is_incremental() was true */
    bool failing;
    int cleanup_step;
    const char *method;
    long long rows;
    uint64_t t0;
    char error[1024];
};

static void model_step(model_task_t *m, const char *sql, step_fn next);
static void model_fail(model_task_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static const models_model_t *model_of(const model_task_t *m)
{
    return &m->p->models[m->model];
}

static void attempt_reset(model_task_t *m)
{
    free(m->stmt);
    free(m->sql);
    m->stmt = m->sql = NULL;
    m->failing = false;
    m->cleanup_step = 0;
    m->rows = 0;
    m->method = "";
    m->error[0] = '\0';
}

static void model_finish(model_task_t *m, bool ok)
{
    dag_task_t *t = m->task;
    const models_model_t *md = model_of(m);
    double secs = (double)(uv_now(m->env->loop) - m->t0) / 1000.0;
    if (ok) {
        t->rows = m->rows;
        log_info("run=%s task=%s attempt=%d event=model_built materialized=%s incremental=%d "
                 "method=%s rows=%lld duration=%.3f",
                 m->env->run_id, t->name, t->attempt, models_mat_name(md->config.materialized),
                 m->incremental, m->method, m->rows, secs);
    }
    char err[sizeof m->error];
    memcpy(err, m->error, sizeof err);
    attempt_reset(m);
    dag_task_finish(t, ok, ok ? NULL : err);
}

static void on_cleanup_done(ch_request_t *req, void *ud, long status, const char *body, size_t len,
                            const char *err);

/* Drops the temporaries one by one (the relation itself is never touched), then reports. */
static void cleanup_next(model_task_t *m)
{
    const char *what = m->cleanup_step == 0 ? m->tmp : m->cleanup_step == 1 ? m->side : NULL;
    m->cleanup_step++;
    if (!what) {
        model_finish(m, false);
        return;
    }
    char *sql = util_asprintf("DROP TABLE IF EXISTS %s", what);
    m->req = sql ? ch_query(m->env->ch, sql, NULL, on_cleanup_done, m) : NULL;
    free(sql);
    if (!m->req)
        model_finish(m, false);
}

static void on_cleanup_done(ch_request_t *req, void *ud, long status, const char *body, size_t len,
                            const char *err)
{
    (void)req, (void)status, (void)body, (void)len;
    model_task_t *m = ud;
    m->req = NULL;
    if (err)
        log_warn("run=%s task=%s event=cleanup_failed error=%s", m->env->run_id, m->task->name,
                 log_quote(err));
    cleanup_next(m);
}

static void model_fail(model_task_t *m, const char *fmt, ...)
{
    if (m->failing)
        return;
    m->failing = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->error, sizeof m->error, fmt, ap);
    va_end(ap);
    log_warn("run=%s task=%s attempt=%d event=model_failed error=%s", m->env->run_id, m->task->name,
             m->task->attempt, log_quote(m->error));
    if (m->req) {
        ch_request_cancel(m->req); /* its callback continues with the cleanup */
        return;
    }
    cleanup_next(m);
}

static void on_model_step(ch_request_t *req, void *ud, long status, const char *body, size_t len,
                          const char *err)
{
    (void)req, (void)status, (void)len;
    model_task_t *m = ud;
    m->req = NULL;
    if (m->failing) {
        cleanup_next(m);
        return;
    }
    if (err) {
        model_fail(m, "ClickHouse: %s (while running: %.300s)", err, m->stmt ? m->stmt : "");
        return;
    }
    m->next(m, body);
}

static void model_step(model_task_t *m, const char *sql, step_fn next)
{
    if (!sql) {
        model_fail(m, "out of memory");
        return;
    }
    free(m->stmt);
    m->stmt = strdup(sql);
    m->next = next;
    m->req = ch_query(m->env->ch, sql, NULL, on_model_step, m);
    if (!m->req)
        model_fail(m, "out of memory");
}

/* Runs a formatted statement, freeing it. */
static void model_stepf(model_task_t *m, step_fn next, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void model_stepf(model_task_t *m, step_fn next, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = util_vasprintf(fmt, ap);
    va_end(ap);
    model_step(m, sql, next);
    free(sql);
}

static void done_ok(model_task_t *m, const char *body)
{
    (void)body;
    model_finish(m, true);
}

static void after_drop_old(model_task_t *m, const char *body)
{
    (void)body;
    model_finish(m, true);
}

static void after_swap(model_task_t *m, const char *body)
{
    (void)body;
    /* Published; what is left is the previous relation under a temporary name. */
    model_stepf(m, after_drop_old, "DROP TABLE IF EXISTS %s", m->atomic ? m->side : m->old);
}

/* Publishes built (the side table or the tmp view) as the relation. */
static void publish(model_task_t *m, const char *built, bool can_exchange)
{
    if (!m->exists) {
        m->method = "rename";
        model_stepf(m, done_ok, "RENAME TABLE %s TO %s", built, m->rel);
    } else if (m->atomic && can_exchange) {
        m->method = "exchange";
        model_stepf(m, after_swap, "EXCHANGE TABLES %s AND %s", built, m->rel);
    } else {
        m->method = "rename_pair";
        model_stepf(m, after_swap, "RENAME TABLE %s TO %s, %s TO %s", m->rel, m->old, built,
                    m->rel);
    }
}

static void after_count(model_task_t *m, const char *body)
{
    m->rows = strtoll(body, NULL, 10);
    publish(m, m->side, true);
}

static void count_side(model_task_t *m, const char *body)
{
    (void)body;
    model_stepf(m, after_count, "SELECT count() FROM %s", m->side);
}

/* ---- view -------------------------------------------------------------------------- */

static void after_create_view(model_task_t *m, const char *body)
{
    (void)body;
    publish(m, m->tmp, false);
}

static void view_build(model_task_t *m, const char *body)
{
    (void)body;
    char *sql = materialize_strip_sql(m->sql);
    if (sql)
        model_stepf(m, after_create_view, "CREATE VIEW %s AS\n%s", m->tmp, sql);
    else
        model_fail(m, "out of memory");
    free(sql);
}

/* ---- table ------------------------------------------------------------------------- */

static void table_build(model_task_t *m, const char *body)
{
    (void)body;
    char *sql = materialize_create_table_sql(&model_of(m)->config, m->side, m->sql);
    model_step(m, sql, count_side);
    free(sql);
}

/* ---- incremental ------------------------------------------------------------------- */

static bool delete_insert(const model_task_t *m)
{
    const models_config_t *c = &model_of(m)->config;
    return c->strategy ? !strcmp(c->strategy, "delete+insert") : c->unique_key != NULL;
}

static void after_attach(model_task_t *m, const char *body)
{
    (void)body;
    model_stepf(m, after_drop_old, "DROP TABLE IF EXISTS %s", m->side);
}

static void append_count_done(model_task_t *m, const char *body)
{
    m->rows = strtoll(body, NULL, 10);
    /* The new rows land in one step: ATTACH PARTITION for an unpartitioned table (atomic on
     * old and new servers), else one INSERT SELECT. */
    if (!model_of(m)->config.partition_by) {
        m->method = "attach_partition";
        model_stepf(m, after_attach, "ALTER TABLE %s ATTACH PARTITION tuple() FROM %s", m->rel,
                    m->side);
    } else {
        m->method = "insert_select";
        model_stepf(m, after_attach, "INSERT INTO %s SELECT * FROM %s", m->rel, m->side);
    }
}

static void append_inserted(model_task_t *m, const char *body)
{
    (void)body;
    model_stepf(m, append_count_done, "SELECT count() FROM %s", m->side);
}

static void di_insert_new(model_task_t *m, const char *body)
{
    (void)body;
    char *sql = materialize_strip_sql(m->sql);
    if (sql)
        model_stepf(m, count_side, "INSERT INTO %s\n%s", m->side, sql);
    else
        model_fail(m, "out of memory");
    free(sql);
}

static void after_side_like(model_task_t *m, const char *body)
{
    (void)body;
    char *sql = materialize_strip_sql(m->sql);
    if (!sql) {
        model_fail(m, "out of memory");
        return;
    }
    if (delete_insert(m)) {
        /* Rows of the current table whose key the new batch does not bring, then the batch:
         * a delete+insert without DELETE, published like a table. */
        const char *key = model_of(m)->config.unique_key;
        model_stepf(m, di_insert_new,
                    "INSERT INTO %s SELECT * FROM %s WHERE (%s) NOT IN (SELECT %s FROM (\n%s\n))",
                    m->side, m->rel, key, key, sql);
    } else {
        model_stepf(m, append_inserted, "INSERT INTO %s\n%s", m->side, sql);
    }
    free(sql);
}

static void incremental_build(model_task_t *m, const char *body)
{
    (void)body;
    model_stepf(m, after_side_like, "CREATE TABLE %s AS %s", m->side, m->rel);
}

/* ---- start ------------------------------------------------------------------------- */

static void build(model_task_t *m)
{
    const models_model_t *md = model_of(m);
    models_mat_t mat = md->config.materialized;
    m->incremental = mat == MODELS_INCREMENTAL && m->exists && !m->env->full_refresh;
    char err[1024];
    if (!models_render(m->p, m->model, m->incremental, &m->sql, err, sizeof err)) {
        model_fail(m, "%s", err);
        return;
    }
    if (mat == MODELS_INCREMENTAL && m->incremental && delete_insert(m) && !md->config.unique_key) {
        model_fail(m, "%s: incremental_strategy delete+insert needs a unique_key", md->file);
        return;
    }
    if (mat == MODELS_VIEW)
        model_stepf(m, view_build, "DROP TABLE IF EXISTS %s", m->tmp);
    else if (m->incremental)
        model_stepf(m, incremental_build, "DROP TABLE IF EXISTS %s", m->side);
    else
        model_stepf(m, table_build, "DROP TABLE IF EXISTS %s", m->side);
}

static void after_engine(model_task_t *m, const char *body)
{
    m->atomic = !strncmp(body, "Atomic", 6);
    build(m);
}

static void after_drop_leftover(model_task_t *m, const char *body)
{
    (void)body;
    /* Atomic databases (20.x+) can EXCHANGE; 18.16 cannot even be asked. */
    if (m->env->caps.major >= 20) {
        char *db = ch_quote_string(m->p->cfg->warehouse.analytics_database);
        if (db)
            model_stepf(m, after_engine, "SELECT engine FROM system.databases WHERE name = %s", db);
        else
            model_fail(m, "out of memory");
        free(db);
        return;
    }
    build(m);
}

static void after_exists(model_task_t *m, const char *body)
{
    m->exists = body[0] == '1';
    model_stepf(m, after_drop_leftover, "DROP TABLE IF EXISTS %s", m->old);
}

static void model_start(dag_task_t *t)
{
    model_task_t *m = t->impl;
    m->task = t;
    attempt_reset(m);
    m->t0 = uv_now(m->env->loop);
    m->exists = m->atomic = m->incremental = false;
    model_stepf(m, after_exists, "EXISTS TABLE %s", m->rel);
}

static void model_cancel(dag_task_t *t)
{
    model_task_t *m = t->impl;
    if (m->req && !m->failing)
        model_fail(m, "cancelled");
}

static void model_destroy(dag_task_t *t)
{
    model_task_t *m = t->impl;
    attempt_reset(m);
    free(m->rel);
    free(m->tmp);
    free(m->side);
    free(m->old);
    free(m);
}

const dag_task_ops_t materialize_model_ops = {model_start, model_cancel, model_destroy};

static char *suffixed(const char *db, const char *name, const char *suffix)
{
    char *full = util_asprintf("%s%s", name, suffix);
    char *a = ch_quote_ident(db), *b = full ? ch_quote_ident(full) : NULL;
    char *r = a && b ? util_asprintf("%s.%s", a, b) : NULL;
    free(full);
    free(a);
    free(b);
    return r;
}

void *materialize_model_task_new(load_env_t *env, const models_project_t *p, size_t model)
{
    model_task_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    const char *db = p->cfg->warehouse.analytics_database;
    const char *ident = p->models[model].ident;
    m->env = env;
    m->p = p;
    m->model = model;
    m->rel = strdup(p->models[model].relation);
    m->tmp = suffixed(db, ident, MATERIALIZE_TMP_SUFFIX);
    m->side = suffixed(db, ident, LOAD_SIDE_SUFFIX);
    m->old = suffixed(db, ident, LOAD_OLD_SUFFIX);
    if (!m->rel || !m->tmp || !m->side || !m->old) {
        free(m->rel);
        free(m->tmp);
        free(m->side);
        free(m->old);
        free(m);
        return NULL;
    }
    return m;
}

/* ---- test task --------------------------------------------------------------------- */

typedef struct test_task {
    load_env_t *env;
    const models_project_t *p;
    size_t test;
    dag_task_t *task;
    ch_request_t *req;
} test_task_t;

static void on_test_done(ch_request_t *req, void *ud, long status, const char *body, size_t len,
                         const char *err)
{
    (void)req, (void)status, (void)len;
    test_task_t *tt = ud;
    tt->req = NULL;
    dag_task_t *t = tt->task;
    const models_test_t *te = &tt->p->tests[tt->test];
    if (err) {
        char msg[1024];
        snprintf(msg, sizeof msg, "ClickHouse: %s", err);
        dag_task_finish(t, false, msg);
        return;
    }
    char *end;
    long long n = strtoll(body, &end, 10);
    if (end == body) {
        dag_task_finish(t, false, "ClickHouse: the test query returned no count");
        return;
    }
    t->failures = n;
    char *label = materialize_test_label(tt->p, te);
    char msg[1024];
    snprintf(msg, sizeof msg, "%lld rows failed %s", n, label ? label : te->name);
    free(label);
    if (n == 0) {
        log_info("run=%s task=%s event=test_passed failures=0", tt->env->run_id, t->name);
        dag_task_finish(t, true, NULL);
    } else if (te->warn) {
        t->warn = true;
        snprintf(t->error, sizeof t->error, "%s", msg);
        log_warn("run=%s task=%s event=test_warned severity=warn failures=%lld error=%s",
                 tt->env->run_id, t->name, n, log_quote(msg));
        dag_task_finish(t, true, NULL);
    } else {
        log_error("run=%s task=%s event=test_failed severity=error failures=%lld error=%s",
                  tt->env->run_id, t->name, n, log_quote(msg));
        dag_task_finish(t, false, msg);
    }
}

static void test_start(dag_task_t *t)
{
    test_task_t *tt = t->impl;
    tt->task = t;
    char *sql = materialize_test_sql(tt->p, &tt->p->tests[tt->test]);
    tt->req = sql ? ch_query(tt->env->ch, sql, "wait_end_of_query=1", on_test_done, tt) : NULL;
    free(sql);
    if (!tt->req)
        dag_task_finish(t, false, "out of memory");
}

static void test_cancel(dag_task_t *t)
{
    test_task_t *tt = t->impl;
    if (tt->req)
        ch_request_cancel(tt->req);
}

static void test_destroy(dag_task_t *t)
{
    free(t->impl);
}

const dag_task_ops_t materialize_test_ops = {test_start, test_cancel, test_destroy};

void *materialize_test_task_new(load_env_t *env, const models_project_t *p, size_t test)
{
    test_task_t *tt = calloc(1, sizeof *tt);
    if (tt) {
        tt->env = env;
        tt->p = p;
        tt->test = test;
    }
    return tt;
}
