/* test_typemap.c — typemap.c: the ClickHouse type and the COPY select expression of every
 * mapped PostgreSQL type for an 18.16 and a current server, refusals, casts, quoting; and,
 * when a PostgreSQL is reachable through PG* variables, the expressions run for real in a
 * COPY ... TO STDOUT through psql to check the exact text ClickHouse will parse. */
#include "typemap.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static typemap_caps_t old_caps, new_caps;

static int setup_caps(void **state)
{
    (void)state;
    typemap_caps_for_version(&old_caps, "18.16.1");
    typemap_caps_for_version(&new_caps, "24.8.1.1");
    return 0;
}

static typemap_column_t column(const char *name, const char *typname, bool notnull)
{
    typemap_column_t c = {.name = name,
                          .typname = typname,
                          .typtype = 'b',
                          .precision = -1,
                          .scale = -1,
                          .notnull = notnull,
                          .cast = NULL};
    return c;
}

/* Maps col and checks both outputs exactly (want_expr NULL: not checked). */
static void expect_map(const typemap_column_t *col, const typemap_caps_t *caps,
                       const char *want_type, const char *want_expr)
{
    typemap_out_t out;
    char err[512] = "";
    bool ok = typemap_column(col, "orders", caps, &out, err, sizeof err);
    if (!ok)
        print_error("%s: %s\n", col->typname, err);
    assert_true(ok);
    assert_string_equal(out.ch_type, want_type);
    if (want_expr)
        assert_string_equal(out.select_expr, want_expr);
    typemap_out_free(&out);
    assert_null(out.ch_type);
    assert_null(out.select_expr);
}

/* Maps col and returns the select expression (caller frees). */
static char *expr_of(const typemap_column_t *col, const char *table, const typemap_caps_t *caps,
                     const char *want_type)
{
    typemap_out_t out;
    char err[512] = "";
    bool ok = typemap_column(col, table, caps, &out, err, sizeof err);
    if (!ok)
        print_error("%s: %s\n", col->typname, err);
    assert_true(ok);
    if (want_type)
        assert_string_equal(out.ch_type, want_type);
    free(out.ch_type);
    return out.select_expr;
}

static void expect_refused(const typemap_column_t *col, const char *table, const char **wants)
{
    typemap_out_t out = {(char *)"x", (char *)"y"};
    char err[512] = "";
    assert_false(typemap_column(col, table, &new_caps, &out, err, sizeof err));
    assert_null(out.ch_type);
    assert_null(out.select_expr);
    for (; *wants; wants++) {
        if (!strstr(err, *wants))
            print_error("error '%s' lacks '%s'\n", err, *wants);
        assert_non_null(strstr(err, *wants));
    }
}

static void test_caps(void **state)
{
    (void)state;
    assert_int_equal(old_caps.major, 18);
    assert_int_equal(old_caps.minor, 16);
    assert_false(old_caps.datetime64);
    assert_false(old_caps.date32);
    assert_int_equal(new_caps.major, 24);
    assert_int_equal(new_caps.minor, 8);
    assert_true(new_caps.datetime64);
    assert_true(new_caps.date32);

    typemap_caps_t c;
    typemap_caps_for_version(&c, "19.17.9.60");
    assert_false(c.datetime64);
    typemap_caps_for_version(&c, "20.1.2.4");
    assert_true(c.datetime64);
    assert_false(c.date32);
    typemap_caps_for_version(&c, "21.8.15.7");
    assert_false(c.date32);
    typemap_caps_for_version(&c, "21.9.1");
    assert_true(c.date32);
    typemap_caps_for_version(&c, "26.1");
    assert_true(c.datetime64 && c.date32);
    typemap_caps_for_version(&c, "garbage");
    assert_int_equal(c.major, 0);
    assert_false(c.datetime64);
    typemap_caps_for_version(&c, NULL);
    assert_int_equal(c.major, 0);
    assert_int_equal(c.minor, 0);
    assert_false(c.date32);
}

