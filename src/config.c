/* config.c — loads pipeline.yaml into config_t. One table of known keys per section
 * (name, type, default, bounds) drives parsing, defaults, validation and config_print;
 * values pass through ${VAR} substitution before they are typed. */
#include "config.h"

#include "cron.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef enum {
    F_STRING,
    F_SECRET,   /* a string masked by config_print */
    F_INT,
    F_BOOL,
    F_DURATION, /* seconds as double: 30, "30s", "5m" */
    F_SIZE,     /* bytes: 4194304, "4MiB" */
    F_ENUM,     /* one of .names, stored as its index (an int) */
    F_SPLIT,    /* 1..16 or auto (stored as 0) */
    F_SECTION,  /* nested mapping described by .sub */
    F_TABLES,   /* sequence of table mappings */
    F_STRLIST,  /* sequence of strings */
    F_CASTS,    /* mapping column -> type */
    F_VARS,     /* mapping name -> scalar, kept as JSON */
} field_type_t;

typedef struct field {
    const char *name;
    field_type_t type;
    size_t offset;
    const char *def; /* default, parsed like a YAML value; NULL = required unless optional */
    double min, max; /* bounds for numbers (ignored when min > max) */
    /* F_SECTION, F_TABLES: the nested fields (const struct field *); F_ENUM: the accepted
     * words, NULL-terminated, in enum order (const char *const *). */
    const void *sub;
    bool optional; /* absent and no default: leave zero/NULL */
    const char *help;
} field_t;

#define OFF(member) offsetof(config_t, member)
#define TOFF(member) offsetof(config_table_t, member)
#define NOB 1, 0

/* "full or incremental", "auto, pages or key": an F_ENUM's words for errors and the reference. */
static const char *enum_words(const field_t *f, char *buf, size_t len)
{
    const char *const *names = f->sub;
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; names[i] && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%s",
                              i == 0 ? "" : names[i + 1] ? ", " : " or ", names[i]);
    return buf;
}

static const field_t source_fields[] = {
    {"host", F_STRING, OFF(source.host), "localhost", NOB, NULL, false, "PostgreSQL host"},
    {"port", F_INT, OFF(source.port), "5432", 1, 65535, NULL, false, "PostgreSQL port"},
    {"database", F_STRING, OFF(source.database), NULL, NOB, NULL, false, "database name"},
    {"user", F_STRING, OFF(source.user), NULL, NOB, NULL, false, "user"},
    {"password", F_SECRET, OFF(source.password), "", NOB, NULL, false, "password"},
    {"schema", F_STRING, OFF(source.schema), "public", NOB, NULL, false, "default schema"},
    {"connect_timeout", F_DURATION, OFF(source.connect_timeout), "10s", 0.1, 3600, NULL, false,
     "connection timeout"},
    {0},
};

static const field_t warehouse_fields[] = {
    {"url", F_STRING, OFF(warehouse.url), NULL, NOB, NULL, false, "ClickHouse HTTP URL"},
    {"user", F_STRING, OFF(warehouse.user), "default", NOB, NULL, false, "user"},
    {"password", F_SECRET, OFF(warehouse.password), "", NOB, NULL, false, "password"},
    {"raw_database", F_STRING, OFF(warehouse.raw_database), "raw", NOB, NULL, false,
     "database for loaded tables"},
    {"analytics_database", F_STRING, OFF(warehouse.analytics_database), "analytics", NOB, NULL,
     false, "database for models"},
    {"connect_timeout", F_DURATION, OFF(warehouse.connect_timeout), "10s", 0.1, 3600, NULL,
     false, "connection timeout"},
    {"query_timeout", F_DURATION, OFF(warehouse.query_timeout), "1h", 1, 86400 * 7, NULL, false,
     "timeout of one statement or insert"},
    {0},
};

static const char *const load_modes[] = {"full", "incremental", NULL};
static const char *const split_methods[] = {"auto", "pages", "key", NULL};

