/* test_template.c — the template renderer: every construct, whitespace control, each error
 * class with its exact line:column, the resource limits, the value API, and a byte-for-byte
 * comparison with python3-jinja2 on the model files in test/unit/template/cases. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "template.h"

/* ------------------------------------------------------------ a dbt-like host */

/* Mirrors CONTEXT in test/unit/template_oracle.py. */
static bool host_lookup(void *ud, const char *name, tpl_value_t *out)
{
    (void)ud;
    if (strcmp(name, "this") == 0)
        return tpl_value_cstring(out, "analytics.model");
    if (strcmp(name, "target") == 0) {
        static const char *const kv[][2] = {
            {"name", "dev"}, {"schema", "analytics"}, {"type", "clickhouse"}};
        *out = tpl_value_dict();
        for (size_t i = 0; i < 3; i++) {
            tpl_value_t v;
            if (!tpl_value_cstring(&v, kv[i][1]) || !tpl_value_dict_set(out, kv[i][0], &v)) {
                tpl_value_free(out);
                return false;
            }
        }
        return true;
    }
    return false;
}

static bool str_arg(const tpl_value_t *v)
{
    return v->type == TPL_STRING;
}

/* var() and env_var(): a value from a table, or the default, or an error. */
static int lookup_with_default(const char *fn, const tpl_value_t *args, size_t nargs,
                               const tpl_kwarg_t *kw, size_t nkw, tpl_value_t *out, char *err,
                               size_t errlen)
{
    const tpl_value_t *dflt = nargs > 1 ? &args[1] : NULL;
    for (size_t i = 0; i < nkw; i++)
        if (strcmp(kw[i].name, "default") == 0)
            dflt = &kw[i].value;
    if (nargs < 1 || !str_arg(&args[0])) {
        snprintf(err, errlen, "needs a name");
        return TPL_CALL_ERROR;
    }
    const char *name = args[0].u.str.ptr;
    if (strcmp(fn, "var") == 0) {
        if (strcmp(name, "start_date") == 0)
            return tpl_value_cstring(out, "2020-01-01") ? TPL_CALL_OK : TPL_CALL_ERROR;
        if (strcmp(name, "limit") == 0) {
            *out = tpl_value_int(100);
            return TPL_CALL_OK;
        }
        if (strcmp(name, "countries") == 0) {
            *out = tpl_value_list();
            tpl_value_t a, b;
            if (!tpl_value_cstring(&a, "BR") || !tpl_value_list_push(out, &a) ||
                !tpl_value_cstring(&b, "US") || !tpl_value_list_push(out, &b))
                return TPL_CALL_ERROR;
            return TPL_CALL_OK;
        }
    } else {
        if (strcmp(name, "ELTD_SCHEMA") == 0)
            return tpl_value_cstring(out, "analytics") ? TPL_CALL_OK : TPL_CALL_ERROR;
        if (strcmp(name, "ELTD_TARGET") == 0)
            return tpl_value_cstring(out, "dev") ? TPL_CALL_OK : TPL_CALL_ERROR;
    }
    if (!dflt || dflt->type == TPL_NONE) {
        snprintf(err, errlen, "%s '%s' is not defined", fn, name);
        return TPL_CALL_ERROR;
    }
    return tpl_value_copy(out, dflt) ? TPL_CALL_OK : TPL_CALL_ERROR;
}

static int host_call(void *ud, const char *name, const tpl_value_t *args, size_t nargs,
                     const tpl_kwarg_t *kw, size_t nkw, tpl_value_t *out, char *err, size_t errlen)
{
    int *calls = ud;
    if (calls)
        (*calls)++;
    char buf[256];
    if (strcmp(name, "ref") == 0) {
        if (nargs < 1 || nargs > 2 || !str_arg(&args[nargs - 1])) {
            snprintf(err, errlen, "expects a model name");
            return TPL_CALL_ERROR;
        }
        snprintf(buf, sizeof buf, "analytics.%s", args[nargs - 1].u.str.ptr);
        return tpl_value_cstring(out, buf) ? TPL_CALL_OK : TPL_CALL_ERROR;
    }
    if (strcmp(name, "source") == 0) {
        if (nargs != 2 || !str_arg(&args[0]) || !str_arg(&args[1])) {
            snprintf(err, errlen, "expects a source and a table name");
            return TPL_CALL_ERROR;
        }
        snprintf(buf, sizeof buf, "raw.%s", args[1].u.str.ptr);
        return tpl_value_cstring(out, buf) ? TPL_CALL_OK : TPL_CALL_ERROR;
    }
    if (strcmp(name, "config") == 0)
        return tpl_value_cstring(out, "") ? TPL_CALL_OK : TPL_CALL_ERROR;
    if (strcmp(name, "is_incremental") == 0) {
        *out = tpl_value_bool(false);
        return TPL_CALL_OK;
    }
    if (strcmp(name, "var") == 0 || strcmp(name, "env_var") == 0)
        return lookup_with_default(name, args, nargs, kw, nkw, out, err, errlen);
    if (strcmp(name, "adapter.quote") == 0 && nargs == 1 && str_arg(&args[0])) {
        snprintf(buf, sizeof buf, "`%s`", args[0].u.str.ptr);
        return tpl_value_cstring(out, buf) ? TPL_CALL_OK : TPL_CALL_ERROR;
    }
    if (strcmp(name, "deep") == 0) {
        /* A host value nested deeper than the renderer accepts. */
        *out = tpl_value_list();
        tpl_value_t *cur = out;
        for (int i = 0; i < TPL_MAX_DEPTH + 5; i++) {
            tpl_value_t inner = tpl_value_list();
            if (!tpl_value_list_push(cur, &inner))
                return TPL_CALL_ERROR;
            cur = &cur->u.list.items[0];
        }
        return TPL_CALL_OK;
    }
    return TPL_CALL_UNKNOWN;
}

