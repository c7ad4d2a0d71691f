/* fuzz_template.c — libFuzzer target for the template renderer: tpl_render on arbitrary
 * text with a host that answers like dbt (ref, source, config, var, env_var, is_incremental,
 * this, target, adapter.quote).
 *
 * Checked: no crash, leak, UB or runaway (the renderer's own limits bound depth, output and
 * work); success gives a NUL-terminated output of the length said, within the host's output
 * limit; failure gives no output and a message with a line and column inside the source.
 *
 * The host lowers the output and step limits (FUZZ_MAX_*): with eltd's ceilings (16 MiB,
 * 10M steps) the corpus drifts to inputs that build 16 MiB strings, 0.1-1 s each under ASan,
 * and the run slows from 15k to a few hundred executions a second; at 256 KiB / 200k steps
 * it still drifts to 75 ms inputs (ASan costs about 0.4 us a step). The smaller limits are
 * reached by the same code paths and errors, only sooner; every seed and every model in
 * models/ renders the same under them as under eltd's, and would under 5,000 steps. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "template.h"

#define FUZZ_MAX_OUTPUT (64u << 10) /* bytes; eltd uses TPL_MAX_OUTPUT */
#define FUZZ_MAX_STEPS  20000u      /* steps; eltd uses TPL_MAX_STEPS */

