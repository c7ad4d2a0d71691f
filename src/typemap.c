/* typemap.c — the PostgreSQL → ClickHouse type table. Values cross as text: PostgreSQL's
 * COPY text and ClickHouse's TabSeparated share their escaping, so only types whose text
 * differs get a converting expression, and values a ClickHouse type cannot hold are turned
 * into a PostgreSQL error naming table, column and value instead of a silent 1970. */
#include "typemap.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *quote_doubling(const char *s, char q)
{
    size_t n = 2;
    for (const char *p = s; *p; p++)
        n += (*p == q) ? 2 : 1;
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    *o++ = q;
    for (const char *p = s; *p; p++) {
        if (*p == q)
            *o++ = q;
        *o++ = *p;
    }
    *o++ = q;
    *o = '\0';
    return out;
}

char *typemap_pg_ident(const char *name)
{
    return quote_doubling(name, '"');
}

char *typemap_pg_literal(const char *text)
{
    return quote_doubling(text, '\'');
}

void typemap_caps_for_version(typemap_caps_t *caps, const char *version)
{
    memset(caps, 0, sizeof *caps);
    if (sscanf(version ? version : "", "%d.%d", &caps->major, &caps->minor) != 2)
        caps->major = caps->minor = 0;
    int v = caps->major * 100 + caps->minor;
    caps->datetime64 = v >= 2001;
    caps->date32 = v >= 2109;
    caps->dt64_wide = v >= 2208;
}

typedef enum { K_PLAIN, K_FLOAT, K_BOOL, K_DATE, K_TIMESTAMP, K_TIMESTAMPTZ } kind_t;

typedef struct mapping {
    const char *pg;
    const char *ch;
    kind_t kind;
} mapping_t;

static const mapping_t mappings[] = {
    {"int2", "Int16", K_PLAIN},
    {"int4", "Int32", K_PLAIN},
    {"int8", "Int64", K_PLAIN},
    {"oid", "UInt32", K_PLAIN},
    {"float4", "Float32", K_FLOAT},
    {"float8", "Float64", K_FLOAT},
    {"bool", "UInt8", K_BOOL},
    {"text", "String", K_PLAIN},
    {"varchar", "String", K_PLAIN},
    {"bpchar", "String", K_PLAIN},
    {"name", "String", K_PLAIN},
    {"citext", "String", K_PLAIN},
    {"json", "String", K_PLAIN},
    {"jsonb", "String", K_PLAIN},
    {"xml", "String", K_PLAIN},
    {"inet", "String", K_PLAIN},
    {"cidr", "String", K_PLAIN},
    {"macaddr", "String", K_PLAIN},
    {"time", "String", K_PLAIN},
    {"uuid", "UUID", K_PLAIN},
    {"date", "Date", K_DATE},
    {"timestamp", "DateTime", K_TIMESTAMP},
    {"timestamptz", "DateTime", K_TIMESTAMPTZ},
    {NULL, NULL, K_PLAIN},
};

/* An expression that raises a PostgreSQL error whose text carries the value: casting a
 * message to integer fails with 'invalid input syntax for type integer: "<message>"'. */
static char *range_guard(const char *qcol, const char *table, const char *column, const char *lo,
                         const char *hi, const char *chtype, const char *expr)
{
    char *tl = typemap_pg_literal(table), *cl = typemap_pg_literal(column);
    char *out = NULL;
    if (tl && cl)
        out = util_asprintf(
            "CASE WHEN %s < '%s' OR %s > '%s' THEN ('eltd: ' || %s || '.' || %s || ' = ' "
            "|| %s::text || ' is outside ClickHouse %s range %s..%s; configure a cast')"
            "::int::text ELSE %s END",
            qcol, lo, qcol, hi, tl, cl, qcol, chtype, lo, hi, expr);
    free(tl);
    free(cl);
    return out;
}

