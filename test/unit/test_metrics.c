/* test_metrics.c — the metrics registry's text exposition: exact output for every kind,
 * escaping, stable ordering, refused registrations, collectors, and promtool's verdict. */
#include "metrics.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static char *render(metrics_registry_t *reg)
{
    char *out = NULL;
    size_t len = 0;
    assert_true(metrics_render(reg, &out, &len));
    assert_non_null(out);
    assert_int_equal(len, strlen(out));
    return out;
}

static void expect_double(double v, const char *want)
{
    char buf[40];
    size_t n = metrics_format_double(buf, sizeof buf, v);
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
}

static void test_format_double(void **state)
{
    (void)state;
    expect_double(0, "0");
    expect_double(-0.0, "0");
    expect_double(1, "1");
    expect_double(-1, "-1");
    expect_double(42, "42");
    expect_double(1e6, "1000000");
    expect_double(123456789012.0, "123456789012");
    expect_double(9007199254740993.0, "9007199254740992");
    expect_double(0.005, "0.005");
    expect_double(0.1, "0.1");
    expect_double(2.5, "2.5");
    expect_double(-3.25, "-3.25");
    expect_double(1.0 / 3.0, "0.3333333333333333");
    expect_double(1e-7, "1e-07");
    expect_double(1.5e300, "1.5e+300");
    expect_double(INFINITY, "+Inf");
    expect_double(-INFINITY, "-Inf");
    expect_double(NAN, "NaN");
}