static const tpl_host_t dbt_host = {.ud = NULL, .lookup = host_lookup, .call = host_call};

/* ------------------------------------------------------------ helpers */

static void expect_render(const char *src, const char *want)
{
    char *out = NULL;
    size_t len = 0;
    tpl_error_t err;
    bool ok = tpl_render("t.sql", src, strlen(src), &dbt_host, &out, &len, &err);
    if (!ok) {
        char msg[1024];
        tpl_error_format(&err, msg, sizeof msg);
        print_error("template %s\nfailed: %s\n", src, msg);
        fail();
    }
    if (strcmp(out, want) != 0) {
        print_error("template %s\ngot  [%s]\nwant [%s]\n", src, out, want);
        fail();
    }
    assert_int_equal(len, strlen(want));
    free(out);
}

/* want is "LINE:COL: message" */
static void expect_error(const char *src, const char *want)
{
    char *out = (char *)"untouched";
    tpl_error_t err;
    bool ok = tpl_render("t.sql", src, strlen(src), &dbt_host, &out, NULL, &err);
    if (ok) {
        print_error("template %s\nrendered [%s], want error %s\n", src, out, want);
        free(out);
        fail();
    }
    assert_null(out);
    char got[1024], full[1024];
    tpl_error_format(&err, got, sizeof got);
    snprintf(full, sizeof full, "t.sql:%s", want);
    if (strcmp(got, full) != 0) {
        print_error("template %s\ngot  %s\nwant %s\n", src, got, full);
        fail();
    }
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = (size_t)n;
    }
    return buf;
}

/* ------------------------------------------------------------ constructs */

static void test_output_and_literals(void **state)
{
    (void)state;
    expect_render("", "");
    expect_render("plain text", "plain text");
    expect_render("{{ 'x' }}", "x");
    expect_render("{{ \"dq\" }}{{ 'a\\nb' }}", "dqa\nb");
    expect_render("{{ 'esc \\\\ \\' \\\" done' }}", "esc \\ ' \" done");
    expect_render("{{ 42 }} {{ -7 }} {{ 1.5 }} {{ 2.0 }} {{ 1e100 }}", "42 -7 1.5 2.0 1e+100");
    expect_render("{{ true }} {{ True }} {{ false }} {{ False }}", "True True False False");
    expect_render("{{ none }} {{ None }}", "None None");
    expect_render("{{ [1, 'a', none] }}", "[1, 'a', None]");
    expect_render("{{ {'k': 'v', 'n': [true]} }}", "{'k': 'v', 'n': [True]}");
    expect_render("{{ [1, 2,] }} {{ {'a': 1,} }}", "[1, 2] {'a': 1}");
    expect_render("{{ {'a': {'b': 1}} }}", "{'a': {'b': 1}}");
    expect_render("{{ 'a' 'b' }}", "ab");
    expect_render("{{ 0.1 + 0.2 }} {{ 1 / 3 }} {{ 123456789012345678.0 }}",
                  "0.30000000000000004 0.3333333333333333 1.2345678901234568e+17");
}

static void test_expressions(void **state)
{
    (void)state;
    expect_render("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ 7 % 4 }} {{ 2 ** 3 }}",
                  "7 9 3 3 8");
    expect_render("{{ 'a' ~ 1 ~ 'b' }}", "a1b");
    expect_render("{{ 1 == 1 }} {{ 1 != 1 }} {{ 2 > 1 }} {{ 2 >= 3 }} {{ 1 < 2 }} {{ 2 <= 2 }}",
                  "True False True False True True");
    expect_render("{{ 'a' in ['a'] }} {{ 'b' not in ['a'] }} {{ 'x' in 'xyz' }}", "True True True");
    expect_render("{{ true and false }} {{ true or false }} {{ not true }} {{ 0 or 'd' }}",
                  "False True False d");
    expect_render("{{ not 1 == 2 }}", "True");
    expect_render("{{ 'y' if 1 else 'n' }}", "y");
    expect_render("{{ this }} {{ target.name }} {{ target['type'] }}",
                  "analytics.model dev clickhouse");
    expect_render("{% set l = [10, 20] %}{{ l[0] }} {{ l[-1] }} {{ l.1 }}", "10 20 20");
    expect_render("{% set d = {'a': {'b': 'deep'}} %}{{ d.a.b }} {{ d['a']['b'] }}", "deep deep");
    expect_render("{{ ref('orders') }} {{ ref('pkg', 'items') }} {{ source('raw', 'x') }}",
                  "analytics.orders analytics.items raw.x");
    expect_render("{{ var('missing', 'dflt') }} {{ var('missing', default=3) }}", "dflt 3");
    expect_render("{{ env_var('ELTD_SCHEMA') }} {{ env_var('NOPE', 'x') }}", "analytics x");
    expect_render("{{ config(materialized='table', order_by=['a', 'b'], settings={'k': 1}) }}", "");
    expect_render("{{ adapter.quote('col') }}", "`col`");
    expect_render("{{ range(3) }} {{ range(1, 3) }} {{ range(5, 0, -2) }}",
                  "[0, 1, 2] [1, 2] [5, 3, 1]");
    expect_render("{{ dict(a=1) }}", "{'a': 1}");
    expect_render("{{ x is defined }} {{ this is defined }} {{ none is none }}", "False True True");
}

