/* test_select.c — dbt selector semantics over a small hand-made graph:
 *
 *   load orders ──► a (staging, view, tag x) ──► b (marts, table) ──► c (marts, incremental,
 *   load items  ────────────────────────────────┘    └── test b.unique_id          tag y)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "select.h"

enum { L_ORDERS, L_ITEMS, M_A, M_B, M_C, T_B, N };

static const char *const tags_a[] = {"x", "staging"};
static const char *const tags_c[] = {"y"};
static const char *const src_orders[] = {"raw.orders"};
static const char *const src_items[] = {"raw.order_items", "other.items"};
static const size_t par_a[] = {L_ORDERS};
static const size_t par_b[] = {M_A, L_ITEMS};
static const size_t par_c[] = {M_B};
static const size_t par_t[] = {M_B};

static const select_node_t nodes[N] = {
    [L_ORDERS] = {.kind = SELECT_LOAD,
                  .name = "orders",
                  .alt = "pg_orders",
                  .sources = src_orders,
                  .nsources = 1},
    [L_ITEMS] = {.kind = SELECT_LOAD, .name = "order_items", .sources = src_items, .nsources = 2},
    [M_A] = {.kind = SELECT_MODEL,
             .name = "a",
             .path = "models/staging/a.sql",
             .materialized = "view",
             .tags = tags_a,
             .ntags = 2,
             .parents = par_a,
             .nparents = 1},
    [M_B] = {.kind = SELECT_MODEL,
             .name = "b",
             .path = "models/marts/b.sql",
             .materialized = "table",
             .parents = par_b,
             .nparents = 2},
    [M_C] = {.kind = SELECT_MODEL,
             .name = "c",
             .path = "models/marts/sub/c.sql",
             .materialized = "incremental",
             .tags = tags_c,
             .ntags = 1,
             .parents = par_c,
             .nparents = 1},
    [T_B] = {.kind = SELECT_TEST,
             .name = "b.unique_id",
             .parents = par_t,
             .nparents = 1,
             .attached_to = M_B},
};

/* Runs a selection given as space-separated strings; returns the picked nodes as a string
 * of names in node order, or "ERR: message". */
static const char *pick(const char *select, const char *exclude)
{
    static char out[512];
    size_t ns = 0, ne = 0;
    char **s = select_split(select ? select : "", &ns);
    char **e = select_split(exclude ? exclude : "", &ne);
    assert_non_null(s);
    assert_non_null(e);
    bool mask[N];
    char err[256];
    if (!select_nodes(nodes, N, (const char *const *)s, ns, (const char *const *)e, ne, mask, err,
                      sizeof err)) {
        snprintf(out, sizeof out, "ERR: %s", err);
    } else {
        out[0] = '\0';
        for (size_t i = 0; i < N; i++)
            if (mask[i]) {
                if (out[0])
                    strcat(out, " ");
                strcat(out, nodes[i].name);
            }
    }
    select_split_free(s);
    select_split_free(e);
    return out;
}

static void test_everything_by_default(void **state)
{
    (void)state;
    assert_string_equal(pick(NULL, NULL), "orders order_items a b c b.unique_id");
}

static void test_names_and_graph_operators(void **state)
{
    (void)state;
    assert_string_equal(pick("b", NULL), "b b.unique_id");
    assert_string_equal(pick("+b", NULL), "orders order_items a b b.unique_id");
    assert_string_equal(pick("b+", NULL), "b c b.unique_id");
    assert_string_equal(pick("+b+", NULL), "orders order_items a b c b.unique_id");
    assert_string_equal(pick("1+b", NULL), "order_items a b b.unique_id");
    assert_string_equal(pick("a+1", NULL), "a b b.unique_id");
    assert_string_equal(pick("@b", NULL), "orders order_items a b c b.unique_id");
    assert_string_equal(pick("orders+", NULL), "orders a b c b.unique_id");
    /* A load by its ClickHouse or PostgreSQL name; a blank-separated list is a union. */
    assert_string_equal(pick("pg_orders c", NULL), "orders c");
    assert_string_equal(pick("a c", NULL), "a c");
    assert_string_equal(pick("fqn:a", NULL), "a");
    assert_string_equal(pick("*", NULL), "orders order_items a b c b.unique_id");
    /* A test by name runs alone against what ClickHouse holds. */
    assert_string_equal(pick("b.unique_id", NULL), "b.unique_id");
}

