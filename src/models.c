/* models.c — reads a dbt project natively (dbt_project.yml, the models' .sql files, sources and
 * tests from .yml files), renders models through template.c with dbt's functions, checks
 * the model graph, selects nodes and adds the model and test tasks to a run's DAG. SQL
 * shapes and the tasks' I/O live in materialize.c. */
#include "models.h"

#include "materialize.h"
#include "select.h"
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

/* ---- small helpers ----------------------------------------------------------------- */

static bool strv_push(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (!nv)
        return false;
    *v = nv;
    if (!(nv[*n] = strdup(s)))
        return false;
    (*n)++;
    return true;
}

static bool strv_has(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i], s))
            return true;
    return false;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (n + 1 < cap)
            break;
        cap *= 2;
        char *nb = realloc(buf, cap);
        if (!nb) {
            free(buf);
            buf = NULL;
        }
        buf = nb;
    }
    bool bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static char *quote_ident(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(2 * n + 3), *o = out;
    if (!out)
        return NULL;
    *o++ = '`';
    for (const char *p = s; *p; p++) {
        if (*p == '`' || *p == '\\')
            *o++ = '\\';
        *o++ = *p;
    }
    *o++ = '`';
    *o = '\0';
    return out;
}

static char *relation_of(const char *db, const char *name)
{
    char *a = quote_ident(db), *b = quote_ident(name);
    char *r = a && b ? util_asprintf("%s.%s", a, b) : NULL;
    free(a);
    free(b);
    return r;
}

const char *models_mat_name(models_mat_t m)
{
    return m == MODELS_VIEW ? "view" : m == MODELS_TABLE ? "table" : "incremental";
}

const char *models_test_kind_name(models_test_kind_t k)
{
    static const char *const names[] = {"unique", "not_null", "accepted_values", "relationships"};
    return (unsigned)k < 4 ? names[k] : "?";
}

/* ---- YAML -------------------------------------------------------------------------- */

/* One parsed .yml file; nodes keep their positions for errors. */
typedef struct ydoc {
    char *file;
    yaml_document_t doc;
    bool loaded;
} ydoc_t;

static void yerr(char *err, size_t errlen, const char *file, const yaml_node_t *n, const char *fmt,
                 ...) __attribute__((format(printf, 5, 6)));