static void test_render_every_kind(void **state)
{
    (void)state;
    metrics_registry_t *reg = metrics_registry_new();
    assert_non_null(reg);
    const char *run_labels[] = {"trigger", "state"};
    metrics_family_t *runs =
        metrics_counter(reg, "eltd_runs_total", "Runs finished.", run_labels, 2);
    metrics_family_t *rows =
        metrics_counter(reg, "eltd_rows_loaded_total", "Rows loaded into ClickHouse.", NULL, 0);
    metrics_family_t *active = metrics_gauge(reg, "eltd_runs_active", "Runs in progress.", NULL, 0);
    const char *table_label[] = {"table"};
    const double bounds[] = {0.5, 1, 10};
    metrics_family_t *dur = metrics_histogram(reg, "eltd_load_duration_seconds", "Load duration.",
                                              table_label, 1, bounds, 3);
    metrics_family_t *lat = metrics_histogram(reg, "eltd_http_request_duration_seconds",
                                              "HTTP latency.", NULL, 0, NULL, 0);
    assert_non_null(runs);
    assert_non_null(rows);
    assert_non_null(active);
    assert_non_null(dur);
    assert_non_null(lat);

    metrics_counter_add(runs, 1, METRICS_LABELS("schedule", "success"));
    metrics_counter_add(runs, 2, METRICS_LABELS("schedule", "success"));
    metrics_counter_add(runs, 1, METRICS_LABELS("manual", "failed"));
    metrics_counter_add(rows, 1500000, METRICS_NO_LABELS);
    metrics_gauge_set(active, 3, METRICS_NO_LABELS);
    metrics_gauge_add(active, -2, METRICS_NO_LABELS);
    metrics_histogram_observe(dur, 0.25, METRICS_LABELS("orders"));
    metrics_histogram_observe(dur, 0.5, METRICS_LABELS("orders")); /* le is inclusive */
    metrics_histogram_observe(dur, 7, METRICS_LABELS("orders"));
    metrics_histogram_observe(dur, 99.5, METRICS_LABELS("orders"));
    metrics_histogram_observe(lat, 0.003, METRICS_NO_LABELS);

    char *out = render(reg);
    const char *want = "# HELP eltd_http_request_duration_seconds HTTP latency.\n"
                       "# TYPE eltd_http_request_duration_seconds histogram\n"
                       "eltd_http_request_duration_seconds_bucket{le=\"0.005\"} 1\n"
                       "eltd_http_request_duration_seconds_bucket{le=\"0.01\"} 1\n"
                       "eltd_http_request_duration_seconds_bucket{le=\"0.025\"} 1\n"
                       "eltd_http_request_duration_seconds_bucket{le=\"0.05\"} 1\n"
                       "eltd_http_request_duration_seconds_bucket{le=\"0.1\"} 1\n"
                       "eltd_http_request_duration_seconds_bucket{le=\"0.25\"} 1\n"
                       "eltd_http_request_duration_seconds_bucket{le=\"0.5\"} 1\n"
                       "eltd_http_request_duration_seconds_bucket{le=\"1\"} 1\n"
                       "eltd_http_request_duration_seconds_bucket{le=\"2.5\"} 1\n"
                       "eltd_http_request_duration_seconds_bucket{le=\"5\"} 1\n"
                       "eltd_http_request_duration_seconds_bucket{le=\"10\"} 1\n"
                       "eltd_http_request_duration_seconds_bucket{le=\"30\"} 1\n"
                       "eltd_http_request_duration_seconds_bucket{le=\"60\"} 1\n"
                       "eltd_http_request_duration_seconds_bucket{le=\"120\"} 1\n"
                       "eltd_http_request_duration_seconds_bucket{le=\"300\"} 1\n"
                       "eltd_http_request_duration_seconds_bucket{le=\"600\"} 1\n"
                       "eltd_http_request_duration_seconds_bucket{le=\"1800\"} 1\n"
                       "eltd_http_request_duration_seconds_bucket{le=\"3600\"} 1\n"
                       "eltd_http_request_duration_seconds_bucket{le=\"+Inf\"} 1\n"
                       "eltd_http_request_duration_seconds_sum 0.003\n"
                       "eltd_http_request_duration_seconds_count 1\n"
                       "# HELP eltd_load_duration_seconds Load duration.\n"
                       "# TYPE eltd_load_duration_seconds histogram\n"
                       "eltd_load_duration_seconds_bucket{table=\"orders\",le=\"0.5\"} 2\n"
                       "eltd_load_duration_seconds_bucket{table=\"orders\",le=\"1\"} 2\n"
                       "eltd_load_duration_seconds_bucket{table=\"orders\",le=\"10\"} 3\n"
                       "eltd_load_duration_seconds_bucket{table=\"orders\",le=\"+Inf\"} 4\n"
                       "eltd_load_duration_seconds_sum{table=\"orders\"} 107.25\n"
                       "eltd_load_duration_seconds_count{table=\"orders\"} 4\n"
                       "# HELP eltd_rows_loaded_total Rows loaded into ClickHouse.\n"
                       "# TYPE eltd_rows_loaded_total counter\n"
                       "eltd_rows_loaded_total 1500000\n"
                       "# HELP eltd_runs_active Runs in progress.\n"
                       "# TYPE eltd_runs_active gauge\n"
                       "eltd_runs_active 1\n"
                       "# HELP eltd_runs_total Runs finished.\n"
                       "# TYPE eltd_runs_total counter\n"
                       "eltd_runs_total{trigger=\"manual\",state=\"failed\"} 1\n"
                       "eltd_runs_total{trigger=\"schedule\",state=\"success\"} 3\n";
    assert_string_equal(out, want);
    free(out);
    metrics_registry_free(reg);
}

static void test_unlabelled_start_at_zero_labelled_hidden(void **state)
{
    (void)state;
    metrics_registry_t *reg = metrics_registry_new();
    const char *lbl[] = {"table"};
    assert_non_null(metrics_counter(reg, "a_total", "A.", NULL, 0));
    assert_non_null(metrics_counter(reg, "b_total", "B.", lbl, 1));
    char *out = render(reg);
    assert_string_equal(out, "# HELP a_total A.\n# TYPE a_total counter\na_total 0\n");
    free(out);
    metrics_registry_free(reg);

    /* An empty registry renders as an empty string. */
    reg = metrics_registry_new();
    out = render(reg);
    assert_string_equal(out, "");
    free(out);
    metrics_registry_free(reg);
}

static void test_escaping(void **state)
{
    (void)state;
    metrics_registry_t *reg = metrics_registry_new();
    const char *lbl[] = {"path", "reason"};
    metrics_family_t *f =
        metrics_gauge(reg, "eltd_odd", "Help with \\ backslash\nand \"quotes\".", lbl, 2);
    assert_non_null(f);
    metrics_gauge_set(f, 0.5, METRICS_LABELS("C:\\dir", "said \"no\"\nthen left"));
    char *out = render(reg);
    assert_string_equal(
        out, "# HELP eltd_odd Help with \\\\ backslash\\nand \"quotes\".\n"
             "# TYPE eltd_odd gauge\n"
             "eltd_odd{path=\"C:\\\\dir\",reason=\"said \\\"no\\\"\\nthen left\"} 0.5\n");
    free(out);
    metrics_registry_free(reg);
}

