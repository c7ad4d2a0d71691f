/* test_docs.c — `eltd docs` without a server: the manifest of the fixture project
 * (test/unit/models/shop: nodes, lineage, descriptions, the loads that fill sources), the
 * catalog from hand-written TabSeparated answers (escapes, views, strangers, bad rows), and
 * index.html (an anchor per model, every project text escaped, well-formed, with and without
 * a catalog). Projects with markup and odd bytes are written to a temporary directory. */
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

#include "docs.h"
#include "models.h"

#define NOW "2024-05-01T12:00:00Z"

/* A config whose models.path is dir. Four loads: orders incremental, order_items into the
 * table items; finance.exchange_rates is left to someone else. */
static void load_config(config_t *cfg, const char *dir)
{
    char yaml[4096], err[512];
    snprintf(yaml, sizeof yaml,
             "source: {host: localhost, database: db, user: u, password: p, schema: shop}\n"
             "warehouse: {url: 'http://localhost:8123', raw_database: raw_t,"
             " analytics_database: analytics_t}\n"
             "tables: [customers, products, {name: orders, mode: incremental, cursor: updated_at},"
             " {name: order_items, target: items, schema: sales}]\n"
             "models:\n  path: %s\n",
             dir);
    if (!config_load_string(cfg, "t.yaml", yaml, strlen(yaml), err, sizeof err))
        fail_msg("config: %s", err);
}

/* The fixture project and its manifest, shared by the tests (read-only). */
static config_t shop_cfg;
static models_project_t shop;
static json_t *shop_manifest;

static int setup_shop(void **state)
{
    (void)state;
    char err[1024];
    load_config(&shop_cfg, fixture);
    if (!models_load(&shop, &shop_cfg, NULL, err, sizeof err)) {
        fprintf(stderr, "fixture: %s\n", err);
        config_free(&shop_cfg);
        return -1;
    }
    shop_manifest = docs_manifest(&shop, &shop_cfg, NOW);
    return shop_manifest ? 0 : -1;
}

static int teardown_shop(void **state)
{
    (void)state;
    json_decref(shop_manifest);
    models_free(&shop);
    config_free(&shop_cfg);
    return 0;
}

/* ---- helpers ----------------------------------------------------------------------- */

static const json_t *node(const json_t *m, const char *uid)
{
    const json_t *n = json_object_get(json_object_get(m, "nodes"), uid);
    if (!n)
        fail_msg("no node %s", uid);
    return n;
}

static const json_t *source(const json_t *m, const char *uid)
{
    const json_t *n = json_object_get(json_object_get(m, "sources"), uid);
    if (!n)
        fail_msg("no source %s", uid);
    return n;
}

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (!s)
        fail_msg("no string %s", key);
    return s;
}

static bool array_has(const json_t *a, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach((json_t *)a, i, v)
    {
        if (json_string_value(v) && !strcmp(json_string_value(v), s))
            return true;
    }
    return false;
}

/* The array as "a b c". */
static const char *joined(const json_t *a)
{
    static char out[2048];
    size_t i, n = 0;
    json_t *v;
    out[0] = '\0';
    json_array_foreach((json_t *)a, i, v)
    {
        n += (size_t)snprintf(out + n, sizeof out - n, "%s%s", i ? " " : "",
                              json_string_value(v) ? json_string_value(v) : "?");
        if (n >= sizeof out)
            break;
    }
    return out;
}

static size_t count_type(const json_t *m, const char *type)
{
    size_t n = 0;
    const char *uid;
    json_t *v;
    json_object_foreach(json_object_get(m, "nodes"), uid, v)
    {
        n += !strcmp(str(v, "resource_type"), type);
    }
    return n;
}