static const field_t table_fields[] = {
    {"name", F_STRING, TOFF(name), NULL, NOB, NULL, false, "PostgreSQL table"},
    {"schema", F_STRING, TOFF(schema), NULL, NOB, NULL, true, "PostgreSQL schema"},
    {"target", F_STRING, TOFF(target), NULL, NOB, NULL, true, "ClickHouse table name"},
    {"mode", F_ENUM, TOFF(mode), "full", NOB, load_modes, false, "load mode"},
    {"cursor", F_STRING, TOFF(cursor), NULL, NOB, NULL, true, "incremental cursor column"},
    {"key", F_STRLIST, TOFF(key), NULL, NOB, NULL, true, "key columns (default: primary key)"},
    {"casts", F_CASTS, TOFF(casts), NULL, NOB, NULL, true, "column: ClickHouse type"},
    {"split", F_SPLIT, TOFF(split), "auto", 1, 16, NULL, false,
     "COPY streams at once; auto: one per run.split_rows rows, at most 4"},
    {"split_by", F_ENUM, TOFF(split_by), "auto", NOB, split_methods, false,
     "what split cuts: pages (heap page ranges, PostgreSQL 14+) or key (an integer key); auto: "
     "pages where possible"},
    {0},
};

static const field_t schedule_fields[] = {
    {"cron", F_STRING, OFF(schedule.cron), "", NOB, NULL, false, "cron expression or @preset"},
    {"timezone", F_STRING, OFF(schedule.timezone), "UTC", NOB, NULL, false, "IANA zone"},
    {"catch_up", F_BOOL, OFF(schedule.catch_up), "true", NOB, NULL, false,
     "run once at start after a missed fire"},
    {0},
};

static const field_t run_fields[] = {
    {"retries", F_INT, OFF(run.retries), "2", 0, 100, NULL, false, "retries per task"},
    {"retry_delay", F_DURATION, OFF(run.retry_delay), "5m", 0, 86400, NULL, false,
     "delay before a retry"},
    {"retry_backoff", F_BOOL, OFF(run.retry_backoff), "false", NOB, NULL, false,
     "double the delay each retry"},
    {"max_retry_delay", F_DURATION, OFF(run.max_retry_delay), "1h", 0, 86400, NULL, false,
     "cap of the backed-off delay"},
    {"task_timeout", F_DURATION, OFF(run.task_timeout), "2h", 0, 86400 * 7, NULL, false,
     "timeout of one task attempt (0 = none)"},
    {"load_parallelism", F_INT, OFF(run.load_parallelism), "4", 1, 64, NULL, false,
     "loads at once"},
    {"model_parallelism", F_INT, OFF(run.model_parallelism), "4", 1, 64, NULL, false,
     "models at once"},
    {"queue_bytes", F_SIZE, OFF(run.queue_bytes), "1MiB", 65536, 1073741824.0, NULL, false,
     "back-pressure cap per table load (its streams share it)"},
    {"split_rows", F_INT, OFF(run.split_rows), "1000000", 1000, 1e12, NULL, false,
     "rows per COPY stream for split: auto (a table splits from twice this)"},
    {"shutdown_grace", F_DURATION, OFF(run.shutdown_grace), "30s", 0, 86400, NULL, false,
     "time a run may finish in after SIGTERM"},
    {"keep_runs", F_INT, OFF(run.keep_runs), "1000", 2, 1000000, NULL, false,
     "runs kept in /api/runs and the journal; once a fifth more are recorded the oldest are "
     "compacted away (at start and while serving)"},
    {0},
};

static const field_t models_fields[] = {
    {"path", F_STRING, OFF(models.path), "models", NOB, NULL, false, "dbt project directory"},
    {"vars", F_VARS, OFF(models.vars), NULL, NOB, NULL, true, "vars overriding the project's"},
    {0},
};

static const field_t http_fields[] = {
    {"listen", F_STRING, OFF(http.listen), "0.0.0.0:5001", NOB, NULL, false, "host:port"},
    {"token", F_SECRET, OFF(http.token), "", NOB, NULL, false, "bearer token for POST"},
    {"allow_public_without_token", F_BOOL, OFF(http.allow_public_without_token), "false", NOB,
     NULL, false, "listen beyond loopback with no token"},
    {"max_connections", F_INT, OFF(http.max_connections), "512", 1, 65536, NULL, false,
     "concurrent connections; when all are open the longest idle one is closed for a new one"},
    {"header_timeout", F_DURATION, OFF(http.header_timeout), "10s", 1, 3600, NULL, false,
     "time a client has to send a request head, and longest stall in a body (then 408)"},
    {"rate_during_runs", F_INT, OFF(http.rate_during_runs), "1000", 0, 1000000, NULL, false,
     "requests a second the API answers while a run is active, the rest waiting their turn "
     "(0: no limit); /health and /ready are never held"},
    {"max_body_bytes", F_SIZE, OFF(http.max_body_bytes), "1MiB", 1024, 1073741824.0, NULL, false,
     "request body limit"},
    {0},
};