static void test_methods(void **state)
{
    (void)state;
    assert_string_equal(pick("path:models/marts", NULL), "b c b.unique_id");
    assert_string_equal(pick("path:./models/marts/sub/", NULL), "c");
    assert_string_equal(pick("path:models/staging/a.sql", NULL), "a");
    assert_string_equal(pick("path:models/staging/a", NULL), "a");
    assert_string_equal(pick("path:staging", NULL), "a"); /* relative to the model path */
    assert_string_equal(pick("path:models/mar", NULL),
                        "ERR: --select 'path:models/mar' matches no table, model or test");
    assert_string_equal(pick("tag:x", NULL), "a");
    assert_string_equal(pick("tag:y+", NULL), "c");
    assert_string_equal(pick("+tag:y", NULL), "orders order_items a b c b.unique_id");
    assert_string_equal(pick("source:raw.orders", NULL), "orders");
    assert_string_equal(pick("source:raw", NULL), "orders order_items");
    assert_string_equal(pick("source:other.items+", NULL), "order_items b c b.unique_id");
    assert_string_equal(pick("source:raw.*", NULL), "orders order_items");
    assert_string_equal(pick("resource_type:model", NULL), "a b c b.unique_id");
    assert_string_equal(pick("resource_type:source", NULL), "orders order_items");
    assert_string_equal(pick("resource_type:test", NULL), "b.unique_id");
    assert_string_equal(pick("config.materialized:table", NULL), "b b.unique_id");
    assert_string_equal(pick("config.materialized:incremental+", NULL), "c");
    assert_string_equal(pick("+config.materialized:view", NULL), "orders a");
}

/* dbt's comma: the intersection of its parts, each with its own graph operators; a test is
 * in a part with its model. */
static void test_intersection(void **state)
{
    (void)state;
    assert_string_equal(pick("+c,path:marts", NULL), "b c b.unique_id");
    assert_string_equal(pick("+c,resource_type:source", NULL), "orders order_items");
    assert_string_equal(pick("b+,config.materialized:incremental", NULL), "c");
    assert_string_equal(pick("tag:x,resource_type:model", NULL), "a");
    /* b's tests without b: they run against what ClickHouse holds. */
    assert_string_equal(pick("b,resource_type:test", NULL), "b.unique_id");
    /* Union of intersections. */
    assert_string_equal(pick("tag:x,path:staging c", NULL), "a c");
    /* Intersections exclude too: everything but the marts tables. */
    assert_string_equal(pick(NULL, "path:marts,config.materialized:table"),
                        "orders order_items a c");
    assert_string_equal(pick("a,c", NULL),
                        "ERR: --select 'a,c' matches no table, model or test (its parts have none "
                        "in common)");
    assert_string_equal(pick("a,nope", NULL),
                        "ERR: --select 'a,nope': 'nope' matches no table, model or test");
    assert_string_equal(pick("a,", NULL), "ERR: selector '': names nothing");
    assert_string_equal(pick(NULL, "a,nope"), "orders order_items a b c b.unique_id");
}

static void test_exclude(void **state)
{
    (void)state;
    assert_string_equal(pick(NULL, "c"), "orders order_items a b b.unique_id");
    assert_string_equal(pick(NULL, "b+"), "orders order_items a");
    assert_string_equal(pick("+c", "source:raw"), "a b c b.unique_id");
    assert_string_equal(pick(NULL, "b.unique_id"), "orders order_items a b c");
    assert_string_equal(pick(NULL, "nothing_at_all"), "orders order_items a b c b.unique_id");
}

static void test_errors(void **state)
{
    (void)state;
    assert_string_equal(pick("nope", NULL), "ERR: --select 'nope' matches no table, model or test");
    assert_string_equal(pick("color:red", NULL),
                        "ERR: selector 'color:red': unknown method 'color:' (name, path:, tag:, "
                        "source:, resource_type:, config.materialized: are supported)");
    assert_string_equal(pick("resource_type:seed", NULL),
                        "ERR: selector 'resource_type:seed': resource_type is model, test or "
                        "source (a loaded table)");
    assert_string_equal(pick("+", NULL), "ERR: selector '+': names nothing");
    assert_string_equal(pick("tag:", NULL), "ERR: selector 'tag:': empty value");
}

static void test_split(void **state)
{
    (void)state;
    size_t n;
    char **v = select_split("  a,+b  c+\tpath:x ", &n);
    assert_int_equal(n, 3);
    assert_string_equal(v[0], "a,+b");
    assert_string_equal(v[1], "c+");
    assert_string_equal(v[2], "path:x");
    assert_null(v[3]);
    select_split_free(v);
    v = select_split("", &n);
    assert_int_equal(n, 0);
    select_split_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_everything_by_default),
        cmocka_unit_test(test_names_and_graph_operators),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_intersection),
        cmocka_unit_test(test_exclude),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
