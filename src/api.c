/* api.c — what each path of `eltd serve` means: the route table (404 for an unknown path,
 * 405 with Allow for a wrong method), the bearer token on every POST, trigger bodies parsed
 * strictly (duplicate keys, depth, unknown keys and unknown names are 400s), the JSON
 * shapes of /status and /api/runs, /metrics, and the asynchronous GET /ready probe. */
#include "api.h"

#include "load.h"
#include "log.h"
#include "pg_conn.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#ifndef ELTD_VERSION
#define ELTD_VERSION "dev"
#endif

/* ---- answers ----------------------------------------------------------------------- */

static void count(api_t *a, int status)
{
    char code[8];
    snprintf(code, sizeof code, "%d", status);
    metrics_counter_add(a->http_total, 1, METRICS_LABELS(code));
}

static void respond_json(api_t *a, http_exchange_t *ex, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(body);
    if (!text) {
        count(a, 500);
        http_respond_error(ex, 500, "out of memory");
        return;
    }
    count(a, status);
    http_respond(ex, status, "application/json", text, strlen(text));
    free(text);
}

static void respond_error(api_t *a, http_exchange_t *ex, int status, const char *msg)
{
    count(a, status);
    http_respond_error(ex, status, msg);
}

static json_t *iso_or_null(double t)
{
    if (t <= 0)
        return json_null();
    char buf[40];
    service_iso_time(t, buf, sizeof buf);
    return json_string(buf);
}

/* ---- auth -------------------------------------------------------------------------- */

bool api_token_ok(const char *authorization, const char *token)
{
    if (!authorization || !token || strncasecmp(authorization, "Bearer ", 7) != 0)
        return false;
    const char *given = authorization + 7;
    while (*given == ' ')
        given++;
    size_t gl = strlen(given), tl = strlen(token);
    /* Every byte of the token is looked at whatever the input: the time does not depend on
     * where the first difference is. */
    unsigned char diff = gl != tl;
    for (size_t i = 0; i < tl; i++)
        diff |= (unsigned char)token[i] ^ (unsigned char)(i < gl ? given[i] : 0);
    return diff == 0;
}

/* ---- trigger bodies ---------------------------------------------------------------- */

int api_json_depth(const char *text, size_t len, int max)
{
    int depth = 0, deepest = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > deepest && (deepest = depth) > max)
                return deepest;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return deepest;
}

static bool name_chars(const char *s, const char *extra)
{
    if (!*s)
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && !strchr(extra, *p))
            return false;
    return true;
}

static bool known_table(const config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->ntables; i++)
        if (!strcmp(cfg->tables[i].name, name) || !strcmp(cfg->tables[i].target, name))
            return true;
    return false;
}

/* A dbt selector: [@|N+|+]core[+|+N] where core is a table or model name, or method:value
 * for the methods below. Names must exist; values are restricted to plain characters. */
static bool check_selector(const char *sel, const config_t *cfg,
                           bool (*known_model)(const void *, const char *), const void *ud,
                           char *err, size_t errlen)
{
    static const char *const methods[] = {
        "tag", "path", "source", "fqn", "resource_type", "config.materialized", NULL};
    char core[257];
    size_t n = strlen(sel);
    if (n == 0 || n >= sizeof core) {
        snprintf(err, errlen, "select: selector of %zu characters", n);
        return false;
    }
    const char *p = sel;
    if (*p == '@') {
        p++;
    } else {
        while (isdigit((unsigned char)*p))
            p++;
        if (*p == '+')
            p++;
        else
            p = sel;
    }
    const char *e = sel + n;
    while (e > p && isdigit((unsigned char)e[-1]))
        e--;
    if (e > p && e[-1] == '+')
        e--;
    else
        e = sel + n;
    snprintf(core, sizeof core, "%.*s", (int)(e - p), p);
    char *colon = strchr(core, ':');
    if (colon) {
        *colon = '\0';
        bool ok = false;
        for (size_t i = 0; methods[i]; i++)
            ok |= !strcmp(core, methods[i]);
        if (!ok || !name_chars(colon + 1, "./*-")) {
            snprintf(err, errlen, "select: unsupported selector '%s'", sel);
            return false;
        }
        return true;
    }
    if (!name_chars(core, ".") ||
        (!known_table(cfg, core) && !(known_model && known_model(ud, core)))) {
        snprintf(err, errlen, "select: unknown table or model '%s'", core);
        return false;
    }
    return true;
}