static void test_plain_types(void **state)
{
    (void)state;
    static const struct {
        const char *pg, *ch;
    } plain[] = {
        {"int2", "Int16"},  {"int4", "Int32"},     {"int8", "Int64"},    {"oid", "UInt32"},
        {"text", "String"}, {"varchar", "String"}, {"bpchar", "String"}, {"name", "String"},
        {"json", "String"}, {"jsonb", "String"},   {"inet", "String"},   {"time", "String"},
        {"uuid", "UUID"},
    };
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++) {
        for (int caps = 0; caps < 2; caps++) {
            const typemap_caps_t *cp = caps ? &new_caps : &old_caps;
            typemap_column_t col = column("c", plain[i].pg, true);
            expect_map(&col, cp, plain[i].ch, "\"c\"");
            col.notnull = false;
            char want[64];
            snprintf(want, sizeof want, "Nullable(%s)", plain[i].ch);
            expect_map(&col, cp, want, "\"c\"");
        }
    }
}

static void test_float(void **state)
{
    (void)state;
    const char *want = "CASE WHEN \"x\" = 'Infinity' THEN 'inf' WHEN \"x\" = '-Infinity' THEN "
                       "'-inf' WHEN \"x\" = 'NaN' THEN 'nan' ELSE \"x\"::text END";
    typemap_column_t col = column("x", "float8", true);
    expect_map(&col, &old_caps, "Float64", want);
    expect_map(&col, &new_caps, "Float64", want);
    col.typname = "float4";
    expect_map(&col, &old_caps, "Float32", want);
    col.notnull = false;
    expect_map(&col, &new_caps, "Nullable(Float32)", want);
}

static void test_numeric(void **state)
{
    (void)state;
    typemap_column_t col = column("price", "numeric", true);
    col.precision = 10;
    col.scale = 2;
    expect_map(&col, &old_caps, "Decimal(10, 2)", "\"price\"");
    expect_map(&col, &new_caps, "Decimal(10, 2)", "\"price\"");
    col.notnull = false;
    expect_map(&col, &old_caps, "Nullable(Decimal(10, 2))", "\"price\"");
    col.precision = 38;
    col.scale = 0;
    expect_map(&col, &new_caps, "Nullable(Decimal(38, 0))", "\"price\"");
    col.precision = 1;
    col.scale = 1;
    expect_map(&col, &new_caps, "Nullable(Decimal(1, 1))", "\"price\"");

    const char *wants[] = {"orders", "price", "numeric", "cast", "Decimal(38, 10)", NULL};
    col.precision = col.scale = -1;
    expect_refused(&col, "orders", wants);
    col.precision = 39;
    col.scale = 2;
    expect_refused(&col, "orders", wants);
    col.precision = 5;
    col.scale = 6;
    expect_refused(&col, "orders", wants);
    col.precision = 5;
    col.scale = -2;
    expect_refused(&col, "orders", wants);
    const char *named[] = {"table orders, column price:", NULL};
    expect_refused(&col, "orders", named);
}

static void test_bool(void **state)
{
    (void)state;
    typemap_column_t col = column("active", "bool", true);
    expect_map(&col, &old_caps, "UInt8", "\"active\"::int");
    expect_map(&col, &new_caps, "UInt8", "\"active\"::int");
    col.notnull = false;
    expect_map(&col, &new_caps, "Nullable(UInt8)", "\"active\"::int");
}

static void test_date(void **state)
{
    (void)state;
    typemap_column_t col = column("d", "date", true);
    expect_map(&col, &old_caps, "Date",
               "CASE WHEN \"d\" < '1970-01-01' OR \"d\" > '2105-12-31' THEN ('eltd: ' || "
               "'orders' || '.' || 'd' || ' = ' || \"d\"::text || ' is outside ClickHouse Date "
               "range 1970-01-01..2105-12-31; configure a cast')::int::text ELSE to_char(\"d\", "
               "'YYYY-MM-DD') END");
    char *e = expr_of(&col, "orders", &new_caps, "Date");
    assert_non_null(strstr(e, "\"d\" < '1970-01-01' OR \"d\" > '2149-06-06'"));
    free(e);
    col.notnull = false;
    e = expr_of(&col, "orders", &new_caps, "Nullable(Date)");
    assert_non_null(strstr(e, "ELSE to_char(\"d\", 'YYYY-MM-DD') END"));
    free(e);
}

