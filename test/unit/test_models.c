/* test_models.c — dbt project loading (test/unit/models/shop and projects written to a
 * temporary directory), rendering of ref/source/config/this/var/env_var/is_incremental,
 * errors with FILE:LINE:COL, the run's DAG edges and selections, and the SQL shapes of
 * materializations and tests. No server: run_new builds the DAG without starting it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "project_files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "materialize.h"
#include "models.h"
#include "run.h"

/* A config whose models.path is dir; extra YAML goes under models:. */
static void load_config(config_t *cfg, const char *dir, const char *models_extra)
{
    char yaml[4096], err[512];
    snprintf(yaml, sizeof yaml,
             "source: {host: localhost, database: db, user: u, password: p}\n"
             "warehouse: {url: 'http://localhost:8123', raw_database: raw_t,"
             " analytics_database: analytics_t}\n"
             "tables: [customers, products, orders, {name: order_items, target: items}]\n"
             "models:\n  path: %s\n%s",
             dir, models_extra ? models_extra : "");
    if (!config_load_string(cfg, "t.yaml", yaml, strlen(yaml), err, sizeof err))
        fail_msg("config: %s", err);
}

/* ---- temporary projects ------------------------------------------------------------ */

/* Loads the temporary project; returns the error text ("" on success). */
static const char *load_tmp(models_project_t *p, bool keep)
{
    static char err[1024];
    config_t cfg;
    load_config(&cfg, tmpdir, NULL);
    err[0] = '\0';
    static config_t kept;
    if (models_load(p, &cfg, NULL, err, sizeof err)) {
        if (!keep)
            models_free(p);
        else {
            kept = cfg;
            p->cfg = &kept;
            return "";
        }
    }
    config_free(&cfg);
    /* Error paths start with the temporary directory: show them relative. */
    size_t n = strlen(tmpdir);
    for (char *at; (at = strstr(err, tmpdir)) && at[n] == '/';)
        memmove(at, at + n + 1, strlen(at + n + 1) + 1);
    return err;
}

/* ---- the fixture project ----------------------------------------------------------- */

static const models_model_t *model(const models_project_t *p, const char *name)
{
    long i = models_find(p, name);
    if (i < 0)
        fail_msg("no model %s", name);
    return &p->models[i];
}

static bool has_tag(const models_model_t *m, const char *tag)
{
    for (size_t i = 0; i < m->config.ntags; i++)
        if (!strcmp(m->config.tags[i], tag))
            return true;
    return false;
}

static bool refs(const models_project_t *p, const char *a, const char *b)
{
    const models_model_t *m = model(p, a);
    for (size_t i = 0; i < m->nrefs; i++)
        if (!strcmp(p->models[m->refs[i]].name, b))
            return true;
    return false;
}