static const field_t root_fields[] = {
    {"source", F_SECTION, 0, NULL, NOB, source_fields, false, "PostgreSQL source"},
    {"warehouse", F_SECTION, 0, NULL, NOB, warehouse_fields, false, "ClickHouse warehouse"},
    {"tables", F_TABLES, OFF(tables), NULL, NOB, table_fields, false, "tables to load"},
    {"schedule", F_SECTION, 0, NULL, NOB, schedule_fields, false, "when to run"},
    {"run", F_SECTION, 0, NULL, NOB, run_fields, false, "task engine"},
    {"models", F_SECTION, 0, NULL, NOB, models_fields, false, "dbt project"},
    {"http", F_SECTION, 0, NULL, NOB, http_fields, false, "HTTP API"},
    {"state_dir", F_STRING, OFF(state_dir), "/var/lib/eltd", NOB, NULL, false,
     "journal and eltd.lock (one eltd per state directory)"},
    {"log_level", F_STRING, OFF(log_level), "info", NOB, NULL, false, "debug, info, warn or error"},
    {0},
};

typedef struct loader {
    const char *file;
    yaml_document_t doc;
    char *err;
    size_t errlen;
} loader_t;

__attribute__((format(printf, 3, 4))) static bool fail_at(loader_t *L, const yaml_node_t *n,
                                                          const char *fmt, ...)
{
    int k = snprintf(L->err, L->errlen, "%s:%zu:%zu: ", L->file, n ? n->start_mark.line + 1 : 1,
                     n ? n->start_mark.column + 1 : 1);
    if (k < 0 || (size_t)k >= L->errlen)
        return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->err + k, L->errlen - (size_t)k, fmt, ap);
    va_end(ap);
    return false;
}

char *config_substitute_env(const char *in, char *err, size_t errlen)
{
    size_t cap = strlen(in) + 64, len = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
#define PUT(s, n)                                                                                  \
    do {                                                                                           \
        size_t n_ = (n);                                                                           \
        if (len + n_ + 1 > cap) {                                                                  \
            cap = (len + n_ + 1) * 2;                                                              \
            char *t_ = realloc(out, cap);                                                          \
            if (!t_) {                                                                             \
                free(out);                                                                         \
                snprintf(err, errlen, "out of memory");                                            \
                return NULL;                                                                       \
            }                                                                                      \
            out = t_;                                                                              \
        }                                                                                          \
        memcpy(out + len, (s), n_);                                                                \
        len += n_;                                                                                 \
    } while (0)
    for (const char *p = in; *p;) {
        if (p[0] == '$' && p[1] == '$') {
            PUT("$", 1);
            p += 2;
            continue;
        }
        if (p[0] != '$' || p[1] != '{') {
            PUT(p, 1);
            p++;
            continue;
        }
        const char *name = p + 2, *q = name;
        while (*q == '_' || isalnum((unsigned char)*q))
            q++;
        size_t nlen = (size_t)(q - name);
        if (nlen == 0 || isdigit((unsigned char)*name)) {
            snprintf(err, errlen, "bad variable reference at '%.20s'", p);
            free(out);
            return NULL;
        }
        const char *def = NULL;
        size_t dlen = 0;
        if (q[0] == ':' && q[1] == '-') {
            def = q + 2;
            const char *e = strchr(def, '}');
            if (!e) {
                snprintf(err, errlen, "unterminated ${%.*s:-", (int)nlen, name);
                free(out);
                return NULL;
            }
            dlen = (size_t)(e - def);
            q = e;
        }
        if (*q != '}') {
            snprintf(err, errlen, "unterminated ${%.*s", (int)nlen, name);
            free(out);
            return NULL;
        }
        char vname[256];
        snprintf(vname, sizeof vname, "%.*s", (int)(nlen < 255 ? nlen : 255), name);
        const char *val = getenv(vname);
        if (val && (*val || !def)) {
            PUT(val, strlen(val));
        } else if (def) {
            PUT(def, dlen);
        } else {
            snprintf(err, errlen, "environment variable %s is not set and has no default", vname);
            free(out);
            return NULL;
        }
        p = q + 1;
    }
#undef PUT
    out[len] = '\0';
    return out;
}