/* Copies the string array body[key] into out[key] after checking each entry. */
static bool take_list(json_t *body, json_t *out, const char *key, const char *as,
                      bool (*check)(const char *v, void *c), void *c, char *err, size_t errlen)
{
    json_t *arr = json_object_get(body, key);
    if (!arr)
        return true;
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "%s: expected an array of strings", key);
        return false;
    }
    json_t *dst = json_object_get(out, as);
    if (!dst) {
        dst = json_array();
        if (!dst || json_object_set_new(out, as, dst) != 0) {
            snprintf(err, errlen, "out of memory");
            return false;
        }
    }
    size_t i;
    json_t *it;
    json_array_foreach(arr, i, it)
    {
        const char *v = json_string_value(it);
        if (!v) {
            snprintf(err, errlen, "%s: expected an array of strings", key);
            return false;
        }
        if (!check(v, c))
            return false;
        json_array_append(dst, it);
    }
    return true;
}

typedef struct check_ctx {
    const config_t *cfg;
    bool (*known_model)(const void *, const char *);
    const void *ud;
    char *err;
    size_t errlen;
} check_ctx_t;

static bool check_table(const char *v, void *c)
{
    check_ctx_t *k = c;
    if (!known_table(k->cfg, v)) {
        snprintf(k->err, k->errlen, "tables: unknown table '%.200s'", v);
        return false;
    }
    return true;
}

static bool check_model(const char *v, void *c)
{
    check_ctx_t *k = c;
    if (!name_chars(v, ".") || !k->known_model || !k->known_model(k->ud, v)) {
        snprintf(k->err, k->errlen, "models: unknown model '%.200s'", v);
        return false;
    }
    return true;
}

/* An entry of "select" or "exclude": one selector, or several joined by commas (dbt's
 * intersection), each checked. */
static bool check_sel(const char *v, void *c)
{
    check_ctx_t *k = c;
    char part[257];
    for (const char *p = v;; p++) {
        size_t len = strcspn(p, ",");
        if (len >= sizeof part) {
            snprintf(k->err, k->errlen, "select: selector of %zu characters", len);
            return false;
        }
        memcpy(part, p, len);
        part[len] = '\0';
        if (!check_selector(part, k->cfg, k->known_model, k->ud, k->err, k->errlen))
            return false;
        p += len;
        if (!*p)
            return true;
    }
}

