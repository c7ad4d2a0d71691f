/* test_config.c — config.c: the shipped conf/pipeline.yaml resolved under a controlled
 * environment, ${VAR} substitution, every error class with its exact FILE:LINE:COL prefix,
 * table forms, secret masking in config_print, and the duration and size parsers. */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Every variable conf/pipeline.yaml reads, plus the ones these tests invent. */
static const char *const env_vars[] = {
    "PGHOST",
    "PGPORT",
    "POSTGRES_DB",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "CLICKHOUSE_URL",
    "CLICKHOUSE_USER",
    "CLICKHOUSE_PASSWORD",
    "ELTD_ORDERS_MODE",
    "ELTD_SCHEDULE",
    "ELTD_TIMEZONE",
    "ELTD_RETRIES",
    "ELTD_RETRY_DELAY",
    "ELTD_MODELS",
    "ELTD_LISTEN",
    "ELTD_API_TOKEN",
    "ELTD_STATE_DIR",
    "ELTD_UT_A",
    "ELTD_UT_B",
    "ELTD_UT_UNSET",
    NULL,
};

static int clear_env(void **state)
{
    (void)state;
    for (const char *const *v = env_vars; *v; v++)
        unsetenv(*v);
    return 0;
}

static char *pipeline_path(void)
{
    const char *root = getenv("ELTD_SOURCE_DIR");
    static char path[4096];
    snprintf(path, sizeof path, "%s/conf/pipeline.yaml", root ? root : ".");
    return path;
}

/* A minimal valid document; tests append or replace sections. */
#define BASE_SOURCE    "source:\n  database: db\n  user: u\n"
#define BASE_WAREHOUSE "warehouse:\n  url: http://ch:8123\n"
#define BASE_TABLES    "tables:\n  - t1\n"
#define BASE           BASE_SOURCE BASE_WAREHOUSE BASE_TABLES

static bool load(config_t *cfg, const char *text, char *err, size_t errlen)
{
    err[0] = '\0';
    return config_load_string(cfg, "t.yaml", text, strlen(text), err, errlen);
}

static void load_ok(config_t *cfg, const char *text)
{
    char err[512];
    bool ok = load(cfg, text, err, sizeof err);
    if (!ok)
        print_error("unexpected error: %s\n", err);
    assert_true(ok);
}

/* The load must fail with exactly the prefix want_at ("t.yaml:L:C: ") and contain want. */
static void expect_error(const char *text, const char *want_at, const char *want)
{
    config_t cfg;
    char err[512];
    bool ok = load(&cfg, text, err, sizeof err);
    if (ok) {
        print_error("expected an error '%s%s' for:\n%s\n", want_at, want, text);
        config_free(&cfg);
        fail();
    }
    if (strncmp(err, want_at, strlen(want_at)) || !strstr(err, want)) {
        print_error("error '%s'\nwanted prefix '%s' and '%s'\n", err, want_at, want);
        fail();
    }
    /* After a failure the config holds nothing (config_free on it is harmless). */
    assert_null(cfg.tables);
    assert_null(cfg.source.host);
    config_free(&cfg);
}

static char *print_to_string(const config_t *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    config_print(cfg, f);
    assert_int_equal(fclose(f), 0);
    assert_non_null(buf);
    return buf;
}

static void check_table(const config_table_t *t, const char *name, int mode, const char *cursor,
                        int line)
{
    assert_non_null(t);
    assert_string_equal(t->name, name);
    assert_string_equal(t->schema, "public");
    assert_string_equal(t->target, name);
    assert_int_equal(t->mode, mode);
    if (cursor)
        assert_string_equal(t->cursor, cursor);
    else
        assert_null(t->cursor);
    assert_int_equal(t->nkey, 0);
    assert_int_equal(t->ncasts, 0);
    assert_int_equal(t->line, line);
}