static void yerr(char *err, size_t errlen, const char *file, const yaml_node_t *n, const char *fmt,
                 ...)
{
    int k = snprintf(err, errlen, "%s:%zu:%zu: ", file, n ? n->start_mark.line + 1 : 1,
                     n ? n->start_mark.column + 1 : 1);
    if (k < 0 || (size_t)k >= errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
    va_end(ap);
}

static bool ydoc_load(ydoc_t *y, const char *file, char *err, size_t errlen)
{
    memset(y, 0, sizeof *y);
    y->file = strdup(file);
    FILE *f = fopen(file, "rb");
    if (!y->file || !f) {
        if (f)
            fclose(f);
        snprintf(err, errlen, "%s: cannot read: %s", file, strerror(errno));
        return false;
    }
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    bool ok = yaml_parser_load(&parser, &y->doc);
    if (!ok)
        snprintf(err, errlen, "%s:%zu:%zu: %s", file, parser.problem_mark.line + 1,
                 parser.problem_mark.column + 1, parser.problem ? parser.problem : "bad YAML");
    y->loaded = ok;
    yaml_parser_delete(&parser);
    fclose(f);
    return ok;
}

static void ydoc_free(ydoc_t *y)
{
    if (y->loaded)
        yaml_document_delete(&y->doc);
    free(y->file);
    memset(y, 0, sizeof *y);
}

static yaml_node_t *yroot(ydoc_t *y)
{
    return yaml_document_get_root_node(&y->doc);
}

static yaml_node_t *ynode(ydoc_t *y, int id)
{
    return yaml_document_get_node(&y->doc, id);
}

static const char *yscalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static bool yis_null(const yaml_node_t *n)
{
    const char *s = yscalar(n);
    return !n || (s && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                  (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
                   !strcmp(s, "NULL")));
}

/* The value of key in mapping m, or NULL. */
static yaml_node_t *yget(ydoc_t *y, yaml_node_t *m, const char *key)
{
    if (!m || m->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        const char *k = yscalar(ynode(y, p->key));
        if (k && !strcmp(k, key))
            return ynode(y, p->value);
    }
    return NULL;
}

/* A plain YAML scalar as JSON with YAML 1.1's core types; quoted scalars are strings. */
static json_t *yscalar_json(const yaml_node_t *n)
{
    const char *s = yscalar(n);
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return json_string(s);
    if (yis_null(n))
        return json_null();
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        return json_true();
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        return json_false();
    char *end;
    errno = 0;
    long long i = strtoll(s, &end, 10);
    if (*s && !*end && !errno)
        return json_integer(i);
    double d = strtod(s, &end);
    if (*s && !*end && (isdigit((unsigned char)*s) || *s == '-' || *s == '+' || *s == '.'))
        return json_real(d);
    return json_string(s);
}

static json_t *ynode_json(ydoc_t *y, yaml_node_t *n, int depth)
{
    if (!n || depth > 64)
        return NULL;
    if (n->type == YAML_SCALAR_NODE)
        return yscalar_json(n);
    if (n->type == YAML_SEQUENCE_NODE) {
        json_t *a = json_array();
        for (yaml_node_item_t *it = n->data.sequence.items.start;
             a && it < n->data.sequence.items.top; it++) {
            json_t *v = ynode_json(y, ynode(y, *it), depth + 1);
            if (!v || json_array_append_new(a, v)) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    json_t *o = json_object();
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; o && p < n->data.mapping.pairs.top;
         p++) {
        const char *k = yscalar(ynode(y, p->key));
        json_t *v = k ? ynode_json(y, ynode(y, p->value), depth + 1) : NULL;
        if (!v || json_object_set_new(o, k, v)) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

json_t *models_parse_vars(const char *text, char *err, size_t errlen)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    if (j && json_is_object(j))
        return j;
    json_decref(j);
    /* Not JSON: a YAML flow mapping such as {start_date: 2020-01-01, limit: 5}. */
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
    bool ok = yaml_parser_load(&parser, &doc);
    yaml_parser_delete(&parser);
    if (!ok) {
        snprintf(err, errlen, "--vars: not a JSON object or YAML mapping: %s", je.text);
        return NULL;
    }
    ydoc_t y = {.doc = doc, .loaded = true};
    yaml_node_t *root = yroot(&y);
    json_t *out = root && root->type == YAML_MAPPING_NODE ? ynode_json(&y, root, 0) : NULL;
    ydoc_free(&y);
    if (!out)
        snprintf(err, errlen, "--vars: expected a mapping like '{\"name\": value}'");
    return out;
}

/* ---- JSON values to template values ------------------------------------------------ */

static bool json_to_tpl(const json_t *j, tpl_value_t *out, int depth)
{
    *out = tpl_value_none();
    if (depth > 64)
        return false;
    switch (json_typeof(j)) {
    case JSON_STRING:
        return tpl_value_string(out, json_string_value(j), json_string_length(j));
    case JSON_INTEGER:
        *out = tpl_value_int(json_integer_value(j));
        return true;
    case JSON_REAL:
        *out = tpl_value_float(json_real_value(j));
        return true;
    case JSON_TRUE:
    case JSON_FALSE:
        *out = tpl_value_bool(json_is_true(j));
        return true;
    case JSON_NULL:
        return true;
    case JSON_ARRAY: {
        *out = tpl_value_list();
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            tpl_value_t item;
            if (!json_to_tpl(v, &item, depth + 1) || !tpl_value_list_push(out, &item)) {
                tpl_value_free(out);
                return false;
            }
        }
        return true;
    }
    case JSON_OBJECT: {
        *out = tpl_value_dict();
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v)
        {
            tpl_value_t item;
            if (!json_to_tpl(v, &item, depth + 1) || !tpl_value_dict_set(out, k, &item)) {
                tpl_value_free(out);
                return false;
            }
        }
        return true;
    }
    }
    return false;
}

/* ---- loading state ----------------------------------------------------------------- */

/* schema.yml's entry for one model, kept until the models are rendered. */
typedef struct model_yaml {
    ydoc_t *doc;
    yaml_node_t *node; /* the mapping with name: */
} model_yaml_t;

typedef struct loader {
    models_project_t *p;
    char *err;
    size_t errlen;
    ydoc_t project;          /* dbt_project.yml, when present */
    yaml_node_t *folder_cfg; /* models: -> <project name>: mapping, or NULL */
    ydoc_t *ymls;            /* every .yml under the model paths */
    size_t nymls;
    model_yaml_t *model_yaml; /* per model, node of its schema.yml entry (or NULL) */
    bool at_root;             /* walking a model path that is the project directory */
} loader_t;

/* ---- configs ----------------------------------------------------------------------- */

static void config_init(models_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->materialized = MODELS_VIEW;
    c->enabled = true;
}

static void config_free_fields(models_config_t *c)
{
    free(c->engine);
    free(c->order_by);
    free(c->partition_by);
    free(c->primary_key);
    free(c->settings);
    free(c->unique_key);
    free(c->strategy);
    free(c->alias);
    strv_free(c->tags, c->ntags);
    memset(c, 0, sizeof *c);
}

/* A config value in neutral form, from a template call or from YAML. */
typedef enum { CV_STRING, CV_BOOL, CV_LIST, CV_DICT, CV_OTHER } cv_type_t;

/* A string for a config key that takes SQL: strings as-is, lists joined with ", ". */
static char *tpl_sql_text(const tpl_value_t *v, bool paren_list)
{
    if (v->type == TPL_STRING)
        return strdup(v->u.str.ptr);
    if (v->type == TPL_INT)
        return util_asprintf("%lld", (long long)v->u.i);
    if (v->type != TPL_LIST)
        return NULL;
    size_t cap = 3;
    for (size_t i = 0; i < v->u.list.len; i++) {
        if (v->u.list.items[i].type != TPL_STRING)
            return NULL;
        cap += v->u.list.items[i].u.str.len + 2;
    }
    char *s = malloc(cap);
    if (!s)
        return NULL;
    s[0] = '\0';
    bool paren = paren_list && v->u.list.len != 1;
    if (paren)
        strcat(s, "(");
    for (size_t i = 0; i < v->u.list.len; i++) {
        if (i)
            strcat(s, ", ");
        strcat(s, v->u.list.items[i].u.str.ptr);
    }
    if (paren)
        strcat(s, ")");
    return s;
}

/* Applies one config key. Returns false with msg set for a bad value. Unknown keys that
 * change where or how a model is built are refused; descriptive ones are ignored. */
static bool config_apply(models_config_t *c, const char *key, const tpl_value_t *v, char *msg,
                         size_t msglen)
{
    char **slot = NULL;
    bool paren = false;
    if (!strcmp(key, "materialized")) {
        const char *s = v->type == TPL_STRING ? v->u.str.ptr : "";
        if (!strcmp(s, "view"))
            c->materialized = MODELS_VIEW;
        else if (!strcmp(s, "table"))
            c->materialized = MODELS_TABLE;
        else if (!strcmp(s, "incremental"))
            c->materialized = MODELS_INCREMENTAL;
        else {
            snprintf(msg, msglen, "materialized: expected view, table or incremental, got '%s'", s);
            return false;
        }
        return true;
    }
    if (!strcmp(key, "enabled")) {
        if (v->type != TPL_BOOL) {
            snprintf(msg, msglen, "enabled: expected true or false");
            return false;
        }
        c->enabled = v->u.b;
        return true;
    }
    if (!strcmp(key, "tags")) {
        if (v->type == TPL_STRING)
            return strv_has(c->tags, c->ntags, v->u.str.ptr) ||
                   strv_push(&c->tags, &c->ntags, v->u.str.ptr);
        if (v->type != TPL_LIST) {
            snprintf(msg, msglen, "tags: expected a string or a list of strings");
            return false;
        }
        for (size_t i = 0; i < v->u.list.len; i++) {
            const tpl_value_t *t = &v->u.list.items[i];
            if (t->type != TPL_STRING) {
                snprintf(msg, msglen, "tags: expected a string or a list of strings");
                return false;
            }
            if (!strv_has(c->tags, c->ntags, t->u.str.ptr) &&
                !strv_push(&c->tags, &c->ntags, t->u.str.ptr))
                return false;
        }
        return true;
    }
    if (!strcmp(key, "settings")) {
        if (v->type != TPL_DICT) {
            snprintf(msg, msglen, "settings: expected a mapping of setting names to values");
            return false;
        }
        char *acc = strdup("");
        for (size_t i = 0; acc && i < v->u.dict.len; i++) {
            const tpl_entry_t *e = &v->u.dict.items[i];
            char *val = NULL;
            if (e->value.type == TPL_STRING) {
                char *q = NULL;
                /* Quote like a ClickHouse string literal. */
                size_t n = e->value.u.str.len;
                q = malloc(2 * n + 3);
                if (q) {
                    char *o = q;
                    *o++ = '\'';
                    for (size_t k = 0; k < n; k++) {
                        char ch = e->value.u.str.ptr[k];
                        if (ch == '\'' || ch == '\\')
                            *o++ = '\\';
                        *o++ = ch;
                    }
                    *o++ = '\'';
                    *o = '\0';
                }
                val = q;
            } else if (e->value.type == TPL_INT || e->value.type == TPL_FLOAT ||
                       e->value.type == TPL_BOOL) {
                if (e->value.type == TPL_BOOL)
                    val = strdup(e->value.u.b ? "1" : "0");
                else if (!tpl_value_to_string(&e->value, &val, NULL))
                    val = NULL;
            } else {
                snprintf(msg, msglen, "settings: %s: expected a string or a number", e->key);
                free(acc);
                return false;
            }
            char *n2 =
                val ? util_asprintf("%s%s%s = %s", acc, *acc ? ", " : "", e->key, val) : NULL;
            free(val);
            free(acc);
            acc = n2;
        }
        if (!acc)
            return false;
        free(c->settings);
        c->settings = *acc ? acc : NULL;
        if (!*acc)
            free(acc);
        return true;
    }
    if (!strcmp(key, "engine"))
        slot = &c->engine;
    else if (!strcmp(key, "order_by"))
        slot = &c->order_by, paren = true;
    else if (!strcmp(key, "partition_by"))
        slot = &c->partition_by, paren = true;
    else if (!strcmp(key, "primary_key"))
        slot = &c->primary_key, paren = true;
    else if (!strcmp(key, "unique_key"))
        slot = &c->unique_key;
    else if (!strcmp(key, "alias"))
        slot = &c->alias;
    else if (!strcmp(key, "incremental_strategy")) {
        const char *s = v->type == TPL_STRING ? v->u.str.ptr : "";
        if (strcmp(s, "append") && strcmp(s, "delete+insert") && strcmp(s, "delete_insert")) {
            snprintf(msg, msglen,
                     "incremental_strategy: expected append or delete+insert, got '%s'", s);
            return false;
        }
        free(c->strategy);
        c->strategy = strdup(!strcmp(s, "append") ? "append" : "delete+insert");
        return c->strategy != NULL;
    } else if (!strcmp(key, "pre_hook") || !strcmp(key, "post_hook") || !strcmp(key, "schema") ||
               !strcmp(key, "database")) {
        snprintf(msg, msglen, "%s is not supported by eltd", key);
        return false;
    } else {
        return true; /* docs, meta, description, persist_docs, ... describe, not build */
    }
    if (v->type == TPL_NONE) {
        free(*slot);
        *slot = NULL;
        return true;
    }
    char *s = tpl_sql_text(v, paren);
    if (!s) {
        snprintf(msg, msglen, "%s: expected a string or a list of strings", key);
        return false;
    }
    free(*slot);
    *slot = s;
    return true;
}

/* YAML node -> template value, for configs written in YAML. */
static bool ynode_tpl(ydoc_t *y, yaml_node_t *n, tpl_value_t *out)
{
    json_t *j = ynode_json(y, n, 0);
    bool ok = j && json_to_tpl(j, out, 0);
    json_decref(j);
    return ok;
}

static bool is_config_key(const char *k)
{
    static const char *const keys[] = {"materialized",
                                       "enabled",
                                       "tags",
                                       "engine",
                                       "order_by",
                                       "partition_by",
                                       "primary_key",
                                       "settings",
                                       "unique_key",
                                       "alias",
                                       "incremental_strategy",
                                       "schema",
                                       "database",
                                       "pre_hook",
                                       "post_hook",
                                       "pre-hook",
                                       "post-hook",
                                       "persist_docs",
                                       "docs",
                                       "meta",
                                       "full_refresh",
                                       "on_schema_change",
                                       "contract",
                                       "grants",
                                       "group",
                                       "access"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!strcmp(k, keys[i]))
            return true;
    return false;
}

/* Applies the configs of one mapping level (`+key: v`, or a known key with a non-mapping
 * value). */
static bool apply_yaml_level(loader_t *L, ydoc_t *y, yaml_node_t *m, models_config_t *c)
{
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = ynode(y, p->key), *vn = ynode(y, p->value);
        const char *k = yscalar(kn);
        if (!k)
            continue;
        bool plus = k[0] == '+';
        const char *key = plus ? k + 1 : k;
        if (!plus && !(is_config_key(key) && vn->type != YAML_MAPPING_NODE))
            continue;
        if (!strcmp(key, "pre-hook") || !strcmp(key, "post-hook"))
            key = key[1] == 'r' ? "pre_hook" : "post_hook";
        tpl_value_t v;
        if (!ynode_tpl(y, vn, &v)) {
            yerr(L->err, L->errlen, y->file, vn, "cannot read %s", k);
            return false;
        }
        char msg[512] = "out of memory";
        bool ok = config_apply(c, key, &v, msg, sizeof msg);
        tpl_value_free(&v);
        if (!ok) {
            yerr(L->err, L->errlen, y->file, vn, "%s", msg);
            return false;
        }
    }
    return true;
}