json_t *api_parse_trigger(const char *body, size_t len, const config_t *cfg,
                          bool (*known_model)(const void *ud, const char *name), const void *ud,
                          char *err, size_t errlen)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)body[i]))
        i++;
    json_t *out = json_object();
    if (!out) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (i == len)
        return out;
    if (api_json_depth(body, len, API_MAX_JSON_DEPTH) > API_MAX_JSON_DEPTH) {
        snprintf(err, errlen, "JSON nested deeper than %d levels", API_MAX_JSON_DEPTH);
        json_decref(out);
        return NULL;
    }
    json_error_t jerr;
    json_t *in = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!in || !json_is_object(in)) {
        if (in)
            snprintf(err, errlen, "the body must be a JSON object");
        else
            snprintf(err, errlen, "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
                     jerr.text);
        json_decref(in);
        json_decref(out);
        return NULL;
    }
    static const char *const keys[] = {"tables",       "models", "select", "exclude",
                                       "full_refresh", "vars",   NULL};
    const char *key;
    json_t *val;
    json_object_foreach(in, key, val)
    {
        bool ok = false;
        for (size_t k = 0; keys[k]; k++)
            ok |= !strcmp(key, keys[k]);
        if (!ok) {
            snprintf(err, errlen,
                     "unknown key '%.100s' (known: tables, models, select, exclude, "
                     "full_refresh, vars)",
                     key);
            goto bad;
        }
    }
    check_ctx_t c = {cfg, known_model, ud, err, errlen};
    if (!take_list(in, out, "tables", "tables", check_table, &c, err, errlen) ||
        !take_list(in, out, "select", "select", check_sel, &c, err, errlen) ||
        !take_list(in, out, "models", "select", check_model, &c, err, errlen) ||
        !take_list(in, out, "exclude", "exclude", check_sel, &c, err, errlen))
        goto bad;
    val = json_object_get(in, "full_refresh");
    if (val && !json_is_boolean(val)) {
        snprintf(err, errlen, "full_refresh: expected true or false");
        goto bad;
    }
    if (json_is_true(val))
        json_object_set_new(out, "full_refresh", json_true());
    val = json_object_get(in, "vars");
    if (val && !json_is_object(val)) {
        snprintf(err, errlen, "vars: expected an object");
        goto bad;
    }
    if (val)
        json_object_set(out, "vars", val);
    json_decref(in);
    return out;
bad:
    json_decref(in);
    json_decref(out);
    return NULL;
}

/* ---- run JSON ---------------------------------------------------------------------- */

static json_t *task_api_json(const json_t *t)
{
    double st = json_number_value(json_object_get(t, "started_at"));
    double fin = json_number_value(json_object_get(t, "finished_at"));
    json_t *o =
        json_pack("{s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O}", "name", json_object_get(t, "name"),
                  "kind", json_object_get(t, "kind"), "state", json_object_get(t, "state"),
                  "attempts", json_object_get(t, "attempts"), "rows", json_object_get(t, "rows"),
                  "bytes", json_object_get(t, "bytes"), "failures", json_object_get(t, "failures"),
                  "error", json_object_get(t, "error"));
    if (!o)
        return NULL;
    json_object_set_new(o, "started_at", iso_or_null(st));
    json_object_set_new(o, "finished_at", iso_or_null(fin));
    json_object_set_new(o, "duration_seconds",
                        st > 0 ? json_real((fin > 0 ? fin : util_wall_now()) - st) : json_null());
    return o;
}

static json_t *run_json(const svc_run_t *r, bool with_tasks)
{
    json_t *o =
        json_pack("{s:I, s:s, s:s, s:i}", "id", (json_int_t)r->id, "state",
                  run_state_name(r->state), "trigger", r->trigger, "triggers", (int)r->triggers);
    if (!o)
        return NULL;
    json_object_set_new(o, "queued_at", iso_or_null(r->queued_at));
    json_object_set_new(o, "started_at", iso_or_null(r->started_at));
    json_object_set_new(o, "finished_at", iso_or_null(r->finished_at));
    json_object_set_new(
        o, "duration_seconds",
        r->started_at > 0
            ? json_real((r->finished_at > 0 ? r->finished_at : util_wall_now()) - r->started_at)
            : json_null());
    json_object_set_new(o, "error", r->error[0] ? json_string(r->error) : json_null());
    json_object_set_new(o, "request", r->request ? json_incref(r->request) : json_object());
    json_t *tasks = service_tasks_json(r);
    json_int_t rows = 0, bytes = 0;
    size_t i;
    json_t *t;
    json_t *api_tasks = with_tasks ? json_array() : NULL;
    json_array_foreach(tasks, i, t)
    {
        const char *kind = json_string_value(json_object_get(t, "kind"));
        if (kind && !strcmp(kind, "load")) {
            rows += json_integer_value(json_object_get(t, "rows"));
            bytes += json_integer_value(json_object_get(t, "bytes"));
        }
        if (api_tasks)
            json_array_append_new(api_tasks, task_api_json(t));
    }
    json_object_set_new(o, "rows", json_integer(rows));
    json_object_set_new(o, "bytes", json_integer(bytes));
    json_object_set_new(o, "tasks_total", json_integer((json_int_t)json_array_size(tasks)));
    json_decref(tasks);
    if (api_tasks)
        json_object_set_new(o, "tasks", api_tasks);
    return o;
}