static void test_load_fixture(void **state)
{
    (void)state;
    config_t cfg;
    load_config(&cfg, fixture, NULL);
    models_project_t p;
    char err[1024];
    if (!models_load(&p, &cfg, NULL, err, sizeof err))
        fail_msg("%s", err);
    assert_true(p.present);
    assert_string_equal(p.name, "shop");
    assert_int_equal(p.nmodels, 8);
    /* Folder defaults, config() and schema.yml config. */
    assert_int_equal(model(&p, "stg_orders")->config.materialized, MODELS_VIEW);
    assert_int_equal(model(&p, "order_totals")->config.materialized, MODELS_TABLE);
    const models_model_t *ol = model(&p, "orders_latest");
    assert_int_equal(ol->config.materialized, MODELS_INCREMENTAL);
    assert_string_equal(ol->config.unique_key, "order_id");
    assert_string_equal(ol->config.order_by, "order_id");
    const models_model_t *ot = model(&p, "order_totals");
    assert_string_equal(ot->config.engine, "MergeTree()");
    assert_string_equal(ot->config.order_by, "order_id");
    assert_string_equal(ot->config.settings, "index_granularity = 8192");
    assert_string_equal(model(&p, "order_events")->config.strategy, "append");
    const models_model_t *sc = model(&p, "stg_customers");
    assert_true(has_tag(sc, "shop") && has_tag(sc, "staging") && has_tag(sc, "pii"));
    assert_false(has_tag(sc, "marts"));
    assert_true(has_tag(model(&p, "order_summary"), "summary"));
    assert_true(has_tag(model(&p, "order_summary"), "marts"));
    assert_true(has_tag(model(&p, "customer_orders"), "customers"));
    assert_string_equal(sc->path, "models/staging/stg_customers.sql");
    assert_string_equal(model(&p, "order_totals")->fqn_dir, "marts");
    /* Edges: refs, including the one inside {% if is_incremental() %}, and loaded sources. */
    assert_true(refs(&p, "order_summary", "order_totals"));
    assert_true(refs(&p, "customer_orders", "stg_orders"));
    assert_true(refs(&p, "customer_orders", "stg_customers"));
    assert_true(refs(&p, "orders_latest", "stg_orders"));
    assert_int_equal(ol->ntables, 1);
    assert_string_equal(ol->tables[0], "orders");
    assert_string_equal(model(&p, "stg_order_items")->tables[0], "items");
    assert_string_equal(model(&p, "stg_order_items")->sources[0], "raw.order_items");
    /* Tests: names, kinds, severity. */
    assert_int_equal(p.ntests, 6);
    int warn = 0, rel = 0;
    for (size_t i = 0; i < p.ntests; i++) {
        warn += p.tests[i].warn;
        if (p.tests[i].kind == MODELS_TEST_RELATIONSHIPS) {
            rel++;
            assert_string_equal(p.tests[i].name, "relationships_customer_id");
            assert_string_equal(p.models[p.tests[i].parent].name, "stg_customers");
            assert_string_equal(p.tests[i].field, "customer_id");
        }
    }
    assert_int_equal(warn, 1);
    assert_int_equal(rel, 1);
    /* Documentation: descriptions of models, sources and columns, columns in file order. */
    const models_model_t *so = model(&p, "stg_orders");
    assert_string_equal(so->description, "Orders, one row each.");
    assert_int_equal(so->ncolumns, 3);
    assert_string_equal(so->columns[0].name, "order_id");
    assert_string_equal(so->columns[2].name, "customer_id");
    assert_null(so->columns[0].description);
    assert_null(ot->description);
    assert_int_equal(ot->ncolumns, 1);
    const models_source_table_t *cu = NULL, *ord = NULL;
    for (size_t i = 0; i < p.nsrcs; i++) {
        if (!strcmp(p.srcs[i].table, "customers"))
            cu = &p.srcs[i];
        if (!strcmp(p.srcs[i].table, "orders"))
            ord = &p.srcs[i];
    }
    assert_non_null(cu);
    assert_non_null(ord);
    assert_string_equal(cu->source_description, "Tables eltd loads from PostgreSQL.");
    assert_string_equal(cu->description, "One row per customer.");
    assert_null(ord->description);
    assert_int_equal(ord->ncolumns, 1);
    assert_string_equal(ord->columns[0].name, "order_id");
    /* Dependencies first. */
    size_t pos_ot = 0, pos_os = 0;
    for (size_t k = 0; k < p.nmodels; k++) {
        if (p.order[k] == (size_t)models_find(&p, "order_totals"))
            pos_ot = k;
        if (p.order[k] == (size_t)models_find(&p, "order_summary"))
            pos_os = k;
    }
    assert_true(pos_ot < pos_os);
    models_free(&p);
    config_free(&cfg);
}