static size_t count_str(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* Every element opened is closed, in order (void elements aside); NULL when so, else what
 * went wrong. Attribute values never hold '>' here: they are escaped. */
static const char *html_unbalanced(const char *h)
{
    static char why[256];
    static const char *const voids[] = {"meta", "br", "hr", "img", "input", "link", "col", "wbr"};
    char stack[256][16];
    size_t depth = 0;
    for (const char *p = h; (p = strchr(p, '<'));) {
        p++;
        if (*p == '!') {
            p = strchr(p, '>');
            if (!p)
                return "unterminated <!";
            continue;
        }
        bool close = *p == '/';
        p += close;
        char tag[16];
        size_t n = 0;
        while (((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')) && n < sizeof tag - 1)
            tag[n++] = *p++;
        tag[n] = '\0';
        if (!n) {
            snprintf(why, sizeof why, "a bare '<' at offset %td", p - h);
            return why;
        }
        const char *gt = strchr(p, '>');
        if (!gt)
            return "unterminated tag";
        p = gt + 1;
        bool isvoid = false;
        for (size_t i = 0; i < sizeof voids / sizeof *voids; i++)
            isvoid = isvoid || !strcmp(tag, voids[i]);
        if (isvoid)
            continue;
        if (!close) {
            if (depth == 256)
                return "too deep";
            strcpy(stack[depth++], tag);
        } else if (!depth || strcmp(stack[depth - 1], tag)) {
            snprintf(why, sizeof why, "</%s> closes <%s>", tag, depth ? stack[depth - 1] : "");
            return why;
        } else {
            depth--;
        }
    }
    if (depth) {
        snprintf(why, sizeof why, "<%s> left open", stack[depth - 1]);
        return why;
    }
    return NULL;
}

/* ---- the manifest ------------------------------------------------------------------ */

static void test_manifest_counts(void **state)
{
    (void)state;
    const json_t *m = shop_manifest;
    size_t enabled = 0;
    for (size_t i = 0; i < shop.nmodels; i++)
        enabled += shop.models[i].config.enabled;
    assert_int_equal(enabled, 8);
    assert_int_equal(count_type(m, "model"), enabled);
    assert_int_equal(count_type(m, "test"), shop.ntests);
    assert_int_equal(shop.ntests, 6);
    assert_int_equal(json_object_size(json_object_get(m, "nodes")), 14);
    assert_int_equal(json_object_size(json_object_get(m, "sources")), 5);
    assert_int_equal(json_object_size(json_object_get(m, "disabled")), 0);
    const json_t *meta = json_object_get(m, "metadata");
    assert_string_equal(str(meta, "generated_by"), "eltd");
    assert_string_equal(str(meta, "generated_at"), NOW);
    assert_string_equal(str(meta, "project_name"), "shop");
    assert_null(json_object_get(meta, "dbt_schema_version"));
    /* Same project, same time: the same bytes (cmd_docs writes with sorted keys). */
    json_t *again = docs_manifest(&shop, &shop_cfg, NOW);
    assert_non_null(again);
    char *a = json_dumps(m, JSON_SORT_KEYS), *b = json_dumps(again, JSON_SORT_KEYS);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a, b);
    free(a);
    free(b);
    json_decref(again);
}

static void test_manifest_model(void **state)
{
    (void)state;
    const json_t *so = node(shop_manifest, "model.shop.stg_orders");
    assert_string_equal(str(so, "unique_id"), "model.shop.stg_orders");
    assert_string_equal(str(so, "resource_type"), "model");
    assert_string_equal(str(so, "name"), "stg_orders");
    assert_string_equal(str(so, "package_name"), "shop");
    assert_string_equal(str(so, "path"), "staging/stg_orders.sql");
    assert_string_equal(str(so, "original_file_path"), "models/staging/stg_orders.sql");
    assert_string_equal(str(so, "description"), "Orders, one row each.");
    assert_string_equal(str(so, "schema"), "analytics_t");
    assert_string_equal(str(so, "alias"), "stg_orders");
    assert_string_equal(str(so, "relation_name"), "`analytics_t`.`stg_orders`");
    assert_string_equal(joined(json_object_get(so, "fqn")), "shop staging stg_orders");
    assert_non_null(strstr(str(so, "raw_code"), "FROM {{ source('raw', 'orders') }}"));
    assert_non_null(strstr(str(so, "compiled_code"), "FROM `raw_t`.`orders`"));
    /* Documented columns in file order, "" without a description (as dbt). */
    const json_t *cols = json_object_get(so, "columns");
    assert_int_equal(json_object_size(cols), 3);
    const char *want[] = {"order_id", "status", "customer_id"};
    size_t k = 0;
    const char *name;
    json_t *c;
    json_object_foreach((json_t *)cols, name, c)
    {
        assert_string_equal(name, want[k++]);
        assert_string_equal(str(c, "name"), name);
        assert_string_equal(str(c, "description"), "");
    }
    const json_t *conf = json_object_get(so, "config");
    assert_string_equal(str(conf, "materialized"), "view");
    assert_true(json_is_true(json_object_get(conf, "enabled")));
    assert_null(json_object_get(conf, "engine")); /* the default: not set */
    assert_string_equal(joined(json_object_get(so, "tags")), "shop staging");
    /* A model without a schema.yml description has "", and its set config only. */
    const json_t *ol = node(shop_manifest, "model.shop.orders_latest");
    assert_string_equal(str(ol, "description"), "");
    conf = json_object_get(ol, "config");
    assert_string_equal(str(conf, "materialized"), "incremental");
    assert_string_equal(str(conf, "unique_key"), "order_id");
    assert_string_equal(str(conf, "order_by"), "order_id");
    assert_null(json_object_get(conf, "engine"));
    assert_null(json_object_get(conf, "incremental_strategy"));
    assert_null(json_object_get(conf, "partition_by"));
    conf = json_object_get(node(shop_manifest, "model.shop.order_totals"), "config");
    assert_string_equal(str(conf, "engine"), "MergeTree()");
    assert_string_equal(str(conf, "settings"), "index_granularity = 8192");
    assert_string_equal(
        str(json_object_get(node(shop_manifest, "model.shop.order_events"), "config"),
            "incremental_strategy"),
        "append");
}

static void test_manifest_lineage(void **state)
{
    (void)state;
    const json_t *m = shop_manifest;
    const json_t *pm = json_object_get(m, "parent_map"), *cm = json_object_get(m, "child_map");
    const json_t *os = node(m, "model.shop.order_summary");
    assert_string_equal(joined(json_object_get(json_object_get(os, "depends_on"), "nodes")),
                        "model.shop.order_totals");
    assert_string_equal(joined(json_object_get(pm, "model.shop.order_summary")),
                        "model.shop.order_totals");
    assert_string_equal(joined(json_object_get(cm, "model.shop.order_totals")),
                        "model.shop.order_summary test.shop.order_totals.unique_order_id");
    /* The ref inside {% if is_incremental() %} counts; sources are parents too. */
    assert_string_equal(joined(json_object_get(pm, "model.shop.orders_latest")),
                        "model.shop.stg_orders source.shop.raw.orders");
    assert_string_equal(joined(json_object_get(pm, "model.shop.customer_orders")),
                        "model.shop.stg_customers model.shop.stg_orders");
    assert_string_equal(joined(json_object_get(cm, "source.shop.raw.orders")),
                        "model.shop.order_events model.shop.orders_latest model.shop.stg_orders");
    assert_int_equal(json_array_size(json_object_get(pm, "source.shop.raw.orders")), 0);
    assert_int_equal(json_array_size(json_object_get(cm, "source.shop.finance.exchange_rates")), 0);
    /* Every node and source is in both maps; the maps mirror each other and parent_map is
     * each node's depends_on. */
    size_t entries = json_object_size(json_object_get(m, "nodes")) +
                     json_object_size(json_object_get(m, "sources"));
    assert_int_equal(json_object_size(pm), entries);
    assert_int_equal(json_object_size(cm), entries);
    const char *uid;
    json_t *parents;
    size_t edges = 0;
    json_object_foreach((json_t *)pm, uid, parents)
    {
        const json_t *n = json_object_get(json_object_get(m, "nodes"), uid);
        if (n)
            assert_true(
                json_equal(parents, json_object_get(json_object_get(n, "depends_on"), "nodes")));
        size_t i;
        json_t *par;
        json_array_foreach(parents, i, par)
        {
            assert_true(array_has(json_object_get(cm, json_string_value(par)), uid));
            edges++;
        }
    }
    size_t back = 0;
    json_t *children;
    json_object_foreach((json_t *)cm, uid, children)
    {
        size_t i;
        json_t *ch;
        json_array_foreach(children, i, ch)
        {
            assert_true(array_has(json_object_get(pm, json_string_value(ch)), uid));
            back++;
        }
    }
    assert_int_equal(edges, back);
    /* 8 model->model/source edges plus tests: 5 with one parent, relationships with two. */
    assert_int_equal(edges, 10 + 7);
}

static void test_manifest_tests(void **state)
{
    (void)state;
    const json_t *t = node(shop_manifest, "test.shop.stg_orders.relationships_customer_id");
    assert_string_equal(str(t, "resource_type"), "test");
    assert_string_equal(str(t, "name"), "relationships_customer_id");
    assert_string_equal(str(t, "attached_node"), "model.shop.stg_orders");
    assert_string_equal(str(t, "column_name"), "customer_id");
    const json_t *meta = json_object_get(t, "test_metadata");
    assert_string_equal(str(meta, "name"), "relationships");
    const json_t *kw = json_object_get(meta, "kwargs");
    assert_string_equal(str(kw, "column_name"), "customer_id");
    assert_string_equal(str(kw, "to"), "ref('stg_customers')");
    assert_string_equal(str(kw, "field"), "customer_id");
    assert_string_equal(joined(json_object_get(json_object_get(t, "depends_on"), "nodes")),
                        "model.shop.stg_orders model.shop.stg_customers");
    assert_string_equal(str(json_object_get(t, "config"), "severity"), "error");

    t = node(shop_manifest, "test.shop.customer_orders.accepted_values_state");
    meta = json_object_get(t, "test_metadata");
    assert_string_equal(str(meta, "name"), "accepted_values");
    assert_string_equal(joined(json_object_get(json_object_get(meta, "kwargs"), "values")), "SP");
    assert_string_equal(str(json_object_get(t, "config"), "severity"), "warn");
    assert_string_equal(
        str(json_object_get(node(shop_manifest, "test.shop.stg_orders.not_null_order_id"),
                            "test_metadata"),
            "name"),
        "not_null");
}

static void test_manifest_sources(void **state)
{
    (void)state;
    const json_t *cu = source(shop_manifest, "source.shop.raw.customers");
    assert_string_equal(str(cu, "resource_type"), "source");
    assert_string_equal(str(cu, "source_name"), "raw");
    assert_string_equal(str(cu, "name"), "customers");
    assert_string_equal(str(cu, "description"), "One row per customer.");
    assert_string_equal(str(cu, "source_description"), "Tables eltd loads from PostgreSQL.");
    /* Loaded by eltd: in the raw database whatever sources.yml's schema says. */
    assert_string_equal(str(cu, "schema"), "raw_t");
    assert_string_equal(str(cu, "identifier"), "customers");
    assert_string_equal(str(cu, "relation_name"), "`raw_t`.`customers`");
    const json_t *load = json_object_get(cu, "eltd_load");
    assert_true(json_is_object(load));
    assert_string_equal(str(load, "postgres"), "shop.customers");
    assert_string_equal(str(load, "clickhouse"), "raw_t.customers");
    assert_string_equal(str(load, "mode"), "full");
    assert_null(json_object_get(load, "cursor"));

    load = json_object_get(source(shop_manifest, "source.shop.raw.orders"), "eltd_load");
    assert_string_equal(str(load, "mode"), "incremental");
    assert_string_equal(str(load, "cursor"), "updated_at");
    assert_int_equal(json_object_size(json_object_get(
                         source(shop_manifest, "source.shop.raw.orders"), "columns")),
                     1);

    /* order_items is loaded into the table items, from its own PostgreSQL schema. */
    const json_t *oi = source(shop_manifest, "source.shop.raw.order_items");
    assert_string_equal(str(oi, "identifier"), "items");
    assert_string_equal(str(oi, "relation_name"), "`raw_t`.`items`");
    load = json_object_get(oi, "eltd_load");
    assert_string_equal(str(load, "postgres"), "sales.order_items");
    assert_string_equal(str(load, "clickhouse"), "raw_t.items");

    /* No load fills finance.exchange_rates: its own schema and identifier, eltd_load null. */
    const json_t *fx = source(shop_manifest, "source.shop.finance.exchange_rates");
    assert_true(json_is_null(json_object_get(fx, "eltd_load")));
    assert_string_equal(str(fx, "schema"), "finance");
    assert_string_equal(str(fx, "identifier"), "fx_rates");
    assert_string_equal(str(fx, "relation_name"), "`finance`.`fx_rates`");
    assert_string_equal(str(fx, "description"), "");
}

/* A bare models directory: no dbt_project.yml, so ids say "eltd"; a disabled model is kept
 * apart; a model file that is not UTF-8 still gives a manifest that dumps. */
static void test_manifest_bare_project(void **state)
{
    (void)state;
    new_tmp_project();
    write_file("a.sql", "SELECT 1 AS x -- caf\xe9\n");
    write_file("sub/b.sql", "{{ config(enabled=false) }}\nSELECT 2\n");
    write_file("sub/c.sql", "SELECT * FROM {{ ref('a') }}\n");
    config_t cfg;
    load_config(&cfg, tmpdir);
    models_project_t p;
    char err[1024];
    if (!models_load(&p, &cfg, NULL, err, sizeof err))
        fail_msg("%s", err);
    json_t *m = docs_manifest(&p, &cfg, NOW);
    assert_non_null(m);
    assert_string_equal(str(json_object_get(m, "metadata"), "project_name"), "eltd");
    assert_int_equal(count_type(m, "model"), 2);
    const json_t *a = node(m, "model.eltd.a");
    assert_string_equal(str(a, "path"), "a.sql");
    assert_non_null(strstr(str(a, "raw_code"), "caf\xef\xbf\xbd\n"));
    assert_string_equal(str(node(m, "model.eltd.c"), "path"), "sub/c.sql");
    assert_string_equal(joined(json_object_get(json_object_get(m, "child_map"), "model.eltd.a")),
                        "model.eltd.c");
    const json_t *dis = json_object_get(json_object_get(m, "disabled"), "model.eltd.b");
    assert_int_equal(json_array_size(dis), 1);
    assert_false(json_is_true(
        json_object_get(json_object_get(json_array_get(dis, 0), "config"), "enabled")));
    assert_null(json_object_get(json_object_get(m, "parent_map"), "model.eltd.b"));
    char *text = json_dumps(m, JSON_SORT_KEYS);
    assert_non_null(text);
    free(text);
    json_decref(m);
    models_free(&p);
    config_free(&cfg);
    rm_tmp_project();
}

/* ---- the catalog ------------------------------------------------------------------- */

static const char COLUMNS[] =
    "analytics_t\tstg_orders\torder_id\tUInt64\t\n"
    "analytics_t\tstg_orders\tstatus\tString\tthe\\tstatus \\\\ \\'done\\' \\x41\\N\n"
    "analytics_t\torder_totals\torder_id\tUInt64\t\n"
    "analytics_t\torder_totals\ttotal\tDecimal(18, 2)\tsum\\nof items\n"
    "analytics_t\tstg_customers\tcustomer_id\tUInt64\t\n"
    "raw_t\titems\torder_item_id\tInt32\t\n"
    "raw_t\tstray\tx\tInt8\t\n"
    "elsewhere\tstg_orders\tx\tInt8\t\n";
static const char TABLES[] = "analytics_t\tstg_orders\tView\n"
                             "analytics_t\torder_totals\tMergeTree\n"
                             "analytics_t\torder_events\tMergeTree\n"
                             "analytics_t\tstg_customers\tView\n"
                             "raw_t\titems\tReplacingMergeTree\n"
                             "raw_t\tstray\tMemory\n"
                             "elsewhere\tstg_orders\tView\n";
static const char PARTS[] = "analytics_t\torder_totals\t42\t2048\n"
                            "raw_t\titems\t7\t100\n"
                            "raw_t\tstray\t1\t1\n";

static json_t *shop_catalog(void)
{
    char err[256] = "";
    json_t *c = docs_catalog(shop_manifest, COLUMNS, TABLES, PARTS, NOW, err, sizeof err);
    if (!c)
        fail_msg("catalog: %s", err);
    return c;
}

static json_int_t stat_value(const json_t *e, const char *stat)
{
    const json_t *v = json_object_get(json_object_get(json_object_get(e, "stats"), stat), "value");
    if (!json_is_integer(v))
        fail_msg("no stat %s", stat);
    return json_integer_value(v);
}

static void test_catalog(void **state)
{
    (void)state;
    json_t *c = shop_catalog();
    assert_string_equal(str(json_object_get(c, "metadata"), "generated_at"), NOW);
    assert_string_equal(str(json_object_get(c, "metadata"), "generated_by"), "eltd");
    const json_t *nodes = json_object_get(c, "nodes"), *srcs = json_object_get(c, "sources");
    /* Relations the manifest names only: not stray, not another database's stg_orders. */
    assert_int_equal(json_object_size(nodes), 4);
    assert_int_equal(json_object_size(srcs), 1);

    const json_t *so = json_object_get(nodes, "model.shop.stg_orders");
    assert_non_null(so);
    assert_string_equal(str(so, "unique_id"), "model.shop.stg_orders");
    const json_t *meta = json_object_get(so, "metadata");
    assert_string_equal(str(meta, "type"), "View");
    assert_string_equal(str(meta, "schema"), "analytics_t");
    assert_string_equal(str(meta, "name"), "stg_orders");
    assert_null(json_object_get(so, "stats")); /* a view has no parts */
    const json_t *cols = json_object_get(so, "columns");
    assert_int_equal(json_object_size(cols), 2);
    const json_t *st = json_object_get(cols, "status");
    assert_string_equal(str(st, "name"), "status");
    assert_string_equal(str(st, "type"), "String");
    assert_int_equal(json_integer_value(json_object_get(st, "index")), 2);
    assert_string_equal(str(st, "comment"), "the\tstatus \\ 'done' A");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(cols, "order_id"), "index")), 1);
    assert_true(json_is_null(json_object_get(json_object_get(cols, "order_id"), "comment")));

    const json_t *ot = json_object_get(nodes, "model.shop.order_totals");
    assert_string_equal(str(json_object_get(ot, "metadata"), "type"), "MergeTree");
    assert_int_equal(stat_value(ot, "row_count"), 42);
    assert_int_equal(stat_value(ot, "bytes"), 2048);
    const json_t *total = json_object_get(json_object_get(ot, "columns"), "total");
    assert_string_equal(str(total, "type"), "Decimal(18, 2)");
    assert_string_equal(str(total, "comment"), "sum\nof items");
    assert_int_equal(json_integer_value(json_object_get(total, "index")), 2);
    /* A MergeTree table without active parts is empty. */
    assert_int_equal(stat_value(json_object_get(nodes, "model.shop.order_events"), "row_count"), 0);
    /* Not built: left out. */
    assert_null(json_object_get(nodes, "model.shop.order_summary"));

    /* The source order_items lives in raw_t.items. */
    const json_t *oi = json_object_get(srcs, "source.shop.raw.order_items");
    assert_non_null(oi);
    assert_string_equal(str(json_object_get(oi, "metadata"), "name"), "items");
    assert_int_equal(stat_value(oi, "row_count"), 7);
    assert_int_equal(json_object_size(json_object_get(oi, "columns")), 1);
    assert_null(json_object_get(srcs, "source.shop.raw.customers"));
    json_decref(c);

    /* No answers at all: an empty catalog. */
    char err[256] = "";
    c = docs_catalog(shop_manifest, "", NULL, "", NOW, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(json_object_size(json_object_get(c, "nodes")), 0);
    assert_int_equal(json_object_size(json_object_get(c, "sources")), 0);
    json_decref(c);
}

static void test_catalog_malformed(void **state)
{
    (void)state;
    char err[256] = "";
    const char *bad_columns = "analytics_t\tstg_orders\torder_id\tUInt64\t\n"
                              "analytics_t\tstg_orders\tstatus\tString\n";
    assert_null(docs_catalog(shop_manifest, bad_columns, TABLES, PARTS, NOW, err, sizeof err));
    assert_string_equal(err, "columns: line 2: expected 5 fields, got 4");

    err[0] = '\0';
    assert_null(docs_catalog(shop_manifest, COLUMNS, "analytics_t\tstg_orders\tView\textra\n",
                             PARTS, NOW, err, sizeof err));
    assert_string_equal(err, "tables: line 1: expected 3 fields, got 4");

    err[0] = '\0';
    const char *bad_parts = "analytics_t\torder_totals\t42\t2048\n"
                            "raw_t\titems\tmany\t100\n";
    assert_null(docs_catalog(shop_manifest, COLUMNS, TABLES, bad_parts, NOW, err, sizeof err));
    assert_string_equal(err, "parts: line 2: rows and bytes must be whole numbers");

    err[0] = '\0';
    assert_null(docs_catalog(shop_manifest, COLUMNS, TABLES, "raw_t\titems\t-1\t100\n", NOW, err,
                             sizeof err));
    assert_string_equal(err, "parts: line 1: rows and bytes must be whole numbers");
}

/* ---- index.html -------------------------------------------------------------------- */

static void test_html_fixture(void **state)
{
    (void)state;
    json_t *c = shop_catalog();
    size_t len = 0;
    char *h = docs_html(shop_manifest, c, &len);
    assert_non_null(h);
    assert_int_equal(len, strlen(h));
    assert_true(!strncmp(h, "<!DOCTYPE html>", 15));
    assert_non_null(strstr(h, "<meta charset=\"utf-8\">"));
    const char *why = html_unbalanced(h);
    if (why)
        fail_msg("index.html: %s", why);
    /* An anchor per model and per source, and nothing fetched from elsewhere. */
    for (size_t i = 0; i < shop.nmodels; i++) {
        char anchor[256];
        snprintf(anchor, sizeof anchor, "id=\"model.shop.%s\"", shop.models[i].name);
        assert_int_equal(count_str(h, anchor), 1);
    }
    assert_int_equal(count_str(h, "<article id=\"source.shop."), 5);
    assert_int_equal(count_str(h, "<article id=\""), 13);
    assert_null(strstr(h, "<script"));
    assert_null(strstr(h, "<link"));
    assert_null(strstr(h, "src="));
    assert_null(strstr(h, "http"));
    /* Folders in the contents; lineage links; the catalog's engine, rows, sizes, types. */
    assert_non_null(strstr(h, "<h4>marts</h4>"));
    assert_non_null(strstr(h, "<h4>staging</h4>"));
    assert_non_null(strstr(h, "<a href=\"#model.shop.order_totals\">order_totals</a>"));
    assert_non_null(strstr(h, "<dt>Rows</dt><dd>42</dd>"));
    assert_non_null(strstr(h, "<dt>Size</dt><dd>2.0 KiB</dd>"));
    assert_non_null(strstr(h, "<td><code>Decimal(18, 2)</code></td>"));
    assert_non_null(strstr(h, "PostgreSQL <code>shop.customers</code> &rarr; ClickHouse "
                              "<code>raw_t.customers</code>, full"));
    assert_non_null(strstr(h, "Orders, one row each."));
    assert_non_null(strstr(h, "relationships &rarr; <a href=\"#model.shop.stg_customers\">"));
    /* Four models and four sources are not in the catalog. */
    assert_int_equal(count_str(h, "not built"), 8);
    /* SQL is escaped like any text. */
    assert_non_null(strstr(h, "{{ source(&#39;raw&#39;, &#39;orders&#39;) }}"));
    free(h);
    json_decref(c);

    /* Without a catalog: no types, no "not built", still whole. */
    h = docs_html(shop_manifest, NULL, &len);
    assert_non_null(h);
    assert_null(html_unbalanced(h));
    assert_null(strstr(h, "not built"));
    assert_null(strstr(h, "<th>Type</th>"));
    assert_int_equal(count_str(h, "<article id=\"model.shop."), 8);
    free(h);
}

/* Text from the project reaches the page only escaped: descriptions (model, column,
 * source), SQL, names. */
static void test_html_escapes(void **state)
{
    (void)state;
    new_tmp_project();
    write_file("dbt_project.yml", "name: evil\nmodel-paths: [\"models\"]\n");
    write_file("models/m.sql",
               "SELECT '<script>alert(2)</script>' AS x FROM {{ source('s', 't') }}\n");
    write_file("models/schema.yml", "version: 2\n"
                                    "models:\n"
                                    "  - name: m\n"
                                    "    description: \"Orders <b>one</b> row & \\\"each\\\" 'x' "
                                    "<script>alert(1)</script>\"\n"
                                    "    columns:\n"
                                    "      - name: x\n"
                                    "        description: \"<script>alert(3)</script>\"\n"
                                    "        tests: [not_null]\n"
                                    "sources:\n"
                                    "  - name: s\n"
                                    "    description: \"<img src=x onerror=alert(4)>\"\n"
                                    "    tables:\n"
                                    "      - name: t\n"
                                    "        description: \"a > b & c\"\n");
    config_t cfg;
    load_config(&cfg, tmpdir);
    models_project_t p;
    char err[1024];
    if (!models_load(&p, &cfg, NULL, err, sizeof err))
        fail_msg("%s", err);
    json_t *m = docs_manifest(&p, &cfg, "<now>");
    assert_non_null(m);
    /* The manifest keeps the text as written. */
    assert_string_equal(str(node(m, "model.evil.m"), "description"),
                        "Orders <b>one</b> row & \"each\" 'x' <script>alert(1)</script>");
    char cerr[256];
    json_t *c = docs_catalog(m, "analytics_t\tm\tx\tString\t<script>alert(5)</script>\n",
                             "analytics_t\tm\tView\n", "", "<now>", cerr, sizeof cerr);
    assert_non_null(c);
    for (int with_catalog = 0; with_catalog < 2; with_catalog++) {
        size_t len;
        char *h = docs_html(m, with_catalog ? c : NULL, &len);
        assert_non_null(h);
        assert_null(strstr(h, "<script"));
        assert_null(strstr(h, "<b>"));
        assert_null(strstr(h, "<img"));
        assert_non_null(strstr(h, "Orders &lt;b&gt;one&lt;/b&gt; row &amp; &quot;each&quot; "
                                  "&#39;x&#39; &lt;script&gt;alert(1)&lt;/script&gt;"));
        assert_non_null(strstr(h, "SELECT &#39;&lt;script&gt;alert(2)&lt;/script&gt;&#39; AS x"));
        assert_non_null(strstr(h, "&lt;script&gt;alert(3)&lt;/script&gt;"));
        assert_non_null(strstr(h, "&lt;img src=x onerror=alert(4)&gt;"));
        assert_non_null(strstr(h, "a &gt; b &amp; c"));
        assert_non_null(strstr(h, "Generated by eltd at &lt;now&gt;"));
        assert_non_null(strstr(h, "id=\"model.evil.m\""));
        const char *why = html_unbalanced(h);
        if (why)
            fail_msg("index.html: %s", why);
        free(h);
    }
    json_decref(c);
    json_decref(m);
    models_free(&p);
    config_free(&cfg);
    rm_tmp_project();
}

int main(void)
{
    find_fixture();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest_counts),  cmocka_unit_test(test_manifest_model),
        cmocka_unit_test(test_manifest_lineage), cmocka_unit_test(test_manifest_tests),
        cmocka_unit_test(test_manifest_sources), cmocka_unit_test(test_manifest_bare_project),
        cmocka_unit_test(test_catalog),          cmocka_unit_test(test_catalog_malformed),
        cmocka_unit_test(test_html_fixture),     cmocka_unit_test(test_html_escapes),
    };
    return cmocka_run_group_tests(tests, setup_shop, teardown_shop);
}