bool config_parse_duration(const char *s, double *out)
{
    double total = 0;
    const char *p = s;
    if (!*p)
        return false;
    while (*p) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno || v < 0 || !isfinite(v))
            return false;
        p = end;
        double mul = 1;
        if (strncmp(p, "ms", 2) == 0) {
            mul = 0.001;
            p += 2;
        } else if (*p == 's') {
            p++;
        } else if (*p == 'm') {
            mul = 60;
            p++;
        } else if (*p == 'h') {
            mul = 3600;
            p++;
        } else if (*p == 'd') {
            mul = 86400;
            p++;
        } else if (*p) {
            return false;
        } else if (p != end) {
            return false;
        }
        total += v * mul;
    }
    *out = total;
    return true;
}

bool config_parse_size(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno || v < 0)
        return false;
    long long mul = 1;
    if (!strcmp(end, "") || !strcmp(end, "B"))
        mul = 1;
    else if (!strcmp(end, "KiB") || !strcmp(end, "K"))
        mul = 1024;
    else if (!strcmp(end, "MiB") || !strcmp(end, "M"))
        mul = 1024 * 1024;
    else if (!strcmp(end, "GiB") || !strcmp(end, "G"))
        mul = 1024LL * 1024 * 1024;
    else
        return false;
    if (v > INT64_MAX / mul)
        return false;
    *out = (int64_t)(v * mul);
    return true;
}

/* A scalar's text after environment substitution, or NULL with the error set. */
static char *scalar_text(loader_t *L, yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE) {
        fail_at(L, n, "expected a scalar value");
        return NULL;
    }
    char sub_err[256];
    char *v = config_substitute_env((const char *)n->data.scalar.value, sub_err, sizeof sub_err);
    if (!v)
        fail_at(L, n, "%s", sub_err);
    return v;
}

static bool parse_scalar(loader_t *L, const field_t *f, const char *text, yaml_node_t *at,
                         void *dst)
{
    switch (f->type) {
    case F_STRING:
    case F_SECRET: {
        char *copy = strdup(text);
        if (!copy)
            return fail_at(L, at, "out of memory");
        free(*(char **)dst);
        *(char **)dst = copy;
        return true;
    }
    case F_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (!*text || *end || errno)
            return fail_at(L, at, "%s: expected an integer, got '%s'", f->name, text);
        if (f->min <= f->max && (v < f->min || v > f->max))
            return fail_at(L, at, "%s: %lld is out of range %.0f..%.0f", f->name, v, f->min,
                           f->max);
        *(int64_t *)dst = v;
        return true;
    }
    case F_BOOL:
        if (!strcmp(text, "true") || !strcmp(text, "yes") || !strcmp(text, "on"))
            *(bool *)dst = true;
        else if (!strcmp(text, "false") || !strcmp(text, "no") || !strcmp(text, "off"))
            *(bool *)dst = false;
        else
            return fail_at(L, at, "%s: expected true or false, got '%s'", f->name, text);
        return true;
    case F_DURATION: {
        double v;
        if (!config_parse_duration(text, &v))
            return fail_at(L, at, "%s: expected a duration like 30s, 5m or 1h, got '%s'",
                           f->name, text);
        if (f->min <= f->max && (v < f->min || v > f->max))
            return fail_at(L, at, "%s: %gs is out of range %gs..%gs", f->name, v, f->min,
                           f->max);
        *(double *)dst = v;
        return true;
    }
    case F_SIZE: {
        int64_t v;
        if (!config_parse_size(text, &v))
            return fail_at(L, at, "%s: expected a size like 4MiB, got '%s'", f->name, text);
        if (f->min <= f->max && ((double)v < f->min || (double)v > f->max))
            return fail_at(L, at, "%s: %lld bytes is out of range %.0f..%.0f", f->name,
                           (long long)v, f->min, f->max);
        *(int64_t *)dst = v;
        return true;
    }
    case F_ENUM: {
        const char *const *names = f->sub;
        for (int i = 0; names[i]; i++)
            if (!strcmp(text, names[i])) {
                *(int *)dst = i;
                return true;
            }
        char words[128];
        return fail_at(L, at, "%s: expected %s, got '%s'", f->name,
                       enum_words(f, words, sizeof words), text);
    }
    case F_SPLIT: {
        if (!strcmp(text, "auto")) {
            *(int64_t *)dst = 0;
            return true;
        }
        char *end;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (!*text || *end || errno)
            return fail_at(L, at, "%s: expected auto or an integer, got '%s'", f->name, text);
        if (v < f->min || v > f->max)
            return fail_at(L, at, "%s: %lld is out of range %.0f..%.0f", f->name, v, f->min,
                           f->max);
        *(int64_t *)dst = v;
        return true;
    }
    default:
        return fail_at(L, at, "%s: internal: not a scalar field", f->name);
    }
}