/* dbt_project.yml's `models:` folder configs along the model's folders, then its name. */
static bool apply_folder_config(loader_t *L, const models_model_t *m, models_config_t *c)
{
    yaml_node_t *level = L->folder_cfg;
    if (!level)
        return true;
    if (!apply_yaml_level(L, &L->project, level, c))
        return false;
    char *dirs = strdup(m->fqn_dir);
    if (!dirs)
        return false;
    char *save = NULL;
    for (char *part = strtok_r(dirs, "/", &save); level; part = strtok_r(NULL, "/", &save)) {
        const char *key = part ? part : m->name;
        yaml_node_t *next = yget(&L->project, level, key);
        if (!next || next->type != YAML_MAPPING_NODE)
            break;
        level = next;
        if (!apply_yaml_level(L, &L->project, level, c)) {
            free(dirs);
            return false;
        }
        if (!part)
            break;
    }
    free(dirs);
    return true;
}

/* ---- rendering --------------------------------------------------------------------- */

typedef enum { PASS_LOAD, PASS_LOAD_INCREMENTAL, PASS_EXEC } pass_t;

typedef struct render_ctx {
    models_project_t *p;
    size_t model;
    pass_t pass;
    bool incremental;     /* PASS_EXEC: what is_incremental() answers */
    models_config_t *cfg; /* PASS_LOAD: where config() writes */
} render_ctx_t;

static const models_source_table_t *find_source(const models_project_t *p, const char *s,
                                                const char *t)
{
    for (size_t i = 0; i < p->nsrcs; i++)
        if (!strcmp(p->srcs[i].source, s) && !strcmp(p->srcs[i].table, t))
            return &p->srcs[i];
    return NULL;
}

/* The configured table a source table is loaded into, or NULL (external). */
static const config_table_t *source_load(const config_t *cfg, const models_source_table_t *st)
{
    for (size_t i = 0; i < cfg->ntables; i++)
        if (!strcmp(cfg->tables[i].target, st->identifier) ||
            !strcmp(cfg->tables[i].name, st->identifier))
            return &cfg->tables[i];
    return NULL;
}

static char *source_relation(const models_project_t *p, const models_source_table_t *st)
{
    const config_table_t *t = source_load(p->cfg, st);
    if (t)
        return relation_of(p->cfg->warehouse.raw_database, t->target);
    return relation_of(st->database ? st->database : p->cfg->warehouse.raw_database,
                       st->identifier);
}

const config_table_t *models_source_load(const config_t *cfg, const models_source_table_t *st)
{
    return source_load(cfg, st);
}

char *models_source_relation(const models_project_t *p, const models_source_table_t *st)
{
    return source_relation(p, st);
}

static bool host_lookup(void *ud, const char *name, tpl_value_t *out)
{
    render_ctx_t *r = ud;
    const models_model_t *m = &r->p->models[r->model];
    if (!strcmp(name, "this"))
        return m->relation && tpl_value_cstring(out, m->relation);
    if (!strcmp(name, "target")) {
        static const char *const keys[] = {"name", "type", "schema", "database"};
        const char *vals[] = {"eltd", "clickhouse", r->p->cfg->warehouse.analytics_database,
                              r->p->cfg->warehouse.analytics_database};
        *out = tpl_value_dict();
        for (size_t i = 0; i < 4; i++) {
            tpl_value_t v;
            if (!tpl_value_cstring(&v, vals[i]) || !tpl_value_dict_set(out, keys[i], &v)) {
                tpl_value_free(out);
                return false;
            }
        }
        return true;
    }
    return false;
}

static int call_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int call_error(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return TPL_CALL_ERROR;
}

static int ok_string(tpl_value_t *out, const char *s)
{
    return s && tpl_value_cstring(out, s) ? TPL_CALL_OK : TPL_CALL_ERROR;
}

static int host_call(void *ud, const char *name, const tpl_value_t *args, size_t nargs,
                     const tpl_kwarg_t *kw, size_t nkw, tpl_value_t *out, char *err, size_t errlen)
{
    render_ctx_t *r = ud;
    models_project_t *p = r->p;
    models_model_t *m = &p->models[r->model];
    bool recording = r->pass != PASS_EXEC;
    if (!strcmp(name, "ref")) {
        if (nargs < 1 || nargs > 2 || args[nargs - 1].type != TPL_STRING || nkw)
            return call_error(err, errlen, "ref() expects a model name");
        const char *target = args[nargs - 1].u.str.ptr;
        long i = models_find(p, target);
        if (i < 0)
            return call_error(err, errlen, "no model named '%s'", target);
        if (!p->models[i].config.enabled && recording)
            return call_error(err, errlen, "model '%s' is disabled", target);
        if ((size_t)i == r->model)
            return call_error(err, errlen, "a model cannot ref itself ('%s'; use this)", target);
        if (recording) {
            bool seen = false;
            for (size_t k = 0; k < m->nrefs; k++)
                seen = seen || m->refs[k] == (size_t)i;
            if (!seen) {
                size_t *nr = realloc(m->refs, (m->nrefs + 1) * sizeof *nr);
                if (!nr)
                    return TPL_CALL_ERROR;
                m->refs = nr;
                m->refs[m->nrefs++] = (size_t)i;
            }
        }
        return ok_string(out, p->models[i].relation);
    }
    if (!strcmp(name, "source")) {
        if (nargs != 2 || args[0].type != TPL_STRING || args[1].type != TPL_STRING || nkw)
            return call_error(err, errlen, "source() expects a source name and a table name");
        const char *s = args[0].u.str.ptr, *t = args[1].u.str.ptr;
        const models_source_table_t *st = find_source(p, s, t);
        if (!st)
            return call_error(err, errlen,
                              "%s.%s is not declared under sources: in the "
                              "project's .yml files",
                              s, t);
        if (recording) {
            char full[600];
            snprintf(full, sizeof full, "%s.%s", s, t);
            if (!strv_has(m->sources, m->nsources, full) &&
                !strv_push(&m->sources, &m->nsources, full))
                return TPL_CALL_ERROR;
            const config_table_t *ct = source_load(p->cfg, st);
            if (ct && !strv_has(m->tables, m->ntables, ct->target) &&
                !strv_push(&m->tables, &m->ntables, ct->target))
                return TPL_CALL_ERROR;
        }
        char *rel = source_relation(p, st);
        int rc = ok_string(out, rel);
        free(rel);
        return rc;
    }
    if (!strcmp(name, "config")) {
        if (nargs > 1 || (nargs == 1 && args[0].type != TPL_DICT))
            return call_error(err, errlen, "config() takes keyword arguments");
        if (r->pass == PASS_LOAD) {
            for (size_t i = 0; nargs == 1 && i < args[0].u.dict.len; i++)
                if (!config_apply(r->cfg, args[0].u.dict.items[i].key,
                                  &args[0].u.dict.items[i].value, err, errlen))
                    return TPL_CALL_ERROR;
            for (size_t i = 0; i < nkw; i++)
                if (!config_apply(r->cfg, kw[i].name, &kw[i].value, err, errlen))
                    return TPL_CALL_ERROR;
        }
        return ok_string(out, "");
    }
    if (!strcmp(name, "is_incremental")) {
        if (nargs || nkw)
            return call_error(err, errlen, "is_incremental() takes no arguments");
        bool v = r->pass == PASS_EXEC               ? r->incremental
                 : r->pass == PASS_LOAD_INCREMENTAL ? true
                                                    : false;
        *out = tpl_value_bool(v);
        return TPL_CALL_OK;
    }
    if (!strcmp(name, "var") || !strcmp(name, "env_var")) {
        const tpl_value_t *dflt = nargs > 1 ? &args[1] : NULL;
        for (size_t i = 0; i < nkw; i++) {
            if (strcmp(kw[i].name, "default"))
                return call_error(err, errlen, "%s(): unexpected argument %s", name, kw[i].name);
            dflt = &kw[i].value;
        }
        if (nargs < 1 || nargs > 2 || args[0].type != TPL_STRING)
            return call_error(err, errlen, "%s() expects a name and an optional default", name);
        const char *key = args[0].u.str.ptr;
        if (name[0] == 'v') {
            json_t *j = p->vars ? json_object_get(p->vars, key) : NULL;
            if (j)
                return json_to_tpl(j, out, 0) ? TPL_CALL_OK : TPL_CALL_ERROR;
            if (!dflt)
                return call_error(err, errlen,
                                  "'%s' is not defined (dbt_project.yml vars:, the "
                                  "config's models.vars or --vars) and has no default",
                                  key);
        } else {
            const char *e = getenv(key);
            if (e)
                return ok_string(out, e);
            if (!dflt)
                return call_error(err, errlen,
                                  "'%s' is not set in the environment and has no default", key);
        }
        return tpl_value_copy(out, dflt) ? TPL_CALL_OK : TPL_CALL_ERROR;
    }
    return TPL_CALL_UNKNOWN;
}