static void test_ordering(void **state)
{
    (void)state;
    metrics_registry_t *reg = metrics_registry_new();
    const char *lbl[] = {"a", "b"};
    metrics_family_t *z = metrics_gauge(reg, "zz", "Z.", NULL, 0);
    metrics_family_t *m = metrics_gauge(reg, "mm", "M.", lbl, 2);
    metrics_family_t *a = metrics_gauge(reg, "aa", "A.", NULL, 0);
    assert_non_null(z);
    assert_non_null(m);
    assert_non_null(a);
    metrics_gauge_set(m, 1, METRICS_LABELS("y", "2"));
    metrics_gauge_set(m, 2, METRICS_LABELS("x", "9"));
    metrics_gauge_set(m, 3, METRICS_LABELS("y", "1"));
    metrics_gauge_set(m, 4, METRICS_LABELS("", "z"));
    metrics_gauge_set(m, 5, METRICS_LABELS("x", "10"));
    char *first = render(reg);
    assert_string_equal(first, "# HELP aa A.\n# TYPE aa gauge\naa 0\n"
                               "# HELP mm M.\n# TYPE mm gauge\n"
                               "mm{a=\"\",b=\"z\"} 4\n"
                               "mm{a=\"x\",b=\"10\"} 5\n"
                               "mm{a=\"x\",b=\"9\"} 2\n"
                               "mm{a=\"y\",b=\"1\"} 3\n"
                               "mm{a=\"y\",b=\"2\"} 1\n"
                               "# HELP zz Z.\n# TYPE zz gauge\nzz 0\n");
    /* Rendering twice gives the same bytes. */
    char *second = render(reg);
    assert_string_equal(first, second);
    free(first);
    free(second);
    metrics_registry_free(reg);
}

static void test_refused_registrations(void **state)
{
    (void)state;
    metrics_registry_t *reg = metrics_registry_new();
    const char *le[] = {"le"};
    const char *dup[] = {"x", "x"};
    const char *bad[] = {"bad-name"};
    const char *reserved[] = {"__name"};
    const char *five[] = {"a", "b", "c", "d", "e"};
    const double unordered[] = {1, 0.5};
    const double with_inf[] = {1, INFINITY};
    assert_non_null(metrics_counter(reg, "ok_total", "Ok.", NULL, 0));
    assert_null(metrics_counter(reg, "ok_total", "Again.", NULL, 0));
    assert_null(metrics_gauge(reg, "ok_total", "As a gauge.", NULL, 0));
    assert_null(metrics_counter(reg, "no_suffix", "Counter.", NULL, 0));
    assert_null(metrics_gauge(reg, "gauge_total", "Gauge.", NULL, 0));
    assert_null(metrics_gauge(reg, "gauge_count", "Gauge.", NULL, 0));
    assert_null(metrics_gauge(reg, "9lives", "Gauge.", NULL, 0));
    assert_null(metrics_gauge(reg, "has space", "Gauge.", NULL, 0));
    assert_null(metrics_gauge(reg, "nohelp", NULL, NULL, 0));
    assert_null(metrics_gauge(reg, "g1", "G.", dup, 2));
    assert_null(metrics_gauge(reg, "g2", "G.", bad, 1));
    assert_null(metrics_gauge(reg, "g3", "G.", reserved, 1));
    assert_null(metrics_gauge(reg, "g4", "G.", five, 5));
    assert_null(metrics_histogram(reg, "h1", "H.", le, 1, NULL, 0));
    assert_null(metrics_histogram(reg, "h2", "H.", NULL, 0, unordered, 2));
    assert_null(metrics_histogram(reg, "h3", "H.", NULL, 0, with_inf, 2));
    /* NULL bounds mean the defaults, but an empty list is refused. */
    assert_null(metrics_histogram(reg, "h4", "H.", NULL, 0, unordered, 0));
    assert_non_null(metrics_gauge(reg, "ns:g_ok", "Colons are allowed in names.", NULL, 0));
    char *out = render(reg);
    assert_string_equal(out, "# HELP ns:g_ok Colons are allowed in names.\n"
                             "# TYPE ns:g_ok gauge\nns:g_ok 0\n"
                             "# HELP ok_total Ok.\n# TYPE ok_total counter\nok_total 0\n");
    free(out);
    metrics_registry_free(reg);
}