static void test_render_fixture(void **state)
{
    (void)state;
    config_t cfg;
    load_config(&cfg, fixture, "  vars: {min_quantity: 2}\n");
    models_project_t p;
    char err[1024];
    json_t *run_vars = json_pack("{s:i}", "min_quantity", 5);
    /* dbt_project.yml < config models.vars < run vars. */
    if (!models_load(&p, &cfg, run_vars, err, sizeof err))
        fail_msg("%s", err);
    assert_non_null(strstr(model(&p, "stg_order_items")->sql, "WHERE quantity >= 5"));
    assert_non_null(strstr(model(&p, "stg_order_items")->sql, "FROM `raw_t`.`items`"));
    assert_null(strstr(model(&p, "stg_order_items")->sql, "{#"));
    assert_string_equal(model(&p, "order_summary")->sql,
                        "-- `analytics_t`.`order_summary` in BRL\n"
                        "SELECT count() AS orders, sum(total) AS revenue\n"
                        "FROM `analytics_t`.`order_totals`");
    assert_string_equal(model(&p, "order_totals")->sql,
                        "\nSELECT order_id, count() AS items, sum(subtotal) AS total\n"
                        "FROM `analytics_t`.`stg_order_items`\n"
                        "GROUP BY order_id");
    /* is_incremental() is false at load and for compile, true when asked. */
    long ol = models_find(&p, "orders_latest");
    assert_null(strstr(p.models[ol].sql, "WHERE"));
    char *sql;
    assert_true(models_render(&p, (size_t)ol, true, &sql, err, sizeof err));
    assert_non_null(strstr(sql, "SELECT order_id FROM `analytics_t`.`stg_orders`"));
    assert_non_null(strstr(
        sql, "WHERE updated_at > (SELECT max(updated_at) FROM `analytics_t`.`orders_latest`)"));
    free(sql);
    json_decref(run_vars);
    models_free(&p);
    config_free(&cfg);

    /* Without run vars, the config's win over the project's. */
    load_config(&cfg, fixture, "  vars: {min_quantity: 2}\n");
    assert_true(models_load(&p, &cfg, NULL, err, sizeof err));
    assert_non_null(strstr(model(&p, "stg_order_items")->sql, "WHERE quantity >= 2"));
    models_free(&p);
    config_free(&cfg);
    load_config(&cfg, fixture, NULL);
    assert_true(models_load(&p, &cfg, NULL, err, sizeof err));
    assert_non_null(strstr(model(&p, "stg_order_items")->sql, "WHERE quantity >= 1"));
    models_free(&p);
    config_free(&cfg);
}