static bool render(models_project_t *p, size_t i, pass_t pass, bool incremental,
                   models_config_t *cfg, char **sql, char *err, size_t errlen)
{
    models_model_t *m = &p->models[i];
    render_ctx_t r = {.p = p, .model = i, .pass = pass, .incremental = incremental, .cfg = cfg};
    tpl_host_t host = {.ud = &r, .lookup = host_lookup, .call = host_call};
    tpl_error_t te;
    size_t len;
    if (!tpl_render(m->file, m->raw, m->rawlen, &host, sql, &len, &te)) {
        tpl_error_format(&te, err, errlen);
        return false;
    }
    return true;
}

bool models_render(const models_project_t *p, size_t i, bool incremental, char **sql, char *err,
                   size_t errlen)
{
    /* The exec pass writes nothing into the project. */
    return render((models_project_t *)p, i, PASS_EXEC, incremental, NULL, sql, err, errlen);
}

long models_find(const models_project_t *p, const char *name)
{
    for (size_t i = 0; i < p->nmodels; i++)
        if (!strcmp(p->models[i].name, name))
            return (long)i;
    return -1;
}

/* ---- discovering files ------------------------------------------------------------- */

static bool has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

/* Walks dir (sorted, hidden entries skipped) collecting .sql models and .yml files. rel is
 * the path shown to path: selectors, fqn the folders below the model path. */
static bool walk_dir(loader_t *L, const char *dir, const char *rel, const char *fqn, int depth)
{
    models_project_t *p = L->p;
    struct dirent **ents = NULL;
    int n = scandir(dir, &ents, NULL, alphasort);
    if (n < 0) {
        snprintf(L->err, L->errlen, "%s: cannot read the directory: %s", dir, strerror(errno));
        return false;
    }
    bool ok = true;
    for (int i = 0; i < n; i++) {
        const char *nm = ents[i]->d_name;
        if (!ok || nm[0] == '.' || depth > 32)
            continue;
        /* With model-paths: ["."] the project's own files and folders are not models. */
        static const char *const not_models[] = {
            "dbt_project.yml",  "profiles.yml",  "packages.yml",
            "dependencies.yml", "selectors.yml", "target",
            "dbt_packages",     "dbt_modules",   "logs",
            "macros",           "tests",         "seeds",
            "snapshots",        "analyses"};
        bool skip = false;
        for (size_t k = 0; L->at_root && depth == 0 && k < sizeof not_models / sizeof *not_models;
             k++)
            skip = skip || !strcmp(nm, not_models[k]);
        if (skip)
            continue;
        char *full = util_asprintf("%s/%s", dir, nm);
        char *r = util_asprintf("%s%s%s", rel, *rel ? "/" : "", nm);
        struct stat st;
        if (!full || !r || stat(full, &st) != 0) {
            ok = full && r ? true : (snprintf(L->err, L->errlen, "out of memory"), false);
        } else if (S_ISDIR(st.st_mode)) {
            char *f = util_asprintf("%s%s%s", fqn, *fqn ? "/" : "", nm);
            ok = f && walk_dir(L, full, r, f, depth + 1);
            free(f);
        } else if (has_suffix(nm, ".sql")) {
            models_model_t *nm2 = realloc(p->models, (p->nmodels + 1) * sizeof *nm2);
            if (!nm2) {
                ok = false;
            } else {
                p->models = nm2;
                models_model_t *m = &p->models[p->nmodels];
                memset(m, 0, sizeof *m);
                config_init(&m->config);
                m->name = strndup(nm, strlen(nm) - 4);
                m->file = full, full = NULL;
                m->path = r, r = NULL;
                m->fqn_dir = strdup(fqn);
                p->nmodels++;
                m->raw = read_file(m->file, &m->rawlen);
                if (!m->name || !m->fqn_dir || !m->raw) {
                    snprintf(L->err, L->errlen, "%s: cannot read: %s", m->file, strerror(errno));
                    ok = false;
                } else {
                    long prev = models_find(p, m->name);
                    if (prev >= 0 && (size_t)prev != p->nmodels - 1) {
                        snprintf(L->err, L->errlen, "%s: a model named '%s' already exists in %s",
                                 m->file, m->name, p->models[prev].file);
                        ok = false;
                    }
                }
            }
        } else if (has_suffix(nm, ".yml") || has_suffix(nm, ".yaml")) {
            ydoc_t *ny = realloc(L->ymls, (L->nymls + 1) * sizeof *ny);
            if (!ny) {
                ok = false;
            } else {
                L->ymls = ny;
                ok = ydoc_load(&L->ymls[L->nymls], full, L->err, L->errlen);
                L->nymls++;
            }
        }
        free(full);
        free(r);
    }
    for (int i = 0; i < n; i++)
        free(ents[i]);
    free(ents);
    return ok;
}

/* ---- dbt_project.yml --------------------------------------------------------------- */

static bool merge_vars(json_t *into, const json_t *from)
{
    return !from || json_object_update((json_t *)into, (json_t *)from) == 0;
}

static bool load_project_file(loader_t *L, const char *file, char ***paths, size_t *npaths,
                              json_t *vars)
{
    if (!ydoc_load(&L->project, file, L->err, L->errlen))
        return false;
    ydoc_t *y = &L->project;
    yaml_node_t *root = yroot(y);
    if (!root || root->type != YAML_MAPPING_NODE) {
        yerr(L->err, L->errlen, file, root, "expected a mapping (name:, model-paths:, ...)");
        return false;
    }
    yaml_node_t *n = yget(y, root, "name");
    if (n && !yscalar(n)) {
        yerr(L->err, L->errlen, file, n, "name: expected a string");
        return false;
    }
    free(L->p->name);
    L->p->name = strdup(n ? yscalar(n) : "");
    yaml_node_t *mp = yget(y, root, "model-paths");
    if (!mp)
        mp = yget(y, root, "source-paths");
    if (mp) {
        if (mp->type != YAML_SEQUENCE_NODE) {
            yerr(L->err, L->errlen, file, mp, "model-paths: expected a list of directories");
            return false;
        }
        for (yaml_node_item_t *it = mp->data.sequence.items.start; it < mp->data.sequence.items.top;
             it++) {
            const char *s = yscalar(ynode(y, *it));
            if (!s) {
                yerr(L->err, L->errlen, file, ynode(y, *it), "model-paths: expected a string");
                return false;
            }
            if (!strv_push(paths, npaths, s))
                return false;
        }
    } else if (!strv_push(paths, npaths, "models")) {
        return false;
    }
    yaml_node_t *v = yget(y, root, "vars");
    if (v && !yis_null(v)) {
        if (v->type != YAML_MAPPING_NODE) {
            yerr(L->err, L->errlen, file, v, "vars: expected a mapping");
            return false;
        }
        json_t *j = ynode_json(y, v, 0);
        if (!j)
            return false;
        /* vars: {<project name>: {...}} scopes vars to this project: lift them. */
        json_t *scoped = L->p->name[0] ? json_object_get(j, L->p->name) : NULL;
        if (scoped && json_is_object(scoped)) {
            json_incref(scoped);
            json_object_del(j, L->p->name);
            json_object_update(j, scoped);
            json_decref(scoped);
        }
        bool ok = merge_vars(vars, j);
        json_decref(j);
        if (!ok)
            return false;
    }
    yaml_node_t *mc = yget(y, root, "models");
    if (mc && !yis_null(mc)) {
        if (mc->type != YAML_MAPPING_NODE) {
            yerr(L->err, L->errlen, file, mc, "models: expected a mapping of folder configs");
            return false;
        }
        yaml_node_t *mine = L->p->name[0] ? yget(y, mc, L->p->name) : NULL;
        if (mine && mine->type != YAML_MAPPING_NODE) {
            yerr(L->err, L->errlen, file, mine, "models: %s: expected a mapping", L->p->name);
            return false;
        }
        L->folder_cfg = mine;
    }
    return true;
}

