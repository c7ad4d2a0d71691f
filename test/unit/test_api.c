/* test_api.c — the API's pure helpers: the constant-time bearer check, the JSON depth scan
 * that runs before jansson, and trigger bodies parsed strictly against a config (unknown
 * tables, models, selector methods and keys, wrong types, duplicates, trailing data). */
#include "api.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static void test_token(void **state)
{
    (void)state;
    assert_true(api_token_ok("Bearer s3cret", "s3cret"));
    assert_true(api_token_ok("bearer s3cret", "s3cret"));
    assert_false(api_token_ok("Bearer s3cre", "s3cret"));
    assert_false(api_token_ok("Bearer s3cretx", "s3cret"));
    assert_false(api_token_ok("Bearer ", "s3cret"));
    assert_false(api_token_ok("Basic s3cret", "s3cret"));
    assert_false(api_token_ok(NULL, "s3cret"));
}

static void test_depth(void **state)
{
    (void)state;
    assert_int_equal(api_json_depth("{}", 2, 16), 1);
    assert_int_equal(api_json_depth("{\"a\": [[1]]}", 12, 16), 3);
    assert_int_equal(api_json_depth("{\"a\": \"[[[[\"}", 13, 16), 1);
    assert_int_equal(api_json_depth("{\"a\": \"\\\"[[\"}", 13, 16), 1);
}

static bool known_model(const void *ud, const char *name)
{
    (void)ud;
    return !strcmp(name, "fact_sales");
}

static void test_parse_trigger(void **state)
{
    (void)state;
    config_t cfg;
    char err[512];
    static const char yaml[] = "source: {database: d, user: u}\n"
                               "warehouse: {url: 'http://127.0.0.1:8123'}\n"
                               "tables: [orders, {name: customers, target: clients}]\n";
    assert_true(config_load_string(&cfg, "t.yaml", yaml, sizeof yaml - 1, err, sizeof err));
    const char *good = "{\"tables\": [\"orders\", \"clients\"], \"models\": [\"fact_sales\"], "
                       "\"select\": [\"+fact_sales\", \"tag:daily,config.materialized:table\"], "
                       "\"exclude\": [\"orders,resource_type:source\"], \"full_refresh\": true, "
                       "\"vars\": {\"k\": 1}}";
    json_t *r = api_parse_trigger(good, strlen(good), &cfg, known_model, NULL, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(json_array_size(json_object_get(r, "tables")), 2);
    assert_int_equal(json_array_size(json_object_get(r, "select")), 3);
    assert_int_equal(json_array_size(json_object_get(r, "exclude")), 1);
    assert_true(json_is_true(json_object_get(r, "full_refresh")));
    json_decref(r);
    r = api_parse_trigger("  ", 2, &cfg, known_model, NULL, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(json_object_size(r), 0);
    json_decref(r);
    static const char *const bad[] = {
        "{\"tables\": [\"nope\"]}",
        "{\"models\": [\"x'; DROP\"]}",
        "{\"select\": [\"evil:x\"]}",
        "{\"select\": [\"tag:daily,evil:x\"]}",
        "{\"select\": [\"orders,nope\"]}",
        "{\"exclude\": [\"orders,x';DROP\"]}",
        "{\"select\": [\"orders,\"]}",
        "{\"tables\": \"orders\"}",
        "{\"full_refresh\": 1}",
        "{\"vars\": []}",
        "{\"other\": 1}",
        "[1]",
        "{\"a\": 1, \"a\": 2}",
        "{\"tables\": [",
        "{\"tables\": []} trailing",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        assert_null(
            api_parse_trigger(bad[i], strlen(bad[i]), &cfg, known_model, NULL, err, sizeof err));
        assert_true(err[0] != '\0');
    }
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_parse_trigger),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