/* ---- handlers ---------------------------------------------------------------------- */

typedef void (*route_fn)(api_t *a, http_exchange_t *ex, const http_request_t *req, int64_t id);

static void get_health(api_t *a, http_exchange_t *ex, const http_request_t *req, int64_t id)
{
    (void)req, (void)id;
    respond_json(a, ex, 200,
                 json_pack("{s:s, s:s, s:f}", "status", "ok", "version", ELTD_VERSION,
                           "uptime_seconds", util_wall_now() - a->svc->started_at));
}

static json_t *schedule_json(service_t *s)
{
    if (!s->has_schedule)
        return json_null();
    const scheduler_t *sc = &s->sched;
    json_t *o = json_pack("{s:s, s:s, s:s, s:b}", "cron", sc->text, "normalized", sc->normalized,
                          "timezone", sc->tz.name[0] ? sc->tz.name : "UTC", "catch_up",
                          s->cfg->schedule.catch_up);
    if (!o)
        return NULL;
    json_object_set_new(o, "next_fire", iso_or_null((double)sc->next));
    json_object_set_new(o, "next_fire_unix", sc->next > 0 ? json_integer(sc->next) : json_null());
    json_object_set_new(o, "last_fire", iso_or_null((double)sc->last_fire));
    return o;
}

static void get_status(api_t *a, http_exchange_t *ex, const http_request_t *req, int64_t id)
{
    (void)req, (void)id;
    service_t *s = a->svc;
    const svc_run_t *last = NULL;
    for (size_t i = s->nruns; i-- > 0 && !last;)
        if (s->runs[i]->finished_at > 0)
            last = s->runs[i];
    double now = util_wall_now();
    json_t *o = json_pack(
        "{s:s, s:s, s:o, s:f, s:o, s:o, s:o, s:o, s:I}", "status",
        s->shutting_down ? "stopping" : "ok", "version", ELTD_VERSION, "started_at",
        iso_or_null(s->started_at), "uptime_seconds", now - s->started_at, "schedule",
        schedule_json(s), "active_run", s->active ? run_json(s->active, true) : json_null(),
        "queued_run", s->queued ? run_json(s->queued, false) : json_null(), "last_run",
        last ? run_json(last, false) : json_null(), "runs_total", (json_int_t)s->nruns);
    respond_json(a, ex, 200, o);
}

/* Rendering reads /proc (CPU, memory, and a listing of every open fd: ~150 us with 200
 * clients connected, ten times a /status answer). Scrapes that arrive in the same loop pass
 * (same uv_now millisecond; a pass under wrk -c200 answers up to 200 requests) share one
 * rendering: they are concurrent, so one snapshot is as true for each. A scrape in any
 * later pass renders afresh, so sequential scrapes never see stale values. */
static void get_metrics(api_t *a, http_exchange_t *ex, const http_request_t *req, int64_t id)
{
    (void)req, (void)id;
    /* Counted before rendering, so a scrape sees its own request. */
    count(a, 200);
    uint64_t now = uv_now(a->svc->loop);
    if (!a->metrics_text || a->metrics_at != now) {
        char *text;
        size_t len;
        if (!metrics_render(a->svc->metrics, &text, &len)) {
            respond_error(a, ex, 500, "cannot render the metrics");
            return;
        }
        free(a->metrics_text);
        a->metrics_text = text;
        a->metrics_len = len;
        a->metrics_at = now;
    }
    http_respond(ex, 200, "text/plain; version=0.0.4; charset=utf-8", a->metrics_text,
                 a->metrics_len);
}

/* /docs, /docs/manifest.json, /docs/catalog.json: the daemon's last docs build. The page
 * gets a strict Content-Security-Policy: it has no script, and a description in it can
 * never bring one. */