static void test_timestamp(void **state)
{
    (void)state;
    typemap_column_t col = column("ts", "timestamp", true);
    expect_map(&col, &old_caps, "DateTime('UTC')",
               "CASE WHEN \"ts\" < '1970-01-01 00:00:00' OR \"ts\" > '2105-12-31 23:59:59.999999' "
               "THEN ('eltd: ' || 'orders' || '.' || 'ts' || ' = ' || \"ts\"::text || ' is outside "
               "ClickHouse DateTime range 1970-01-01 00:00:00..2105-12-31 23:59:59.999999; "
               "configure a cast')::int::text ELSE to_char(\"ts\", 'YYYY-MM-DD HH24:MI:SS') END");
    expect_map(&col, &new_caps, "DateTime64(6, 'UTC')",
               "CASE WHEN \"ts\" < '1900-01-01 00:00:00' OR \"ts\" > '2299-12-31 23:59:59.999999' "
               "THEN ('eltd: ' || 'orders' || '.' || 'ts' || ' = ' || \"ts\"::text || ' is "
               "outside ClickHouse DateTime64 range 1900-01-01 00:00:00..2299-12-31 "
               "23:59:59.999999; configure a cast')::int::text ELSE to_char(\"ts\", 'YYYY-MM-DD "
               "HH24:MI:SS.US') END");
    col.notnull = false;
    char *e = expr_of(&col, "orders", &old_caps, "Nullable(DateTime('UTC'))");
    free(e);
    e = expr_of(&col, "orders", &new_caps, "Nullable(DateTime64(6, 'UTC'))");
    free(e);

    col = column("ts", "timestamptz", true);
    e = expr_of(&col, "orders", &old_caps, "DateTime('UTC')");
    assert_non_null(strstr(e, "CASE WHEN (\"ts\" AT TIME ZONE 'UTC') < '1970-01-01 00:00:00'"));
    assert_non_null(strstr(e, "ELSE to_char((\"ts\" AT TIME ZONE 'UTC'), 'YYYY-MM-DD "
                              "HH24:MI:SS') END"));
    free(e);
    e = expr_of(&col, "orders", &new_caps, "DateTime64(6, 'UTC')");
    assert_non_null(strstr(e, "ELSE to_char((\"ts\" AT TIME ZONE 'UTC'), 'YYYY-MM-DD "
                              "HH24:MI:SS.US') END"));
    free(e);
    col.notnull = false;
    e = expr_of(&col, "orders", &new_caps, "Nullable(DateTime64(6, 'UTC'))");
    free(e);
}

static void test_enum(void **state)
{
    (void)state;
    typemap_column_t col = column("status", "order_status", true);
    col.typtype = 'e';
    expect_map(&col, &old_caps, "String", "\"status\"");
    col.notnull = false;
    expect_map(&col, &new_caps, "Nullable(String)", "\"status\"");
    /* The same type name that is not an enum has no mapping. */
    col.typtype = 'b';
    const char *wants[] = {"order_status", "cast", NULL};
    expect_refused(&col, "orders", wants);
}

static void test_unknown_refused(void **state)
{
    (void)state;
    static const char *const types[] = {"interval", "_int4", "bytea", "money", "point", "tsvector"};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        typemap_column_t col = column("odd", types[i], false);
        const char *wants[] = {"table public_orders, column odd:", types[i],
                               "configure a cast (casts: {odd: String})", NULL};
        expect_refused(&col, "public_orders", wants);
    }
}

static void test_casts(void **state)
{
    (void)state;
    /* A cast overrides the mapping, and makes a refused type loadable. */
    typemap_column_t col = column("amount", "numeric", true);
    col.cast = "Decimal(38, 10)";
    expect_map(&col, &old_caps, "Decimal(38, 10)", "\"amount\"::text");
    col.notnull = false;
    expect_map(&col, &new_caps, "Nullable(Decimal(38, 10))", "\"amount\"::text");
    col.cast = "Nullable(Decimal(38, 10))"; /* already Nullable: not wrapped twice */
    expect_map(&col, &new_caps, "Nullable(Decimal(38, 10))", "\"amount\"::text");
    col.notnull = true;
    expect_map(&col, &new_caps, "Nullable(Decimal(38, 10))", "\"amount\"::text");

    col = column("span", "interval", true);
    col.cast = "String";
    expect_map(&col, &new_caps, "String", "\"span\"::text");
    col = column("id", "int4", false);
    col.cast = "Int64";
    expect_map(&col, &old_caps, "Nullable(Int64)", "\"id\"::text");
    col = column("ts", "timestamp", true);
    col.cast = "String";
    expect_map(&col, &old_caps, "String", "\"ts\"::text");
}