static void test_render_functions(void **state)
{
    (void)state;
    new_tmp_project();
    /* A bare models directory (no dbt_project.yml), external sources, env_var, alias. */
    write_file("sources.yml", "sources:\n"
                              "  - name: fin\n    database: finance\n"
                              "    tables: [{name: rates, identifier: fx_rates}]\n"
                              "  - name: raw\n    tables: [{name: orders}]\n");
    write_file("a.sql", "{{ config(materialized='table', alias='a_final', order_by=['x', 'y'],"
                        " partition_by='toYYYYMM(d)', unique_key=['x', 'y'], tags='t1',"
                        " engine='ReplacingMergeTree(v)', primary_key='x') }}"
                        "SELECT * FROM {{ source('fin', 'rates') }} -- {{ this }}"
                        " {{ env_var('ELTD_TEST_MODELS_ENV') }} {{ env_var('ELTD_UNSET_X', 'd') }}"
                        " {{ var('missing', 7) }} {{ target.schema }}");
    write_file("sub/b.sql", "SELECT * FROM {{ ref('a') }} JOIN {{ source('raw', 'orders') }}");
    setenv("ELTD_TEST_MODELS_ENV", "envval", 1);
    models_project_t p;
    assert_string_equal(load_tmp(&p, true), "");
    const models_model_t *a = model(&p, "a");
    assert_string_equal(a->sql, "SELECT * FROM `finance`.`fx_rates` -- `analytics_t`.`a_final` "
                                "envval d 7 analytics_t");
    assert_string_equal(a->relation, "`analytics_t`.`a_final`");
    assert_int_equal(a->ntables, 0); /* external: no load to wait for */
    assert_string_equal(a->config.order_by, "(x, y)");
    assert_string_equal(a->config.unique_key, "x, y");
    assert_string_equal(a->config.partition_by, "toYYYYMM(d)");
    const models_model_t *b = model(&p, "b");
    assert_string_equal(b->sql, "SELECT * FROM `analytics_t`.`a_final` JOIN `raw_t`.`orders`");
    assert_int_equal(b->config.materialized, MODELS_VIEW);
    assert_string_equal(b->fqn_dir, "sub");
    /* The bare directory is shown under its own name for path: selectors. */
    const char *base = strrchr(tmpdir, '/') + 1;
    char want[300];
    snprintf(want, sizeof want, "%s/sub/b.sql", base);
    assert_string_equal(b->path, want);
    char *ddl = materialize_create_table_sql(&a->config, "`analytics_t`.`a__eltd_new`", a->sql);
    assert_string_equal(ddl, "CREATE TABLE `analytics_t`.`a__eltd_new` ENGINE = "
                             "ReplacingMergeTree(v) PARTITION BY toYYYYMM(d) ORDER BY (x, y) "
                             "PRIMARY KEY x AS\nSELECT * FROM `finance`.`fx_rates` -- "
                             "`analytics_t`.`a_final` envval d 7 analytics_t");
    free(ddl);
    config_free((config_t *)p.cfg);
    models_free(&p);
    unsetenv("ELTD_TEST_MODELS_ENV");
    rm_tmp_project();
}

static int error_mismatches;

/* One project per error: files[] are name, text pairs; the error must equal want. */
static void expect_error(const char *const files[][2], size_t n, const char *want)
{
    new_tmp_project();
    for (size_t i = 0; i < n; i++)
        write_file(files[i][0], files[i][1]);
    models_project_t p;
    const char *got = load_tmp(&p, false);
    if (strcmp(got, want)) {
        print_error("expected error\n  %s\ngot\n  %s\n", want, got);
        error_mismatches++;
    }
    rm_tmp_project();
}

#define EXPECT_ERROR(want, ...)                                                                    \
    do {                                                                                           \
        const char *const f[][2] = {__VA_ARGS__};                                                  \
        expect_error(f, sizeof f / sizeof *f, want);                                               \
    } while (0)