static void test_filters(void **state)
{
    (void)state;
    expect_render("{{ 'Ab' | upper }}{{ 'Ab' | lower }}{{ ' x ' | trim }}", "ABabx");
    expect_render("{{ 'abc' | length }} {{ [1] | length }} {{ {} | length }}", "3 1 0");
    expect_render("{{ ['a', 'b'] | join(', ') }} {{ [1, 2] | join }}", "a, b 12");
    expect_render("{{ 'a.b' | replace('.', '_') }}", "a_b");
    expect_render(
        "{{ nope | default('d') }} {{ '' | default('d', true) }} {{ 'v' | default('d') }}",
        "d d v");
    expect_render("{{ target.nope | default('d') }} {{ [1][5] | default('d') }}", "d d");
    expect_render("{{ 'a' | upper | replace('A', 'b') | length }}", "1");
    expect_render("{{ 'x' ~ 'y' | upper }}", "xY");
}

static void test_statements(void **state)
{
    (void)state;
    expect_render("{% if true %}a{% endif %}", "a");
    expect_render("{% if 0 %}a{% elif '' %}b{% elif [1] %}c{% else %}d{% endif %}", "c");
    expect_render("{% if {} %}a{% else %}b{% endif %}", "b");
    expect_render("{% if none %}a{% endif %}", "");
    expect_render("{% for x in [1, 2, 3] %}{{ x }}{% if not loop.last %},{% endif %}{% endfor %}",
                  "1,2,3");
    expect_render("{% for x in ['a', 'b'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}"
                  "{{ loop.last }}{{ loop.length }};{% endfor %}",
                  "10TrueFalse2;21FalseTrue2;");
    expect_render("{% for k in {'z': 1, 'a': 2} %}{{ k }}{% endfor %}", "za");
    expect_render("{% for x in [] %}x{% else %}empty{% endfor %}", "empty");
    expect_render("{% for a in [1, 2] %}{% for b in [3, 4] %}{{ a }}{{ b }}/{{ loop.index }} "
                  "{% endfor %}{{ loop.index }}|{% endfor %}",
                  "13/1 14/2 1|23/1 24/2 2|");
    expect_render("{% set x = 'v' %}{{ x }}", "v");
    expect_render("{% set x = 1 %}{% for i in [5] %}{% set x = i %}{{ x }}{% endfor %}{{ x }}",
                  "51");
    expect_render("{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}", "2");
    expect_render("{% set b %}in {{ 1 + 1 }}{% endset %}[{{ b }}]", "[in 2]");
    expect_render("{% do ref('x') %}done", "done");
    expect_render("{# comment #}x{# another\nline #}", "x");
}

static void test_whitespace(void **state)
{
    (void)state;
    /* Without dashes nothing is stripped, except one trailing newline of the template. */
    expect_render("a\n{% if true %}\nb\n{% endif %}\nc\n", "a\n\nb\n\nc");
    expect_render("a\n\n", "a\n");
    expect_render("{{ 'x' }}\n", "x");
    expect_render("  {{ 'x' }}  ", "  x  ");
    expect_render("a  \n {{- 'x' -}} \n  b", "axb");
    expect_render("a \n{%- if true -%}\n  b  \n{%- endif -%}\n c", "abc");
    expect_render("a {#- c -#} b", "ab");
    expect_render("a {#- c #} b", "a b");
    expect_render("a {# c -#} b", "a b");
    expect_render("a {#-#} b", "a b");
    expect_render("a {%+ if true +%} b{% endif %}", "a  b");
    expect_render("{% for i in [1, 2] -%}\n  {{ i }}\n{%- endfor %}", "12");
    expect_render("x\t\r\n {{- 'y' }}", "xy");
    /* \r\n and \r read as \n, as Jinja does. */
    expect_render("a\r\nb\rc\r\n", "a\nb\nc");
    /* Non-ASCII whitespace is whitespace to Python too (U+00A0, U+3000). */
    expect_render("a\xc2\xa0\xe3\x80\x80{{- 'b' }}", "ab");
    expect_render("{{ 'x' -}}\xc2\xa0y", "xy");
}

/* ------------------------------------------------------------ errors */