/* ---- sources and schema files ------------------------------------------------------ */

static bool expect_seq(loader_t *L, ydoc_t *y, yaml_node_t *n, const char *what)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        yerr(L->err, L->errlen, y->file, n, "%s: expected a list", what);
        return false;
    }
    return true;
}

static bool expect_map(loader_t *L, ydoc_t *y, yaml_node_t *n, const char *what)
{
    if (n->type != YAML_MAPPING_NODE) {
        yerr(L->err, L->errlen, y->file, n, "%s: expected a mapping", what);
        return false;
    }
    return true;
}

/* name: of a mapping entry, required. */
static const char *entry_name(loader_t *L, ydoc_t *y, yaml_node_t *n, const char *what)
{
    if (!expect_map(L, y, n, what))
        return NULL;
    const char *s = yscalar(yget(y, n, "name"));
    if (!s || !*s)
        yerr(L->err, L->errlen, y->file, n, "%s: each entry needs a name:", what);
    return s && *s ? s : NULL;
}

/* ---- documentation: descriptions of models, sources and their columns ---------------- */

/* The description of entry e: a copy in *out (NULL when it has none). A description that
 * is not a string is an error naming it. */
static bool parse_description(loader_t *L, ydoc_t *y, yaml_node_t *e, char **out)
{
    *out = NULL;
    yaml_node_t *d = yget(y, e, "description");
    if (!d || yis_null(d))
        return true;
    if (d->type != YAML_SCALAR_NODE) {
        yerr(L->err, L->errlen, y->file, d, "description: expected a string");
        return false;
    }
    if (!(*out = strdup(yscalar(d)))) {
        snprintf(L->err, L->errlen, "out of memory");
        return false;
    }
    return true;
}

static void free_columns(models_column_t *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(c[i].name);
        free(c[i].description);
    }
    free(c);
}

static bool add_test_list(loader_t *L, ydoc_t *y, size_t model, const char *column, yaml_node_t *m);

/* The `columns:` of entry e with their descriptions, and when e describes a model (model is
 * its index, not -1) the tests of each column. */
static bool parse_columns(loader_t *L, ydoc_t *y, yaml_node_t *e, long model, models_column_t **out,
                          size_t *n)
{
    yaml_node_t *cols = yget(y, e, "columns");
    if (!cols || yis_null(cols))
        return true;
    if (!expect_seq(L, y, cols, "columns"))
        return false;
    for (yaml_node_item_t *it = cols->data.sequence.items.start; it < cols->data.sequence.items.top;
         it++) {
        yaml_node_t *c = ynode(y, *it);
        const char *cname = entry_name(L, y, c, "columns");
        if (!cname)
            return false;
        models_column_t *nc = realloc(*out, (*n + 1) * sizeof *nc);
        if (!nc) {
            snprintf(L->err, L->errlen, "out of memory");
            return false;
        }
        *out = nc;
        models_column_t *col = &nc[(*n)++];
        col->description = NULL;
        if (!(col->name = strdup(cname))) {
            snprintf(L->err, L->errlen, "out of memory");
            return false;
        }
        if (!parse_description(L, y, c, &col->description) ||
            (model >= 0 && !add_test_list(L, y, (size_t)model, cname, c)))
            return false;
    }
    return true;
}

static bool parse_sources(loader_t *L, ydoc_t *y, yaml_node_t *list)
{
    models_project_t *p = L->p;
    if (!expect_seq(L, y, list, "sources"))
        return false;
    for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top;
         it++) {
        yaml_node_t *s = ynode(y, *it);
        const char *sname = entry_name(L, y, s, "sources");
        if (!sname)
            return false;
        const char *db = yscalar(yget(y, s, "schema"));
        if (!db)
            db = yscalar(yget(y, s, "database"));
        yaml_node_t *tables = yget(y, s, "tables");
        if (!tables || yis_null(tables))
            continue;
        if (!expect_seq(L, y, tables, "tables"))
            return false;
        for (yaml_node_item_t *ti = tables->data.sequence.items.start;
             ti < tables->data.sequence.items.top; ti++) {
            yaml_node_t *t = ynode(y, *ti);
            const char *tname = entry_name(L, y, t, "tables");
            if (!tname)
                return false;
            if (find_source(p, sname, tname)) {
                yerr(L->err, L->errlen, y->file, t, "source %s.%s is declared twice", sname, tname);
                return false;
            }
            const char *ident = yscalar(yget(y, t, "identifier"));
            models_source_table_t *ns = realloc(p->srcs, (p->nsrcs + 1) * sizeof *ns);
            if (!ns)
                return false;
            p->srcs = ns;
            models_source_table_t *st = &p->srcs[p->nsrcs++];
            memset(st, 0, sizeof *st);
            st->source = strdup(sname);
            st->table = strdup(tname);
            st->identifier = strdup(ident ? ident : tname);
            st->database = db ? strdup(db) : NULL;
            if (!st->source || !st->table || !st->identifier)
                return false;
            if (!parse_description(L, y, s, &st->source_description) ||
                !parse_description(L, y, t, &st->description) ||
                !parse_columns(L, y, t, -1, &st->columns, &st->ncolumns))
                return false;
        }
    }
    return true;
}

/* models: entries of schema files: remembered per model, read after the models render. */
static bool parse_model_entries(loader_t *L, ydoc_t *y, yaml_node_t *list)
{
    if (!expect_seq(L, y, list, "models"))
        return false;
    for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top;
         it++) {
        yaml_node_t *e = ynode(y, *it);
        const char *name = entry_name(L, y, e, "models");
        if (!name)
            return false;
        long i = models_find(L->p, name);
        if (i < 0) {
            yerr(L->err, L->errlen, y->file, e, "models: no model named '%s' (no %s.sql)", name,
                 name);
            return false;
        }
        if (L->model_yaml[i].node) {
            yerr(L->err, L->errlen, y->file, e, "models: '%s' is described twice", name);
            return false;
        }
        L->model_yaml[i].doc = y;
        L->model_yaml[i].node = e;
        yaml_node_t *c = yget(y, e, "config");
        if (c && !yis_null(c) && !expect_map(L, y, c, "config"))
            return false;
    }
    return true;
}

/* ---- tests ------------------------------------------------------------------------- */

static bool parse_ref_text(const char *s, char *out, size_t outlen)
{
    /* ref('name') or ref("name"), blanks allowed. */
    while (isspace((unsigned char)*s))
        s++;
    if (strncmp(s, "ref", 3))
        return false;
    s += 3;
    while (isspace((unsigned char)*s))
        s++;
    if (*s++ != '(')
        return false;
    while (isspace((unsigned char)*s))
        s++;
    char q = *s++;
    if (q != '\'' && q != '"')
        return false;
    const char *e = strchr(s, q);
    if (!e || (size_t)(e - s) >= outlen || e == s)
        return false;
    memcpy(out, s, (size_t)(e - s));
    out[e - s] = '\0';
    s = e + 1;
    while (isspace((unsigned char)*s))
        s++;
    if (*s++ != ')')
        return false;
    while (isspace((unsigned char)*s))
        s++;
    return *s == '\0';
}