static void get_docs(api_t *a, http_exchange_t *ex, const http_request_t *req, int64_t id)
{
    (void)id;
    const docs_live_t *d = &a->svc->docs;
    if (!d->files.html) {
        respond_error(a, ex, 503,
                      d->busy ? "the documentation is being built; try again in a moment"
                              : "no documentation: the dbt project did not load (see the log)");
        return;
    }
    bool html = !strcmp(req->path, "/docs");
    if (html && (http_exchange_add_header(ex, "Content-Security-Policy",
                                          "default-src 'none'; style-src 'unsafe-inline'") != 0 ||
                 http_exchange_add_header(ex, "X-Content-Type-Options", "nosniff") != 0)) {
        respond_error(a, ex, 500, "out of memory");
        return;
    }
    count(a, 200);
    if (html)
        http_respond(ex, 200, "text/html; charset=utf-8", d->files.html, d->files.html_len);
    else if (!strcmp(req->path, "/docs/manifest.json"))
        http_respond(ex, 200, "application/json", d->files.manifest, d->files.manifest_len);
    else
        http_respond(ex, 200, "application/json", d->files.catalog, d->files.catalog_len);
}

/* Reads an integer query parameter; false on a malformed value. */
static bool query_int(const char *v, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return false;
    *out = x;
    return true;
}