static void test_errors_tags(void **state)
{
    (void)state;
    expect_error("ok\n  {% macro m() %}{% endmacro %}", "2:6: unsupported tag 'macro'");
    expect_error("{% call x() %}", "1:4: unsupported tag 'call'");
    expect_error("{% block b %}", "1:4: unsupported tag 'block'");
    expect_error("{% extends 'x' %}", "1:4: unsupported tag 'extends'");
    expect_error("{% include 'x' %}", "1:4: unsupported tag 'include'");
    expect_error("{% raw %}{{ x }}{% endraw %}", "1:4: unsupported tag 'raw'");
    expect_error("{%- frobnicate %}", "1:5: unknown tag 'frobnicate'");
    expect_error("x\n{% endif %}", "2:4: unexpected '{% endif %}' without a matching opening tag");
    expect_error("{% for x in [1] %}{% endif %}",
                 "1:22: unexpected '{% endif %}' without a matching opening tag");
    expect_error("{% else %}", "1:4: unexpected '{% else %}' without a matching opening tag");
    expect_error("a\n  {% if true %}\nb", "2:3: unclosed '{% if %}' (missing '{% endif %}')");
    expect_error("{% for x in [1] %}", "1:1: unclosed '{% for %}' (missing '{% endfor %}')");
    expect_error("{% set x %}abc", "1:1: unclosed '{% set %}' (missing '{% endset %}')");
    expect_error("{% if true %}{% else %}{% elif false %}{% endif %}",
                 "1:27: unexpected '{% elif %}' without a matching opening tag");
    expect_error("{% endif x %}", "1:4: unexpected '{% endif %}' without a matching opening tag");
    expect_error("{% if true %}{% endif x %}", "1:23: expected end of tag '%}', got 'x'");
    expect_error("{% %}", "1:4: expected a tag name, got '%}'");
}

static void test_errors_unterminated(void **state)
{
    (void)state;
    expect_error("abc\n {{ x ", "2:2: unterminated '{{' (missing '}}')");
    expect_error("{% if x", "1:1: unterminated '{%' (missing '%}')");
    expect_error("a {# never closed", "1:3: unterminated comment (missing '#}')");
    expect_error("{{ 'abc }}", "1:4: unterminated string");
    expect_error("{{ \"abc\\\" }}", "1:4: unterminated string");
    expect_error("{{ (1 }}", "1:7: unexpected '}', expected ')'");
    expect_error("{{ 1) }}", "1:5: unexpected ')'");
}

static void test_errors_syntax(void **state)
{
    (void)state;
    expect_error("{{ }}", "1:4: expected an expression, got '}}'");
    expect_error("{{ 1 + }}", "1:8: unexpected '}}'");
    expect_error("{{ a b }}", "1:6: expected end of expression '}}', got 'b'");
    expect_error("{{ f(a=1, 2) }}", "1:11: positional argument follows keyword argument");
    expect_error("{{ f(a=1, a=2) }}", "1:11: duplicate keyword argument 'a'");
    expect_error("{{ [1, 2 }}", "1:10: unexpected '}', expected ']'");
    expect_error("{{ {'a' 1} }}", "1:9: expected ':', got number '1'");
    expect_error("{{ x.'a' }}", "1:6: expected a name or number after '.', got string");
    expect_error("{{ l[1:2] }}", "1:7: slices and tuple subscripts are not supported");
    expect_error("{{ (1, 2) }}", "1:6: tuples are not supported");
    expect_error("{{ and }}", "1:4: undefined variable 'and'");
    expect_error("{{ 1 is none is none }}", "1:14: tests cannot be chained with 'is'");
    expect_error("{{ 1 is none 2 }}", "1:14: test 'none' takes no arguments");
    expect_error("{{ 1 ! 2 }}", "1:6: unexpected character '!'");
    expect_error("{{ 99999999999999999999 }}", "1:4: integer literal too large");
    expect_error("{{ '\\x4' }}", "1:5: truncated \\x escape in string");
    expect_error("{% set = 1 %}", "1:8: expected a variable name, got '='");
    expect_error("{% set x 1 %}", "1:10: expected '=', got number '1'");
    expect_error("{% set a, b = 1, 2 %}", "1:9: only '{% set name = value %}' is supported");
    expect_error("{% for x of y %}{% endfor %}", "1:10: expected 'in', got 'of'");
    expect_error("{% for a, b in y %}{% endfor %}",
                 "1:9: unpacking several loop variables is not supported");
    expect_error("{% for x in y if x %}{% endfor %}", "1:15: 'if' in for loops is not supported");
    expect_error("{{ f(*a) }}", "1:6: '*args' and '**kwargs' in calls are not supported");
}

static void test_errors_filters_and_functions(void **state)
{
    (void)state;
    expect_error("{{ 'a' | title }}", "1:10: unknown filter 'title'");
    /* Unknown filters fail the template even in a branch never taken, as in Jinja. */
    expect_error("{% if false %}\n{{ x | nope }}{% endif %}", "2:8: unknown filter 'nope'");
    expect_error("{{ 1 is odd }}", "1:9: unknown test 'odd'");
    expect_error("\n\n   {{ frobnicate(1) }}", "3:7: unknown function 'frobnicate'");
    expect_error("{{ adapter.dispatch('x') }}", "1:4: unknown function 'adapter.dispatch'");
    expect_error("{{ var('nope') }}", "1:4: var(): var 'nope' is not defined");
    expect_error("{{ ref(1) }}", "1:4: ref(): expects a model name");
    expect_error("{% set s = 'x' %}{{ s() }}", "1:21: 's' is a string, not a function");
    expect_error("{{ this() }}", "1:4: 'this' is a string, not a function");
    expect_error("{{ 'x'() }}", "1:4: only named functions can be called");
    expect_error("{{ target.name() }}", "1:4: unknown function 'target.name'");
    expect_error("{{ 'a' | join(1, 2) }}", "1:10: join takes at most 1 argument (2 given)");
    expect_error("{{ 'a' | default(x=1) }}",
                 "1:10: default got an unexpected keyword argument 'x'");
    expect_error("{{ 1 | length }}", "1:8: length of int is undefined");
    expect_error("{{ 'a' | replace('a') }}", "1:10: replace needs the old and the new string");
    expect_error("{{ range(1, 2, 0) }}", "1:4: range() step must not be zero");
    expect_error("{{ dict(1) }}", "1:4: dict() takes keyword arguments only");
    expect_error("{{ deep() }}", "1:4: host value nested too deeply (limit 100)");
}