static void test_quoting(void **state)
{
    (void)state;
    char *s;
#define Q(fn, in, want)                                                                            \
    do {                                                                                           \
        s = fn(in);                                                                                \
        assert_non_null(s);                                                                        \
        assert_string_equal(s, want);                                                              \
        free(s);                                                                                   \
    } while (0)
    Q(typemap_pg_ident, "", "\"\"");
    Q(typemap_pg_ident, "plain", "\"plain\"");
    Q(typemap_pg_ident, "Mixed Case", "\"Mixed Case\"");
    Q(typemap_pg_ident, "a\"b", "\"a\"\"b\"");
    Q(typemap_pg_ident, "\"\"", "\"\"\"\"\"\"");
    Q(typemap_pg_ident, "it's", "\"it's\"");
    Q(typemap_pg_literal, "", "''");
    Q(typemap_pg_literal, "plain", "'plain'");
    Q(typemap_pg_literal, "it's", "'it''s'");
    Q(typemap_pg_literal, "''", "''''''");
    Q(typemap_pg_literal, "a\"b", "'a\"b'");
    Q(typemap_pg_literal, "back\\slash", "'back\\slash'");
#undef Q

    /* Column and table names are quoted wherever they appear in an expression. */
    typemap_column_t col = column("we\"ird", "int4", true);
    expect_map(&col, &new_caps, "Int32", "\"we\"\"ird\"");
    col.typname = "bool";
    expect_map(&col, &new_caps, "UInt8", "\"we\"\"ird\"::int");
    col = column("it's", "date", true);
    char *e = expr_of(&col, "o'brien", &old_caps, "Date");
    assert_non_null(strstr(e, "CASE WHEN \"it's\" < '1970-01-01'"));
    assert_non_null(strstr(e, "('eltd: ' || 'o''brien' || '.' || 'it''s' || ' = ' || "
                              "\"it's\"::text"));
    free(e);
}

/* ---- Real PostgreSQL, through psql ---- */

static bool pg_available(void)
{
    static int known = -1;
    if (known < 0) {
        known = 0;
        if (getenv("PGHOST") || getenv("PGPORT") || getenv("PGDATABASE") || getenv("PGSERVICE")) {
            int rc = system("psql -X -q -A -t -c 'SELECT 1' >/dev/null 2>&1");
            known = rc == 0;
            if (!known)
                print_message("PG* variables set but psql cannot connect: skipping\n");
        }
    }
    return known == 1;
}