static bool add_test(loader_t *L, ydoc_t *y, size_t model, const char *column, yaml_node_t *tn)
{
    models_project_t *p = L->p;
    const char *kind = yscalar(tn);
    yaml_node_t *args = NULL;
    if (!kind) {
        if (tn->type != YAML_MAPPING_NODE ||
            tn->data.mapping.pairs.top - tn->data.mapping.pairs.start != 1) {
            yerr(L->err, L->errlen, y->file, tn,
                 "tests: expected a test name or a mapping of one test name to its arguments");
            return false;
        }
        yaml_node_pair_t *pr = tn->data.mapping.pairs.start;
        kind = yscalar(ynode(y, pr->key));
        args = ynode(y, pr->value);
        if (!kind) {
            yerr(L->err, L->errlen, y->file, tn, "tests: expected a test name");
            return false;
        }
        if (yis_null(args))
            args = NULL;
        else if (!expect_map(L, y, args, kind))
            return false;
    }
    models_test_t t = {.model = model, .quote = true};
    static const char *const kinds[] = {"unique", "not_null", "accepted_values", "relationships"};
    const char *bare = strncmp(kind, "dbt.", 4) ? kind : kind + 4;
    int k = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(bare, kinds[i]))
            k = i;
    if (k < 0) {
        yerr(L->err, L->errlen, y->file, tn,
             "test '%s' is not supported (unique, not_null, accepted_values, relationships)", kind);
        return false;
    }
    t.kind = (models_test_kind_t)k;
    /* Arguments may sit directly under the test or under arguments: (dbt 1.10). */
    yaml_node_t *a = args ? yget(y, args, "arguments") : NULL;
    yaml_node_t *argmap = a && a->type == YAML_MAPPING_NODE ? a : args;
    yaml_node_t *cn = argmap ? yget(y, argmap, "column_name") : NULL;
    if (cn)
        column = yscalar(cn);
    if (!column || !*column) {
        yerr(L->err, L->errlen, y->file, tn,
             "%s: needs a column (list it under columns: or "
             "give column_name:)",
             kind);
        return false;
    }
    yaml_node_t *sev = args ? yget(y, args, "severity") : NULL;
    yaml_node_t *cfg = args ? yget(y, args, "config") : NULL;
    if (cfg && !yis_null(cfg) && cfg->type == YAML_MAPPING_NODE && yget(y, cfg, "severity"))
        sev = yget(y, cfg, "severity");
    if (sev) {
        const char *s = yscalar(sev);
        if (s && !strcasecmp(s, "warn"))
            t.warn = true;
        else if (!s || strcasecmp(s, "error")) {
            yerr(L->err, L->errlen, y->file, sev, "severity: expected warn or error");
            return false;
        }
    }
    if (args && (yget(y, args, "where") || (cfg && yget(y, cfg, "where")))) {
        yerr(L->err, L->errlen, y->file, args, "%s: where: is not supported by eltd", kind);
        return false;
    }
    t.column = strdup(column);
    if (!t.column)
        return false;
    if (t.kind == MODELS_TEST_ACCEPTED_VALUES) {
        yaml_node_t *vals = argmap ? yget(y, argmap, "values") : NULL;
        if (!vals || vals->type != YAML_SEQUENCE_NODE) {
            yerr(L->err, L->errlen, y->file, vals ? vals : tn,
                 "accepted_values: needs values: [a list]");
            free(t.column);
            return false;
        }
        for (yaml_node_item_t *it = vals->data.sequence.items.start;
             it < vals->data.sequence.items.top; it++) {
            const char *s = yscalar(ynode(y, *it));
            if (!s || !strv_push(&t.values, &t.nvalues, s)) {
                yerr(L->err, L->errlen, y->file, ynode(y, *it),
                     "accepted_values: values must be scalars");
                free(t.column);
                strv_free(t.values, t.nvalues);
                return false;
            }
        }
        yaml_node_t *q = yget(y, argmap, "quote");
        if (q && yscalar(q))
            t.quote = strcmp(yscalar(q), "false") && strcmp(yscalar(q), "False");
    } else if (t.kind == MODELS_TEST_RELATIONSHIPS) {
        yaml_node_t *to = argmap ? yget(y, argmap, "to") : NULL;
        yaml_node_t *field = argmap ? yget(y, argmap, "field") : NULL;
        char ref[256];
        if (!to || !yscalar(to) || !parse_ref_text(yscalar(to), ref, sizeof ref)) {
            yerr(L->err, L->errlen, y->file, to ? to : tn,
                 "relationships: to: must be ref('model')");
            free(t.column);
            return false;
        }
        if (!field || !yscalar(field)) {
            yerr(L->err, L->errlen, y->file, tn, "relationships: needs field:");
            free(t.column);
            return false;
        }
        long parent = models_find(p, ref);
        if (parent < 0 || !p->models[parent].config.enabled) {
            yerr(L->err, L->errlen, y->file, to, "relationships: to: ref('%s'): %s", ref,
                 parent < 0 ? "no such model" : "the model is disabled");
            free(t.column);
            return false;
        }
        t.parent = (size_t)parent;
        t.field = strdup(yscalar(field));
    }
    /* dbt-like names: unique_order_item_id; a custom name: wins; clashes get _2, _3. */
    const char *custom = args ? yscalar(yget(y, args, "name")) : NULL;
    char base[512];
    if (custom)
        snprintf(base, sizeof base, "%s", custom);
    else
        snprintf(base, sizeof base, "%s_%s", kinds[k], t.column);
    for (char *c = base; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '_' && *c != '.' && *c != '-')
            *c = '_';
    char name[540];
    snprintf(name, sizeof name, "%s", base);
    for (int n = 2;; n++) {
        bool clash = false;
        for (size_t i = 0; i < p->ntests; i++)
            clash = clash || (p->tests[i].model == model && !strcmp(p->tests[i].name, name));
        if (!clash)
            break;
        snprintf(name, sizeof name, "%s_%d", base, n);
    }
    t.name = strdup(name);
    models_test_t *nt = realloc(p->tests, (p->ntests + 1) * sizeof *nt);
    if (!nt || !t.name) {
        free(t.name);
        return false;
    }
    p->tests = nt;
    p->tests[p->ntests++] = t;
    return true;
}

static bool add_test_list(loader_t *L, ydoc_t *y, size_t model, const char *column, yaml_node_t *m)
{
    static const char *const keys[] = {"tests", "data_tests"};
    for (size_t k = 0; k < 2; k++) {
        yaml_node_t *list = yget(y, m, keys[k]);
        if (!list || yis_null(list))
            continue;
        if (!expect_seq(L, y, list, keys[k]))
            return false;
        for (yaml_node_item_t *it = list->data.sequence.items.start;
             it < list->data.sequence.items.top; it++)
            if (!add_test(L, y, model, column, ynode(y, *it)))
                return false;
    }
    return true;
}

/* A model's schema.yml entry: its description, its tests and its columns (with theirs). */
static bool parse_schema_entry(loader_t *L, size_t model)
{
    ydoc_t *y = L->model_yaml[model].doc;
    yaml_node_t *e = L->model_yaml[model].node;
    if (!e)
        return true;
    models_model_t *m = &L->p->models[model];
    return parse_description(L, y, e, &m->description) && add_test_list(L, y, model, NULL, e) &&
           parse_columns(L, y, e, (long)model, &m->columns, &m->ncolumns);
}

/* ---- the graph --------------------------------------------------------------------- */

/* Depth-first topological order; a back edge is a cycle, reported with its path. */
static bool visit(models_project_t *p, size_t i, int *mark, size_t *stack, size_t depth, size_t *n,
                  char *err, size_t errlen)
{
    if (mark[i] == 2)
        return true;
    if (mark[i] == 1) {
        size_t from = 0;
        while (stack[from] != i)
            from++;
        int k = snprintf(err, errlen, "%s: models form a cycle: ", p->models[i].file);
        for (size_t s = from; s < depth && k >= 0 && (size_t)k < errlen; s++)
            k += snprintf(err + k, errlen - (size_t)k, "%s -> ", p->models[stack[s]].name);
        if (k >= 0 && (size_t)k < errlen)
            snprintf(err + k, errlen - (size_t)k, "%s", p->models[i].name);
        return false;
    }
    mark[i] = 1;
    stack[depth] = i;
    for (size_t r = 0; r < p->models[i].nrefs; r++)
        if (!visit(p, p->models[i].refs[r], mark, stack, depth + 1, n, err, errlen))
            return false;
    mark[i] = 2;
    p->order[(*n)++] = i;
    return true;
}

static bool build_order(models_project_t *p, char *err, size_t errlen)
{
    size_t alloc = p->nmodels ? p->nmodels : 1;
    int *mark = calloc(alloc, sizeof *mark);
    size_t *stack = calloc(alloc + 1, sizeof *stack);
    p->order = calloc(alloc, sizeof *p->order);
    bool ok = mark && stack && p->order;
    size_t n = 0;
    for (size_t i = 0; ok && i < p->nmodels; i++)
        if (p->models[i].config.enabled)
            ok = visit(p, i, mark, stack, 0, &n, err, errlen);
    free(mark);
    free(stack);
    /* Disabled models are left out of the order. */
    for (size_t i = n; p->order && i < p->nmodels; i++)
        p->order[i] = (size_t)-1;
    return ok;
}