static void test_errors_runtime(void **state)
{
    (void)state;
    expect_error("line one\n  {{ missing }}", "2:6: undefined variable 'missing'");
    expect_error("{% if true %}{{ a.b }}{% endif %}", "1:17: undefined variable 'a'");
    expect_error("{{ x | default(1) }}{{ y.z | default(1) }}", "1:24: undefined variable 'y'");
    expect_error("{{ target.nope }}", "1:11: dict has no attribute 'nope'");
    /* a failure after a host call must not leak the call's result */
    expect_error("{{ ref('a').b | upper }}", "1:13: string has no attribute 'b'");
    expect_error("{{ ref('a').b is none }}", "1:13: string has no attribute 'b'");
    expect_error("{{ this.schema }}", "1:9: string has no attribute 'schema'");
    expect_error("{{ [1][3] }}", "1:8: list index out of range");
    expect_error("{{ {'a': 1}['b'] }}", "1:13: dict has no key 'b'");
    expect_error("{{ [1]['a'] }}", "1:8: cannot subscript list with string");
    expect_error("{% for x in 42 %}{% endfor %}", "1:13: cannot loop over int");
    expect_error("{% for x in none %}{% endfor %}", "1:13: cannot loop over none");
    expect_error("{{ 1 + 'a' }}", "1:6: unsupported operand types for +: int and string");
    expect_error("{{ 'a' - 'b' }}", "1:8: unsupported operand types for -: string and string");
    expect_error("{{ 1 / 0 }}", "1:6: division by zero");
    expect_error("{{ 2.0 ** 10000 }}", "1:8: float overflow");
    expect_error("{{ (-8) ** 0.5 }}", "1:9: complex numbers are not supported");
    expect_error("{{ [1] in {} }}", "1:8: a list cannot be a dict key");
    expect_error("{{ 'ab' * 'c' }}", "1:9: unsupported operand types for *: string and string");
    expect_error("{{ 1 // 0 }}", "1:6: division by zero");
    expect_error("{{ 9223372036854775807 + 1 }}", "1:24: integer overflow");
    expect_error("{{ 1 < 'a' }}", "1:6: '<' is not supported between int and string");
    expect_error("{{ none > none }}", "1:9: '>' is not supported between none and none");
    expect_error("{{ 1 in 2 }}", "1:6: 'in' needs a string, list or dict on the right, not int");
    expect_error("{{ 1 in 'abc' }}", "1:6: 'in <string>' needs a string on the left, not int");
    expect_error("{{ -'a' }}", "1:4: bad operand type for unary -: string");
    expect_render("[{{ 'a' if false }}]", "[]");
    expect_error("{{ {1: 2} }}", "1:5: dict keys must be strings, not int");
    /* columns count characters, not bytes */
    expect_error("é€ {{ nope }}", "1:7: undefined variable 'nope'");
}

/* ------------------------------------------------------------ limits */

static char *repeat3(const char *head, const char *mid, int n, const char *tail)
{
    size_t hl = strlen(head), ml = strlen(mid), tl = strlen(tail);
    char *s = malloc(hl + ml * (size_t)n + tl + 1);
    assert_non_null(s);
    memcpy(s, head, hl);
    for (int i = 0; i < n; i++)
        memcpy(s + hl + ml * (size_t)i, mid, ml);
    memcpy(s + hl + ml * (size_t)n, tail, tl + 1);
    return s;
}

static void expect_error_contains(const char *src, const char *needle)
{
    char *out = NULL;
    tpl_error_t err;
    bool ok = tpl_render("t.sql", src, strlen(src), &dbt_host, &out, NULL, &err);
    if (ok) {
        print_error("template %.200s... rendered, want an error with [%s]\n", src, needle);
        free(out);
    }
    assert_false(ok);
    if (!strstr(err.message, needle)) {
        print_error("message [%s] lacks [%s]\n", err.message, needle);
        fail();
    }
}