static bool parse_mapping(loader_t *L, const field_t *fields, yaml_node_t *map, void *base);

static bool parse_strlist(loader_t *L, const field_t *f, yaml_node_t *n, char ***list,
                          size_t *count)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return fail_at(L, n, "%s: expected a list", f->name);
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    char **items = calloc(cnt ? cnt : 1, sizeof *items);
    if (!items)
        return fail_at(L, n, "out of memory");
    *list = items;
    *count = 0;
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *it = yaml_document_get_node(&L->doc, n->data.sequence.items.start[i]);
        char *v = scalar_text(L, it);
        if (!v)
            return false;
        if (!*v) {
            free(v);
            return fail_at(L, it, "%s: empty entry", f->name);
        }
        items[(*count)++] = v;
    }
    return true;
}

static bool parse_casts(loader_t *L, const field_t *f, yaml_node_t *n, config_table_t *t)
{
    if (n->type != YAML_MAPPING_NODE)
        return fail_at(L, n, "%s: expected a mapping of column: type", f->name);
    size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    t->casts = calloc(cnt ? cnt : 1, sizeof *t->casts);
    if (!t->casts)
        return fail_at(L, n, "out of memory");
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_pair_t *p = &n->data.mapping.pairs.start[i];
        yaml_node_t *k = yaml_document_get_node(&L->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&L->doc, p->value);
        char *ks = scalar_text(L, k);
        if (!ks)
            return false;
        char *vs = scalar_text(L, v);
        if (!vs) {
            free(ks);
            return false;
        }
        t->casts[t->ncasts].column = ks;
        t->casts[t->ncasts++].type = vs;
        if (!*vs)
            return fail_at(L, v, "casts: empty type for column %s", ks);
    }
    return true;
}

static bool parse_vars(loader_t *L, const field_t *f, yaml_node_t *n, json_t **out)
{
    if (n->type != YAML_MAPPING_NODE)
        return fail_at(L, n, "%s: expected a mapping", f->name);
    json_t *obj = json_object();
    if (!obj)
        return fail_at(L, n, "out of memory");
    *out = obj;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&L->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&L->doc, p->value);
        if (k->type != YAML_SCALAR_NODE)
            return fail_at(L, k, "%s: keys must be names", f->name);
        char *vs = scalar_text(L, v);
        if (!vs)
            return false;
        json_t *jv;
        char *end;
        long long iv = strtoll(vs, &end, 10);
        if (*vs && !*end && v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
            jv = json_integer(iv);
        else if (v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !strcmp(vs, "true"))
            jv = json_true();
        else if (v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !strcmp(vs, "false"))
            jv = json_false();
        else
            jv = json_string(vs);
        free(vs);
        json_object_set_new(obj, (const char *)k->data.scalar.value, jv);
    }
    return true;
}

static bool parse_tables(loader_t *L, const field_t *f, yaml_node_t *n, config_t *cfg)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return fail_at(L, n, "%s: expected a list of tables", f->name);
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (cnt == 0)
        return fail_at(L, n, "%s: at least one table is required", f->name);
    cfg->tables = calloc(cnt, sizeof *cfg->tables);
    if (!cfg->tables)
        return fail_at(L, n, "out of memory");
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *it = yaml_document_get_node(&L->doc, n->data.sequence.items.start[i]);
        config_table_t *t = &cfg->tables[cfg->ntables++];
        t->line = (int)it->start_mark.line + 1;
        if (it->type == YAML_SCALAR_NODE) {
            /* "- customers" is shorthand for "- name: customers". */
            t->name = scalar_text(L, it);
            if (!t->name)
                return false;
            if (!parse_mapping(L, table_fields, NULL, t))
                return false;
        } else if (!parse_mapping(L, table_fields, it, t)) {
            return false;
        }
        /* An empty name ("- ", "- ${UNSET:-}") would reach SQL as an empty identifier. */
        if (!*t->name)
            return fail_at(L, it, "%s: entry %zu has an empty name", f->name, i + 1);
        if ((t->target && !*t->target) || (t->schema && !*t->schema) ||
            (t->cursor && !*t->cursor))
            return fail_at(L, it, "table %s: schema, target and cursor must not be empty",
                           t->name);
        /* The default schema (source.schema) is filled in by validate: the source
         * section may come after the tables. */
        if (!t->target && !(t->target = strdup(t->name)))
            return fail_at(L, it, "out of memory");
        if (t->mode == LOAD_MODE_INCREMENTAL && !t->cursor)
            return fail_at(L, it, "table %s: mode incremental needs a cursor column", t->name);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(cfg->tables[j].target, t->target))
                return fail_at(L, it, "table %s: target %s is already used on line %d", t->name,
                               t->target, cfg->tables[j].line);
    }
    return true;
}

