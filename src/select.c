/* select.c — dbt selector syntax evaluated over a plain node graph (see select.h). Graph
 * operators walk loads and models only; tests follow the model they are attached to. */
#include "select.h"

#include <ctype.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct selector {
    int up;             /* generations of ancestors: 0 none, INT_MAX all */
    int down;           /* generations of descendants */
    bool at;            /* @name: descendants and all their ancestors */
    const char *method; /* "name", "path", "tag", "source", "resource_type",
                           "config.materialized" */
    char value[512];
} selector_t;

static bool parse_selector(const char *s, selector_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *p = s;
    if (*p == '@') {
        out->at = true;
        p++;
    } else if (isdigit((unsigned char)*p) || *p == '+') {
        const char *q = p;
        while (isdigit((unsigned char)*q))
            q++;
        if (*q == '+') {
            out->up = q == p ? INT_MAX : atoi(p);
            p = q + 1;
        }
    }
    size_t len = strlen(p);
    if (len > 0 && (p[len - 1] == '+' || isdigit((unsigned char)p[len - 1]))) {
        size_t e = len;
        while (e > 0 && isdigit((unsigned char)p[e - 1]))
            e--;
        if (e > 0 && p[e - 1] == '+') {
            out->down = e == len ? INT_MAX : atoi(p + e);
            len = e - 1;
        }
    }
    if (len == 0 || len >= sizeof out->value) {
        snprintf(err, errlen, "selector '%s': %s", s, len ? "too long" : "names nothing");
        return false;
    }
    memcpy(out->value, p, len);
    out->value[len] = '\0';
    out->method = "name";
    char *colon = strchr(out->value, ':');
    if (colon) {
        *colon = '\0';
        static const char *const methods[] = {"path", "tag",           "source",
                                              "fqn",  "resource_type", "config.materialized"};
        const char *m = NULL;
        for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
            if (!strcmp(out->value, methods[i]))
                m = methods[i];
        if (!m) {
            snprintf(err, errlen,
                     "selector '%s': unknown method '%s:' (name, path:, tag:, source:, "
                     "resource_type:, config.materialized: are supported)",
                     s, out->value);
            return false;
        }
        out->method = !strcmp(m, "fqn") ? "name" : m;
        memmove(out->value, colon + 1, strlen(colon + 1) + 1);
        if (!out->value[0]) {
            snprintf(err, errlen, "selector '%s': empty value", s);
            return false;
        }
        if (!strcmp(m, "resource_type") && strcmp(out->value, "model") &&
            strcmp(out->value, "test") && strcmp(out->value, "source")) {
            snprintf(err, errlen,
                     "selector '%s': resource_type is model, test or source (a loaded table)", s);
            return false;
        }
    }
    return true;
}

static bool glob(const char *pat, const char *s)
{
    return s && fnmatch(pat, s, 0) == 0;
}

/* "./models/staging/" -> "models/staging" in place. */
static void tidy_path(char *p)
{
    while (p[0] == '.' && p[1] == '/')
        memmove(p, p + 2, strlen(p + 2) + 1);
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
}

static bool path_match_one(const char *sel, const char *path)
{
    size_t n = strlen(sel);
    if (!strncmp(sel, path, n) && (path[n] == '\0' || path[n] == '/'))
        return true;
    /* The file's path without its .sql, and globs. */
    return glob(sel, path) ||
           (strlen(path) == n + 4 && !strncmp(sel, path, n) && !strcmp(path + n, ".sql"));
}

/* A path relative to the project ("models/staging/x.sql") or to the model path
 * ("staging/x.sql"): both name the same file. */
static bool path_match(const char *sel, const char *path)
{
    if (!path)
        return false;
    const char *slash = strchr(path, '/');
    return path_match_one(sel, path) || (slash && path_match_one(sel, slash + 1));
}