static void test_errors(void **state)
{
    (void)state;
    EXPECT_ERROR("a.sql:2:9: ref(): no model named 'nope'",
                 {"a.sql", "SELECT 1\nFROM {{ ref('nope') }}"});
    EXPECT_ERROR("a.sql:1:4: unknown function 'run_query'", {"a.sql", "{{ run_query('x') }}"});
    EXPECT_ERROR("a.sql:1:18: source(): raw.x is not declared under sources: in the project's "
                 ".yml files",
                 {"a.sql", "SELECT * FROM {{ source('raw', 'x') }}"});
    EXPECT_ERROR("a.sql:1:4: config(): materialized: expected view, table or incremental, got "
                 "'ephemeral'",
                 {"a.sql", "{{ config(materialized='ephemeral') }}"});
    EXPECT_ERROR("a.sql:1:4: var(): 'nope' is not defined (dbt_project.yml vars:, the config's "
                 "models.vars or --vars) and has no default",
                 {"a.sql", "{{ var('nope') }}"});
    EXPECT_ERROR("a.sql:1:4: env_var(): 'ELTD_SURELY_UNSET_VAR' is not set in the environment and "
                 "has no default",
                 {"a.sql", "{{ env_var('ELTD_SURELY_UNSET_VAR') }}"});
    EXPECT_ERROR("a.sql:1:4: config(): pre_hook is not supported by eltd",
                 {"a.sql", "{{ config(pre_hook='x') }}"});
    /* Graph errors name the files. */
    EXPECT_ERROR("a.sql: models form a cycle: a -> b -> c -> a", {"a.sql", "{{ ref('b') }}"},
                 {"b.sql", "{{ ref('c') }}"}, {"c.sql", "{{ ref('a') }}"});
    EXPECT_ERROR("x/a.sql: a model named 'a' already exists in a.sql", {"a.sql", "SELECT 1"},
                 {"x/a.sql", "SELECT 2"});
    EXPECT_ERROR("b.sql:1:4: ref(): model 'a' is disabled", {"a.sql", "SELECT 1"},
                 {"b.sql", "{{ ref('a') }}"},
                 {"s.yml", "models:\n  - name: a\n    config: {enabled: false}\n"});
    /* YAML structure errors. */
    EXPECT_ERROR("s.yml:1:9: models: expected a list", {"a.sql", "SELECT 1"},
                 {"s.yml", "models: {a: 1}\n"});
    EXPECT_ERROR("s.yml:2:5: models: no model named 'zz' (no zz.sql)", {"a.sql", "SELECT 1"},
                 {"s.yml", "models:\n  - name: zz\n"});
    EXPECT_ERROR("s.yml:5:17: test 'dbt_utils.expression_is_true' is not supported (unique, "
                 "not_null, accepted_values, relationships)",
                 {"a.sql", "SELECT 1 AS x"},
                 {"s.yml", "models:\n  - name: a\n    columns:\n      - name: x\n"
                           "        tests: [dbt_utils.expression_is_true]\n"});
    EXPECT_ERROR("s.yml:6:32: severity: expected warn or error", {"a.sql", "SELECT 1 AS x"},
                 {"s.yml", "models:\n  - name: a\n    columns:\n      - name: x\n"
                           "        tests:\n          - unique: {severity: fatal}\n"});
    EXPECT_ERROR("s.yml:7:19: relationships: to: ref('b'): no such model",
                 {"a.sql", "SELECT 1 AS x"},
                 {"s.yml", "models:\n  - name: a\n    columns:\n      - name: x\n"
                           "        tests:\n          - relationships:\n"
                           "              to: ref('b')\n              field: y\n"});
    EXPECT_ERROR("s.yml:2:28: description: expected a string", {"a.sql", "SELECT 1 AS x"},
                 {"s.yml", "models:\n  - {name: a, description: [x]}\n"});
    EXPECT_ERROR(
        "s.yml:3:38: description: expected a string", {"a.sql", "SELECT 1 AS x"},
        {"s.yml", "models:\n  - name: a\n    columns: [{name: x, description: {a: 1}}]\n"});
    EXPECT_ERROR("s.yml:3:2: did not find expected key", {"a.sql", "SELECT 1"},
                 {"s.yml", "models:\n  - name: a\n - x\n"});
    EXPECT_ERROR("dbt_project.yml:2:14: model-paths: expected a list of directories",
                 {"dbt_project.yml", "name: p\nmodel-paths: models\n"});
    EXPECT_ERROR("dbt_project.yml:4:20: materialized: expected view, table or incremental, got "
                 "'tabel'",
                 {"dbt_project.yml", "name: p\nmodels:\n  p:\n    +materialized: tabel\n"},
                 {"models/a.sql", "SELECT 1"});
}

