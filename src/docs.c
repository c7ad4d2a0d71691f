/* docs.c — `eltd docs` as plain data: the dbt-style manifest of a loaded project, the catalog
 * of its relations from ClickHouse's TabSeparated answers, and the one self-contained
 * index.html built from those two. No I/O here: cmd_docs.c asks the server and writes files. */
#include "docs.h"

#include "docs_fetch.h"
#include "strbuf.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON helpers ------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 when it is not one. NUL counts
 * as invalid: the text becomes a C string again when it is an object key or an HTML cell. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp;
    if (c >= 0x01 && c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* A malloc'd copy of s[0..n) that jansson accepts: a model file or a ClickHouse comment in
 * another encoding shows U+FFFD where its bytes are not UTF-8, instead of failing the docs. */
static char *utf8_clean(const char *s, size_t n)
{
    char *out = malloc(3 * n + 1), *w = out;
    if (!out)
        return NULL;
    const unsigned char *r = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(r + i, n - i);
        if (k) {
            memcpy(w, r + i, k);
            w += k, i += k;
        } else {
            memcpy(w, "\xEF\xBF\xBD", 3);
            w += 3, i++;
        }
    }
    *w = '\0';
    return out;
}

static json_t *jstrn(const char *s, size_t n)
{
    char *c = utf8_clean(s, n);
    json_t *j = c ? json_string(c) : NULL;
    free(c);
    return j;
}

/* A string, or null for NULL. */
static json_t *jstr(const char *s)
{
    return s ? jstrn(s, strlen(s)) : json_null();
}

/* A text as dbt writes it: "" when there is none. */
static json_t *jtext(const char *s)
{
    return jstr(s ? s : "");
}

/* Sets o[k] = v, taking v; false when v is NULL (out of memory) or the set fails. */
static bool set(json_t *o, const char *k, json_t *v)
{
    return v && json_object_set_new(o, k, v) == 0;
}

/* The same with a key that may not be UTF-8 (a name from ClickHouse). */
static bool setn(json_t *o, const char *k, size_t klen, json_t *v)
{
    char *c = utf8_clean(k, klen);
    bool ok = c && set(o, c, v);
    if (!c)
        json_decref(v);
    free(c);
    return ok;
}

static bool push(json_t *a, json_t *v)
{
    return v && json_array_append_new(a, v) == 0;
}