static bool host_lookup(void *ud, const char *name, tpl_value_t *out)
{
    (void)ud;
    if (strcmp(name, "this") == 0)
        return tpl_value_cstring(out, "`analytics`.`model`");
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

static int call_error(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return TPL_CALL_ERROR;
}

static int ok_string(tpl_value_t *out, const char *s)
{
    return tpl_value_cstring(out, s) ? TPL_CALL_OK : TPL_CALL_ERROR;
}

/* var() values of each type, so filters and tests meet lists, dicts and numbers. */
static int host_var(const char *key, tpl_value_t *out)
{
    if (strcmp(key, "start_date") == 0)
        return ok_string(out, "2020-01-01");
    if (strcmp(key, "limit") == 0) {
        *out = tpl_value_int(100);
        return TPL_CALL_OK;
    }
    if (strcmp(key, "ratio") == 0) {
        *out = tpl_value_float(0.25);
        return TPL_CALL_OK;
    }
    if (strcmp(key, "enabled") == 0) {
        *out = tpl_value_bool(true);
        return TPL_CALL_OK;
    }
    if (strcmp(key, "countries") == 0) {
        *out = tpl_value_list();
        const char *c[] = {"BR", "US", "DE"};
        for (size_t i = 0; i < 3; i++) {
            tpl_value_t v;
            if (!tpl_value_cstring(&v, c[i]) || !tpl_value_list_push(out, &v)) {
                tpl_value_free(out);
                return TPL_CALL_ERROR;
            }
        }
        return TPL_CALL_OK;
    }
    if (strcmp(key, "thresholds") == 0) {
        *out = tpl_value_dict();
        tpl_value_t a = tpl_value_int(10), b = tpl_value_float(2.5);
        if (!tpl_value_dict_set(out, "low", &a) || !tpl_value_dict_set(out, "high", &b)) {
            tpl_value_free(out);
            return TPL_CALL_ERROR;
        }
        return TPL_CALL_OK;
    }
    return TPL_CALL_UNKNOWN;
}

static int host_call(void *ud, const char *name, const tpl_value_t *args, size_t nargs,
                     const tpl_kwarg_t *kw, size_t nkw, tpl_value_t *out, char *err, size_t errlen)
{
    bool incremental = *(const bool *)ud;
    char buf[512];
    if (strcmp(name, "ref") == 0) {
        if (nargs < 1 || nargs > 2 || args[nargs - 1].type != TPL_STRING || nkw)
            return call_error(err, errlen, "ref() expects a model name");
        snprintf(buf, sizeof buf, "`analytics`.`%s`", args[nargs - 1].u.str.ptr);
        return ok_string(out, buf);
    }
    if (strcmp(name, "source") == 0) {
        if (nargs != 2 || args[0].type != TPL_STRING || args[1].type != TPL_STRING || nkw)
            return call_error(err, errlen, "source() expects a source and a table name");
        snprintf(buf, sizeof buf, "`raw`.`%s`", args[1].u.str.ptr);
        return ok_string(out, buf);
    }
    if (strcmp(name, "config") == 0) {
        if (nargs > 1 || (nargs == 1 && args[0].type != TPL_DICT))
            return call_error(err, errlen, "config() takes keyword arguments");
        return ok_string(out, "");
    }
    if (strcmp(name, "is_incremental") == 0) {
        if (nargs || nkw)
            return call_error(err, errlen, "is_incremental() takes no arguments");
        *out = tpl_value_bool(incremental);
        return TPL_CALL_OK;
    }
    if (strcmp(name, "var") == 0 || strcmp(name, "env_var") == 0) {
        const tpl_value_t *dflt = nargs > 1 ? &args[1] : NULL;
        for (size_t i = 0; i < nkw; i++) {
            if (strcmp(kw[i].name, "default") != 0)
                return call_error(err, errlen, "unexpected keyword argument");
            dflt = &kw[i].value;
        }
        if (nargs < 1 || nargs > 2 || args[0].type != TPL_STRING)
            return call_error(err, errlen, "expects a name and an optional default");
        const char *key = args[0].u.str.ptr;
        if (name[0] == 'v') {
            int rc = host_var(key, out);
            if (rc != TPL_CALL_UNKNOWN)
                return rc;
        } else {
            const char *e = getenv(key);
            if (e)
                return ok_string(out, e);
        }
        if (!dflt)
            return call_error(err, errlen, "not defined and no default");
        return tpl_value_copy(out, dflt) ? TPL_CALL_OK : TPL_CALL_ERROR;
    }
    if (strcmp(name, "adapter.quote") == 0) {
        if (nargs != 1 || args[0].type != TPL_STRING)
            return call_error(err, errlen, "adapter.quote() expects a string");
        snprintf(buf, sizeof buf, "`%s`", args[0].u.str.ptr);
        return ok_string(out, buf);
    }
    return TPL_CALL_UNKNOWN;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("ELTD_SCHEMA", "analytics", 1);
    setenv("ELTD_TARGET", "dev", 1);
    return 0;
}

/* Lines as the renderer counts them: \n, \r\n and a lone \r each end one. */
static unsigned count_lines(const uint8_t *s, size_t n)
{
    unsigned lines = 1;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\n' || (s[i] == '\r' && (i + 1 == n || s[i + 1] != '\n')))
            lines++;
    return lines;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The renderer takes a length: no terminator, so reads past the end are caught. */
    char *src = malloc(size ? size : 1);
    if (!src)
        return 0;
    memcpy(src, data, size);
    /* is_incremental() follows the input so both branches of a model get rendered. */
    bool incremental = size % 2 == 1;
    tpl_host_t host = {.ud = &incremental,
                       .lookup = host_lookup,
                       .call = host_call,
                       .max_output = FUZZ_MAX_OUTPUT,
                       .max_steps = FUZZ_MAX_STEPS};
    char *out = (char *)"untouched";
    size_t outlen = 12345;
    tpl_error_t err;
    memset(&err, 0x55, sizeof err);
    if (tpl_render("fuzz.sql", src, size, &host, &out, &outlen, &err)) {
        CHECK(out != NULL);
        CHECK(outlen <= FUZZ_MAX_OUTPUT);
        CHECK(out[outlen] == '\0');
        free(out);
    } else {
        CHECK(out == NULL);
        CHECK(memchr(err.message, '\0', sizeof err.message) != NULL);
        CHECK(err.message[0] != '\0');
        CHECK(strcmp(err.file, "fuzz.sql") == 0);
        CHECK(err.line >= 1 && err.line <= count_lines(data, size));
        CHECK(err.column >= 1 && err.column <= size + 2);
        char buf[1024];
        CHECK(tpl_error_format(&err, buf, sizeof buf) > 0);
    }
    free(src);
    return 0;
}