/* ---- loading ----------------------------------------------------------------------- */

static bool finish_model(loader_t *L, size_t i)
{
    models_project_t *p = L->p;
    models_model_t *m = &p->models[i];
    char *sql = NULL;
    /* Pass 1 with is_incremental() false sets the config and records refs and sources;
     * an incremental model renders again with it true, so the refs inside that branch
     * are dependencies too. */
    if (!render(p, i, PASS_LOAD, false, &m->config, &sql, L->err, L->errlen))
        return false;
    m->sql = sql;
    if (m->config.alias) {
        free(m->relation);
        free(m->ident);
        m->ident = strdup(m->config.alias);
        m->relation = relation_of(p->cfg->warehouse.analytics_database, m->ident);
        /* Render again so that this names the alias. */
        free(m->sql);
        m->sql = NULL;
        if (!m->ident || !m->relation ||
            !render(p, i, PASS_EXEC, false, NULL, &m->sql, L->err, L->errlen))
            return false;
    }
    if (m->config.materialized == MODELS_INCREMENTAL && m->config.enabled) {
        char *sql2 = NULL;
        if (!render(p, i, PASS_LOAD_INCREMENTAL, true, NULL, &sql2, L->err, L->errlen))
            return false;
        free(sql2);
    }
    return true;
}

static void free_model(models_model_t *m)
{
    free(m->name);
    free(m->file);
    free(m->path);
    free(m->fqn_dir);
    free(m->raw);
    free(m->sql);
    config_free_fields(&m->config);
    free(m->relation);
    free(m->ident);
    free(m->refs);
    strv_free(m->tables, m->ntables);
    strv_free(m->sources, m->nsources);
    free(m->description);
    free_columns(m->columns, m->ncolumns);
}

void models_free(models_project_t *p)
{
    for (size_t i = 0; i < p->nmodels; i++)
        free_model(&p->models[i]);
    free(p->models);
    for (size_t i = 0; i < p->ntests; i++) {
        free(p->tests[i].name);
        free(p->tests[i].column);
        free(p->tests[i].field);
        strv_free(p->tests[i].values, p->tests[i].nvalues);
    }
    free(p->tests);
    for (size_t i = 0; i < p->nsrcs; i++) {
        free(p->srcs[i].source);
        free(p->srcs[i].table);
        free(p->srcs[i].identifier);
        free(p->srcs[i].database);
        free(p->srcs[i].source_description);
        free(p->srcs[i].description);
        free_columns(p->srcs[i].columns, p->srcs[i].ncolumns);
    }
    free(p->srcs);
    free(p->order);
    free(p->dir);
    free(p->name);
    json_decref(p->vars);
    memset(p, 0, sizeof *p);
}

static bool load_all(loader_t *L, const json_t *run_vars)
{
    models_project_t *p = L->p;
    const config_t *cfg = p->cfg;
    char **paths = NULL;
    size_t npaths = 0;
    bool ok = false;
    struct stat st;
    p->vars = json_object();
    p->name = strdup("");
    if (!p->vars || !p->name)
        goto oom;
    if (stat(p->dir, &st) != 0) {
        /* No project: loads only. Vars still merge for compile's sake. */
        p->present = false;
        ok = merge_vars(p->vars, cfg->models.vars) && merge_vars(p->vars, run_vars);
        goto done;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(L->err, L->errlen, "%s: models.path is not a directory", p->dir);
        goto done;
    }
    p->present = true;
    char *proj = util_asprintf("%s/dbt_project.yml", p->dir);
    if (!proj)
        goto oom;
    bool has_project = stat(proj, &st) == 0;
    if (has_project && !load_project_file(L, proj, &paths, &npaths, p->vars)) {
        free(proj);
        goto done;
    }
    free(proj);
    if (!merge_vars(p->vars, cfg->models.vars) || !merge_vars(p->vars, run_vars))
        goto oom;
    if (!has_project) {
        /* A bare models directory: paths shown as <its name>/... */
        const char *base = strrchr(p->dir, '/');
        base = base && base[1] ? base + 1 : p->dir;
        L->at_root = true;
        if (!walk_dir(L, p->dir, base, "", 0))
            goto done;
        L->at_root = false;
    }
    for (size_t i = 0; i < npaths; i++) {
        /* "." (or "./"): the project directory, shown under its own name like a bare one. */
        const char *mp = paths[i];
        while (mp[0] == '.' && mp[1] == '/')
            mp += 2;
        L->at_root = !strcmp(mp, ".") || !*mp;
        const char *base = strrchr(p->dir, '/');
        base = base && base[1] ? base + 1 : p->dir;
        char *d = L->at_root ? strdup(p->dir) : util_asprintf("%s/%s", p->dir, mp);
        if (!d)
            goto oom;
        bool exists = stat(d, &st) == 0 && S_ISDIR(st.st_mode);
        bool w = !exists || walk_dir(L, d, L->at_root ? base : mp, "", 0);
        L->at_root = false;
        free(d);
        if (!w)
            goto done;
    }
    /* Every model's relation is known before any renders (ref needs it). */
    for (size_t i = 0; i < p->nmodels; i++) {
        models_model_t *m = &p->models[i];
        m->ident = strdup(m->name);
        m->relation = relation_of(cfg->warehouse.analytics_database, m->name);
        if (!m->ident || !m->relation)
            goto oom;
    }
    L->model_yaml = calloc(p->nmodels ? p->nmodels : 1, sizeof *L->model_yaml);
    if (!L->model_yaml)
        goto oom;
    for (size_t i = 0; i < L->nymls; i++) {
        ydoc_t *y = &L->ymls[i];
        yaml_node_t *root = yroot(y);
        if (!root || yis_null(root))
            continue;
        if (root->type != YAML_MAPPING_NODE) {
            yerr(L->err, L->errlen, y->file, root,
                 "expected a mapping (version:, sources:, "
                 "models:, ...)");
            goto done;
        }
        yaml_node_t *s = yget(y, root, "sources");
        if (s && !yis_null(s) && !parse_sources(L, y, s))
            goto done;
        yaml_node_t *m = yget(y, root, "models");
        if (m && !yis_null(m) && !parse_model_entries(L, y, m))
            goto done;
    }
    /* Configs before rendering: folder defaults, then the schema file's config:. */
    for (size_t i = 0; i < p->nmodels; i++) {
        if (!apply_folder_config(L, &p->models[i], &p->models[i].config))
            goto done;
        yaml_node_t *c = L->model_yaml[i].node
                             ? yget(L->model_yaml[i].doc, L->model_yaml[i].node, "config")
                             : NULL;
        if (c && !yis_null(c) &&
            !apply_yaml_level(L, L->model_yaml[i].doc, c, &p->models[i].config))
            goto done;
    }
    for (size_t i = 0; i < p->nmodels; i++)
        if (p->models[i].config.enabled && !finish_model(L, i))
            goto done;
    /* A model may have disabled itself in config() after another ref'd it. */
    for (size_t i = 0; i < p->nmodels; i++)
        for (size_t r = 0; p->models[i].config.enabled && r < p->models[i].nrefs; r++)
            if (!p->models[p->models[i].refs[r]].config.enabled) {
                snprintf(L->err, L->errlen, "%s: ref('%s'): model '%s' is disabled",
                         p->models[i].file, p->models[p->models[i].refs[r]].name,
                         p->models[p->models[i].refs[r]].name);
                goto done;
            }
    for (size_t i = 0; i < p->nmodels; i++)
        if (p->models[i].config.enabled && !parse_schema_entry(L, i))
            goto done;
    if (!build_order(p, L->err, L->errlen))
        goto done;
    ok = true;
    goto done;
oom:
    snprintf(L->err, L->errlen, "out of memory");
done:
    strv_free(paths, npaths);
    return ok;
}

bool models_load(models_project_t *p, const config_t *cfg, const json_t *run_vars, char *err,
                 size_t errlen)
{
    memset(p, 0, sizeof *p);
    p->cfg = cfg;
    p->dir = strdup(cfg->models.path && *cfg->models.path ? cfg->models.path : "models");
    size_t n = p->dir ? strlen(p->dir) : 0;
    while (n > 1 && p->dir[n - 1] == '/')
        p->dir[--n] = '\0';
    loader_t L = {.p = p, .err = err, .errlen = errlen};
    snprintf(err, errlen, "out of memory");
    bool ok = p->dir && load_all(&L, run_vars);
    if (L.project.loaded || L.project.file)
        ydoc_free(&L.project);
    for (size_t i = 0; i < L.nymls; i++)
        ydoc_free(&L.ymls[i]);
    free(L.ymls);
    free(L.model_yaml);
    if (!ok)
        models_free(p);
    return ok;
}