/* Runs sql through psql; returns its exit status and its stdout+stderr in *out. */
static int run_psql(const char *sql, char **out)
{
    char path[] = "/tmp/eltd-test-typemap-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(sql);
    assert_int_equal(write(fd, sql, len), (ssize_t)len);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "psql -X -q -v ON_ERROR_STOP=1 -f %s 2>&1", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t k;
    while ((k = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += k;
        if (cap - n < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    buf[n] = '\0';
    int st = pclose(p);
    unlink(path);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* COPYs expr over the rows in values (column alias colname) and compares the text output;
 * the session runs in a zone far from UTC so that timestamptz conversion shows. */
static void copy_expect(const char *prelude, const char *expr, const char *values,
                        const char *colname, const char *want)
{
    char *ident = typemap_pg_ident(colname);
    size_t n = strlen(expr) + strlen(values) + strlen(prelude) + 512;
    char *sql = malloc(n);
    assert_non_null(sql);
    snprintf(sql, n,
             "SET TimeZone = 'Asia/Kolkata';\n%s\nCOPY (SELECT %s FROM (VALUES %s) v(%s)) TO "
             "STDOUT;\n",
             prelude, expr, values, ident);
    free(ident);
    char *out;
    int rc = run_psql(sql, &out);
    if (rc != 0 || strcmp(out, want))
        print_error("SQL:\n%s\nrc %d, output:\n%s\nwanted:\n%s\n", sql, rc, out, want);
    assert_int_equal(rc, 0);
    assert_string_equal(out, want);
    free(out);
    free(sql);
}

/* Like copy_expect but the COPY must fail with an error containing each of wants. */
static void copy_expect_error(const char *expr, const char *values, const char **wants)
{
    size_t n = strlen(expr) + strlen(values) + 256;
    char *sql = malloc(n);
    assert_non_null(sql);
    snprintf(sql, n, "COPY (SELECT %s FROM (VALUES %s) v(c)) TO STDOUT;\n", expr, values);
    char *out;
    int rc = run_psql(sql, &out);
    assert_int_not_equal(rc, 0);
    for (; *wants; wants++) {
        if (!strstr(out, *wants))
            print_error("SQL:\n%s\noutput:\n%s\nlacks '%s'\n", sql, out, *wants);
        assert_non_null(strstr(out, *wants));
    }
    free(out);
    free(sql);
}

static void live(const char *typname, bool notnull, const typemap_caps_t *caps, const char *values,
                 const char *want)
{
    typemap_column_t col = column("c", typname, notnull);
    char *e = expr_of(&col, "orders", caps, NULL);
    copy_expect("", e, values, "c", want);
    free(e);
}

static void live_error(const char *typname, const typemap_caps_t *caps, const char *values,
                       const char **wants)
{
    typemap_column_t col = column("c", typname, false);
    char *e = expr_of(&col, "orders", caps, NULL);
    copy_expect_error(e, values, wants);
    free(e);
}

static void test_pg_timestamps(void **state)
{
    (void)state;
    if (!pg_available())
        skip();
    /* 18.16 keeps whole seconds: truncated, never rounded up. */
    live("timestamp", false, &old_caps,
         "('2024-01-02 03:04:05.999999'::timestamp), ('1970-01-01 00:00:00'::timestamp), "
         "(NULL::timestamp), ('2105-12-31 23:59:59.999999'::timestamp)",
         "2024-01-02 03:04:05\n1970-01-01 00:00:00\n\\N\n2105-12-31 23:59:59\n");
    live("timestamp", false, &new_caps,
         "('2024-01-02 03:04:05.999999'::timestamp), ('2024-01-02 03:04:05'::timestamp), "
         "('1969-07-20 20:17:40.5'::timestamp), (NULL::timestamp)",
         "2024-01-02 03:04:05.999999\n2024-01-02 03:04:05.000000\n1969-07-20 20:17:40.500000\n"
         "\\N\n");
    /* timestamptz: the UTC wall clock whatever the session's zone (Asia/Kolkata here). */
    live("timestamptz", false, &old_caps,
         "('2024-01-02 03:04:05.75+00'::timestamptz), ('2024-06-30 23:30:00-02'::timestamptz), "
         "(NULL::timestamptz)",
         "2024-01-02 03:04:05\n2024-07-01 01:30:00\n\\N\n");
    live("timestamptz", true, &new_caps, "('2024-01-02 03:04:05.123456+05:30'::timestamptz)",
         "2024-01-01 21:34:05.123456\n");

    const char *w1[] = {"eltd:", "orders.c", "1969-12-31 23:59:59", "DateTime", "cast", NULL};
    live_error("timestamp", &old_caps, "('1969-12-31 23:59:59'::timestamp)", w1);
    const char *w2[] = {"eltd:", "2106-02-07 06:28:16", NULL};
    live_error("timestamp", &old_caps,
               "('2024-01-01'::timestamp), ('2106-02-07 06:28:16'::timestamp)", w2);
    const char *w3[] = {"eltd:", "1899-12-31 23:59:59", "DateTime64", NULL};
    live_error("timestamp", &new_caps, "('1899-12-31 23:59:59'::timestamp)", w3);
    const char *w4[] = {"eltd:", "infinity", NULL};
    live_error("timestamp", &new_caps, "('infinity'::timestamp)", w4);
    const char *w5[] = {"eltd:", "1969-12-31 23:00:00", NULL};
    live_error("timestamptz", &old_caps, "('1970-01-01 00:00:00+01'::timestamptz)", w5);
}

static void test_pg_dates(void **state)
{
    (void)state;
    if (!pg_available())
        skip();
    live("date", false, &old_caps,
         "('2024-02-29'::date), ('1970-01-01'::date), (NULL::date), ('2105-12-31'::date)",
         "2024-02-29\n1970-01-01\n\\N\n2105-12-31\n");
    live("date", true, &new_caps, "('2149-06-06'::date)", "2149-06-06\n");
    /* ClickHouse reads ISO dates only: the text must not follow the session's DateStyle. */
    typemap_column_t col = column("c", "date", false);
    char *e = expr_of(&col, "orders", &old_caps, "Nullable(Date)");
    copy_expect("SET DateStyle = 'German, DMY';", e, "('2024-02-29'::date)", "c", "2024-02-29\n");
    free(e);
    col = column("c", "timestamp", false);
    e = expr_of(&col, "orders", &new_caps, NULL);
    copy_expect("SET DateStyle = 'SQL, MDY';", e, "('2024-02-29 01:02:03'::timestamp)", "c",
                "2024-02-29 01:02:03.000000\n");
    free(e);
    const char *w1[] = {"eltd:", "orders.c = 1969-12-31", "Date range", NULL};
    live_error("date", &old_caps, "('2024-01-01'::date), ('1969-12-31'::date)", w1);
    const char *w2[] = {"eltd:", "2149-06-07", NULL};
    live_error("date", &new_caps, "('2149-06-07'::date)", w2);
    const char *w3[] = {"eltd:", "-infinity", NULL};
    live_error("date", &new_caps, "('-infinity'::date)", w3);
}

static void test_pg_other_types(void **state)
{
    (void)state;
    if (!pg_available())
        skip();
    live("float8", false, &old_caps,
         "('Infinity'::float8), ('-Infinity'::float8), ('NaN'::float8), (1.5::float8), "
         "(NULL::float8), (-0.1::float8)",
         "inf\n-inf\nnan\n1.5\n\\N\n-0.1\n");
    live("float4", true, &new_caps, "('Infinity'::float4), (0.25::float4)", "inf\n0.25\n");
    live("bool", false, &old_caps, "(true), (false), (NULL::bool)", "1\n0\n\\N\n");
    live("int8", true, &old_caps, "('-9223372036854775808'::int8)", "-9223372036854775808\n");
    live("text", false, &old_caps, "(E'tab\\there\\nnew\\\\line'), (NULL::text), ('')",
         "tab\\there\\nnew\\\\line\n\\N\n\n");
    live("uuid", true, &new_caps, "('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid)",
         "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\n");

    typemap_column_t col = column("c", "numeric", false);
    col.precision = 10;
    col.scale = 2;
    char *e = expr_of(&col, "orders", &old_caps, "Nullable(Decimal(10, 2))");
    copy_expect("", e, "(12.5::numeric(10,2)), (NULL::numeric(10,2)), (-0.01::numeric(10,2))", "c",
                "12.50\n\\N\n-0.01\n");
    free(e);

    col = column("c", "eltd_test_mood", true);
    col.typtype = 'e';
    e = expr_of(&col, "orders", &old_caps, "String");
    copy_expect("CREATE TYPE pg_temp.eltd_test_mood AS ENUM ('ok', 'sad');", e,
                "('sad'::pg_temp.eltd_test_mood)", "c", "sad\n");
    free(e);

    /* A quoted column name reaches PostgreSQL intact. */
    col = column("we\"ird", "bool", true);
    e = expr_of(&col, "orders", &old_caps, "UInt8");
    copy_expect("", e, "(true)", "we\"ird", "1\n");
    free(e);
    col = column("we\"ird", "date", true);
    e = expr_of(&col, "o'brien", &old_caps, "Date");
    copy_expect("", e, "('2000-01-01'::date)", "we\"ird", "2000-01-01\n");
    free(e);

    /* A cast sends the column's text form. */
    col = column("c", "interval", false);
    col.cast = "String";
    e = expr_of(&col, "orders", &old_caps, "Nullable(String)");
    copy_expect("", e, "('1 day 02:00:00'::interval)", "c", "1 day 02:00:00\n");
    free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_plain_types),
        cmocka_unit_test(test_float),
        cmocka_unit_test(test_numeric),
        cmocka_unit_test(test_bool),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_timestamp),
        cmocka_unit_test(test_enum),
        cmocka_unit_test(test_unknown_refused),
        cmocka_unit_test(test_casts),
        cmocka_unit_test(test_quoting),
        cmocka_unit_test(test_pg_timestamps),
        cmocka_unit_test(test_pg_dates),
        cmocka_unit_test(test_pg_other_types),
    };
    return cmocka_run_group_tests(tests, setup_caps, NULL);
}