static void test_misuse_is_ignored(void **state)
{
    (void)state;
    metrics_registry_t *reg = metrics_registry_new();
    const char *lbl[] = {"table"};
    metrics_family_t *c = metrics_counter(reg, "c_total", "C.", lbl, 1);
    metrics_family_t *g = metrics_gauge(reg, "g", "G.", NULL, 0);
    metrics_family_t *h = metrics_histogram(reg, "h_seconds", "H.", NULL, 0, NULL, 0);
    assert_non_null(c);
    assert_non_null(g);
    assert_non_null(h);
    metrics_counter_add(c, 1, METRICS_NO_LABELS);          /* too few labels */
    metrics_counter_add(c, 1, METRICS_LABELS("a", "b"));   /* too many */
    metrics_counter_add(c, -1, METRICS_LABELS("orders"));  /* counters only go up */
    metrics_counter_add(c, NAN, METRICS_LABELS("orders")); /* nor sideways */
    metrics_gauge_set(c, 5, METRICS_LABELS("orders"));     /* wrong kind */
    metrics_counter_add(g, 5, METRICS_NO_LABELS);          /* wrong kind */
    metrics_histogram_observe(h, NAN, METRICS_NO_LABELS);  /* would poison _sum */
    metrics_collected_set(g, 7, METRICS_NO_LABELS);        /* not a collector */
    metrics_counter_add(NULL, 1, METRICS_NO_LABELS);       /* no family: no crash */
    char *out = render(reg);
    assert_null(strstr(out, "c_total{"));
    assert_non_null(strstr(out, "\ng 0\n"));
    assert_non_null(strstr(out, "\nh_seconds_count 0\n"));
    assert_non_null(strstr(out, "\nh_seconds_sum 0\n"));
    free(out);
    metrics_registry_free(reg);
}

typedef struct {
    int calls;
    bool fail;
} collect_state_t;

static bool collect_states(metrics_family_t *fam, void *ud)
{
    collect_state_t *st = ud;
    st->calls++;
    if (st->fail)
        return false;
    metrics_collected_set(fam, st->calls, METRICS_LABELS("queued"));
    metrics_collected_set(fam, 1, METRICS_LABELS("active"));
    return true;
}

static void test_collector(void **state)
{
    (void)state;
    metrics_registry_t *reg = metrics_registry_new();
    const char *lbl[] = {"state"};
    collect_state_t st = {0};
    metrics_family_t *f = metrics_collector(reg, METRICS_GAUGE, "eltd_runs", "Runs by state.", lbl,
                                            1, collect_states, &st);
    assert_non_null(f);
    assert_null(
        metrics_collector(reg, METRICS_HISTOGRAM, "eltd_h", "H.", NULL, 0, collect_states, &st));
    assert_null(metrics_collector(reg, METRICS_GAUGE, "eltd_nocb", "G.", NULL, 0, NULL, NULL));
    metrics_gauge_set(f, 9, METRICS_LABELS("x")); /* collectors are set only by their cb */

    char *out = render(reg);
    assert_string_equal(out, "# HELP eltd_runs Runs by state.\n# TYPE eltd_runs gauge\n"
                             "eltd_runs{state=\"active\"} 1\n"
                             "eltd_runs{state=\"queued\"} 1\n");
    free(out);
    out = render(reg);
    assert_non_null(strstr(out, "eltd_runs{state=\"queued\"} 2\n"));
    free(out);
    st.fail = true;
    out = render(reg);
    assert_string_equal(out, "");
    free(out);
    assert_int_equal(st.calls, 3);
    metrics_registry_free(reg);
}