static void test_pipeline_defaults(void **state)
{
    (void)state;
    config_t cfg;
    char err[512];
    const char *path = pipeline_path();
    bool ok = config_load(&cfg, path, err, sizeof err);
    if (!ok)
        print_error("%s\n", err);
    assert_true(ok);

    assert_string_equal(cfg.path, path);
    assert_string_equal(cfg.source.host, "localhost");
    assert_int_equal(cfg.source.port, 5432);
    assert_string_equal(cfg.source.database, "ecommerce_db");
    assert_string_equal(cfg.source.user, "ecommerce");
    assert_string_equal(cfg.source.password, "ecommerce123");
    assert_string_equal(cfg.source.schema, "public");
    assert_true(cfg.source.connect_timeout == 10.0);

    assert_string_equal(cfg.warehouse.url, "http://localhost:8123");
    assert_string_equal(cfg.warehouse.user, "default");
    assert_string_equal(cfg.warehouse.password, "clickhouse123");
    assert_string_equal(cfg.warehouse.raw_database, "raw");
    assert_string_equal(cfg.warehouse.analytics_database, "analytics");
    assert_true(cfg.warehouse.connect_timeout == 10.0);
    assert_true(cfg.warehouse.query_timeout == 3600.0);

    assert_int_equal(cfg.ntables, 4);
    check_table(&cfg.tables[0], "customers", LOAD_MODE_FULL, NULL, 18);
    check_table(&cfg.tables[1], "products", LOAD_MODE_FULL, NULL, 19);
    check_table(&cfg.tables[2], "orders", LOAD_MODE_FULL, "updated_at", 20);
    check_table(&cfg.tables[3], "order_items", LOAD_MODE_FULL, NULL, 23);

    assert_string_equal(cfg.schedule.cron, "@daily");
    assert_string_equal(cfg.schedule.timezone, "UTC");
    assert_true(cfg.schedule.catch_up);

    assert_int_equal(cfg.run.retries, 2);
    assert_true(cfg.run.retry_delay == 300.0);
    assert_false(cfg.run.retry_backoff);
    assert_true(cfg.run.max_retry_delay == 3600.0);
    assert_true(cfg.run.task_timeout == 7200.0);
    assert_int_equal(cfg.run.load_parallelism, 4);
    assert_int_equal(cfg.run.model_parallelism, 4);
    assert_int_equal(cfg.run.queue_bytes, 1024 * 1024);
    assert_true(cfg.run.shutdown_grace == 30.0);

    assert_string_equal(cfg.models.path, "models");
    assert_null(cfg.models.vars);

    assert_string_equal(cfg.http.listen, "0.0.0.0:5001");
    assert_string_equal(cfg.http.token, "");
    assert_false(cfg.http.allow_public_without_token);
    assert_int_equal(cfg.http.max_connections, 512);
    assert_int_equal(cfg.http.max_body_bytes, 1024 * 1024);

    assert_string_equal(cfg.state_dir, "/var/lib/eltd");
    assert_string_equal(cfg.log_level, "info");

    assert_ptr_equal(config_find_table(&cfg, "orders"), &cfg.tables[2]);
    assert_ptr_equal(config_find_table(&cfg, "order_items"), &cfg.tables[3]);
    assert_null(config_find_table(&cfg, "order"));
    assert_null(config_find_table(&cfg, "nope"));

    config_free(&cfg);
    assert_null(cfg.tables);
    assert_int_equal(cfg.ntables, 0);
    config_free(&cfg); /* twice is harmless */
    config_free(NULL);
}

static void test_pipeline_environment(void **state)
{
    (void)state;
    setenv("PGHOST", "", 1); /* empty: the default applies */
    setenv("PGPORT", "6543", 1);
    setenv("POSTGRES_PASSWORD", "pg-Secret-1", 1);
    setenv("CLICKHOUSE_URL", "https://ch.example:8443", 1);
    setenv("CLICKHOUSE_PASSWORD", "ch-Secret-2", 1);
    setenv("ELTD_ORDERS_MODE", "incremental", 1);
    setenv("ELTD_SCHEDULE", "*/15 * * * *", 1);
    setenv("ELTD_RETRIES", "5", 1);
    setenv("ELTD_RETRY_DELAY", "1m30s", 1);
    setenv("ELTD_API_TOKEN", "tok-Secret-3", 1);
    setenv("ELTD_STATE_DIR", "/tmp/eltd state", 1);

    config_t cfg;
    char err[512];
    bool ok = config_load(&cfg, pipeline_path(), err, sizeof err);
    if (!ok)
        print_error("%s\n", err);
    assert_true(ok);
    assert_string_equal(cfg.source.host, "localhost");
    assert_int_equal(cfg.source.port, 6543);
    assert_string_equal(cfg.source.password, "pg-Secret-1");
    assert_string_equal(cfg.warehouse.url, "https://ch.example:8443");
    assert_int_equal(cfg.tables[2].mode, LOAD_MODE_INCREMENTAL);
    assert_string_equal(cfg.tables[2].cursor, "updated_at");
    assert_string_equal(cfg.schedule.cron, "*/15 * * * *");
    assert_int_equal(cfg.run.retries, 5);
    assert_true(cfg.run.retry_delay == 90.0);
    assert_string_equal(cfg.http.token, "tok-Secret-3");
    assert_string_equal(cfg.state_dir, "/tmp/eltd state");

    char *out = print_to_string(&cfg);
    assert_null(strstr(out, "pg-Secret-1"));
    assert_null(strstr(out, "ch-Secret-2"));
    assert_null(strstr(out, "tok-Secret-3"));
    assert_null(strstr(out, "Secret"));
    assert_non_null(strstr(out, "\n  password: \"********\"\n"));
    assert_non_null(strstr(out, "\n  token: \"********\"\n"));
    assert_non_null(strstr(out, "\n  port: 6543\n"));
    assert_non_null(strstr(out, "\n  cron: \"*/15 * * * *\"\n"));
    assert_non_null(strstr(out, "\n  retries: 5\n"));
    assert_non_null(strstr(out, "\n  retry_delay: 90s\n"));
    assert_non_null(strstr(out, "\n  - name: orders\n"));
    assert_non_null(strstr(out, "\n    mode: incremental\n"));
    assert_non_null(strstr(out, "\n    cursor: \"updated_at\"\n"));
    assert_non_null(strstr(out, "\nstate_dir: \"/tmp/eltd state\"\n"));
    free(out);
    config_free(&cfg);
}