static void test_limits(void **state)
{
    (void)state;
    char *s;
    /* 99 nested parentheses are fine; thousands are refused, not a stack overflow. */
    char *open = repeat3("{{ ", "(", 90, "1");
    s = repeat3(open, ")", 90, " }}");
    expect_render(s, "1");
    free(s);
    free(open);
    s = repeat3("{{ ", "(", 5000, "1 }}");
    expect_error_contains(s, "nested too deeply");
    free(s);
    s = repeat3("{{ ", "[", 5000, "");
    expect_error_contains(s, "nested too deeply");
    free(s);
    s = repeat3("{{ ", "not ", 5000, "1 }}");
    expect_error_contains(s, "nested too deeply");
    free(s);
    s = repeat3("{{ ", "-", 5000, "1 }}");
    expect_error_contains(s, "nested too deeply");
    free(s);
    s = repeat3("{{ 1", " + 1", 5000, " }}");
    expect_error_contains(s, "nested too deeply");
    free(s);
    s = repeat3("", "{% if true %}", 5000, "");
    expect_error_contains(s, "blocks nested too deeply");
    free(s);
    s = repeat3("", "{% for x in [1] %}", 5000, "");
    expect_error_contains(s, "blocks nested too deeply");
    free(s);
    /* Values built one set at a time cannot nest without bound either. */
    s = repeat3("{% set a = [] %}", "{% set a = [a] %}", 200, "{{ a | length }}");
    expect_error_contains(s, "value nested too deeply");
    free(s);
    /* Work and output are bounded. */
    expect_error_contains("{% for a in range(100000) %}{% for b in range(100000) %}"
                          "{% endfor %}{% endfor %}",
                          "evaluation budget");
    expect_error_contains("{{ range(1000000000000) }}", "evaluation budget");
    s = repeat3("{% set s = 'xxxxxxxxxxxxxxxx' %}", "{% set s = s ~ s %}", 30, "{{ s }}");
    expect_error_contains(s, "too large");
    free(s);
    s = repeat3("{% set s = 'xxxxxxxxxxxxxxxx' %}", "{% set s = s + s %}", 30, "{{ s }}");
    expect_error_contains(s, "too large");
    free(s);
    s = repeat3("{% set s = range(1000) %}", "{% set s = s + s %}", 30, "{{ s }}");
    expect_error_contains(s, "evaluation budget");
    free(s);
    /* Substring search is billed per candidate, so it cannot go quadratic. */
    expect_error_contains("{% set a = 'a' * 1000000 %}{{ (a ~ 'b') in (a ~ a) }}",
                          "evaluation budget");
    expect_error_contains("{% set a = 'a' * 1000000 %}{{ (a ~ a) | replace(a ~ 'b', '') }}",
                          "evaluation budget");
    expect_render("{% set a = 'ab' * 1000 %}{{ 'ba' in a }} {{ a | replace('ab', '') }}|",
                  "True |");
    /* Many statements in a row are fine (no recursion per statement). */
    s = repeat3("", "{{ 1 }}", 20000, "");
    char *out = NULL;
    tpl_error_t err;
    assert_true(tpl_render("t.sql", s, strlen(s), &dbt_host, &out, NULL, &err));
    assert_int_equal(strlen(out), 20000);
    free(out);
    free(s);
}

/* Repetition fills its result by doubling, yet stays bounded by the same limits. */
static void test_repeat(void **state)
{
    (void)state;
    expect_render("{{ 'abc' * 7 }}|{{ 'ab' * 1 }}|{{ 'ab' * 0 }}|{{ 'ab' * -3 }}|{{ 'q' * 2 }}",
                  "abcabcabcabcabcabcabc|ab|||qq");
    expect_render("{{ [1, 'a'] * 3 }}", "[1, 'a', 1, 'a', 1, 'a']");
    /* Empty sequences repeated without end once looped once per repetition. */
    expect_render("{{ '' * 100000000000 }}|{{ ([] * 100000000000) | length }}", "|0");
    expect_render("{{ ('x' * 16777216) | length }} {{ ('xyz' * 5592405) | length }}",
                  "16777216 16777215");
    expect_error("{{ 'x' * 16777217 }}", "1:8: string or output too large (limit 16777216 bytes)");
    expect_error("{{ 'ab' * 9223372036854775807 }}",
                 "1:9: string or output too large (limit 16777216 bytes)");
    /* Each repetition is billed before it is built: ten 16 MiB strings use the budget up. */
    expect_error_contains("{% for i in range(100) %}{% set s = 'x' * 16777216 %}{% endfor %}",
                          "evaluation budget (10000000 steps)");
    expect_error_contains("{{ [1] * 10000001 }}", "evaluation budget");
}

static bool render_with(const tpl_host_t *h, const char *src, char **out, tpl_error_t *err)
{
    size_t len;
    bool ok = tpl_render("t.sql", src, strlen(src), h, out, &len, err);
    if (ok)
        assert_int_equal(len, strlen(*out));
    return ok;
}