static void test_parse_proc_stat(void **state)
{
    (void)state;
    metrics_proc_stat_t st;
    const char *text = "4242 (we ird) (name)) S 1 4242 4242 0 -1 4194560 300 0 0 0 "
                       "17 5 0 0 20 0 1 0 123456 10000000 500 18446744073709551615\n";
    assert_true(metrics_parse_proc_stat(text, &st));
    assert_int_equal(st.utime_ticks, 17);
    assert_int_equal(st.stime_ticks, 5);
    assert_int_equal(st.starttime_ticks, 123456);
    assert_false(metrics_parse_proc_stat("4242 (short) S 1 2 3\n", &st));
    assert_false(metrics_parse_proc_stat("no parenthesis at all", &st));
}

static double sample_value(const char *text, const char *name)
{
    char needle[128];
    snprintf(needle, sizeof needle, "\n%s ", name);
    const char *p = strstr(text, needle);
    assert_non_null(p);
    return strtod(p + strlen(needle), NULL);
}

static void test_process_collectors(void **state)
{
    (void)state;
    metrics_registry_t *reg = metrics_registry_new();
    assert_true(metrics_register_process_collectors(reg));
    /* Rendered into this function's own local rather than through render(): once render()
     * is inlined, gcc 12 -O3 takes the text for a pointer to render()'s dead local (its
     * address went to metrics_render) and warns -Wdangling-pointer at each strstr below. */
    char *out = NULL;
    size_t len = 0;
    assert_true(metrics_render(reg, &out, &len));
    assert_non_null(out);
    assert_int_equal(len, strlen(out));
    assert_true(sample_value(out, "process_resident_memory_bytes") > 0);
    assert_true(sample_value(out, "process_virtual_memory_bytes") >=
                sample_value(out, "process_resident_memory_bytes"));
    /* stdin, stdout and stderr at least. */
    assert_true(sample_value(out, "process_open_fds") >= 3);
    assert_true(sample_value(out, "process_max_fds") >= 3);
    assert_true(sample_value(out, "process_cpu_seconds_total") >= 0);
    double start = sample_value(out, "process_start_time_seconds");
    double now = (double)time(NULL);
    assert_true(start > now - 3600 && start <= now + 1);
    free(out);
    metrics_registry_free(reg);
}

static void test_promtool_accepts(void **state)
{
    (void)state;
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        print_message("promtool not installed; skipping the promtool check\n");
        skip();
    }
    metrics_registry_t *reg = metrics_registry_new();
    assert_true(metrics_register_process_collectors(reg));
    const char *lbl[] = {"table", "error"};
    metrics_family_t *c = metrics_counter(reg, "eltd_load_failures_total", "Failed loads.", lbl, 2);
    metrics_family_t *g = metrics_gauge(reg, "eltd_last_success_timestamp_seconds",
                                        "Unix time of the last successful run.", NULL, 0);
    metrics_family_t *h = metrics_histogram(reg, "eltd_run_duration_seconds",
                                            "Run duration, end to end.", lbl, 2, NULL, 0);
    assert_non_null(c);
    assert_non_null(g);
    assert_non_null(h);
    metrics_counter_add(c, 1, METRICS_LABELS("orders", "quote \" back\\slash\nnewline"));
    metrics_gauge_set(g, 1700000000.5, METRICS_NO_LABELS);
    metrics_histogram_observe(h, 12.75, METRICS_LABELS("orders", "none"));
    metrics_histogram_observe(h, 7200, METRICS_LABELS("orders", "none"));
    char *out = render(reg);

    char path[] = "/tmp/eltd-test-metrics-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(out);
    assert_int_equal(write(fd, out, len), (ssize_t)len);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char said[4096];
    size_t n = fread(said, 1, sizeof said - 1, p);
    said[n] = '\0';
    int status = pclose(p);
    if (status != 0 || n != 0)
        print_message("promtool said (status %d):\n%s\non:\n%s", status, said, out);
    assert_int_equal(status, 0);
    /* Lint findings are printed even when the exit status is 0: there must be none. */
    assert_int_equal(n, 0);
    unlink(path);
    free(out);
    metrics_registry_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_double),
        cmocka_unit_test(test_render_every_kind),
        cmocka_unit_test(test_unlabelled_start_at_zero_labelled_hidden),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_ordering),
        cmocka_unit_test(test_refused_registrations),
        cmocka_unit_test(test_misuse_is_ignored),
        cmocka_unit_test(test_collector),
        cmocka_unit_test(test_parse_proc_stat),
        cmocka_unit_test(test_process_collectors),
        cmocka_unit_test(test_promtool_accepts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