static void test_print_empty_secrets_and_quoting(void **state)
{
    (void)state;
    config_t cfg;
    load_ok(&cfg, BASE "state_dir: 'a\"b\\c'\n");
    char *out = print_to_string(&cfg);
    assert_non_null(strstr(out, "# resolved from t.yaml\n"));
    /* An empty secret prints as empty: masking it would suggest one is set. */
    assert_non_null(strstr(out, "\n  password: \"\"\n"));
    assert_non_null(strstr(out, "\n  token: \"\"\n"));
    assert_non_null(strstr(out, "\nstate_dir: \"a\\\"b\\\\c\"\n"));
    assert_non_null(strstr(out, "\n  queue_bytes: 1048576\n"));
    assert_non_null(strstr(out, "\n  catch_up: true\n"));
    assert_non_null(strstr(out, "\n  vars: {}\n"));
    free(out);
    config_free(&cfg);
}

static void test_substitute_env(void **state)
{
    (void)state;
    char err[256];
    char *s;
#define SUB(in, want)                                                                              \
    do {                                                                                           \
        err[0] = '\0';                                                                             \
        s = config_substitute_env(in, err, sizeof err);                                            \
        if (!s)                                                                                    \
            print_error("'%s': %s\n", in, err);                                                    \
        assert_non_null(s);                                                                        \
        assert_string_equal(s, want);                                                              \
        free(s);                                                                                   \
    } while (0)
#define SUB_ERR(in, want)                                                                          \
    do {                                                                                           \
        err[0] = '\0';                                                                             \
        s = config_substitute_env(in, err, sizeof err);                                            \
        assert_null(s);                                                                            \
        if (!strstr(err, want))                                                                    \
            print_error("'%s': error '%s' lacks '%s'\n", in, err, want);                           \
        assert_non_null(strstr(err, want));                                                        \
    } while (0)

    SUB("", "");
    SUB("plain text", "plain text");
    SUB("cost $5 and a$b$", "cost $5 and a$b$");
    SUB("$$", "$");
    SUB("a$$b", "a$b");
    SUB("$${ELTD_UT_A}", "${ELTD_UT_A}");
    SUB("$$$$", "$$");
    SUB("${ELTD_UT_A:-fallback}", "fallback");
    SUB("${ELTD_UT_A:-}", "");
    SUB("${ELTD_UT_A:-http://h:1/x y}", "http://h:1/x y");
    setenv("ELTD_UT_A", "", 1);
    SUB("${ELTD_UT_A:-fallback}", "fallback"); /* empty uses the default */
    SUB("[${ELTD_UT_A}]", "[]");               /* empty without default is empty */
    setenv("ELTD_UT_A", "va", 1);
    setenv("ELTD_UT_B", "${ELTD_UT_A}", 1);
    SUB("${ELTD_UT_A}", "va");
    SUB("${ELTD_UT_A:-fallback}", "va");
    SUB("x${ELTD_UT_A}y${ELTD_UT_A}z", "xvayvaz");
    SUB("${ELTD_UT_B}", "${ELTD_UT_A}"); /* values are not substituted again */
    SUB("$${ELTD_UT_A}${ELTD_UT_A}", "${ELTD_UT_A}va");
    /* A long value grows the buffer. */
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    setenv("ELTD_UT_B", big, 1);
    s = config_substitute_env("<${ELTD_UT_B}><${ELTD_UT_B}>", err, sizeof err);
    assert_non_null(s);
    assert_int_equal(strlen(s), 2 * strlen(big) + 4);
    free(s);

    SUB_ERR("${ELTD_UT_UNSET}", "environment variable ELTD_UT_UNSET is not set and has no default");
    SUB_ERR("a ${ELTD_UT_UNSET} b", "ELTD_UT_UNSET");
    SUB_ERR("${ELTD_UT_A", "unterminated ${ELTD_UT_A");
    SUB_ERR("${ELTD_UT_A:-abc", "unterminated");
    SUB_ERR("${ELTD_UT_A x}", "unterminated");
    SUB_ERR("${", "bad variable reference");
    SUB_ERR("${}", "bad variable reference");
    SUB_ERR("${1ABC}", "bad variable reference");
    SUB_ERR("${-x}", "bad variable reference");
#undef SUB
#undef SUB_ERR
}

static void test_env_in_file(void **state)
{
    (void)state;
    config_t cfg;
    setenv("ELTD_UT_A", "4", 1);
    load_ok(&cfg, BASE "run:\n  retries: ${ELTD_UT_A}\n  load_parallelism: ${ELTD_UT_B:-7}\n"
                       "http:\n  token: \"$$ecret${ELTD_UT_B:-}\"\n");
    assert_int_equal(cfg.run.retries, 4);
    assert_int_equal(cfg.run.load_parallelism, 7);
    assert_string_equal(cfg.http.token, "$ecret");
    config_free(&cfg);

    expect_error(BASE_SOURCE "warehouse:\n  url: ${ELTD_UT_UNSET}\n" BASE_TABLES, "t.yaml:5:8: ",
                 "environment variable ELTD_UT_UNSET is not set and has no default");
    expect_error(BASE_SOURCE "warehouse:\n  url: \"${ELTD_UT_A\"\n" BASE_TABLES,
                 "t.yaml:5:8: ", "unterminated ${ELTD_UT_A");
    /* A substituted value is typed like a literal one. */
    setenv("ELTD_UT_A", "many", 1);
    expect_error(BASE "run:\n  retries: ${ELTD_UT_A}\n",
                 "t.yaml:9:12: ", "retries: expected an integer, got 'many'");
    /* Inside a table's shorthand, key list and casts too. */
    expect_error(BASE_SOURCE BASE_WAREHOUSE "tables:\n  - ${ELTD_UT_UNSET}\n",
                 "t.yaml:7:5: ", "ELTD_UT_UNSET");
    setenv("ELTD_UT_A", "tbl", 1);
    load_ok(&cfg, BASE_SOURCE BASE_WAREHOUSE
            "tables:\n  - ${ELTD_UT_A}\n  - name: x\n    key: [\"${ELTD_UT_A}_id\"]\n"
            "    casts: {c: \"${ELTD_UT_B:-String}\"}\n");
    assert_string_equal(cfg.tables[0].name, "tbl");
    assert_string_equal(cfg.tables[1].key[0], "tbl_id");
    assert_string_equal(cfg.tables[1].casts[0].type, "String");
    config_free(&cfg);
}