/* A host may lower the output and step limits for one render; never raise them. */
static void test_host_limits(void **state)
{
    (void)state;
    tpl_host_t h = dbt_host;
    h.max_output = 100;
    h.max_steps = 1000;
    char *out = NULL, msg[1024];
    tpl_error_t err;
    assert_true(render_with(&h, "{{ 'x' * 100 }}", &out, &err));
    assert_int_equal(strlen(out), 100);
    free(out);
    assert_false(render_with(&h, "{{ 'x' * 101 }}", &out, &err));
    assert_null(out);
    tpl_error_format(&err, msg, sizeof msg);
    assert_string_equal(msg, "t.sql:1:8: string or output too large (limit 100 bytes)");
    /* The limit holds for the output as a whole, for literal text and for any one string. */
    assert_false(render_with(&h, "{{ 'x' * 60 }}{{ 'y' * 60 }}", &out, &err));
    tpl_error_format(&err, msg, sizeof msg);
    assert_string_equal(msg, "t.sql:1:15: string or output too large (limit 100 bytes)");
    char text[128];
    memset(text, 'z', 101);
    text[101] = '\0';
    assert_false(render_with(&h, text, &out, &err));
    assert_string_equal(err.message, "string or output too large (limit 100 bytes)");
    assert_false(render_with(&h, "{{ ('x' * 60 ~ 'y' * 60) | length }}", &out, &err));
    assert_string_equal(err.message, "string or output too large (limit 100 bytes)");
    assert_false(
        render_with(&h, "{{ ['x' * 30, 'y' * 30] | join('-' * 50) | length }}", &out, &err));
    assert_string_equal(err.message, "string or output too large (limit 100 bytes)");
    /* Steps. */
    assert_true(render_with(&h, "{{ range(500) | length }}", &out, &err));
    assert_string_equal(out, "500");
    free(out);
    assert_false(render_with(&h, "{{ range(2000) | length }}", &out, &err));
    tpl_error_format(&err, msg, sizeof msg);
    assert_string_equal(msg, "t.sql:1:4: template exceeds its evaluation budget (1000 steps)");
    assert_false(render_with(&h,
                             "{% for i in range(100) %}{% for j in range(100) %}"
                             "{% endfor %}{% endfor %}",
                             &out, &err));
    assert_string_equal(err.message, "template exceeds its evaluation budget (1000 steps)");
    assert_false(render_with(&h, "{{ [1, 2] * 501 }}", &out, &err));
    assert_string_equal(err.message, "template exceeds its evaluation budget (1000 steps)");
    /* Above the ceilings (or 0) means the ceilings. */
    h.max_output = SIZE_MAX;
    h.max_steps = UINT64_MAX;
    assert_false(render_with(&h, "{{ 'x' * 16777217 }}", &out, &err));
    assert_string_equal(err.message, "string or output too large (limit 16777216 bytes)");
    assert_false(render_with(&h, "{{ range(20000000) | length }}", &out, &err));
    assert_string_equal(err.message, "template exceeds its evaluation budget (10000000 steps)");
    h.max_output = 0;
    h.max_steps = 0;
    assert_true(render_with(&h, "{{ ('x' * 16777216) | length }}", &out, &err));
    assert_string_equal(out, "16777216");
    free(out);
}

/* Mutated model files must render or fail cleanly; run under ASan this catches overflows. */
static void test_mutations(void **state)
{
    (void)state;
    static const char *const seeds[] = {
        "{{ config(materialized='table', order_by=['a']) }}\nSELECT {% for c in ['a', 'b'] %}"
        "{{ c }}{% if not loop.last %},{% endif %}{% endfor %} FROM {{ ref('x') }}\n"
        "{%- if is_incremental() %} WHERE t > (SELECT max(t) FROM {{ this }}){% endif %}",
        "{# c #}{% set d = {'k': [1, 2.5, none]} %}{{ d.k[1] ~ 'x' | upper }}"
        "{{ 'a\\n\\x41' if d else \"b\" }}{{ -1 ** 2 // 3 % 2 }}{{ var('limit') is number }}",
    };
    static const char alphabet[] = "{}%#-+()[]'\"\\.,:|~=<>!*/ \n0123456789abcnotinifelse";
    uint32_t rnd = 12345;
    for (int iter = 0; iter < 3000; iter++) {
        const char *seed = seeds[iter % 2];
        size_t len = strlen(seed);
        char buf[512];
        memcpy(buf, seed, len);
        int edits = 1 + iter % 4;
        for (int e = 0; e < edits; e++) {
            rnd = rnd * 1103515245u + 12345u;
            size_t at = (rnd >> 8) % len;
            rnd = rnd * 1103515245u + 12345u;
            char c = (rnd >> 16) % 8 == 0 ? (char)((rnd >> 8) & 0xff)
                                          : alphabet[(rnd >> 8) % (sizeof alphabet - 1)];
            rnd = rnd * 1103515245u + 12345u;
            switch ((rnd >> 12) % 3) {
            case 0:
                buf[at] = c;
                break;
            case 1:
                if (len + 1 < sizeof buf) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = c;
                    len++;
                }
                break;
            default:
                if (len > 1) {
                    memmove(buf + at, buf + at + 1, len - at - 1);
                    len--;
                }
                break;
            }
        }
        char *out = NULL;
        tpl_error_t err;
        if (tpl_render("fuzz.sql", buf, len, &dbt_host, &out, NULL, &err)) {
            assert_non_null(out);
            free(out);
        } else {
            assert_null(out);
            assert_true(err.line >= 1 && err.column >= 1);
            assert_true(err.message[0] != '\0');
        }
    }
}

/* ------------------------------------------------------------ host interface, values */