static void get_runs(api_t *a, http_exchange_t *ex, const http_request_t *req, int64_t id)
{
    (void)id;
    long long limit = 50, offset = 0;
    int state = -1;
    char q[1024];
    snprintf(q, sizeof q, "%s", req->query);
    for (char *save = NULL, *kv = strtok_r(q, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
        char *v = strchr(kv, '=');
        v = v ? (*v = '\0', v + 1) : "";
        if (!strcmp(kv, "limit")) {
            if (!query_int(v, 1, 1000, &limit)) {
                respond_error(a, ex, 400, "limit: expected an integer from 1 to 1000");
                return;
            }
        } else if (!strcmp(kv, "offset")) {
            if (!query_int(v, 0, 1000000000, &offset)) {
                respond_error(a, ex, 400, "offset: expected a non-negative integer");
                return;
            }
        } else if (!strcmp(kv, "state")) {
            for (int i = RUN_QUEUED; i <= RUN_CANCELLED; i++)
                if (!strcmp(v, run_state_name((run_state_t)i)))
                    state = i;
            if (state < 0) {
                respond_error(a, ex, 400,
                              "state: expected queued, running, success, failed or cancelled");
                return;
            }
        }
    }
    service_t *s = a->svc;
    json_t *runs = json_array();
    long long matched = 0;
    for (size_t i = s->nruns; runs && i-- > 0;) {
        const svc_run_t *r = s->runs[i];
        if (state >= 0 && (int)r->state != state)
            continue;
        if (matched++ < offset || matched > offset + limit)
            continue;
        json_array_append_new(runs, run_json(r, false));
    }
    respond_json(a, ex, 200,
                 json_pack("{s:o, s:I, s:I, s:I}", "runs", runs, "total", (json_int_t)matched,
                           "limit", (json_int_t)limit, "offset", (json_int_t)offset));
}

static void get_run(api_t *a, http_exchange_t *ex, const http_request_t *req, int64_t id)
{
    (void)req;
    const svc_run_t *r = service_find(a->svc, id);
    if (!r) {
        respond_error(a, ex, 404, "no such run");
        return;
    }
    respond_json(a, ex, 200, run_json(r, true));
}

static void post_cancel(api_t *a, http_exchange_t *ex, const http_request_t *req, int64_t id)
{
    (void)req;
    switch (service_cancel(a->svc, id)) {
    case SVC_CANCEL_NOT_FOUND:
        respond_error(a, ex, 404, "no such run");
        return;
    case SVC_CANCEL_FINISHED:
        respond_error(a, ex, 409, "the run has already finished");
        return;
    case SVC_CANCEL_OK:
        break;
    }
    /* A queued run is cancelled at once, and its record may already be compacted away. */
    const svc_run_t *r = service_find(a->svc, id);
    respond_json(a, ex, 202,
                 json_pack("{s:I, s:s, s:b}", "run_id", (json_int_t)id, "state",
                           r ? run_state_name(r->state) : run_state_name(RUN_CANCELLED),
                           "cancel_requested", 1));
}

static bool known_model_cb(const void *ud, const char *name)
{
    return service_known_model(ud, name);
}

static void trigger(api_t *a, http_exchange_t *ex, const http_request_t *req, const char *kind)
{
    char err[512];
    json_t *rq = api_parse_trigger(req->body, req->body_len, a->svc->cfg, known_model_cb, a->svc,
                                   err, sizeof err);
    if (!rq) {
        respond_error(a, ex, 400, err);
        return;
    }
    if (!service_check_selection(a->svc, rq, err, sizeof err)) {
        json_decref(rq);
        respond_error(a, ex, 400, err);
        return;
    }
    svc_trigger_result_t res;
    bool ok = service_trigger(a->svc, kind, rq, &res, err, sizeof err);
    json_decref(rq);
    if (!ok) {
        respond_error(a, ex, 503, err);
        return;
    }
    char loc[64];
    snprintf(loc, sizeof loc, "/api/runs/%lld", (long long)res.run_id);
    if (http_exchange_add_header(ex, "Location", loc) != 0)
        log_warn("event=http_header_refused name=Location");
    respond_json(a, ex, 202,
                 json_pack("{s:I, s:s, s:b}", "run_id", (json_int_t)res.run_id, "state",
                           run_state_name(res.state), "coalesced", res.coalesced));
}

static void post_webhook(api_t *a, http_exchange_t *ex, const http_request_t *req, int64_t id)
{
    (void)id;
    trigger(a, ex, req, "webhook");
}

static void post_manual(api_t *a, http_exchange_t *ex, const http_request_t *req, int64_t id)
{
    (void)id;
    trigger(a, ex, req, "manual");
}

/* ---- readiness --------------------------------------------------------------------- */

struct ready_check {
    api_t *api;
    http_exchange_t *ex; /* NULL once answered or abandoned */
    uv_timer_t timer;
    pg_conn_t *pg;         /* until closed is asked */
    ch_request_t *chreq;   /* until its done callback */
    bool pg_done, ch_done; /* the answer of each is known */
    char pg_err[256], ch_err[256];
    int refs; /* timer, pg, ch */
    ready_check_t *prev, *next;
};

static void ready_unref(ready_check_t *c)
{
    if (--c->refs > 0)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->api->checks = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

static void on_ready_timer_closed(uv_handle_t *h)
{
    ready_unref(h->data);
}

static void on_ready_pg_closed(void *ud)
{
    ready_unref(ud);
}

static void ready_close_pg(ready_check_t *c)
{
    if (c->pg) {
        pg_conn_t *pg = c->pg;
        c->pg = NULL;
        pg_conn_close(pg, on_ready_pg_closed, c);
    }
}

/* Answers once both are known, or at the deadline with what is still missing. */
static void ready_answer(ready_check_t *c, bool deadline)
{
    if (!deadline && !(c->pg_done && c->ch_done))
        return;
    if (!c->pg_done)
        snprintf(c->pg_err, sizeof c->pg_err, "no answer within %d ms", API_READY_TIMEOUT_MS);
    if (!c->ch_done)
        snprintf(c->ch_err, sizeof c->ch_err, "no answer within %d ms", API_READY_TIMEOUT_MS);
    c->pg_done = c->ch_done = true;
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, on_ready_timer_closed);
    ready_close_pg(c);
    if (c->chreq) {
        ch_request_cancel(c->chreq);
        c->chreq = NULL; /* its done callback still comes and drops its reference */
    }
    if (!c->ex)
        return;
    http_exchange_t *ex = c->ex;
    c->ex = NULL;
    http_exchange_set_cancel(ex, NULL, NULL);
    bool ok = !c->pg_err[0] && !c->ch_err[0];
    json_t *o =
        json_pack("{s:s, s:s, s:s}", "status", ok ? "ready" : "not ready", "postgres",
                  c->pg_err[0] ? c->pg_err : "ok", "clickhouse", c->ch_err[0] ? c->ch_err : "ok");
    if (o && !ok) {
        char msg[600];
        snprintf(msg, sizeof msg, "not ready:%s%s%s%s", c->pg_err[0] ? " postgres: " : "",
                 c->pg_err, c->ch_err[0] ? " clickhouse: " : "", c->ch_err);
        json_object_set_new(o, "error", json_string(msg));
        log_warn("event=not_ready postgres=%s clickhouse=%s", log_quote(c->pg_err),
                 log_quote(c->ch_err));
    }
    respond_json(c->api, ex, ok ? 200 : 503, o);
}

static void on_ready_timeout(uv_timer_t *t)
{
    ready_answer(t->data, true);
}

static void on_ready_pg(pg_conn_t *pg, void *ud, const char *err)
{
    (void)pg;
    ready_check_t *c = ud;
    c->pg_done = true;
    if (err)
        snprintf(c->pg_err, sizeof c->pg_err, "%s", err);
    ready_close_pg(c);
    ready_answer(c, false);
}

static void on_ready_ch(ch_request_t *req, void *ud, long status, const char *body, size_t len,
                        const char *err)
{
    (void)req, (void)status, (void)body, (void)len;
    ready_check_t *c = ud;
    if (!c->ch_done) {
        c->ch_done = true;
        c->chreq = NULL;
        if (err)
            snprintf(c->ch_err, sizeof c->ch_err, "%s", err);
        ready_answer(c, false);
    }
    ready_unref(c);
}

static void on_ready_cancel(http_exchange_t *ex, void *ud)
{
    (void)ex;
    ready_check_t *c = ud;
    c->ex = NULL;
}

static void get_ready(api_t *a, http_exchange_t *ex, const http_request_t *req, int64_t id)
{
    (void)req, (void)id;
    ready_check_t *c = calloc(1, sizeof *c);
    if (!c) {
        respond_error(a, ex, 500, "out of memory");
        return;
    }
    c->api = a;
    c->ex = ex;
    c->next = a->checks;
    if (a->checks)
        a->checks->prev = c;
    a->checks = c;
    http_exchange_set_cancel(ex, on_ready_cancel, c);
    c->refs = 1; /* the timer */
    uv_timer_init(a->svc->loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, on_ready_timeout, API_READY_TIMEOUT_MS, 0);

    c->refs++; /* ClickHouse: its done callback always comes */
    c->chreq = ch_query(a->svc->ch, "SELECT 1", NULL, on_ready_ch, c);
    if (!c->chreq) {
        c->refs--;
        c->ch_done = true;
        snprintf(c->ch_err, sizeof c->ch_err, "out of memory");
    }
    c->pg = pg_conn_new(a->svc->loop);
    if (!c->pg) {
        c->pg_done = true;
        snprintf(c->pg_err, sizeof c->pg_err, "out of memory");
    } else {
        c->refs++; /* PostgreSQL: until the connection is closed */
        const char *keys[16], *values[16];
        char port[16], timeout[16];
        load_pg_params(a->svc->cfg, keys, values, port, timeout);
        if (pg_conn_connect(c->pg, keys, values, API_READY_TIMEOUT_MS / 1000.0, on_ready_pg, c) !=
            0) {
            c->pg_done = true;
            snprintf(c->pg_err, sizeof c->pg_err, "%s", pg_conn_error(c->pg));
            ready_close_pg(c);
        }
    }
    ready_answer(c, false);
}

void api_shutdown(api_t *a)
{
    for (ready_check_t *c = a->checks; c; c = c->next)
        if (!c->pg_done || !c->ch_done || c->ex)
            ready_answer(c, true);
}

/* ---- routing ----------------------------------------------------------------------- */

typedef struct route {
    const char *path; /* "{id}" matches a positive decimal run id */
    const char *method;
    route_fn fn;
} route_t;

static const route_t routes[] = {
    {"/health", "GET", get_health},
    {"/ready", "GET", get_ready},
    {"/status", "GET", get_status},
    {"/metrics", "GET", get_metrics},
    {"/docs", "GET", get_docs},
    {"/docs/manifest.json", "GET", get_docs},
    {"/docs/catalog.json", "GET", get_docs},
    {"/webhook", "POST", post_webhook},
    {"/webhook/manual", "POST", post_manual},
    {"/api/runs", "GET", get_runs},
    {"/api/runs/{id}", "GET", get_run},
    {"/api/runs/{id}/cancel", "POST", post_cancel},
    {NULL, NULL, NULL},
};

static bool path_match(const char *pattern, const char *path, int64_t *id)
{
    const char *brace = strstr(pattern, "{id}");
    if (!brace)
        return !strcmp(pattern, path);
    size_t pre = (size_t)(brace - pattern);
    if (strncmp(pattern, path, pre) != 0)
        return false;
    const char *p = path + pre;
    int64_t v = 0;
    size_t digits = 0;
    while (isdigit((unsigned char)*p) && digits < 18) {
        v = v * 10 + (*p++ - '0');
        digits++;
    }
    if (digits == 0 || v == 0 || isdigit((unsigned char)*p))
        return false;
    *id = v;
    return !strcmp(p, brace + 4);
}

void api_handle(http_exchange_t *ex, const http_request_t *req, void *ud)
{
    api_t *a = ud;
    const char *method = !strcmp(req->method, "HEAD") ? "GET" : req->method;
    const route_t *hit = NULL;
    char allow[64] = "";
    int64_t id = 0;
    for (const route_t *r = routes; r->path; r++) {
        if (!path_match(r->path, req->path, &id))
            continue;
        if (!strcmp(r->method, method))
            hit = r;
        else
            snprintf(allow, sizeof allow, "%s", !strcmp(r->method, "GET") ? "GET, HEAD" : "POST");
    }
    if (!hit && allow[0]) {
        if (http_exchange_add_header(ex, "Allow", allow) != 0)
            log_warn("event=http_header_refused name=Allow");
        respond_error(a, ex, 405, "method not allowed");
        return;
    }
    if (!hit) {
        respond_error(a, ex, 404, "not found");
        return;
    }
    if (!strcmp(hit->method, "POST") && a->token &&
        !api_token_ok(http_request_header(req, "Authorization"), a->token)) {
        if (http_exchange_add_header(ex, "WWW-Authenticate", "Bearer realm=\"eltd\"") != 0)
            log_warn("event=http_header_refused name=WWW-Authenticate");
        log_warn("event=unauthorized method=%s path=%s peer=%s", req->method, log_quote(req->path),
                 req->peer);
        respond_error(a, ex, 401, "missing or wrong bearer token");
        return;
    }
    hit->fn(a, ex, req, id);
}

bool api_init(api_t *a, service_t *svc, const char *token)
{
    memset(a, 0, sizeof *a);
    a->svc = svc;
    if (token && *token && !(a->token = strdup(token)))
        return false;
    a->http_total = metrics_counter(svc->metrics, "eltd_http_requests_total",
                                    "HTTP responses by status code, the server's own refusals "
                                    "(400, 408, 413, 431, 503 ...) included",
                                    METRICS_LABELS("code"));
    return a->http_total != NULL;
}

void api_free(api_t *a)
{
    if (a->token) {
        /* The secret does not outlive its use in memory more than it must. */
        volatile char *p = a->token;
        while (*p)
            *p++ = '\0';
    }
    free(a->token);
    a->token = NULL;
    free(a->metrics_text);
    a->metrics_text = NULL;
}