static void test_unknown_keys_tolerated(void **state)
{
    (void)state;
    new_tmp_project();
    write_file("dbt_project.yml", "name: p\nprofile: x\nclean-targets: [target]\n"
                                  "models:\n  p:\n    +materialized: table\n"
                                  "    staging: {materialized: view, +docs: {show: true}}\n");
    write_file("models/staging/s.sql", "SELECT 1 AS x");
    write_file("models/m.sql", "{{ config(meta={'owner': 'x'}) }}SELECT x FROM {{ ref('s') }}");
    write_file("models/schema.yml",
               "version: 2\nmodels:\n  - name: m\n    description: hi\n    meta: {a: 1}\n"
               "    columns:\n      - name: x\n        description: col\n        data_tests:\n"
               "          - not_null\n          - accepted_values:\n"
               "              arguments: {values: [1, 2], quote: false}\n"
               "          - unique:\n              name: x_is_unique\n"
               "              config: {severity: warn}\n");
    models_project_t p;
    assert_string_equal(load_tmp(&p, true), "");
    assert_int_equal(model(&p, "s")->config.materialized, MODELS_VIEW);
    assert_int_equal(model(&p, "m")->config.materialized, MODELS_TABLE);
    assert_int_equal(p.ntests, 3);
    assert_string_equal(p.tests[0].name, "not_null_x");
    assert_string_equal(p.tests[1].name, "accepted_values_x");
    assert_string_equal(p.tests[2].name, "x_is_unique");
    assert_true(p.tests[2].warn);
    char *sql = materialize_test_sql(&p, &p.tests[1]);
    assert_string_equal(sql, "SELECT count() FROM `analytics_t`.`m` WHERE `x` NOT IN (1, 2)");
    free(sql);
    config_free((config_t *)p.cfg);
    models_free(&p);
    rm_tmp_project();
}

/* model-paths: ["."]: the project directory is the model path (the seed's port does this);
 * its own files are not models or schema files. */
static void test_project_root_as_model_path(void **state)
{
    (void)state;
    new_tmp_project();
    write_file("dbt_project.yml", "name: p\nmodel-paths: [\".\"]\n"
                                  "models:\n  p:\n    marts: {+materialized: table}\n");
    write_file("staging/s.sql", "SELECT 1 AS x");
    write_file("marts/m.sql", "SELECT x FROM {{ ref('s') }}");
    write_file("target/compiled/m.sql", "SELECT 'not a model'");
    write_file("macros/x.sql", "{% macro x() %}{% endmacro %}");
    models_project_t p;
    assert_string_equal(load_tmp(&p, true), "");
    assert_int_equal(p.nmodels, 2);
    char want[300];
    snprintf(want, sizeof want, "%s/marts/m.sql", strrchr(tmpdir, '/') + 1);
    assert_string_equal(model(&p, "m")->path, want);
    assert_int_equal(model(&p, "m")->config.materialized, MODELS_TABLE);
    assert_int_equal(model(&p, "s")->config.materialized, MODELS_VIEW);
    models_selection_t sel;
    const char *const by_path[] = {"path:marts"};
    char err[256];
    assert_true(models_select(&p, by_path, 1, NULL, 0, NULL, 0, &sel, err, sizeof err));
    assert_true(sel.models[models_find(&p, "m")]);
    assert_false(sel.models[models_find(&p, "s")]);
    models_selection_free(&sel);
    config_free((config_t *)p.cfg);
    models_free(&p);
    rm_tmp_project();
}

static void test_missing_project_dir(void **state)
{
    (void)state;
    config_t cfg;
    load_config(&cfg, "/nonexistent/eltd/models", NULL);
    models_project_t p;
    char err[256];
    assert_true(models_load(&p, &cfg, NULL, err, sizeof err));
    assert_false(p.present);
    assert_int_equal(p.nmodels, 0);
    models_free(&p);
    config_free(&cfg);
}

/* ---- SQL shapes -------------------------------------------------------------------- */