static json_t *jstrv(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (!push(a, jstr(v[i]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* o[k] as a C string, or NULL when it is missing or not a string. */
static const char *sget(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* ---- the manifest ------------------------------------------------------------------ */

/* Unique ids of everything in the project, by index. */
typedef struct uids {
    const char *project;
    char **model, **test, **src;
} uids_t;

static void uids_free(uids_t *u, const models_project_t *p)
{
    for (size_t i = 0; u->model && i < p->nmodels; i++)
        free(u->model[i]);
    for (size_t i = 0; u->test && i < p->ntests; i++)
        free(u->test[i]);
    for (size_t i = 0; u->src && i < p->nsrcs; i++)
        free(u->src[i]);
    free(u->model);
    free(u->test);
    free(u->src);
}

static bool uids_make(uids_t *u, const models_project_t *p)
{
    u->project = p->name && *p->name ? p->name : "eltd";
    u->model = calloc(p->nmodels + 1, sizeof *u->model);
    u->test = calloc(p->ntests + 1, sizeof *u->test);
    u->src = calloc(p->nsrcs + 1, sizeof *u->src);
    if (!u->model || !u->test || !u->src)
        return false;
    for (size_t i = 0; i < p->nmodels; i++)
        if (!(u->model[i] = util_asprintf("model.%s.%s", u->project, p->models[i].name)))
            return false;
    for (size_t i = 0; i < p->ntests; i++)
        if (!(u->test[i] = util_asprintf("test.%s.%s.%s", u->project,
                                         p->models[p->tests[i].model].name, p->tests[i].name)))
            return false;
    for (size_t i = 0; i < p->nsrcs; i++)
        if (!(u->src[i] = util_asprintf("source.%s.%s.%s", u->project, p->srcs[i].source,
                                        p->srcs[i].table)))
            return false;
    return true;
}

static json_t *columns_json(const models_column_t *c, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < n; i++) {
        json_t *col = json_object();
        if (!col || !set(col, "name", jstr(c[i].name)) ||
            !set(col, "description", jtext(c[i].description)) || !set(o, c[i].name, col)) {
            json_decref(col);
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* fqn: the project, the folders below the model path, the name. */
static json_t *model_fqn(const uids_t *u, const models_model_t *m)
{
    json_t *a = json_array();
    bool ok = a && push(a, jstr(u->project));
    for (const char *d = m->fqn_dir; ok && *d;) {
        size_t n = strcspn(d, "/");
        ok = push(a, jstrn(d, n));
        d += n + (d[n] == '/');
    }
    ok = ok && push(a, jstr(m->name));
    if (!ok) {
        json_decref(a);
        return NULL;
    }
    return a;
}

/* The configuration that is set (NULL means the default materialize.c applies). */
static json_t *model_config(const models_config_t *c)
{
    json_t *o = json_object();
    bool ok = o && set(o, "materialized", jstr(models_mat_name(c->materialized))) &&
              set(o, "enabled", json_boolean(c->enabled)) &&
              set(o, "tags", jstrv(c->tags, c->ntags));
    const struct {
        const char *key, *val;
    } opt[] = {
        {"engine", c->engine},
        {"order_by", c->order_by},
        {"partition_by", c->partition_by},
        {"primary_key", c->primary_key},
        {"settings", c->settings},
        {"unique_key", c->unique_key},
        {"incremental_strategy", c->strategy},
        {"alias", c->alias},
    };
    for (size_t i = 0; ok && i < sizeof opt / sizeof *opt; i++)
        if (opt[i].val)
            ok = set(o, opt[i].key, jstr(opt[i].val));
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static bool model_reads(const models_model_t *m, const models_source_table_t *st)
{
    for (size_t k = 0; k < m->nsources; k++) {
        size_t n = strlen(st->source);
        if (!strncmp(m->sources[k], st->source, n) && m->sources[k][n] == '.' &&
            !strcmp(m->sources[k] + n + 1, st->table))
            return true;
    }
    return false;
}

/* What model i depends on, in project order: the models it refs, then the sources it reads. */
static json_t *model_parents(const models_project_t *p, const uids_t *u, size_t i)
{
    const models_model_t *m = &p->models[i];
    json_t *a = json_array();
    bool ok = a != NULL;
    for (size_t j = 0; ok && j < p->nmodels; j++)
        for (size_t r = 0; ok && r < m->nrefs; r++)
            if (m->refs[r] == j)
                ok = push(a, jstr(u->model[j]));
    for (size_t s = 0; ok && s < p->nsrcs; s++)
        if (model_reads(m, &p->srcs[s]))
            ok = push(a, jstr(u->src[s]));
    if (!ok) {
        json_decref(a);
        return NULL;
    }
    return a;
}

static json_t *depends_on(json_t *nodes)
{
    json_t *o = json_object();
    if (!o || !set(o, "nodes", nodes) || !set(o, "macros", json_array())) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* "staging/stg_orders.sql": the file below its model path, as dbt's path. */
static char *model_rel_path(const models_model_t *m)
{
    return util_asprintf("%s%s%s.sql", m->fqn_dir, *m->fqn_dir ? "/" : "", m->name);
}

static json_t *model_node(const models_project_t *p, const config_t *cfg, const uids_t *u, size_t i)
{
    const models_model_t *m = &p->models[i];
    json_t *n = json_object();
    char *path = model_rel_path(m);
    bool ok = n && path && set(n, "unique_id", jstr(u->model[i])) &&
              set(n, "resource_type", jstr("model")) && set(n, "name", jstr(m->name)) &&
              set(n, "package_name", jstr(u->project)) && set(n, "path", jstr(path)) &&
              set(n, "original_file_path", jstr(m->path)) && set(n, "fqn", model_fqn(u, m)) &&
              set(n, "language", jstr("sql")) && set(n, "description", jtext(m->description)) &&
              set(n, "columns", columns_json(m->columns, m->ncolumns)) &&
              set(n, "config", model_config(&m->config)) &&
              set(n, "tags", jstrv(m->config.tags, m->config.ntags)) &&
              set(n, "depends_on", depends_on(model_parents(p, u, i))) &&
              set(n, "database", json_null()) &&
              set(n, "schema", jstr(cfg->warehouse.analytics_database)) &&
              set(n, "alias", jstr(m->ident)) && set(n, "relation_name", jstr(m->relation)) &&
              set(n, "raw_code", m->raw ? jstrn(m->raw, m->rawlen) : json_null()) &&
              set(n, "compiled_code", jstr(m->sql));
    free(path);
    if (!ok) {
        json_decref(n);
        return NULL;
    }
    return n;
}

static json_t *test_kwargs(const models_project_t *p, const models_test_t *t)
{
    json_t *k = json_object();
    bool ok = k && set(k, "column_name", jstr(t->column));
    if (ok && t->kind == MODELS_TEST_ACCEPTED_VALUES)
        ok = set(k, "values", jstrv(t->values, t->nvalues)) &&
             set(k, "quote", json_boolean(t->quote));
    if (ok && t->kind == MODELS_TEST_RELATIONSHIPS)
        ok = set(k, "to", json_sprintf("ref('%s')", p->models[t->parent].name)) &&
             set(k, "field", jstr(t->field));
    if (!ok) {
        json_decref(k);
        return NULL;
    }
    return k;
}

/* What test i depends on: its model, and for relationships the parent model too. */
static json_t *test_parents(const models_project_t *p, const uids_t *u, size_t i)
{
    const models_test_t *t = &p->tests[i];
    json_t *a = json_array();
    bool ok = a && push(a, jstr(u->model[t->model]));
    if (ok && t->kind == MODELS_TEST_RELATIONSHIPS && t->parent != t->model)
        ok = push(a, jstr(u->model[t->parent]));
    if (!ok) {
        json_decref(a);
        return NULL;
    }
    return a;
}

static json_t *test_node(const models_project_t *p, const uids_t *u, size_t i)
{
    const models_test_t *t = &p->tests[i];
    json_t *n = json_object(), *meta = json_object(), *conf = json_object();
    bool ok = n && meta && conf && set(meta, "name", jstr(models_test_kind_name(t->kind))) &&
              set(meta, "kwargs", test_kwargs(p, t)) &&
              set(conf, "severity", jstr(t->warn ? "warn" : "error")) &&
              set(conf, "enabled", json_true()) && set(n, "unique_id", jstr(u->test[i])) &&
              set(n, "resource_type", jstr("test")) && set(n, "name", jstr(t->name)) &&
              set(n, "package_name", jstr(u->project)) && set(n, "description", jstr("")) &&
              set(n, "test_metadata", json_incref(meta)) && set(n, "config", json_incref(conf)) &&
              set(n, "depends_on", depends_on(test_parents(p, u, i))) &&
              set(n, "attached_node", jstr(u->model[t->model])) &&
              set(n, "column_name", jstr(t->column)) && set(n, "tags", json_array());
    json_decref(meta);
    json_decref(conf);
    if (!ok) {
        json_decref(n);
        return NULL;
    }
    return n;
}

/* The eltd load that fills a source table: where it reads and writes, how. */
static json_t *source_load_json(const config_t *cfg, const config_table_t *t)
{
    if (!t)
        return json_null();
    json_t *l = json_object();
    bool ok = l &&
              set(l, "postgres",
                  json_sprintf("%s.%s", t->schema ? t->schema : cfg->source.schema, t->name)) &&
              set(l, "clickhouse", json_sprintf("%s.%s", cfg->warehouse.raw_database, t->target)) &&
              set(l, "mode", jstr(t->mode == LOAD_MODE_INCREMENTAL ? "incremental" : "full")) &&
              (!t->cursor || set(l, "cursor", jstr(t->cursor)));
    if (!ok) {
        json_decref(l);
        return NULL;
    }
    return l;
}

static json_t *source_node(const models_project_t *p, const config_t *cfg, const uids_t *u,
                           size_t i)
{
    const models_source_table_t *st = &p->srcs[i];
    const config_table_t *t = models_source_load(cfg, st);
    /* Where source() points (models.c's rule): a loaded table is in the raw database under
     * its target; any other in its declared schema, else the raw database. */
    const char *db = t              ? cfg->warehouse.raw_database
                     : st->database ? st->database
                                    : cfg->warehouse.raw_database;
    const char *ident = t ? t->target : st->identifier;
    json_t *n = json_object(), *fqn = json_array();
    char *rel = models_source_relation(p, st);
    bool ok = n && fqn && rel && push(fqn, jstr(u->project)) && push(fqn, jstr(st->source)) &&
              push(fqn, jstr(st->table)) && set(n, "unique_id", jstr(u->src[i])) &&
              set(n, "resource_type", jstr("source")) && set(n, "package_name", jstr(u->project)) &&
              set(n, "source_name", jstr(st->source)) && set(n, "name", jstr(st->table)) &&
              set(n, "fqn", json_incref(fqn)) && set(n, "identifier", jstr(ident)) &&
              set(n, "database", json_null()) && set(n, "schema", jstr(db)) &&
              set(n, "relation_name", jstr(rel)) && set(n, "description", jtext(st->description)) &&
              set(n, "source_description", jtext(st->source_description)) &&
              set(n, "columns", columns_json(st->columns, st->ncolumns)) &&
              set(n, "loader", jstr(t ? "eltd" : "")) &&
              set(n, "eltd_load", source_load_json(cfg, t));
    json_decref(fqn);
    free(rel);
    if (!ok) {
        json_decref(n);
        return NULL;
    }
    return n;
}

/* Records node uid with its parents (its depends_on.nodes) in both maps; every parent
 * already has its child_map entry. */
static bool link(const json_t *nodes, json_t *parent_map, json_t *child_map, const char *uid)
{
    json_t *parents =
        json_object_get(json_object_get(json_object_get(nodes, uid), "depends_on"), "nodes");
    if (!set(parent_map, uid, json_copy(parents)))
        return false;
    size_t k;
    json_t *par;
    json_array_foreach(parents, k, par)
    {
        json_t *children = json_object_get(child_map, json_string_value(par));
        if (!children || !push(children, jstr(uid)))
            return false;
    }
    return true;
}

json_t *docs_manifest(const models_project_t *p, const config_t *cfg, const char *generated_at)
{
    uids_t u = {0};
    json_t *root = json_object(), *meta = json_object(), *nodes = json_object(),
           *sources = json_object(), *disabled = json_object(), *parent_map = json_object(),
           *child_map = json_object();
    bool ok = root && meta && nodes && sources && disabled && parent_map && child_map &&
              uids_make(&u, p) && set(meta, "generated_by", jstr("eltd")) &&
              set(meta, "eltd_version", jstr(ELTD_VERSION)) &&
              set(meta, "generated_at", jstr(generated_at)) &&
              set(meta, "project_name", jstr(u.project)) &&
              set(meta, "adapter_type", jstr("clickhouse"));
    /* Sources first: models name them as parents. */
    for (size_t i = 0; ok && i < p->nsrcs; i++) {
        json_t *n = source_node(p, cfg, &u, i);
        ok = n && set(sources, u.src[i], n) && set(parent_map, u.src[i], json_array()) &&
             set(child_map, u.src[i], json_array());
    }
    /* Every node with an empty child list first, then the edges: each list of children is
     * in project order (models, then tests). dbt keeps disabled models apart, each id with
     * a list of candidates. */
    for (size_t i = 0; ok && i < p->nmodels; i++) {
        json_t *one = NULL;
        if (p->models[i].config.enabled)
            ok = set(nodes, u.model[i], model_node(p, cfg, &u, i)) &&
                 set(child_map, u.model[i], json_array());
        else
            ok = (one = json_array()) && set(disabled, u.model[i], one) &&
                 push(one, model_node(p, cfg, &u, i));
    }
    for (size_t i = 0; ok && i < p->ntests; i++)
        ok = set(nodes, u.test[i], test_node(p, &u, i)) && set(child_map, u.test[i], json_array());
    for (size_t i = 0; ok && i < p->nmodels; i++)
        if (p->models[i].config.enabled)
            ok = link(nodes, parent_map, child_map, u.model[i]);
    for (size_t i = 0; ok && i < p->ntests; i++)
        ok = link(nodes, parent_map, child_map, u.test[i]);
    ok = ok && set(root, "metadata", json_incref(meta)) && set(root, "nodes", json_incref(nodes)) &&
         set(root, "sources", json_incref(sources)) &&
         set(root, "disabled", json_incref(disabled)) &&
         set(root, "parent_map", json_incref(parent_map)) &&
         set(root, "child_map", json_incref(child_map)) && set(root, "macros", json_object()) &&
         set(root, "docs", json_object()) && set(root, "exposures", json_object()) &&
         set(root, "metrics", json_object()) && set(root, "selectors", json_object());
    uids_free(&u, p);
    json_decref(meta);
    json_decref(nodes);
    json_decref(sources);
    json_decref(disabled);
    json_decref(parent_map);
    json_decref(child_map);
    if (!ok) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* ---- the catalog ------------------------------------------------------------------- */

/* Undoes ClickHouse's TabSeparated escaping in place; returns the length (a \0 may be in
 * it). \N (NULL) reads as empty. */
static size_t tsv_unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r != '\\' || !r[1]) {
            *w++ = *r;
            continue;
        }
        switch (*++r) {
        case 'b':
            *w++ = '\b';
            break;
        case 'f':
            *w++ = '\f';
            break;
        case 'n':
            *w++ = '\n';
            break;
        case 'r':
            *w++ = '\r';
            break;
        case 't':
            *w++ = '\t';
            break;
        case 'a':
            *w++ = '\a';
            break;
        case 'v':
            *w++ = '\v';
            break;
        case '0':
            *w++ = '\0';
            break;
        case 'N':
            break;
        case 'x':
            if (isxdigit((unsigned char)r[1]) && isxdigit((unsigned char)r[2])) {
                char hex[3] = {r[1], r[2], '\0'};
                *w++ = (char)strtol(hex, NULL, 16);
                r += 2;
            } else {
                *w++ = 'x';
            }
            break;
        default:
            *w++ = *r;
            break;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

#define TSV_MAX_FIELDS 5

/* One row of a TSV answer: its fields, unescaped. */
typedef struct tsv_row {
    char *f[TSV_MAX_FIELDS];
    size_t len[TSV_MAX_FIELDS];
} tsv_row_t;

/* Splits line (changed in place) into exactly n fields; otherwise the count found. */
static size_t tsv_split(char *line, tsv_row_t *row, size_t n)
{
    size_t found = 1;
    for (const char *c = line; (c = strchr(c, '\t')); c++)
        found++;
    if (found != n)
        return found;
    char *s = line;
    for (size_t k = 0; k < n; k++) {
        char *tab = strchr(s, '\t');
        if (tab)
            *tab = '\0';
        row->f[k] = s;
        row->len[k] = tsv_unescape(s);
        s = tab ? tab + 1 : s;
    }
    return n;
}

static bool parse_count(const char *s, size_t len, json_int_t *out)
{
    if (len == 0 || len > 19 || strlen(s) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno)
        return false;
    *out = (json_int_t)v;
    return true;
}

/* Which manifest entry a relation is: "<len>:<db>.<table>" -> uid, kind. */
typedef struct catalog_ctx {
    json_t *where; /* key -> ["nodes"|"sources", uid] */
    json_t *out;   /* the catalog being built */
    char *err;
    size_t errlen;
} catalog_ctx_t;

static char *relation_key(const char *db, size_t dblen, const char *table, size_t tlen)
{
    char *k = malloc(dblen + tlen + 24);
    if (!k)
        return NULL;
    int n = snprintf(k, 22, "%zu:", dblen);
    memcpy(k + n, db, dblen);
    k[n + dblen] = '.';
    memcpy(k + n + dblen + 1, table, tlen);
    k[n + dblen + 1 + tlen] = '\0';
    /* A NUL inside a name would cut the key: no manifest relation has one. */
    for (size_t i = 0; i < (size_t)n + dblen + 1 + tlen; i++)
        if (!k[i])
            k[i] = '\x01';
    return k;
}

static bool index_relations(json_t *where, const json_t *entries, const char *kind)
{
    const char *uid;
    json_t *n;
    json_object_foreach((json_t *)entries, uid, n)
    {
        const char *rt = sget(n, "resource_type");
        if (!rt || strcmp(rt, kind[0] == 'n' ? "model" : "source"))
            continue;
        const char *db = sget(n, "schema");
        const char *table = sget(n, kind[0] == 'n' ? "alias" : "identifier");
        if (!table)
            table = sget(n, "name");
        if (!db || !table)
            continue;
        char *key = relation_key(db, strlen(db), table, strlen(table));
        bool ok = key && set(where, key, json_pack("[ss]", kind, uid));
        free(key);
        if (!ok)
            return false;
    }
    return true;
}

/* The catalog entry of relation (db, table), made on first sight; NULL with *ok true when
 * the manifest does not name the relation, with *ok false on out-of-memory. */
static json_t *catalog_entry(catalog_ctx_t *c, const tsv_row_t *row, bool *ok)
{
    char *key = relation_key(row->f[0], row->len[0], row->f[1], row->len[1]);
    *ok = key != NULL;
    json_t *w = key ? json_object_get(c->where, key) : NULL;
    free(key);
    if (!w)
        return NULL;
    const char *kind = json_string_value(json_array_get(w, 0));
    const char *uid = json_string_value(json_array_get(w, 1));
    json_t *group = json_object_get(c->out, kind), *e = json_object_get(group, uid);
    if (e)
        return e;
    json_t *meta = json_object();
    e = json_object();
    *ok = meta && e && set(meta, "type", json_null()) &&
          set(meta, "schema", jstrn(row->f[0], row->len[0])) &&
          set(meta, "name", jstrn(row->f[1], row->len[1])) && set(meta, "database", json_null()) &&
          set(meta, "comment", json_null()) && set(meta, "owner", json_null()) &&
          set(e, "unique_id", jstr(uid)) && set(e, "metadata", json_incref(meta)) &&
          set(e, "columns", json_object()) && set(group, uid, json_incref(e));
    json_decref(meta);
    json_decref(e);
    return *ok ? e : NULL;
}

/* One TSV answer, row by row through on_row; false with c->err set on a bad row. */
static bool parse_tsv(catalog_ctx_t *c, const char *what, const char *tsv, size_t nfields,
                      bool (*on_row)(catalog_ctx_t *c, const char *what, size_t line,
                                     tsv_row_t *row))
{
    char *copy = strdup(tsv ? tsv : "");
    if (!copy) {
        snprintf(c->err, c->errlen, "out of memory");
        return false;
    }
    bool ok = true;
    size_t line = 0;
    for (char *s = copy, *nl; ok && *s; s = nl ? nl + 1 : s + strlen(s)) {
        nl = strchr(s, '\n');
        if (nl)
            *nl = '\0';
        line++;
        tsv_row_t row;
        size_t got = tsv_split(s, &row, nfields);
        if (got != nfields) {
            snprintf(c->err, c->errlen, "%s: line %zu: expected %zu fields, got %zu", what, line,
                     nfields, got);
            ok = false;
        } else {
            ok = on_row(c, what, line, &row);
        }
    }
    free(copy);
    return ok;
}

static bool oom(catalog_ctx_t *c)
{
    snprintf(c->err, c->errlen, "out of memory");
    return false;
}

/* tables: database, name, engine. */
static bool on_table(catalog_ctx_t *c, const char *what, size_t line, tsv_row_t *row)
{
    (void)what, (void)line;
    bool ok;
    json_t *e = catalog_entry(c, row, &ok);
    if (e && !set(json_object_get(e, "metadata"), "type", jstrn(row->f[2], row->len[2])))
        ok = false;
    return ok || oom(c);
}

/* columns: database, table, name, type, comment — in column order. */
static bool on_column(catalog_ctx_t *c, const char *what, size_t line, tsv_row_t *row)
{
    (void)what, (void)line;
    bool ok;
    json_t *e = catalog_entry(c, row, &ok);
    if (!e)
        return ok || oom(c);
    json_t *cols = json_object_get(e, "columns"), *col = json_object();
    ok = col && set(col, "name", jstrn(row->f[2], row->len[2])) &&
         set(col, "type", jstrn(row->f[3], row->len[3])) &&
         set(col, "index", json_integer((json_int_t)json_object_size(cols) + 1)) &&
         set(col, "comment", row->len[4] ? jstrn(row->f[4], row->len[4]) : json_null()) &&
         setn(cols, row->f[2], row->len[2], json_incref(col));
    json_decref(col);
    return ok || oom(c);
}

static json_t *stat_json(const char *id, const char *label, json_int_t value, const char *desc)
{
    return json_pack("{s:s, s:s, s:I, s:b, s:s}", "id", id, "label", label, "value", value,
                     "include", 1, "description", desc);
}

static bool set_stats(json_t *e, json_int_t rows, json_int_t bytes)
{
    json_t *st = json_object();
    bool ok =
        st &&
        set(st, "has_stats",
            json_pack("{s:s, s:s, s:b, s:b, s:s}", "id", "has_stats", "label", "Has Stats?",
                      "value", 1, "include", 0, "description",
                      "Indicates whether there are statistics for this table")) &&
        set(st, "row_count",
            stat_json("row_count", "Row Count", rows, "Rows in the active parts")) &&
        set(st, "bytes",
            stat_json("bytes", "Approximate Size", bytes, "Bytes on disk of the active parts"));
    if (!ok) {
        json_decref(st);
        return false;
    }
    return set(e, "stats", st);
}

/* parts: database, table, rows, bytes_on_disk (active parts, summed). */
static bool on_parts(catalog_ctx_t *c, const char *what, size_t line, tsv_row_t *row)
{
    json_int_t rows, bytes;
    if (!parse_count(row->f[2], row->len[2], &rows) ||
        !parse_count(row->f[3], row->len[3], &bytes)) {
        snprintf(c->err, c->errlen, "%s: line %zu: rows and bytes must be whole numbers", what,
                 line);
        return false;
    }
    bool ok;
    json_t *e = catalog_entry(c, row, &ok);
    return (ok && (!e || set_stats(e, rows, bytes))) || oom(c);
}

/* A MergeTree table without active parts is empty; a view or another engine without parts
 * has no sizes to show, so it gets no stats. */
static bool fill_empty_stats(json_t *group)
{
    const char *uid;
    json_t *e;
    json_object_foreach(group, uid, e)
    {
        const char *type = sget(json_object_get(e, "metadata"), "type");
        if (!json_object_get(e, "stats") && type && strstr(type, "MergeTree") &&
            !set_stats(e, 0, 0))
            return false;
    }
    return true;
}

json_t *docs_catalog(const json_t *manifest, const char *columns_tsv, const char *tables_tsv,
                     const char *parts_tsv, const char *generated_at, char *err, size_t errlen)
{
    catalog_ctx_t c = {.where = json_object(), .out = json_object(), .err = err, .errlen = errlen};
    bool ok = c.where && c.out &&
              set(c.out, "metadata",
                  json_pack("{s:s, s:s, s:s}", "generated_at", generated_at ? generated_at : "",
                            "generated_by", "eltd", "eltd_version", ELTD_VERSION)) &&
              set(c.out, "nodes", json_object()) && set(c.out, "sources", json_object()) &&
              set(c.out, "errors", json_null()) &&
              index_relations(c.where, json_object_get(manifest, "nodes"), "nodes") &&
              index_relations(c.where, json_object_get(manifest, "sources"), "sources");
    if (!ok)
        oom(&c);
    ok = ok && parse_tsv(&c, "tables", tables_tsv, 3, on_table) &&
         parse_tsv(&c, "columns", columns_tsv, 5, on_column) &&
         parse_tsv(&c, "parts", parts_tsv, 4, on_parts);
    if (ok && (!fill_empty_stats(json_object_get(c.out, "nodes")) ||
               !fill_empty_stats(json_object_get(c.out, "sources"))))
        ok = oom(&c);
    json_decref(c.where);
    if (!ok) {
        json_decref(c.out);
        return NULL;
    }
    return c.out;
}

/* ---- index.html -------------------------------------------------------------------- */

/* Markup the page itself writes; never text from the project (see buf_esc). */
static void buf_raw(strbuf_t *b, const char *s)
{
    strbuf_put(b, s, strlen(s));
}

/* Text from the project (names, descriptions, SQL, types): escaped for an element's content
 * and for a quoted attribute alike. */
static void buf_esc(strbuf_t *b, const char *s)
{
    for (const char *run = s; s && *run;) {
        size_t n = strcspn(run, "&<>\"'");
        strbuf_put(b, run, n);
        run += n;
        if (!*run)
            break;
        switch (*run++) {
        case '&':
            buf_raw(b, "&amp;");
            break;
        case '<':
            buf_raw(b, "&lt;");
            break;
        case '>':
            buf_raw(b, "&gt;");
            break;
        case '"':
            buf_raw(b, "&quot;");
            break;
        default:
            buf_raw(b, "&#39;");
            break;
        }
    }
}

/* An element with escaped text: <tag>text</tag>. */
static void buf_elem(strbuf_t *b, const char *tag, const char *text)
{
    strbuf_printf(b, "<%s>", tag);
    buf_esc(b, text);
    strbuf_printf(b, "</%s>", tag);
}

static void buf_size(strbuf_t *b, json_int_t bytes)
{
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    if (bytes < 1024) {
        strbuf_printf(b, "%lld B", (long long)bytes);
        return;
    }
    double v = (double)bytes / 1024;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof unit / sizeof *unit)
        v /= 1024, u++;
    strbuf_printf(b, "%.1f %s", v, unit[u]);
}

/* What the page is drawn from. */
typedef struct page {
    strbuf_t b;
    const json_t *manifest, *catalog; /* catalog may be NULL */
    const json_t *nodes, *sources, *child_map;
    const json_t **models, **srcs;
    size_t nmodels, nsrcs, ntests;
} page_t;

/* Length of path's folder part ("staging" of "staging/x.sql"), 0 at the top. */
static size_t folder_len(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash ? (size_t)(slash - path) : 0;
}

static int cmp_str(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "");
}

/* Models by folder, then by name: the order of the contents and of the page. */
static int cmp_models(const void *x, const void *y)
{
    const json_t *a = *(const json_t *const *)x, *b = *(const json_t *const *)y;
    const char *pa = sget(a, "path"), *pb = sget(b, "path");
    size_t la = folder_len(pa), lb = folder_len(pb);
    int c = memcmp(pa ? pa : "", pb ? pb : "", la < lb ? la : lb);
    if (!c)
        c = (la > lb) - (la < lb);
    return c ? c : cmp_str(sget(a, "name"), sget(b, "name"));
}

static int cmp_sources(const void *x, const void *y)
{
    const json_t *a = *(const json_t *const *)x, *b = *(const json_t *const *)y;
    int c = cmp_str(sget(a, "source_name"), sget(b, "source_name"));
    return c ? c : cmp_str(sget(a, "name"), sget(b, "name"));
}

static bool page_collect(page_t *pg)
{
    pg->nodes = json_object_get(pg->manifest, "nodes");
    pg->sources = json_object_get(pg->manifest, "sources");
    pg->child_map = json_object_get(pg->manifest, "child_map");
    pg->models = calloc(json_object_size(pg->nodes) + 1, sizeof *pg->models);
    pg->srcs = calloc(json_object_size(pg->sources) + 1, sizeof *pg->srcs);
    if (!pg->models || !pg->srcs)
        return false;
    const char *uid;
    json_t *n;
    json_object_foreach((json_t *)pg->nodes, uid, n)
    {
        const char *rt = sget(n, "resource_type");
        if (rt && !strcmp(rt, "model"))
            pg->models[pg->nmodels++] = n;
        else if (rt && !strcmp(rt, "test"))
            pg->ntests++;
    }
    json_object_foreach((json_t *)pg->sources, uid, n)
    {
        pg->srcs[pg->nsrcs++] = n;
    }
    qsort(pg->models, pg->nmodels, sizeof *pg->models, cmp_models);
    qsort(pg->srcs, pg->nsrcs, sizeof *pg->srcs, cmp_sources);
    return true;
}

/* A link to the node or source uid, labelled with its name; plain text when the manifest
 * has no such entry. */
static void page_link(page_t *pg, const char *uid)
{
    const json_t *n = json_object_get(pg->nodes, uid);
    bool src = !n && (n = json_object_get(pg->sources, uid)) != NULL;
    if (!n) {
        buf_esc(&pg->b, uid);
        return;
    }
    buf_raw(&pg->b, "<a href=\"#");
    buf_esc(&pg->b, uid);
    buf_raw(&pg->b, "\">");
    if (src) {
        buf_esc(&pg->b, sget(n, "source_name"));
        buf_raw(&pg->b, ".");
    }
    buf_esc(&pg->b, sget(n, "name"));
    buf_raw(&pg->b, "</a>");
}

/* Links to each uid of list that is a model or a source (tests are shown by column). */
static void page_links(page_t *pg, const json_t *list)
{
    size_t i, shown = 0;
    json_t *v;
    json_array_foreach((json_t *)list, i, v)
    {
        const char *uid = json_string_value(v);
        const json_t *n = json_object_get(pg->nodes, uid);
        const char *rt = n ? sget(n, "resource_type") : NULL;
        if (!uid || (n && rt && !strcmp(rt, "test")))
            continue;
        if (shown++)
            buf_raw(&pg->b, ", ");
        page_link(pg, uid);
    }
    if (!shown)
        buf_raw(&pg->b, "<span class=\"muted\">nothing</span>");
}

static void page_head(page_t *pg)
{
    const json_t *meta = json_object_get(pg->manifest, "metadata");
    const char *project = sget(meta, "project_name");
    strbuf_t *b = &pg->b;
    buf_raw(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
               "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
               "<title>");
    buf_esc(b, project);
    buf_raw(b, " &middot; eltd docs</title>\n<style>\n"
               "body{margin:0;font:15px/1.5 system-ui,-apple-system,\"Segoe UI\",Helvetica,"
               "Arial,sans-serif;color:#1f2328;background:#f6f8fa}\n"
               "header{background:#262a38;color:#fff;padding:1rem 2rem}\n"
               "header h1{margin:0}header p{margin:.25rem 0 0;color:#c9d1d9}\n"
               ".layout{display:flex;align-items:flex-start}\n"
               "nav{flex:none;width:17rem;box-sizing:border-box;padding:1rem;position:sticky;"
               "top:0;max-height:100vh;overflow:auto;border-right:1px solid #d0d7de}\n"
               "nav ul{list-style:none;margin:0 0 .75rem;padding:0}nav li{margin:.1rem 0}\n"
               "nav h2{font-size:1.1rem}nav h3{font-size:1rem;margin:.75rem 0 .25rem}\n"
               "nav h4{font-size:.85rem;margin:.5rem 0 .2rem;color:#57606a}\n"
               "main{flex:1;min-width:0;padding:1rem 2rem}\n"
               "article{background:#fff;border:1px solid #d0d7de;border-radius:6px;"
               "padding:.75rem 1.25rem;margin:0 0 1.25rem}\n"
               "article:target{outline:2px solid #0969da}\n"
               "article h4{font-size:1.2rem;margin:.25rem 0 .5rem}\n"
               "a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}\n"
               "dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}\n"
               "dt{font-weight:600;color:#57606a}dd{margin:0}\n"
               "table{border-collapse:collapse;width:100%;margin:.25rem 0 .75rem}\n"
               "th,td{border-bottom:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;"
               "vertical-align:top}\n"
               "th{background:#f6f8fa}\n"
               "pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;"
               "padding:.75rem;overflow:auto}\n"
               "code{font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}\n"
               ".tag{display:inline-block;background:#ddf4ff;border-radius:1em;padding:0 .5em;"
               "margin-right:.25em;font-size:.85em}\n"
               ".test{display:inline-block;background:#eef1f4;border-radius:4px;padding:0 .35em;"
               "margin:0 .25em .15em 0;font-size:.85em}\n"
               ".muted{color:#57606a}.desc{white-space:pre-line}\n"
               "</style>\n</head>\n<body>\n<header>\n");
    buf_elem(b, "h1", project);
    buf_raw(b, "\n<p>Generated by eltd at ");
    buf_esc(b, sget(meta, "generated_at"));
    strbuf_printf(b, " &middot; %zu models &middot; %zu tests &middot; %zu sources", pg->nmodels,
                  pg->ntests, pg->nsrcs);
    if (!pg->catalog)
        buf_raw(b, " &middot; no catalog");
    buf_raw(b, "</p>\n</header>\n");
}

/* Is model i the first of its folder in the sorted list? */
static bool folder_starts(const page_t *pg, size_t i)
{
    if (i == 0)
        return true;
    const char *a = sget(pg->models[i - 1], "path"), *b = sget(pg->models[i], "path");
    size_t la = folder_len(a), lb = folder_len(b);
    return la != lb || (la && memcmp(a, b, la));
}

static void folder_name(page_t *pg, size_t i)
{
    const char *path = sget(pg->models[i], "path");
    size_t n = folder_len(path);
    if (!n) {
        buf_raw(&pg->b, "(top level)");
        return;
    }
    char *f = strndup(path, n);
    if (!f)
        pg->b.oom = true;
    buf_esc(&pg->b, f);
    free(f);
}

static void page_toc(page_t *pg)
{
    strbuf_t *b = &pg->b;
    buf_raw(b, "<nav>\n<h2>Contents</h2>\n<h3><a href=\"#sources\">Sources</a></h3>\n<ul>\n");
    for (size_t i = 0; i < pg->nsrcs; i++) {
        buf_raw(b, "<li>");
        page_link(pg, sget(pg->srcs[i], "unique_id"));
        buf_raw(b, "</li>\n");
    }
    buf_raw(b, "</ul>\n<h3><a href=\"#models\">Models</a></h3>\n");
    for (size_t i = 0; i < pg->nmodels; i++) {
        if (folder_starts(pg, i)) {
            if (i)
                buf_raw(b, "</ul>\n");
            buf_raw(b, "<h4>");
            folder_name(pg, i);
            buf_raw(b, "</h4>\n<ul>\n");
        }
        buf_raw(b, "<li>");
        page_link(pg, sget(pg->models[i], "unique_id"));
        buf_raw(b, "</li>\n");
    }
    if (pg->nmodels)
        buf_raw(b, "</ul>\n");
    strbuf_printf(b,
                  "<h3>Tests</h3>\n<p>%zu tests, listed with the columns they check.</p>\n</nav>\n",
                  pg->ntests);
}

/* The catalog's entry for uid, NULL without one. */
static const json_t *page_catalog(const page_t *pg, const char *uid, bool source)
{
    return json_object_get(json_object_get(pg->catalog, source ? "sources" : "nodes"), uid);
}

/* Engine, rows and size from the catalog: "not built" when it lacks the relation, nothing
 * without a catalog. */
static void page_built(page_t *pg, const char *uid, bool source)
{
    strbuf_t *b = &pg->b;
    if (!pg->catalog)
        return;
    const json_t *c = page_catalog(pg, uid, source);
    if (!c) {
        buf_raw(b, "<dt>Built</dt><dd class=\"muted\">not built</dd>\n");
        return;
    }
    const char *engine = sget(json_object_get(c, "metadata"), "type");
    if (engine) {
        buf_raw(b, "<dt>ClickHouse engine</dt><dd>");
        buf_esc(b, engine);
        buf_raw(b, "</dd>\n");
    }
    const json_t *stats = json_object_get(c, "stats");
    const json_t *rows = json_object_get(json_object_get(stats, "row_count"), "value");
    const json_t *bytes = json_object_get(json_object_get(stats, "bytes"), "value");
    if (json_is_integer(rows))
        strbuf_printf(b, "<dt>Rows</dt><dd>%lld</dd>\n", (long long)json_integer_value(rows));
    if (json_is_integer(bytes)) {
        buf_raw(b, "<dt>Size</dt><dd>");
        buf_size(b, json_integer_value(bytes));
        buf_raw(b, "</dd>\n");
    }
}

/* Appends name to the list of column names unless it is there. */
static bool add_column_name(json_t *names, const char *name)
{
    size_t i;
    json_t *v;
    if (!name)
        return true;
    json_array_foreach(names, i, v)
    {
        if (!strcmp(json_string_value(v), name))
            return true;
    }
    return push(names, jstr(name));
}

/* The tests of model uid on column, each with what it checks. */
static void page_tests(page_t *pg, const char *uid, const char *column)
{
    strbuf_t *b = &pg->b;
    const char *tuid;
    json_t *t;
    json_object_foreach((json_t *)pg->nodes, tuid, t)
    {
        const char *rt = sget(t, "resource_type"), *on = sget(t, "attached_node");
        const char *col = sget(t, "column_name");
        if (!rt || strcmp(rt, "test") || !on || strcmp(on, uid) || !col || strcmp(col, column))
            continue;
        const json_t *meta = json_object_get(t, "test_metadata");
        const json_t *kw = json_object_get(meta, "kwargs");
        const char *kind = sget(meta, "name");
        buf_raw(b, "<span class=\"test\" title=\"");
        buf_esc(b, sget(t, "name"));
        buf_raw(b, "\">");
        buf_esc(b, kind);
        if (kind && !strcmp(kind, "accepted_values")) {
            buf_raw(b, ": ");
            size_t i;
            json_t *v;
            json_array_foreach(json_object_get(kw, "values"), i, v)
            {
                if (i)
                    buf_raw(b, ", ");
                buf_esc(b, json_string_value(v));
            }
        } else if (kind && !strcmp(kind, "relationships")) {
            /* The parent is the other model the test depends on. */
            const json_t *deps = json_object_get(json_object_get(t, "depends_on"), "nodes");
            const char *parent = json_string_value(json_array_get(deps, 1));
            buf_raw(b, " &rarr; ");
            page_link(pg, parent ? parent : uid);
            buf_raw(b, ".");
            buf_esc(b, sget(kw, "field"));
        }
        const char *sev = sget(json_object_get(t, "config"), "severity");
        if (sev && !strcmp(sev, "warn"))
            buf_raw(b, " (warn)");
        buf_raw(b, "</span>");
    }
}

/* The columns table: ClickHouse's columns in order, then documented columns it lacks, then
 * tested ones (a model's tests only). */
static void page_columns(page_t *pg, const json_t *n, const char *uid, bool source)
{
    strbuf_t *b = &pg->b;
    const json_t *cat = page_catalog(pg, uid, source);
    const json_t *catcols = json_object_get(cat, "columns");
    const json_t *docs = json_object_get(n, "columns");
    json_t *names = json_array();
    if (!names) {
        b->oom = true;
        return;
    }
    bool ok = true;
    /* The catalog's columns by their index. */
    size_t ncat = json_object_size(catcols);
    for (size_t want = 1; ok && want <= ncat; want++) {
        const char *name;
        json_t *col;
        json_object_foreach((json_t *)catcols, name, col)
        {
            if (json_integer_value(json_object_get(col, "index")) == (json_int_t)want) {
                ok = add_column_name(names, name);
                break;
            }
        }
    }
    const char *name;
    json_t *col;
    json_object_foreach((json_t *)docs, name, col)
    {
        ok = ok && add_column_name(names, name);
    }
    const char *tuid;
    json_t *t;
    json_object_foreach((json_t *)pg->nodes, tuid, t)
    {
        const char *on = sget(t, "attached_node");
        if (!source && on && !strcmp(on, uid))
            ok = ok && add_column_name(names, sget(t, "column_name"));
    }
    if (!ok)
        b->oom = true;
    buf_raw(b, "<h5>Columns</h5>\n");
    if (!json_array_size(names)) {
        buf_raw(b, "<p class=\"muted\">No columns documented");
        buf_raw(b, pg->catalog ? " or built.</p>\n" : ".</p>\n");
        json_decref(names);
        return;
    }
    buf_raw(b, "<table>\n<thead><tr><th>Column</th>");
    if (pg->catalog)
        buf_raw(b, "<th>Type</th>");
    buf_raw(b, "<th>Description</th>");
    if (!source)
        buf_raw(b, "<th>Tests</th>");
    buf_raw(b, "</tr></thead>\n<tbody>\n");
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v)
    {
        const char *cname = json_string_value(v);
        const json_t *cc = json_object_get(catcols, cname);
        const char *desc = sget(json_object_get(docs, cname), "description");
        const char *comment = sget(cc, "comment");
        buf_raw(b, "<tr><td><code>");
        buf_esc(b, cname);
        buf_raw(b, "</code></td>");
        if (pg->catalog) {
            buf_raw(b, "<td><code>");
            buf_esc(b, sget(cc, "type"));
            buf_raw(b, "</code></td>");
        }
        buf_raw(b, "<td class=\"desc\">");
        /* The schema.yml description, else ClickHouse's column comment. */
        buf_esc(b, desc && *desc ? desc : comment);
        buf_raw(b, "</td>");
        if (!source) {
            buf_raw(b, "<td>");
            page_tests(pg, uid, cname);
            buf_raw(b, "</td>");
        }
        buf_raw(b, "</tr>\n");
    }
    buf_raw(b, "</tbody>\n</table>\n");
    json_decref(names);
}

static void page_description(page_t *pg, const char *desc)
{
    if (desc && *desc) {
        buf_raw(&pg->b, "<p class=\"desc\">");
        buf_esc(&pg->b, desc);
        buf_raw(&pg->b, "</p>\n");
    } else {
        buf_raw(&pg->b, "<p class=\"muted\">No description.</p>\n");
    }
}

/* A <dt>/<dd> pair with an escaped value in <code>. */
static void page_fact_code(page_t *pg, const char *term, const char *value)
{
    if (!value)
        return;
    strbuf_printf(&pg->b, "<dt>%s</dt><dd><code>", term);
    buf_esc(&pg->b, value);
    buf_raw(&pg->b, "</code></dd>\n");
}

static void page_sql(page_t *pg, const char *title, const char *sql)
{
    strbuf_printf(&pg->b, "<h5>%s</h5>\n<pre><code>", title);
    buf_esc(&pg->b, sql);
    buf_raw(&pg->b, "</code></pre>\n");
}

static void page_model(page_t *pg, const json_t *n)
{
    strbuf_t *b = &pg->b;
    const char *uid = sget(n, "unique_id");
    const json_t *conf = json_object_get(n, "config");
    buf_raw(b, "<article id=\"");
    buf_esc(b, uid);
    buf_raw(b, "\">\n");
    buf_elem(b, "h4", sget(n, "name"));
    buf_raw(b, "\n");
    page_description(pg, sget(n, "description"));
    buf_raw(b, "<dl>\n");
    buf_raw(b, "<dt>Materialization</dt><dd>");
    buf_esc(b, sget(conf, "materialized"));
    buf_raw(b, "</dd>\n");
    page_fact_code(pg, "Relation", sget(n, "relation_name"));
    page_fact_code(pg, "File", sget(n, "original_file_path"));
    const json_t *tags = json_object_get(n, "tags");
    if (json_array_size(tags)) {
        buf_raw(b, "<dt>Tags</dt><dd>");
        size_t i;
        json_t *v;
        json_array_foreach((json_t *)tags, i, v)
        {
            buf_raw(b, "<span class=\"tag\">");
            buf_esc(b, json_string_value(v));
            buf_raw(b, "</span>");
        }
        buf_raw(b, "</dd>\n");
    }
    static const char *const shown[] = {"engine",      "order_by",   "partition_by",
                                        "primary_key", "unique_key", "incremental_strategy",
                                        "settings",    "alias"};
    for (size_t i = 0; i < sizeof shown / sizeof *shown; i++)
        page_fact_code(pg, shown[i], sget(conf, shown[i]));
    page_built(pg, uid, false);
    buf_raw(b, "<dt>Depends on</dt><dd>");
    page_links(pg, json_object_get(json_object_get(n, "depends_on"), "nodes"));
    buf_raw(b, "</dd>\n<dt>Referenced by</dt><dd>");
    page_links(pg, json_object_get(pg->child_map, uid));
    buf_raw(b, "</dd>\n</dl>\n");
    page_columns(pg, n, uid, false);
    page_sql(pg, "Compiled SQL", sget(n, "compiled_code"));
    buf_raw(b, "<details><summary>Raw SQL</summary>\n<pre><code>");
    buf_esc(b, sget(n, "raw_code"));
    buf_raw(b, "</code></pre>\n</details>\n</article>\n");
}

static void page_source(page_t *pg, const json_t *n)
{
    strbuf_t *b = &pg->b;
    const char *uid = sget(n, "unique_id");
    buf_raw(b, "<article id=\"");
    buf_esc(b, uid);
    buf_raw(b, "\">\n<h4>");
    buf_esc(b, sget(n, "source_name"));
    buf_raw(b, ".");
    buf_esc(b, sget(n, "name"));
    buf_raw(b, "</h4>\n");
    page_description(pg, sget(n, "description"));
    buf_raw(b, "<dl>\n");
    page_fact_code(pg, "Relation", sget(n, "relation_name"));
    const json_t *load = json_object_get(n, "eltd_load");
    if (json_is_object(load)) {
        buf_raw(b, "<dt>eltd load</dt><dd>PostgreSQL <code>");
        buf_esc(b, sget(load, "postgres"));
        buf_raw(b, "</code> &rarr; ClickHouse <code>");
        buf_esc(b, sget(load, "clickhouse"));
        buf_raw(b, "</code>, ");
        buf_esc(b, sget(load, "mode"));
        if (sget(load, "cursor")) {
            buf_raw(b, " on <code>");
            buf_esc(b, sget(load, "cursor"));
            buf_raw(b, "</code>");
        }
        buf_raw(b, "</dd>\n");
    } else {
        buf_raw(b, "<dt>eltd load</dt><dd class=\"muted\">none: not loaded by eltd</dd>\n");
    }
    page_built(pg, uid, true);
    buf_raw(b, "<dt>Used by</dt><dd>");
    page_links(pg, json_object_get(pg->child_map, uid));
    buf_raw(b, "</dd>\n</dl>\n");
    page_columns(pg, n, uid, true);
    buf_raw(b, "</article>\n");
}

static void page_body(page_t *pg)
{
    strbuf_t *b = &pg->b;
    buf_raw(b, "<main>\n<section id=\"sources\">\n<h2>Sources</h2>\n");
    for (size_t i = 0; i < pg->nsrcs; i++) {
        const char *sname = sget(pg->srcs[i], "source_name");
        if (i == 0 || cmp_str(sname, sget(pg->srcs[i - 1], "source_name"))) {
            buf_elem(b, "h3", sname);
            buf_raw(b, "\n");
            const char *sd = sget(pg->srcs[i], "source_description");
            if (sd && *sd) {
                buf_raw(b, "<p class=\"desc\">");
                buf_esc(b, sd);
                buf_raw(b, "</p>\n");
            }
        }
        page_source(pg, pg->srcs[i]);
    }
    if (!pg->nsrcs)
        buf_raw(b, "<p class=\"muted\">No sources declared.</p>\n");
    buf_raw(b, "</section>\n<section id=\"models\">\n<h2>Models</h2>\n");
    for (size_t i = 0; i < pg->nmodels; i++) {
        if (folder_starts(pg, i)) {
            buf_raw(b, "<h3>");
            folder_name(pg, i);
            buf_raw(b, "</h3>\n");
        }
        page_model(pg, pg->models[i]);
    }
    if (!pg->nmodels)
        buf_raw(b, "<p class=\"muted\">No models.</p>\n");
    buf_raw(b, "</section>\n</main>\n");
}

char *docs_html(const json_t *manifest, const json_t *catalog, size_t *len)
{
    page_t pg = {.manifest = manifest, .catalog = catalog};
    if (!page_collect(&pg))
        pg.b.oom = true;
    page_head(&pg);
    buf_raw(&pg.b, "<div class=\"layout\">\n");
    page_toc(&pg);
    page_body(&pg);
    buf_raw(&pg.b, "</div>\n</body>\n</html>\n");
    free(pg.models);
    free(pg.srcs);
    size_t n;
    char *html = strbuf_take(&pg.b, &n);
    if (len)
        *len = n;
    return html;
}

/* ---- the three files ------------------------------------------------------------------ */

/* j as indented JSON with sorted keys and a final newline. */
static char *json_text(const json_t *j, size_t *len)
{
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!text)
        return NULL;
    *len = strlen(text);
    char *line = realloc(text, *len + 2);
    if (!line) {
        free(text);
        return NULL;
    }
    line[(*len)++] = '\n';
    line[*len] = '\0';
    return line;
}

bool docs_build(const models_project_t *p, const config_t *cfg, const char *const *answers,
                const char *generated_at, docs_files_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_t *manifest = docs_manifest(p, cfg, generated_at), *catalog = NULL;
    snprintf(err, errlen, "out of memory");
    if (manifest) {
        if (answers)
            catalog = docs_catalog(manifest, answers[DOCS_Q_COLUMNS], answers[DOCS_Q_TABLES],
                                   answers[DOCS_Q_PARTS], generated_at, err, errlen);
        else
            catalog = json_pack("{s:{s:s, s:s}, s:{}, s:{}}", "metadata", "generated_at",
                                generated_at, "generated_by", "eltd", "nodes", "sources");
    }
    bool ok = catalog && (out->manifest = json_text(manifest, &out->manifest_len)) &&
              (out->catalog = json_text(catalog, &out->catalog_len)) &&
              (out->html = docs_html(manifest, answers ? catalog : NULL, &out->html_len));
    json_decref(manifest);
    json_decref(catalog);
    if (!ok)
        docs_files_free(out);
    return ok;
}

void docs_files_free(docs_files_t *f)
{
    free(f->manifest);
    free(f->catalog);
    free(f->html);
    memset(f, 0, sizeof *f);
}