static void test_minimal_defaults(void **state)
{
    (void)state;
    config_t cfg;
    load_ok(&cfg, BASE);
    assert_string_equal(cfg.path, "t.yaml");
    assert_string_equal(cfg.source.host, "localhost");
    assert_int_equal(cfg.source.port, 5432);
    assert_string_equal(cfg.source.password, "");
    assert_string_equal(cfg.warehouse.user, "default");
    assert_string_equal(cfg.schedule.cron, "");
    assert_string_equal(cfg.schedule.timezone, "UTC");
    assert_int_equal(cfg.run.retries, 2);
    assert_true(cfg.run.retry_delay == 300.0);
    assert_string_equal(cfg.models.path, "models");
    assert_string_equal(cfg.http.listen, "0.0.0.0:5001");
    assert_int_equal(cfg.ntables, 1);
    assert_string_equal(cfg.tables[0].name, "t1");
    assert_int_equal(cfg.tables[0].line, 7);
    config_free(&cfg);
}

static void test_tables_forms(void **state)
{
    (void)state;
    config_t cfg;
    load_ok(&cfg, "source:\n  database: db\n  user: u\n  schema: shop\n" BASE_WAREHOUSE "tables:\n"
                  "  - customers\n"
                  "  - name: orders\n"
                  "    schema: sales\n"
                  "    target: orders_raw\n"
                  "    mode: incremental\n"
                  "    cursor: updated_at\n"
                  "    key: [order_id, line_no]\n"
                  "    casts:\n"
                  "      amount: \"Decimal(38, 10)\"\n"
                  "      note: String\n"
                  "  - name: events\n"
                  "    key:\n"
                  "      - id\n");
    assert_int_equal(cfg.ntables, 3);
    const config_table_t *t = &cfg.tables[0];
    assert_string_equal(t->name, "customers");
    assert_string_equal(t->schema, "shop"); /* the source's default schema */
    assert_string_equal(t->target, "customers");
    assert_int_equal(t->mode, LOAD_MODE_FULL);
    assert_int_equal(t->line, 8);

    t = &cfg.tables[1];
    assert_string_equal(t->name, "orders");
    assert_string_equal(t->schema, "sales");
    assert_string_equal(t->target, "orders_raw");
    assert_int_equal(t->mode, LOAD_MODE_INCREMENTAL);
    assert_string_equal(t->cursor, "updated_at");
    assert_int_equal(t->nkey, 2);
    assert_string_equal(t->key[0], "order_id");
    assert_string_equal(t->key[1], "line_no");
    assert_int_equal(t->ncasts, 2);
    assert_string_equal(t->casts[0].column, "amount");
    assert_string_equal(t->casts[0].type, "Decimal(38, 10)");
    assert_string_equal(t->casts[1].column, "note");
    assert_string_equal(t->casts[1].type, "String");
    assert_int_equal(t->line, 9);

    t = &cfg.tables[2];
    assert_int_equal(t->nkey, 1);
    assert_string_equal(t->key[0], "id");
    assert_string_equal(t->schema, "shop");

    assert_ptr_equal(config_find_table(&cfg, "orders_raw"), &cfg.tables[1]);
    assert_ptr_equal(config_find_table(&cfg, "orders"), &cfg.tables[1]);

    char *out = print_to_string(&cfg);
    assert_non_null(strstr(out, "\n    key: [order_id, line_no]\n"));
    assert_non_null(strstr(out, "\n    casts.amount: Decimal(38, 10)\n"));
    assert_non_null(strstr(out, "\n    target: \"orders_raw\"\n"));
    assert_non_null(strstr(out, "\n    cursor: null\n"));
    free(out);
    config_free(&cfg);
}

/* Sections may come in any order: a table's default schema is the source's, even when the
 * source section follows the tables (or is written after them by a tool). */
static void test_section_order(void **state)
{
    (void)state;
    config_t cfg;
    load_ok(&cfg, BASE_TABLES BASE_WAREHOUSE "source:\n  database: db\n  user: u\n"
                                             "  schema: late\n");
    assert_string_equal(cfg.tables[0].schema, "late");
    config_free(&cfg);
    load_ok(&cfg, "tables:\n  - name: a\n    schema: own\n" BASE_WAREHOUSE BASE_SOURCE);
    assert_string_equal(cfg.tables[0].schema, "own");
    config_free(&cfg);
}