static bool parse_value(loader_t *L, const field_t *f, yaml_node_t *n, void *base)
{
    void *dst = (char *)base + f->offset;
    switch (f->type) {
    case F_SECTION:
        return parse_mapping(L, f->sub, n, base);
    case F_TABLES:
        return parse_tables(L, f, n, base);
    case F_STRLIST: {
        config_table_t *t = base;
        return parse_strlist(L, f, n, &t->key, &t->nkey);
    }
    case F_CASTS:
        return parse_casts(L, f, n, base);
    case F_VARS:
        return parse_vars(L, f, n, dst);
    default: {
        char *text = scalar_text(L, n);
        if (!text)
            return false;
        bool ok = parse_scalar(L, f, text, n, dst);
        free(text);
        return ok;
    }
    }
}

/* Fills the fields of one mapping node (NULL = an absent section: defaults only). */
static bool parse_mapping(loader_t *L, const field_t *fields, yaml_node_t *map, void *base)
{
    size_t nfields = 0;
    while (fields[nfields].name)
        nfields++;
    bool seen[64] = {0};
    if (map) {
        if (map->type != YAML_MAPPING_NODE)
            return fail_at(L, map, "expected a mapping");
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(&L->doc, p->key);
            yaml_node_t *v = yaml_document_get_node(&L->doc, p->value);
            if (k->type != YAML_SCALAR_NODE)
                return fail_at(L, k, "expected a key");
            const char *key = (const char *)k->data.scalar.value;
            size_t i = 0;
            while (i < nfields && strcmp(fields[i].name, key))
                i++;
            if (i == nfields) {
                char known[512] = "";
                for (size_t j = 0; j < nfields; j++) {
                    strncat(known, j ? ", " : "", sizeof known - strlen(known) - 1);
                    strncat(known, fields[j].name, sizeof known - strlen(known) - 1);
                }
                return fail_at(L, k, "unknown key '%s' (known: %s)", key, known);
            }
            if (seen[i])
                return fail_at(L, k, "duplicate key '%s'", key);
            seen[i] = true;
            if (!parse_value(L, &fields[i], v, base))
                return false;
        }
    }
    for (size_t i = 0; i < nfields; i++) {
        const field_t *f = &fields[i];
        if (seen[i])
            continue;
        if (f->type == F_SECTION) {
            if (!parse_mapping(L, f->sub, NULL, base))
                return false;
        } else if ((f->type == F_STRING || f->type == F_SECRET) &&
                   *(char **)((char *)base + f->offset)) {
            continue; /* set by a shorthand form */
        } else if (f->def) {
            if (!parse_scalar(L, f, f->def, map, (char *)base + f->offset))
                return false;
        } else if (!f->optional) {
            return fail_at(L, map, "missing required key '%s'", f->name);
        }
    }
    return true;
}

static void free_table(config_table_t *t)
{
    free(t->name);
    free(t->schema);
    free(t->target);
    free(t->cursor);
    for (size_t i = 0; i < t->nkey; i++)
        free(t->key[i]);
    free(t->key);
    for (size_t i = 0; i < t->ncasts; i++) {
        free(t->casts[i].column);
        free(t->casts[i].type);
    }
    free(t->casts);
}

static void free_fields(const field_t *fields, void *base)
{
    for (const field_t *f = fields; f->name; f++) {
        void *dst = (char *)base + f->offset;
        if (f->type == F_STRING || f->type == F_SECRET) {
            free(*(char **)dst);
            *(char **)dst = NULL;
        } else if (f->type == F_SECTION) {
            free_fields(f->sub, base);
        }
    }
}

void config_free(config_t *cfg)
{
    if (!cfg)
        return;
    free_fields(root_fields, cfg);
    for (size_t i = 0; i < cfg->ntables; i++)
        free_table(&cfg->tables[i]);
    free(cfg->tables);
    json_decref(cfg->models.vars);
    free(cfg->path);
    memset(cfg, 0, sizeof *cfg);
}