/* ---- selection --------------------------------------------------------------------- */

void models_selection_free(models_selection_t *s)
{
    free(s->tables);
    free(s->models);
    free(s->tests);
    memset(s, 0, sizeof *s);
}

bool models_select(const models_project_t *p, const char *const *select, size_t nselect,
                   const char *const *exclude, size_t nexclude, const char *const *tables,
                   size_t ntables, models_selection_t *out, char *err, size_t errlen)
{
    const config_t *cfg = p->cfg;
    size_t T = cfg->ntables, M = p->nmodels, N = T + M + p->ntests;
    memset(out, 0, sizeof *out);
    select_node_t *nodes = calloc(N ? N : 1, sizeof *nodes);
    bool *mask = calloc(N ? N : 1, sizeof *mask);
    size_t **parents = calloc(N ? N : 1, sizeof *parents);
    const char ***srcnames = calloc(T ? T : 1, sizeof *srcnames);
    char **fullnames = calloc(p->ntests ? p->ntests : 1, sizeof *fullnames);
    const char **allsel = calloc(nselect + ntables + 1, sizeof *allsel);
    out->tables = calloc(T ? T : 1, sizeof *out->tables);
    out->models = calloc(M ? M : 1, sizeof *out->models);
    out->tests = calloc(p->ntests ? p->ntests : 1, sizeof *out->tests);
    bool ok = false;
    if (!nodes || !mask || !parents || !srcnames || !fullnames || !allsel || !out->tables ||
        !out->models || !out->tests)
        goto oom;
    /* Source names per load: every declared source table that resolves to it. */
    char **srcfull = calloc(p->nsrcs ? p->nsrcs : 1, sizeof *srcfull);
    if (!srcfull)
        goto oom;
    for (size_t s = 0; s < p->nsrcs; s++)
        srcfull[s] = util_asprintf("%s.%s", p->srcs[s].source, p->srcs[s].table);
    for (size_t i = 0; i < T; i++) {
        const config_table_t *t = &cfg->tables[i];
        nodes[i] = (select_node_t){.kind = SELECT_LOAD, .name = t->target, .alt = t->name};
        srcnames[i] = calloc(p->nsrcs ? p->nsrcs : 1, sizeof *srcnames[i]);
        if (!srcnames[i])
            goto oom_src;
        for (size_t s = 0; s < p->nsrcs; s++)
            if (srcfull[s] && source_load(cfg, &p->srcs[s]) == t)
                srcnames[i][nodes[i].nsources++] = srcfull[s];
        nodes[i].sources = srcnames[i];
    }
    for (size_t i = 0; i < M; i++) {
        const models_model_t *m = &p->models[i];
        select_node_t *nd = &nodes[T + i];
        *nd = (select_node_t){
            .kind = SELECT_MODEL,
            .name = m->config.enabled ? m->name : "",
            .path = m->config.enabled ? m->path : NULL,
            .materialized = m->config.enabled ? models_mat_name(m->config.materialized) : NULL,
            .tags = (const char *const *)m->config.tags,
            .ntags = m->config.enabled ? m->config.ntags : 0};
        parents[T + i] = calloc(m->nrefs + m->ntables + 1, sizeof *parents[T + i]);
        if (!parents[T + i])
            goto oom_src;
        for (size_t r = 0; r < m->nrefs; r++)
            parents[T + i][nd->nparents++] = T + m->refs[r];
        for (size_t k = 0; k < m->ntables; k++)
            for (size_t t = 0; t < T; t++)
                if (!strcmp(cfg->tables[t].target, m->tables[k]))
                    parents[T + i][nd->nparents++] = t;
        nd->parents = parents[T + i];
    }
    for (size_t i = 0; i < p->ntests; i++) {
        const models_test_t *t = &p->tests[i];
        size_t at = T + M + i;
        fullnames[i] = util_asprintf("%s.%s", p->models[t->model].name, t->name);
        parents[at] = calloc(2, sizeof *parents[at]);
        if (!fullnames[i] || !parents[at])
            goto oom_src;
        nodes[at] = (select_node_t){.kind = SELECT_TEST,
                                    .name = fullnames[i],
                                    .parents = parents[at],
                                    .attached_to = T + t->model};
        parents[at][nodes[at].nparents++] = T + t->model;
        if (t->kind == MODELS_TEST_RELATIONSHIPS)
            parents[at][nodes[at].nparents++] = T + t->parent;
    }
    size_t nall = 0;
    for (size_t i = 0; i < nselect; i++)
        allsel[nall++] = select[i];
    for (size_t i = 0; i < ntables; i++)
        allsel[nall++] = tables[i];
    ok = select_nodes(nodes, N, allsel, nall, exclude, nexclude, mask, err, errlen);
    for (size_t i = 0; ok && i < N; i++) {
        if (i < T)
            out->tables[i] = mask[i];
        else if (i < T + M)
            out->models[i - T] = mask[i] && p->models[i - T].config.enabled;
        else
            out->tests[i - T - M] = mask[i];
    }
    goto cleanup;
oom_src:
    snprintf(err, errlen, "out of memory");
cleanup:
    for (size_t s = 0; s < p->nsrcs; s++)
        free(srcfull[s]);
    free(srcfull);
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    for (size_t i = 0; parents && i < N; i++)
        free(parents[i]);
    for (size_t i = 0; srcnames && i < T; i++)
        free(srcnames[i]);
    for (size_t i = 0; fullnames && i < p->ntests; i++)
        free(fullnames[i]);
    free(parents);
    free(srcnames);
    free(fullnames);
    free(allsel);
    free(nodes);
    free(mask);
    if (!ok)
        models_selection_free(out);
    return ok;
}

/* ---- the DAG ----------------------------------------------------------------------- */

static bool depend_on(dag_t *d, dag_task_t *t, const char *name)
{
    dag_task_t *on = dag_find(d, name);
    return !on || dag_depend(d, t, on);
}

bool models_add_tasks(models_project_t *p, dag_t *d, load_env_t *env, const models_selection_t *sel,
                      dag_task_t *setup, char *err, size_t errlen)
{
    char name[700];
    for (size_t k = 0; k < p->nmodels; k++) {
        size_t i = p->order[k];
        if (i == (size_t)-1 || !sel->models[i])
            continue;
        const models_model_t *m = &p->models[i];
        snprintf(name, sizeof name, "model:%s", m->name);
        void *impl = materialize_model_task_new(env, p, i);
        dag_task_t *t =
            impl ? dag_add(d, name, TASK_KIND_MODEL, &materialize_model_ops, impl, -1) : NULL;
        if (!t) {
            free(impl);
            goto oom;
        }
        if (setup && !dag_depend(d, t, setup))
            goto oom;
        for (size_t s = 0; s < m->ntables; s++) {
            snprintf(name, sizeof name, "load:%s", m->tables[s]);
            if (!depend_on(d, t, name))
                goto oom;
        }
        for (size_t r = 0; r < m->nrefs; r++) {
            snprintf(name, sizeof name, "model:%s", p->models[m->refs[r]].name);
            if (!depend_on(d, t, name))
                goto oom;
        }
    }
    for (size_t i = 0; i < p->ntests; i++) {
        if (!sel->tests[i])
            continue;
        const models_test_t *te = &p->tests[i];
        snprintf(name, sizeof name, "test:%s.%s", p->models[te->model].name, te->name);
        void *impl = materialize_test_task_new(env, p, i);
        dag_task_t *t =
            impl ? dag_add(d, name, TASK_KIND_TEST, &materialize_test_ops, impl, 0) : NULL;
        if (!t) {
            free(impl);
            goto oom;
        }
        if (setup && !dag_depend(d, t, setup))
            goto oom;
        snprintf(name, sizeof name, "model:%s", p->models[te->model].name);
        if (!depend_on(d, t, name))
            goto oom;
        if (te->kind == MODELS_TEST_RELATIONSHIPS) {
            snprintf(name, sizeof name, "model:%s", p->models[te->parent].name);
            if (!depend_on(d, t, name))
                goto oom;
        }
    }
    return true;
oom:
    snprintf(err, errlen, "out of memory");
    return false;
}