static void test_test_sql(void **state)
{
    (void)state;
    config_t cfg;
    load_config(&cfg, fixture, NULL);
    models_project_t p;
    char err[1024];
    assert_true(models_load(&p, &cfg, NULL, err, sizeof err));
    static const char *const want[][2] = {
        {"unique(order_id)",
         "SELECT count() FROM (SELECT `order_id` FROM `analytics_t`.`stg_orders` WHERE "
         "`order_id` IS NOT NULL GROUP BY `order_id` HAVING count() > 1)"},
        {"not_null(order_id)",
         "SELECT count() FROM `analytics_t`.`stg_orders` WHERE `order_id` IS NULL"},
        {"accepted_values(status)",
         "SELECT count() FROM `analytics_t`.`stg_orders` WHERE `status` NOT IN ('pending', "
         "'processing', 'shipped', 'delivered', 'cancelled')"},
        {"relationships(customer_id -> stg_customers.customer_id)",
         "SELECT count() FROM `analytics_t`.`stg_orders` WHERE `customer_id` IS NOT NULL AND "
         "toString(`customer_id`) NOT IN (SELECT toString(`customer_id`) FROM "
         "`analytics_t`.`stg_customers` WHERE `customer_id` IS NOT NULL)"},
    };
    size_t found = 0;
    for (size_t i = 0; i < p.ntests; i++) {
        if (strcmp(p.models[p.tests[i].model].name, "stg_orders"))
            continue;
        char *label = materialize_test_label(&p, &p.tests[i]);
        char *sql = materialize_test_sql(&p, &p.tests[i]);
        for (size_t k = 0; k < 4; k++)
            if (!strcmp(label, want[k][0])) {
                assert_string_equal(sql, want[k][1]);
                found++;
            }
        free(label);
        free(sql);
    }
    assert_int_equal(found, 4);
    char *s = materialize_strip_sql("  \nSELECT 1;\n  ;\n");
    assert_string_equal(s, "SELECT 1");
    free(s);
    models_config_t c = {.materialized = MODELS_TABLE};
    s = materialize_create_table_sql(&c, "`d`.`t`", "SELECT 1\n");
    assert_string_equal(s, "CREATE TABLE `d`.`t` ENGINE = MergeTree() ORDER BY tuple() AS\n"
                           "SELECT 1");
    free(s);
    models_free(&p);
    config_free(&cfg);
}

/* ---- the run's DAG ----------------------------------------------------------------- */

static uv_loop_t loop;

/* "a, b" listing task's dependencies, or NULL when the task is absent. */
static const char *deps_of(const run_t *r, const char *task)
{
    static char buf[1024];
    dag_task_t *t = dag_find(r->dag, task);
    if (!t)
        return NULL;
    buf[0] = '\0';
    for (size_t i = 0; i < t->ndeps; i++) {
        if (i)
            strcat(buf, ", ");
        strcat(buf, r->dag->tasks[t->deps[i]]->name);
    }
    return buf;
}

static run_t *plan(const config_t *cfg, const char *select, const char *exclude, char *err,
                   size_t errlen)
{
    char sbuf[256], ebuf[256];
    char *sv[8] = {0}, *ev[8] = {0};
    run_request_t req = {0};
    if (select) {
        snprintf(sbuf, sizeof sbuf, "%s", select);
        for (char *save = NULL, *t = strtok_r(sbuf, " ", &save); t; t = strtok_r(NULL, " ", &save))
            sv[req.nselect++] = t;
        req.select = sv;
    }
    if (exclude) {
        snprintf(ebuf, sizeof ebuf, "%s", exclude);
        for (char *save = NULL, *t = strtok_r(ebuf, " ", &save); t; t = strtok_r(NULL, " ", &save))
            ev[req.nexclude++] = t;
        req.exclude = ev;
    }
    return run_new(&loop, cfg, NULL, 1, &req, err, errlen);
}