/* The value of key in mapping n (NULL if n is not a mapping or has no such key). */
static yaml_node_t *map_value(loader_t *L, yaml_node_t *n, const char *key)
{
    if (!n || n->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&L->doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE && !strcmp((const char *)k->data.scalar.value, key))
            return yaml_document_get_node(&L->doc, p->value);
    }
    return NULL;
}

/* A schedule that cannot fire is refused now, not when `eltd serve` starts. */
static bool validate_schedule(loader_t *L, config_t *cfg, yaml_node_t *root)
{
    yaml_node_t *sched = map_value(L, root, "schedule");
    yaml_node_t *at = sched ? sched : root;
    char why[256];
    if (cfg->schedule.cron && cfg->schedule.cron[0]) {
        cron_expr_t e;
        yaml_node_t *n = map_value(L, sched, "cron");
        if (!cron_parse(&e, cfg->schedule.cron, why, sizeof why))
            return fail_at(L, n ? n : at, "schedule.cron: %s", why);
    }
    cron_tz_t tz = {0};
    if (!cron_tz_load(&tz, cfg->schedule.timezone, why, sizeof why)) {
        yaml_node_t *n = map_value(L, sched, "timezone");
        return fail_at(L, n ? n : at, "schedule.timezone: %s", why);
    }
    cron_tz_free(&tz);
    return true;
}

static bool validate(loader_t *L, config_t *cfg, yaml_node_t *root)
{
    if (!validate_schedule(L, cfg, root))
        return false;
    for (size_t i = 0; i < cfg->ntables; i++)
        if (!cfg->tables[i].schema && !(cfg->tables[i].schema = strdup(cfg->source.schema)))
            return fail_at(L, root, "out of memory");
    if (strncmp(cfg->warehouse.url, "http://", 7) && strncmp(cfg->warehouse.url, "https://", 8))
        return fail_at(L, root, "warehouse.url: expected http:// or https://, got '%s'",
                       cfg->warehouse.url);
    if (!strchr(cfg->http.listen, ':'))
        return fail_at(L, root, "http.listen: expected host:port, got '%s'", cfg->http.listen);
    return true;
}

bool config_load_string(config_t *cfg, const char *name, const char *text, size_t len, char *err,
                        size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    loader_t L = {.file = name, .err = err, .errlen = errlen};
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: cannot initialise the YAML parser", name);
        return false;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &L.doc)) {
        snprintf(err, errlen, "%s:%zu:%zu: YAML syntax error: %s%s%s", name,
                 parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                 parser.problem ? parser.problem : "unknown", parser.context ? " " : "",
                 parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return false;
    }
    yaml_parser_delete(&parser);
    bool ok = false;
    yaml_node_t *root = yaml_document_get_root_node(&L.doc);
    if (!root) {
        snprintf(err, errlen, "%s:1:1: the file is empty", name);
    } else if ((cfg->path = strdup(name)) && parse_mapping(&L, root_fields, root, cfg) &&
               validate(&L, cfg, root)) {
        ok = true;
    }
    yaml_document_delete(&L.doc);
    if (!ok)
        config_free(cfg);
    return ok;
}

bool config_load(config_t *cfg, const char *file, char *err, size_t errlen)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", file, strerror(errno));
        return false;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = (cap + 4096) * 2;
            char *t = realloc(buf, cap);
            if (!t) {
                free(buf);
                fclose(f);
                snprintf(err, errlen, "%s: out of memory", file);
                return false;
            }
            buf = t;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    bool read_err = ferror(f);
    fclose(f);
    if (read_err) {
        free(buf);
        snprintf(err, errlen, "%s: read error", file);
        return false;
    }
    bool ok = config_load_string(cfg, file, buf, len, err, errlen);
    free(buf);
    return ok;
}

const config_table_t *config_find_table(const config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->ntables; i++)
        if (!strcmp(cfg->tables[i].name, name) || !strcmp(cfg->tables[i].target, name))
            return &cfg->tables[i];
    return NULL;
}