static void test_models_vars(void **state)
{
    (void)state;
    config_t cfg;
    load_ok(&cfg, BASE "models:\n  path: dbt\n  vars:\n    n: 42\n    q: \"42\"\n    b: true\n"
                       "    s: hello\n    f: false\n");
    assert_string_equal(cfg.models.path, "dbt");
    assert_non_null(cfg.models.vars);
    assert_true(json_is_object(cfg.models.vars));
    assert_int_equal(json_integer_value(json_object_get(cfg.models.vars, "n")), 42);
    assert_string_equal(json_string_value(json_object_get(cfg.models.vars, "q")), "42");
    assert_true(json_is_true(json_object_get(cfg.models.vars, "b")));
    assert_true(json_is_false(json_object_get(cfg.models.vars, "f")));
    assert_string_equal(json_string_value(json_object_get(cfg.models.vars, "s")), "hello");
    char *out = print_to_string(&cfg);
    assert_non_null(strstr(out, "\n  vars: {\"b\":true,\"f\":false,\"n\":42,\"q\":\"42\","
                                "\"s\":\"hello\"}\n"));
    free(out);
    config_free(&cfg);
    expect_error(BASE "models:\n  vars: [a]\n", "t.yaml:9:9: ", "vars: expected a mapping");
}

static void test_error_syntax(void **state)
{
    (void)state;
    expect_error("source:\n  database: [db\n  user: u\n", "t.yaml:", "YAML syntax error");
    expect_error("source:\n  database: db\n   user: u\n", "t.yaml:3:", "YAML syntax error");
    expect_error("source: {a: 1\n", "t.yaml:2:1: ", "YAML syntax error");
    expect_error("a: \"unterminated\n", "t.yaml:", "YAML syntax error");
    expect_error("\tsource: 1\n", "t.yaml:1:1: ", "YAML syntax error");
    expect_error("", "t.yaml:1:1: ", "empty");
    expect_error("# only a comment\n", "t.yaml:1:1: ", "empty");
    expect_error("- a\n- b\n", "t.yaml:1:1: ", "expected a mapping");
    expect_error("just text\n", "t.yaml:1:1: ", "expected a mapping");
}

static void test_error_unknown_key(void **state)
{
    (void)state;
    expect_error(BASE "bogus: 1\n", "t.yaml:8:1: ", "unknown key 'bogus'");
    expect_error(BASE "bogus: 1\n", "t.yaml:8:1: ",
                 "(known: source, warehouse, tables, schedule, run, models, http, state_dir, "
                 "log_level)");
    expect_error("source:\n  database: db\n  prot: 5432\n  user: u\n" BASE_WAREHOUSE BASE_TABLES,
                 "t.yaml:3:3: ", "unknown key 'prot' (known: host, port, database, user, ");
    expect_error(BASE_SOURCE BASE_WAREHOUSE "tables:\n  - name: a\n    crusor: x\n",
                 "t.yaml:8:5: ", "unknown key 'crusor'");
    expect_error(BASE "run:\n  retires: 3\n", "t.yaml:9:3: ", "unknown key 'retires'");
    /* Keys are case-sensitive. */
    expect_error(BASE "Schedule:\n  cron: '@daily'\n", "t.yaml:8:1: ", "unknown key 'Schedule'");
    /* A non-scalar key. */
    expect_error(BASE "? [a, b]\n: 1\n", "t.yaml:8:3: ", "expected a key");
}

static void test_error_wrong_type(void **state)
{
    (void)state;
    expect_error("source:\n  database: db\n  user: u\n  port: abc\n" BASE_WAREHOUSE BASE_TABLES,
                 "t.yaml:4:9: ", "port: expected an integer, got 'abc'");
    expect_error("source:\n  database: db\n  user: u\n  port: 54.32\n" BASE_WAREHOUSE BASE_TABLES,
                 "t.yaml:4:9: ", "expected an integer, got '54.32'");
    expect_error("source:\n  database: db\n  user: u\n  port: ''\n" BASE_WAREHOUSE BASE_TABLES,
                 "t.yaml:4:9: ", "expected an integer, got ''");
    expect_error(BASE "schedule:\n  catch_up: maybe\n",
                 "t.yaml:9:13: ", "catch_up: expected true or false, got 'maybe'");
    expect_error("source:\n  database: db\n  user: u\n  host: [a, b]\n" BASE_WAREHOUSE BASE_TABLES,
                 "t.yaml:4:9: ", "expected a scalar value");
    expect_error("source:\n  database: db\n  user: {x: 1}\n" BASE_WAREHOUSE BASE_TABLES,
                 "t.yaml:3:9: ", "expected a scalar value");
    expect_error("source: localhost\n" BASE_WAREHOUSE BASE_TABLES,
                 "t.yaml:1:9: ", "expected a mapping");
    expect_error(BASE_SOURCE BASE_WAREHOUSE "tables: customers\n",
                 "t.yaml:6:9: ", "tables: expected a list of tables");
    expect_error(BASE_SOURCE BASE_WAREHOUSE "tables:\n  - [a]\n",
                 "t.yaml:7:5: ", "expected a mapping");
    expect_error(BASE_SOURCE BASE_WAREHOUSE "tables:\n  - name: a\n    key: id\n",
                 "t.yaml:8:10: ", "key: expected a list");
    expect_error(BASE_SOURCE BASE_WAREHOUSE "tables:\n  - name: a\n    key: [id, [x]]\n",
                 "t.yaml:8:15: ", "expected a scalar value");
    expect_error(BASE_SOURCE BASE_WAREHOUSE "tables:\n  - name: a\n    key: [id, '']\n",
                 "t.yaml:8:15: ", "key: empty entry");
    expect_error(BASE_SOURCE BASE_WAREHOUSE "tables:\n  - name: a\n    casts: [x]\n",
                 "t.yaml:8:12: ", "casts: expected a mapping of column: type");
    expect_error(BASE_SOURCE BASE_WAREHOUSE "tables:\n  - name: a\n    casts: {c: ''}\n",
                 "t.yaml:8:16: ", "casts: empty type for column c");
    expect_error(BASE_SOURCE BASE_WAREHOUSE "tables:\n  - name: a\n    mode: fast\n",
                 "t.yaml:8:11: ", "mode: expected full or incremental, got 'fast'");
    expect_error(BASE "http:\n  allow_public_without_token: 1\n",
                 "t.yaml:9:31: ", "expected true or false, got '1'");
}