static void test_host_interface(void **state)
{
    (void)state;
    /* Functions run only when reached. */
    int calls = 0;
    tpl_host_t h = dbt_host;
    h.ud = &calls;
    char *out = NULL;
    tpl_error_t err;
    const char *src = "{% if false %}{{ ref('a') }}{% endif %}{{ ref('b') }}";
    assert_true(tpl_render("t.sql", src, strlen(src), &h, &out, NULL, &err));
    assert_string_equal(out, "analytics.b");
    assert_int_equal(calls, 1);
    free(out);
    /* Without a host, only builtins and template variables exist. */
    src = "{% set x = range(2) %}{{ x }}";
    assert_true(tpl_render("t.sql", src, strlen(src), NULL, &out, NULL, &err));
    assert_string_equal(out, "[0, 1]");
    free(out);
    src = "{{ ref('a') }}";
    assert_false(tpl_render(NULL, src, strlen(src), NULL, &out, NULL, &err));
    char msg[256];
    tpl_error_format(&err, msg, sizeof msg);
    assert_string_equal(msg, "<template>:1:4: unknown function 'ref'");
    /* Embedded NUL bytes in the data pass through. */
    size_t len;
    assert_true(tpl_render("t.sql", "a\0b", 3, NULL, &out, &len, &err));
    assert_int_equal(len, 3);
    assert_memory_equal(out, "a\0b", 3);
    free(out);
}

static void test_values(void **state)
{
    (void)state;
    tpl_value_t d = tpl_value_dict(), v, copy;
    assert_true(tpl_value_cstring(&v, "one"));
    assert_true(tpl_value_dict_set(&d, "a", &v));
    assert_int_equal(v.type, TPL_NONE);
    v = tpl_value_list();
    tpl_value_t item = tpl_value_float(0.5);
    assert_true(tpl_value_list_push(&v, &item));
    item = tpl_value_none();
    assert_true(tpl_value_list_push(&v, &item));
    assert_true(tpl_value_dict_set(&d, "b", &v));
    v = tpl_value_int(7);
    assert_true(tpl_value_dict_set(&d, "a", &v)); /* replaces, keeps position */
    assert_int_equal(d.u.dict.len, 2);
    assert_int_equal(tpl_value_dict_get(&d, "a")->u.i, 7);
    assert_null(tpl_value_dict_get(&d, "zz"));
    assert_true(tpl_value_copy(&copy, &d));
    tpl_value_free(&d);
    char *s;
    size_t len;
    assert_true(tpl_value_to_string(&copy, &s, &len));
    assert_string_equal(s, "{'a': 7, 'b': [0.5, None]}");
    assert_int_equal(len, strlen(s));
    free(s);
    assert_true(tpl_value_truthy(&copy));
    tpl_value_free(&copy);
    assert_int_equal(copy.type, TPL_NONE);
    assert_false(tpl_value_truthy(&copy));
    tpl_value_t f = tpl_value_float(0.0), b = tpl_value_bool(true), e;
    assert_false(tpl_value_truthy(&f));
    assert_true(tpl_value_truthy(&b));
    assert_true(tpl_value_string(&e, "", 0));
    assert_false(tpl_value_truthy(&e));
    tpl_value_free(&e);
    /* Pushing onto a non-list fails but still takes the item over. */
    tpl_value_t notlist = tpl_value_int(1);
    assert_true(tpl_value_cstring(&item, "leak?"));
    assert_false(tpl_value_list_push(&notlist, &item));
    assert_int_equal(item.type, TPL_NONE);
    assert_string_equal(tpl_type_name(TPL_DICT), "dict");
}

/* ------------------------------------------------------------ the oracle */

static void test_oracle_cases(void **state)
{
    (void)state;
    const char *root = getenv("ELTD_SOURCE_DIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/test/unit/template/cases", root ? root : ".");
    DIR *dh = opendir(dir);
    assert_non_null(dh);
    struct dirent *de;
    int cases = 0, failures = 0;
    while ((de = readdir(dh)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (nl < 5 || strcmp(de->d_name + nl - 4, ".sql") != 0)
            continue;
        char path[2048], exp_path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        snprintf(exp_path, sizeof exp_path, "%s/%.*s.expected", dir, (int)(nl - 4), de->d_name);
        size_t slen = 0, elen = 0;
        char *src = read_file(path, &slen), *want = read_file(exp_path, &elen);
        assert_non_null(src);
        if (!want) {
            print_error("%s: missing; run test/unit/template_oracle.py\n", exp_path);
            failures++;
            free(src);
            continue;
        }
        char *out = NULL;
        size_t olen = 0;
        tpl_error_t err;
        if (!tpl_render(de->d_name, src, slen, &dbt_host, &out, &olen, &err)) {
            char msg[1024];
            tpl_error_format(&err, msg, sizeof msg);
            print_error("%s\n", msg);
            failures++;
        } else if (olen != elen || memcmp(out, want, olen) != 0) {
            print_error("%s: output differs from %s\n--- got\n%s\n--- want\n%s\n", path, exp_path,
                        out, want);
            failures++;
        }
        free(out);
        free(src);
        free(want);
        cases++;
    }
    closedir(dh);
    assert_true(cases >= 8);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_and_literals),
        cmocka_unit_test(test_expressions),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_statements),
        cmocka_unit_test(test_whitespace),
        cmocka_unit_test(test_errors_tags),
        cmocka_unit_test(test_errors_unterminated),
        cmocka_unit_test(test_errors_syntax),
        cmocka_unit_test(test_errors_filters_and_functions),
        cmocka_unit_test(test_errors_runtime),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_repeat),
        cmocka_unit_test(test_host_limits),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_host_interface),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_oracle_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