static bool base_match(const selector_t *s, const select_node_t *nd)
{
    if (!strcmp(s->method, "name")) {
        if (nd->kind == SELECT_LOAD)
            return glob(s->value, nd->name) || glob(s->value, nd->alt);
        return glob(s->value, nd->name);
    }
    if (!strcmp(s->method, "path"))
        return nd->kind == SELECT_MODEL && path_match(s->value, nd->path);
    if (!strcmp(s->method, "resource_type"))
        return nd->kind == (!strcmp(s->value, "model")  ? SELECT_MODEL
                            : !strcmp(s->value, "test") ? SELECT_TEST
                                                        : SELECT_LOAD);
    if (!strcmp(s->method, "config.materialized"))
        return nd->kind == SELECT_MODEL && glob(s->value, nd->materialized);
    if (!strcmp(s->method, "tag")) {
        for (size_t i = 0; nd->kind == SELECT_MODEL && i < nd->ntags; i++)
            if (glob(s->value, nd->tags[i]))
                return true;
        return false;
    }
    /* source:s selects every table of source s; source:s.t one. */
    for (size_t i = 0; nd->kind == SELECT_LOAD && i < nd->nsources; i++) {
        const char *full = nd->sources[i];
        const char *dot = strchr(full, '.');
        if (glob(s->value, full))
            return true;
        if (dot && !strchr(s->value, '.') && strlen(s->value) == (size_t)(dot - full) &&
            !strncmp(s->value, full, (size_t)(dot - full)))
            return true;
    }
    return false;
}

typedef struct graph {
    const select_node_t *nodes;
    size_t n;
    size_t **children;
    size_t *nchildren;
} graph_t;

/* Marks from every node with mark[i] == depth 0, walking up or down at most gens steps. */
static void walk(const graph_t *g, bool up, int gens, const bool *start, bool *out, int *depth)
{
    size_t *queue = malloc(g->n * sizeof *queue);
    if (!queue)
        return;
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < g->n; i++) {
        depth[i] = -1;
        if (start[i]) {
            depth[i] = 0;
            queue[tail++] = i;
        }
    }
    while (head < tail) {
        size_t i = queue[head++];
        out[i] = true;
        if (depth[i] >= gens)
            continue;
        size_t cnt = up ? g->nodes[i].nparents : g->nchildren[i];
        for (size_t k = 0; k < cnt; k++) {
            size_t j = up ? g->nodes[i].parents[k] : g->children[i][k];
            if (j < g->n && depth[j] < 0 && g->nodes[j].kind != SELECT_TEST) {
                depth[j] = depth[i] + 1;
                queue[tail++] = j;
            }
        }
    }
    free(queue);
}

/* ORs into mark[] what selector s picks. Returns the number of base matches, or -1. */
static long apply(const graph_t *g, const selector_t *s, bool *mark)
{
    size_t n = g->n;
    bool *base = calloc(n ? n : 1, sizeof *base), *tmp = calloc(n ? n : 1, sizeof *tmp);
    int *depth = calloc(n ? n : 1, sizeof *depth);
    if (!base || !tmp || !depth) {
        free(base), free(tmp), free(depth);
        return -1;
    }
    long matched = 0;
    for (size_t i = 0; i < n; i++)
        if (base_match(s, &g->nodes[i])) {
            base[i] = true;
            matched++;
        }
    for (size_t i = 0; i < n; i++)
        mark[i] = mark[i] || base[i];
    bool only_tests = true;
    for (size_t i = 0; i < n; i++)
        if (base[i] && g->nodes[i].kind != SELECT_TEST)
            only_tests = false;
    if (!only_tests) {
        if (s->up || s->at) {
            walk(g, true, s->up ? s->up : INT_MAX, base, tmp, depth);
            for (size_t i = 0; i < n; i++)
                mark[i] = mark[i] || tmp[i];
        }
        if (s->down || s->at) {
            memset(tmp, 0, n * sizeof *tmp);
            walk(g, false, s->down ? s->down : INT_MAX, base, tmp, depth);
            if (s->at) {
                bool *up = calloc(n, sizeof *up);
                if (up) {
                    walk(g, true, INT_MAX, tmp, up, depth);
                    for (size_t i = 0; i < n; i++)
                        tmp[i] = tmp[i] || up[i];
                }
                free(up);
            }
            for (size_t i = 0; i < n; i++)
                mark[i] = mark[i] || tmp[i];
        }
    }
    free(base), free(tmp), free(depth);
    return matched;
}

/* ORs into mark[] what one entry picks: the intersection of its comma-separated parts, each
 * with its tests (a test is in a part when its model is: "b,resource_type:test" is b's
 * tests). part[] and item[] are scratch of n entries. Returns the number of nodes picked,
 * or -1 with err set; with must_match, a part that matches nothing is an error. */