static void test_bools(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        bool want;
    } cases[] = {{"true", true},   {"yes", true}, {"on", true},
                 {"false", false}, {"no", false}, {"off", false}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char text[256];
        snprintf(text, sizeof text, BASE "schedule:\n  catch_up: %s\n", cases[i].text);
        config_t cfg;
        load_ok(&cfg, text);
        assert_int_equal(cfg.schedule.catch_up, cases[i].want);
        config_free(&cfg);
    }
}

static void test_error_range(void **state)
{
    (void)state;
    expect_error("source:\n  database: db\n  user: u\n  port: 70000\n" BASE_WAREHOUSE BASE_TABLES,
                 "t.yaml:4:9: ", "port: 70000 is out of range 1..65535");
    expect_error("source:\n  database: db\n  user: u\n  port: 0\n" BASE_WAREHOUSE BASE_TABLES,
                 "t.yaml:4:9: ", "port: 0 is out of range 1..65535");
    expect_error("source:\n  database: db\n  user: u\n  port: -1\n" BASE_WAREHOUSE BASE_TABLES,
                 "t.yaml:4:9: ", "out of range");
    expect_error("source:\n  database: db\n  user: u\n  port: 99999999999999999999\n" BASE_WAREHOUSE
                     BASE_TABLES,
                 "t.yaml:4:9: ", "port: expected an integer");
    expect_error(BASE "run:\n  retries: 101\n",
                 "t.yaml:9:12: ", "retries: 101 is out of range 0..100");
    expect_error(BASE "run:\n  load_parallelism: 0\n", "t.yaml:9:21: ", "out of range 1..64");
    expect_error(BASE "run:\n  retry_delay: 2d\n",
                 "t.yaml:9:16: ", "retry_delay: 172800s is out of range 0s..86400s");
    expect_error(BASE "run:\n  queue_bytes: 1KiB\n",
                 "t.yaml:9:16: ", "queue_bytes: 1024 bytes is out of range 65536..1073741824");

    /* The bounds themselves are accepted. */
    config_t cfg;
    load_ok(&cfg, "source:\n  database: db\n  user: u\n  port: 65535\n" BASE_WAREHOUSE BASE_TABLES
                  "run:\n  retries: 100\n  retry_delay: 1d\n  queue_bytes: 64KiB\n");
    assert_int_equal(cfg.source.port, 65535);
    assert_int_equal(cfg.run.retries, 100);
    assert_true(cfg.run.retry_delay == 86400.0);
    assert_int_equal(cfg.run.queue_bytes, 65536);
    config_free(&cfg);
    load_ok(&cfg, BASE "run:\n  retries: 0\n  retry_delay: 0\n  task_timeout: 0\n");
    assert_int_equal(cfg.run.retries, 0);
    assert_true(cfg.run.retry_delay == 0.0);
    assert_true(cfg.run.task_timeout == 0.0);
    config_free(&cfg);
}

static void test_error_missing(void **state)
{
    (void)state;
    expect_error("source:\n  user: u\n" BASE_WAREHOUSE BASE_TABLES,
                 "t.yaml:2:3: ", "missing required key 'database'");
    expect_error(BASE_SOURCE BASE_WAREHOUSE, "t.yaml:1:1: ", "missing required key 'tables'");
    expect_error(BASE_SOURCE BASE_TABLES, "t.yaml:1:1: ", "missing required key 'url'");
    expect_error(BASE_SOURCE BASE_WAREHOUSE "tables: []\n",
                 "t.yaml:6:9: ", "tables: at least one table is required");
    expect_error(BASE_SOURCE BASE_WAREHOUSE "tables:\n  - schema: x\n",
                 "t.yaml:7:5: ", "missing required key 'name'");
}

static void test_error_duration_size(void **state)
{
    (void)state;
    expect_error(BASE "run:\n  retry_delay: 5x\n",
                 "t.yaml:9:16: ", "retry_delay: expected a duration like 30s, 5m or 1h, got '5x'");
    expect_error(BASE "run:\n  task_timeout: soon\n", "t.yaml:9:17: ", "got 'soon'");
    expect_error(BASE "run:\n  queue_bytes: 4MB\n",
                 "t.yaml:9:16: ", "queue_bytes: expected a size like 4MiB, got '4MB'");
    expect_error(BASE "http:\n  max_body_bytes: lots\n", "t.yaml:9:19: ", "got 'lots'");

    config_t cfg;
    load_ok(&cfg, BASE "run:\n  retry_delay: 250ms\n  max_retry_delay: 1h30m\n"
                       "  queue_bytes: 8388608\nhttp:\n  max_body_bytes: 512KiB\n");
    assert_true(fabs(cfg.run.retry_delay - 0.25) < 1e-12);
    assert_true(cfg.run.max_retry_delay == 5400.0);
    assert_int_equal(cfg.run.queue_bytes, 8388608);
    assert_int_equal(cfg.http.max_body_bytes, 512 * 1024);
    config_free(&cfg);
}