bool typemap_column(const typemap_column_t *col, const char *table, const typemap_caps_t *caps,
                    typemap_out_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char *q = typemap_pg_ident(col->name);
    if (!q) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    char *base = NULL, *expr = NULL;
    if (col->cast) {
        /* A configured cast: the column's text form, parsed by ClickHouse as that type. */
        base = strdup(col->cast);
        expr = util_asprintf("%s::text", q);
        if (base && expr && !col->notnull && strncmp(base, "Nullable(", 9)) {
            char *n = util_asprintf("Nullable(%s)", base);
            free(base);
            base = n;
        }
        goto done_nowrap;
    }
    const char *tn = col->typname;
    if (!strcmp(tn, "numeric")) {
        if (col->precision < 1 || col->precision > 38 || col->scale < 0 ||
            col->scale > col->precision) {
            snprintf(err, errlen,
                     "table %s, column %s: numeric without a precision of 1..38 has no exact "
                     "ClickHouse type; configure a cast (e.g. casts: {%s: \"Decimal(38, 10)\"})",
                     table, col->name, col->name);
            free(q);
            return false;
        }
        base = util_asprintf("Decimal(%d, %d)", col->precision, col->scale);
        expr = strdup(q);
        goto done;
    }
    if (col->typtype == 'e') {
        base = strdup("String");
        expr = strdup(q);
        goto done;
    }
    const mapping_t *m = mappings;
    while (m->pg && strcmp(m->pg, tn))
        m++;
    if (!m->pg) {
        snprintf(err, errlen,
                 "table %s, column %s: PostgreSQL type %s has no exact ClickHouse mapping; "
                 "configure a cast (casts: {%s: String})",
                 table, col->name, tn, col->name);
        free(q);
        return false;
    }
    switch (m->kind) {
    case K_PLAIN:
        base = strdup(m->ch);
        expr = strdup(q);
        break;
    case K_FLOAT:
        /* PostgreSQL spells Infinity/NaN where ClickHouse reads inf/nan. */
        base = strdup(m->ch);
        expr =
            util_asprintf("CASE WHEN %s = 'Infinity' THEN 'inf' WHEN %s = '-Infinity' THEN '-inf' "
                          "WHEN %s = 'NaN' THEN 'nan' ELSE %s::text END",
                          q, q, q, q);
        break;
    case K_BOOL:
        base = strdup(m->ch);
        expr = util_asprintf("%s::int", q);
        break;
    case K_DATE: {
        const char *hi = caps->major >= 20 ? "2149-06-06" : "2105-12-31";
        base = strdup("Date");
        /* The ELSE branch must be text like the guard's THEN branch (a bare date makes
         * PostgreSQL refuse the CASE), and to_char keeps it ISO whatever the DateStyle. */
        char *text = util_asprintf("to_char(%s, 'YYYY-MM-DD')", q);
        if (text)
            expr = range_guard(q, table, col->name, "1970-01-01", hi, "Date", text);
        free(text);
        break;
    }
    case K_TIMESTAMP:
    case K_TIMESTAMPTZ: {
        /* Wall-clock text in UTC, truncated (never rounded) to what the column keeps. */
        char *src =
            m->kind == K_TIMESTAMPTZ ? util_asprintf("(%s AT TIME ZONE 'UTC')", q) : strdup(q);
        if (!src)
            break;
        char *text;
        const char *lo, *hi, *chname;
        if (caps->datetime64) {
            base = strdup("DateTime64(6, 'UTC')");
            text = util_asprintf("to_char(%s, 'YYYY-MM-DD HH24:MI:SS.US')", src);
            /* DateTime64 reached 1925..2283 until 22.8 widened it to 1900..2299. */
            lo = caps->dt64_wide ? "1900-01-01 00:00:00" : "1925-01-01 00:00:00";
            hi = caps->dt64_wide ? "2299-12-31 23:59:59.999999" : "2283-11-11 23:59:59.999999";
            chname = "DateTime64";
        } else {
            base = strdup("DateTime('UTC')");
            text = util_asprintf("to_char(%s, 'YYYY-MM-DD HH24:MI:SS')", src);
            /* Not UInt32's 2106-02-07 06:28:15: these servers' date tables end with 2105,
             * and 18.16 silently stores 2106-02-07 06:28:15 as 1970-01-01 06:28:15. The
             * bound keeps the fraction because the value is compared before truncation. */
            lo = "1970-01-01 00:00:00";
            hi = "2105-12-31 23:59:59.999999";
            chname = "DateTime";
        }
        if (text)
            expr = range_guard(src, table, col->name, lo, hi, chname, text);
        free(text);
        free(src);
        break;
    }
    }
done:
    if (base && !col->notnull) {
        char *n = util_asprintf("Nullable(%s)", base);
        free(base);
        base = n;
    }
done_nowrap:
    free(q);
    if (!base || !expr) {
        free(base);
        free(expr);
        snprintf(err, errlen, "out of memory");
        return false;
    }
    out->ch_type = base;
    out->select_expr = expr;
    return true;
}

void typemap_out_free(typemap_out_t *out)
{
    free(out->ch_type);
    free(out->select_expr);
    out->ch_type = out->select_expr = NULL;
}