static void free_run(run_t *r)
{
    run_free(r, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
}

static void test_dag_edges(void **state)
{
    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    config_t cfg;
    load_config(&cfg, fixture, NULL);
    char err[1024];
    run_t *r = plan(&cfg, NULL, NULL, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(r->dag->ntasks, 2 + 4 + 8 + 6);
    assert_string_equal(deps_of(r, "load:items"), "ensure_databases, snapshot");
    assert_string_equal(deps_of(r, "model:stg_orders"), "ensure_databases, load:orders");
    assert_string_equal(deps_of(r, "model:stg_order_items"), "ensure_databases, load:items");
    assert_string_equal(deps_of(r, "model:orders_latest"),
                        "ensure_databases, load:orders, model:stg_orders");
    assert_string_equal(deps_of(r, "model:order_summary"), "ensure_databases, model:order_totals");
    assert_string_equal(deps_of(r, "test:stg_orders.relationships_customer_id"),
                        "ensure_databases, model:stg_orders, model:stg_customers");
    assert_string_equal(deps_of(r, "test:order_totals.unique_order_id"),
                        "ensure_databases, model:order_totals");
    assert_int_equal(dag_find(r->dag, "model:order_summary")->kind, TASK_KIND_MODEL);
    assert_int_equal(dag_find(r->dag, "test:order_totals.unique_order_id")->max_attempts, 1);
    free_run(r);

    /* A model without its loads reads what ClickHouse holds: no load, no snapshot. */
    r = plan(&cfg, "order_totals", NULL, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(r->dag->ntasks, 3);
    assert_string_equal(deps_of(r, "model:order_totals"), "ensure_databases");
    assert_non_null(deps_of(r, "test:order_totals.unique_order_id"));
    assert_null(deps_of(r, "snapshot"));
    free_run(r);

    r = plan(&cfg, "+order_summary", NULL, err, sizeof err);
    assert_non_null(r);
    assert_string_equal(deps_of(r, "model:stg_order_items"), "ensure_databases, load:items");
    assert_null(deps_of(r, "load:orders"));
    assert_int_equal(r->dag->ntasks, 2 + 1 + 3 + 1);
    free_run(r);

    r = plan(&cfg, "orders+", "path:models/marts/orders_latest.sql tag:customers", err, sizeof err);
    assert_non_null(r);
    assert_non_null(deps_of(r, "load:orders"));
    assert_null(deps_of(r, "load:customers"));
    assert_non_null(deps_of(r, "model:order_events"));
    assert_null(deps_of(r, "model:orders_latest"));
    assert_null(deps_of(r, "model:customer_orders"));
    assert_null(deps_of(r, "test:customer_orders.accepted_values_state"));
    /* The relationships test runs once stg_orders is built; stg_customers is not in the run. */
    assert_string_equal(deps_of(r, "test:stg_orders.relationships_customer_id"),
                        "ensure_databases, model:stg_orders");
    free_run(r);

    r = plan(&cfg, "tag:staging", NULL, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(r->dag->ntasks, 1 + 3 + 4);
    free_run(r);

    assert_null(plan(&cfg, "no_such_thing", NULL, err, sizeof err));
    assert_string_equal(err, "--select 'no_such_thing' matches no table, model or test");
    uv_run(&loop, UV_RUN_DEFAULT);
    config_free(&cfg);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_parse_vars(void **state)
{
    (void)state;
    char err[256];
    json_t *j = models_parse_vars("{\"a\": 1, \"b\": [\"x\"]}", err, sizeof err);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "a")), 1);
    json_decref(j);
    j = models_parse_vars("{start: 2020-01-01, n: 5, ok: true}", err, sizeof err);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "start")), "2020-01-01");
    assert_int_equal(json_integer_value(json_object_get(j, "n")), 5);
    assert_true(json_is_true(json_object_get(j, "ok")));
    json_decref(j);
    assert_null(models_parse_vars("[1, 2]", err, sizeof err));
    assert_null(models_parse_vars("{a: [}", err, sizeof err));
}

int main(void)
{
    find_fixture();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_fixture),
        cmocka_unit_test(test_render_fixture),
        cmocka_unit_test(test_render_functions),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_unknown_keys_tolerated),
        cmocka_unit_test(test_project_root_as_model_path),
        cmocka_unit_test(test_missing_project_dir),
        cmocka_unit_test(test_test_sql),
        cmocka_unit_test(test_dag_edges),
        cmocka_unit_test(test_parse_vars),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