/* split: 1..16 or auto (0), default auto; split_by: auto, pages or key, default auto;
 * run.split_rows bounded; all printed back. */
static void test_split(void **state)
{
    (void)state;
    config_t cfg;
    load_ok(&cfg, BASE_SOURCE BASE_WAREHOUSE
            "tables:\n  - a\n  - name: b\n    split: 4\n  - name: c\n    split: auto\n"
            "  - name: d\n    split: 16\n  - name: e\n    split: ${ELTD_UT_A:-2}\n"
            "  - name: f\n    split: 1\n    split_by: key\n  - name: g\n    split_by: pages\n"
            "run:\n  split_rows: 250000\n");
    assert_int_equal(cfg.tables[0].split, 0);
    assert_int_equal(cfg.tables[1].split, 4);
    assert_int_equal(cfg.tables[2].split, 0);
    assert_int_equal(cfg.tables[3].split, 16);
    assert_int_equal(cfg.tables[4].split, 2);
    assert_int_equal(cfg.tables[5].split, 1);
    assert_int_equal(cfg.tables[0].split_by, SPLIT_BY_AUTO);
    assert_int_equal(cfg.tables[5].split_by, SPLIT_BY_KEY);
    assert_int_equal(cfg.tables[6].split_by, SPLIT_BY_PAGES);
    assert_int_equal(cfg.run.split_rows, 250000);
    char *out = print_to_string(&cfg);
    assert_non_null(strstr(out, "  - name: b\n    schema: \"public\"\n"));
    assert_non_null(strstr(out, "    split: 4\n"));
    assert_non_null(strstr(out, "    split: auto\n"));
    assert_non_null(strstr(out, "    split: 1\n    split_by: key\n"));
    assert_non_null(strstr(out, "    split_by: pages\n"));
    assert_non_null(strstr(out, "    split_by: auto\n"));
    assert_non_null(strstr(out, "\n  split_rows: 250000\n"));
    free(out);
    config_free(&cfg);
    load_ok(&cfg, BASE);
    assert_int_equal(cfg.tables[0].split, 0);
    assert_int_equal(cfg.run.split_rows, 1000000);
    config_free(&cfg);

    expect_error(BASE_SOURCE BASE_WAREHOUSE "tables:\n  - name: a\n    split: 0\n",
                 "t.yaml:8:12: ", "split: 0 is out of range 1..16");
    expect_error(BASE_SOURCE BASE_WAREHOUSE "tables:\n  - name: a\n    split: 17\n",
                 "t.yaml:8:12: ", "split: 17 is out of range 1..16");
    expect_error(BASE_SOURCE BASE_WAREHOUSE "tables:\n  - name: a\n    split: many\n",
                 "t.yaml:8:12: ", "split: expected auto or an integer, got 'many'");
    expect_error(BASE_SOURCE BASE_WAREHOUSE "tables:\n  - name: a\n    split: 2x\n",
                 "t.yaml:8:12: ", "got '2x'");
    expect_error(BASE_SOURCE BASE_WAREHOUSE "tables:\n  - name: a\n    split_by: rows\n",
                 "t.yaml:8:15: ", "split_by: expected auto, pages or key, got 'rows'");
    expect_error(BASE "run:\n  split_rows: 10\n",
                 "t.yaml:9:15: ", "split_rows: 10 is out of range 1000..1000000000000");
}

static void test_error_tables(void **state)
{
    (void)state;
    expect_error(BASE_SOURCE BASE_WAREHOUSE "tables:\n  - name: orders\n    mode: incremental\n",
                 "t.yaml:7:5: ", "table orders: mode incremental needs a cursor column");
    expect_error(BASE_SOURCE BASE_WAREHOUSE "tables:\n  - a\n  - b\n  - a\n",
                 "t.yaml:9:5: ", "table a: target a is already used on line 7");
    expect_error(BASE_SOURCE BASE_WAREHOUSE "tables:\n  - a\n  - name: b\n    target: a\n",
                 "t.yaml:8:5: ", "table b: target a is already used on line 7");
    /* The same source table twice under different targets is fine. */
    config_t cfg;
    load_ok(&cfg, BASE_SOURCE BASE_WAREHOUSE "tables:\n  - a\n  - name: a\n    target: a_copy\n");
    assert_int_equal(cfg.ntables, 2);
    config_free(&cfg);
}

static void test_error_duplicate_key(void **state)
{
    (void)state;
    expect_error(
        "source:\n  database: db\n  user: u\n  database: other\n" BASE_WAREHOUSE BASE_TABLES,
        "t.yaml:4:3: ", "duplicate key 'database'");
    expect_error(BASE "tables:\n  - t2\n", "t.yaml:8:1: ", "duplicate key 'tables'");
    expect_error(BASE "warehouse:\n  url: x\n", "t.yaml:8:1: ", "duplicate key 'warehouse'");
    expect_error(BASE_SOURCE BASE_WAREHOUSE
                 "tables:\n  - name: a\n    mode: full\n    mode: full\n",
                 "t.yaml:9:5: ", "duplicate key 'mode'");
}