static void print_quoted(FILE *out, const char *s)
{
    fputc('"', out);
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void print_fields(const field_t *fields, const void *base, FILE *out, int indent)
{
    for (const field_t *f = fields; f->name; f++) {
        const void *src = (const char *)base + f->offset;
        if (f->type == F_SECTION) {
            fprintf(out, "%*s%s:\n", indent, "", f->name);
            print_fields(f->sub, base, out, indent + 2);
            continue;
        }
        if (f->type == F_TABLES || f->type == F_STRLIST || f->type == F_CASTS)
            continue; /* printed by config_print */
        if (f->type == F_VARS) {
            const json_t *vars = *(json_t *const *)src;
            char *js = vars ? json_dumps(vars, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
            fprintf(out, "%*s%s: %s\n", indent, "", f->name, js ? js : "{}");
            free(js);
            continue;
        }
        fprintf(out, "%*s%s: ", indent, "", f->name);
        switch (f->type) {
        case F_STRING: {
            const char *s = *(char *const *)src;
            if (s)
                print_quoted(out, s);
            else
                fputs("null", out);
            break;
        }
        case F_SECRET: {
            const char *s = *(char *const *)src;
            fputs(s && *s ? "\"********\"" : "\"\"", out);
            break;
        }
        case F_INT:
        case F_SIZE:
            fprintf(out, "%lld", (long long)*(const int64_t *)src);
            break;
        case F_BOOL:
            fputs(*(const bool *)src ? "true" : "false", out);
            break;
        case F_DURATION:
            fprintf(out, "%gs", *(const double *)src);
            break;
        case F_ENUM:
            fputs(((const char *const *)f->sub)[*(const int *)src], out);
            break;
        case F_SPLIT:
            if (*(const int64_t *)src)
                fprintf(out, "%lld", (long long)*(const int64_t *)src);
            else
                fputs("auto", out);
            break;
        default:
            break;
        }
        fputc('\n', out);
    }
}

void config_print(const config_t *cfg, FILE *out)
{
    fprintf(out, "# resolved from %s\n", cfg->path);
    for (const field_t *f = root_fields; f->name; f++) {
        if (f->type != F_TABLES) {
            const field_t one[2] = {*f, {0}};
            print_fields(one, cfg, out, 0);
            continue;
        }
        fprintf(out, "tables:\n");
        for (size_t i = 0; i < cfg->ntables; i++) {
            const config_table_t *t = &cfg->tables[i];
            fprintf(out, "  - name: %s\n", t->name);
            print_fields(table_fields + 1, t, out, 4);
            if (t->nkey) {
                fprintf(out, "    key: [");
                for (size_t k = 0; k < t->nkey; k++)
                    fprintf(out, "%s%s", k ? ", " : "", t->key[k]);
                fprintf(out, "]\n");
            }
            for (size_t k = 0; k < t->ncasts; k++)
                fprintf(out, "    casts.%s: %s\n", t->casts[k].column, t->casts[k].type);
        }
    }
}

static const char *type_label(const field_t *f, char *buf, size_t len)
{
    switch (f->type) {
    case F_STRING:
        return "string";
    case F_SECRET:
        return "secret";
    case F_INT:
        return "integer";
    case F_BOOL:
        return "bool";
    case F_DURATION:
        return "duration";
    case F_SIZE:
        return "size";
    case F_ENUM:
        return enum_words(f, buf, len);
    case F_SPLIT:
        return "integer or auto";
    case F_TABLES:
        return "list";
    case F_STRLIST:
        return "list of strings";
    case F_CASTS:
        return "map column: type";
    case F_VARS:
        return "map";
    default:
        return "section";
    }
}

static void reference_fields(const field_t *fields, const char *prefix, FILE *out)
{
    for (const field_t *f = fields; f->name; f++) {
        char key[128];
        snprintf(key, sizeof key, "%s%s", prefix, f->name);
        if (f->type == F_SECTION || f->type == F_TABLES) {
            char sub[160];
            snprintf(sub, sizeof sub, "%s%s", key, f->type == F_TABLES ? "[]." : ".");
            reference_fields(f->sub, sub, out);
            continue;
        }
        char bounds[64] = "", words[128];
        if (f->min <= f->max && f->type == F_DURATION)
            snprintf(bounds, sizeof bounds, "%gs..%gs", f->min, f->max);
        else if (f->min <= f->max)
            snprintf(bounds, sizeof bounds, "%.0f..%.0f", f->min, f->max);
        fprintf(out, "| `%s` | %s | %s | %s | %s |\n", key, type_label(f, words, sizeof words),
                f->def ? (*f->def ? f->def : "\"\"") : (f->optional ? "—" : "**required**"),
                bounds, f->help);
    }
}

void config_print_reference(FILE *out)
{
    fprintf(out, "| key | type | default | bounds | meaning |\n|---|---|---|---|---|\n");
    reference_fields(root_fields, "", out);
}