static long apply_entry(const graph_t *g, const char *entry, bool must_match, const char *flag,
                        bool *part, bool *item, bool *mark, char *err, size_t errlen)
{
    size_t n = g->n;
    const char *p = entry;
    for (bool first = true;; first = false) {
        size_t len = strcspn(p, ",");
        char one[sizeof((selector_t *)0)->value + 16];
        if (len >= sizeof one) {
            snprintf(err, errlen, "selector '%.100s...': too long", p);
            return -1;
        }
        memcpy(one, p, len);
        one[len] = '\0';
        selector_t s;
        if (!parse_selector(one, &s, err, errlen))
            return -1;
        if (!strcmp(s.method, "path"))
            tidy_path(s.value);
        memset(part, 0, n * sizeof *part);
        long m = apply(g, &s, part);
        if (m < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        if (m == 0 && must_match) {
            if (strchr(entry, ','))
                snprintf(err, errlen, "%s '%s': '%s' matches no table, model or test", flag, entry,
                         one);
            else
                snprintf(err, errlen, "%s '%s' matches no table, model or test", flag, entry);
            return -1;
        }
        for (size_t i = 0; i < n; i++)
            if (g->nodes[i].kind == SELECT_TEST && g->nodes[i].attached_to < n &&
                part[g->nodes[i].attached_to])
                part[i] = true;
        for (size_t i = 0; i < n; i++)
            item[i] = part[i] && (first || item[i]);
        if (!p[len])
            break;
        p += len + 1;
    }
    long picked = 0;
    for (size_t i = 0; i < n; i++)
        if (item[i]) {
            mark[i] = true;
            picked++;
        }
    if (picked == 0 && must_match) {
        snprintf(err, errlen,
                 "%s '%s' matches no table, model or test (its parts have none in common)", flag,
                 entry);
        return -1;
    }
    return picked;
}

bool select_nodes(const select_node_t *nodes, size_t n, const char *const *select, size_t nselect,
                  const char *const *exclude, size_t nexclude, bool *out, char *err, size_t errlen)
{
    graph_t g = {.nodes = nodes, .n = n};
    bool ok = false;
    size_t alloc = n ? n : 1;
    bool *sel = calloc(alloc, sizeof *sel), *exc = calloc(alloc, sizeof *exc);
    bool *part = calloc(alloc, sizeof *part), *item = calloc(alloc, sizeof *item);
    g.children = calloc(alloc, sizeof *g.children);
    g.nchildren = calloc(alloc, sizeof *g.nchildren);
    if (!sel || !exc || !part || !item || !g.children || !g.nchildren)
        goto oom;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < nodes[i].nparents; k++) {
            size_t p = nodes[i].parents[k];
            if (p >= n)
                continue;
            size_t *c = realloc(g.children[p], (g.nchildren[p] + 1) * sizeof *c);
            if (!c)
                goto oom;
            c[g.nchildren[p]++] = i;
            g.children[p] = c;
        }
    for (size_t i = 0; i < nselect; i++)
        if (apply_entry(&g, select[i], true, "--select", part, item, sel, err, errlen) < 0)
            goto out;
    if (nselect == 0)
        for (size_t i = 0; i < n; i++)
            sel[i] = true;
    for (size_t i = 0; i < nexclude; i++)
        if (apply_entry(&g, exclude[i], false, "--exclude", part, item, exc, err, errlen) < 0)
            goto out;
    for (size_t i = 0; i < n; i++)
        if (nodes[i].kind != SELECT_TEST)
            out[i] = sel[i] && !exc[i];
    for (size_t i = 0; i < n; i++) {
        if (nodes[i].kind != SELECT_TEST)
            continue;
        size_t m = nodes[i].attached_to;
        bool model_in = m < n && out[m];
        bool model_out = m < n && exc[m];
        out[i] = (sel[i] || model_in) && !exc[i] && !model_out;
    }
    ok = true;
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    for (size_t i = 0; g.children && i < n; i++)
        free(g.children[i]);
    free(g.children);
    free(g.nchildren);
    free(sel);
    free(exc);
    free(part);
    free(item);
    return ok;
}

char **select_split(const char *list, size_t *n)
{
    *n = 0;
    size_t cap = 1;
    for (const char *p = list; *p; p++)
        cap += isspace((unsigned char)*p) != 0;
    char **v = calloc(cap + 1, sizeof *v);
    if (!v)
        return NULL;
    const char *p = list;
    while (*p) {
        while (isspace((unsigned char)*p))
            p++;
        size_t len = 0;
        while (p[len] && !isspace((unsigned char)p[len]))
            len++;
        if (!len)
            break;
        if (!(v[*n] = strndup(p, len))) {
            select_split_free(v);
            return NULL;
        }
        (*n)++;
        p += len;
    }
    return v;
}

void select_split_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}