static void test_error_validate(void **state)
{
    (void)state;
    expect_error(BASE_SOURCE "warehouse:\n  url: localhost:8123\n" BASE_TABLES, "t.yaml:1:1: ",
                 "warehouse.url: expected http:// or https://, got 'localhost:8123'");
    expect_error(BASE "http:\n  listen: 5001\n",
                 "t.yaml:1:1: ", "http.listen: expected host:port, got '5001'");
}

static void test_load_file_errors(void **state)
{
    (void)state;
    config_t cfg;
    char err[512];
    assert_false(config_load(&cfg, "/nonexistent/eltd.yaml", err, sizeof err));
    assert_string_equal(err, "/nonexistent/eltd.yaml: No such file or directory");
    /* A short error buffer is truncated, never overrun. */
    char small[12];
    memset(small, 'Z', sizeof small);
    assert_false(load(&cfg, BASE "bogus: 1\n", small, 8));
    assert_int_equal(strlen(small), 7);
    assert_int_equal(small[9], 'Z');
}

static void test_parse_duration(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        double want;
    } good[] = {
        {"0", 0},        {"300", 300},        {"300s", 300},  {"5m", 300},    {"1h", 3600},
        {"1h30m", 5400}, {"250ms", 0.25},     {"1.5h", 5400}, {"2d", 172800}, {"0.5s", 0.5},
        {"1m30s", 90},   {"1d2h3m4s", 93784}, {"10ms", 0.01}, {"0s", 0},
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        double v = -1;
        if (!config_parse_duration(good[i].s, &v))
            print_error("'%s' refused\n", good[i].s);
        assert_true(config_parse_duration(good[i].s, &v));
        if (fabs(v - good[i].want) > 1e-9)
            print_error("'%s' = %g, want %g\n", good[i].s, v, good[i].want);
        assert_true(fabs(v - good[i].want) <= 1e-9);
    }
    static const char *const bad[] = {"",    "s",     "ms",  "abc", "5x",  "-1", "-5m", "5 m",
                                      "5m ", "1h-5m", "inf", "nan", "5mm", "h1", "1y",  "5S"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        double v = 12345;
        if (config_parse_duration(bad[i], &v))
            print_error("'%s' accepted as %g\n", bad[i], v);
        assert_false(config_parse_duration(bad[i], &v));
        assert_true(v == 12345); /* untouched on failure */
    }
}

static void test_parse_size(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t want;
    } good[] = {
        {"0", 0},
        {"1", 1},
        {"4194304", 4194304},
        {"10B", 10},
        {"4K", 4096},
        {"512KiB", 524288},
        {"4MiB", 4194304},
        {"4M", 4194304},
        {"1GiB", 1073741824},
        {"2G", 2147483648LL},
        {"9223372036854775807", INT64_MAX},
        {"8589934591GiB", 8589934591LL * 1073741824LL},
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        int64_t v = -1;
        if (!config_parse_size(good[i].s, &v))
            print_error("'%s' refused\n", good[i].s);
        assert_true(config_parse_size(good[i].s, &v));
        assert_int_equal(v, good[i].want);
    }
    static const char *const bad[] = {"",
                                      "MiB",
                                      "-1",
                                      "4MB",
                                      "4mib",
                                      "1.5MiB",
                                      "4 MiB",
                                      "4MiBs",
                                      "1TiB",
                                      "x",
                                      "4KB",
                                      "9223372036854775808",
                                      "8589934592GiB",
                                      "9007199254740993K"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t v = 12345;
        if (config_parse_size(bad[i], &v))
            print_error("'%s' accepted as %lld\n", bad[i], (long long)v);
        assert_false(config_parse_size(bad[i], &v));
        assert_int_equal(v, 12345);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_pipeline_defaults, clear_env),
        cmocka_unit_test_setup(test_pipeline_environment, clear_env),
        cmocka_unit_test_setup(test_print_empty_secrets_and_quoting, clear_env),
        cmocka_unit_test_setup(test_substitute_env, clear_env),
        cmocka_unit_test_setup(test_env_in_file, clear_env),
        cmocka_unit_test_setup(test_minimal_defaults, clear_env),
        cmocka_unit_test_setup(test_tables_forms, clear_env),
        cmocka_unit_test_setup(test_section_order, clear_env),
        cmocka_unit_test_setup(test_models_vars, clear_env),
        cmocka_unit_test_setup(test_error_syntax, clear_env),
        cmocka_unit_test_setup(test_error_unknown_key, clear_env),
        cmocka_unit_test_setup(test_error_wrong_type, clear_env),
        cmocka_unit_test_setup(test_bools, clear_env),
        cmocka_unit_test_setup(test_error_range, clear_env),
        cmocka_unit_test_setup(test_error_missing, clear_env),
        cmocka_unit_test_setup(test_error_duration_size, clear_env),
        cmocka_unit_test_setup(test_error_tables, clear_env),
        cmocka_unit_test_setup(test_error_duplicate_key, clear_env),
        cmocka_unit_test_setup(test_error_validate, clear_env),
        cmocka_unit_test_setup(test_load_file_errors, clear_env),
        cmocka_unit_test_setup(test_split, clear_env),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
