/* cmd_serve.c — `eltd serve`: checks the listen address against the token rule, wires the
 * service, the API and the HTTP server onto one loop, and turns SIGTERM/SIGINT into an
 * orderly shutdown (a second signal cancels the active run at once). Exit 0 after a clean
 * shutdown, 3 when the service cannot start or listen. */
#include "api.h"
#include "cli.h"
#include "http_server.h"
#include "log.h"
#include "service.h"
#include "state_lock.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct serve {
    uv_loop_t loop;
    http_server_t http;
    api_t api;
    service_t *svc;
    const config_t *cfg;
    metrics_family_t *http_evicted; /* eltd_http_connections_evicted_total */
    metrics_family_t *http_paced;   /* eltd_http_requests_paced_total */
    uv_signal_t sigint, sigterm;
    bool http_open; /* http_server_start succeeded and close was not asked yet */
    bool stopping;  /* a signal came */
} serve_t;

/* Splits "host:port" or "[v6]:port"; "localhost" becomes 127.0.0.1. */
static bool parse_listen(const char *listen, char *host, size_t hostlen, int *port)
{
    const char *colon;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':')
            return false;
        snprintf(host, hostlen, "%.*s", (int)(close - listen - 1), listen + 1);
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon)
            return false;
        snprintf(host, hostlen, "%.*s", (int)(colon - listen), listen);
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || p < 0 || p > 65535)
        return false;
    *port = (int)p;
    if (!strcmp(host, "localhost"))
        snprintf(host, hostlen, "127.0.0.1");
    return true;
}

static bool is_loopback(const char *host)
{
    return !strncmp(host, "127.", 4) || !strcmp(host, "::1");
}

/* What the HTTP server answers itself (refusals, 503) is counted in the API's family, by code,
 * beside what the API answers; evictions have their own counter. */
static void on_http_event(http_event_t ev, int status, void *ud)
{
    serve_t *s = ud;
    if (ev == HTTP_EVENT_EVICTED || ev == HTTP_EVENT_PACED) {
        metrics_counter_add(ev == HTTP_EVENT_EVICTED ? s->http_evicted : s->http_paced, 1,
                            METRICS_NO_LABELS);
        return;
    }
    char code[8];
    snprintf(code, sizeof code, "%d", status);
    metrics_counter_add(s->api.http_total, 1, METRICS_LABELS(code));
}

/* While a run moves data the API yields to it: http.rate_during_runs requests a second, the
 * others waiting their turn (a flood of clients took a core the load would use: 200 wrk
 * clients made a 2M-row load 1.96x slower). */
static void on_active(service_t *svc, bool active, void *ud)
{
    (void)svc;
    serve_t *s = ud;
    if (s->http_open)
        http_server_set_pace(&s->http, active ? (double)s->cfg->http.rate_during_runs : 0);
}

static void on_service_done(service_t *svc, void *ud)
{
    (void)svc;
    serve_t *s = ud;
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
}

static void stop(serve_t *s)
{
    if (s->http_open) {
        s->http_open = false;
        api_shutdown(&s->api);
        http_server_close(&s->http, NULL);
    }
    service_shutdown(s->svc, on_service_done, s);
}

static void on_signal(uv_signal_t *h, int signum)
{
    serve_t *s = h->data;
    log_info("event=signal signal=%d action=%s", signum, s->stopping ? "cancel_run" : "shutdown");
    s->stopping = true;
    stop(s);
}

int cmd_serve(const cli_t *c, config_t *cfg)
{
    (void)c;
    char host[256];
    int port;
    if (!parse_listen(cfg->http.listen, host, sizeof host, &port)) {
        fprintf(stderr, "eltd: %s: http.listen: expected host:port, got '%s'\n", cfg->path,
                cfg->http.listen);
        return EXIT_CONFIG;
    }
    const char *token =
        cfg->http.token && *cfg->http.token ? cfg->http.token : getenv("ELTD_API_TOKEN");
    if (token && !*token)
        token = NULL;
    if (!token && !is_loopback(host) && !cfg->http.allow_public_without_token) {
        fprintf(stderr,
                "eltd: refusing to listen on %s without an API token: anyone who can reach "
                "it could trigger and cancel runs. Set http.token (or ELTD_API_TOKEN), listen "
                "on a loopback address, or set http.allow_public_without_token: true\n",
                cfg->http.listen);
        return EXIT_RUNTIME;
    }
    serve_t s = {.cfg = cfg};
    char err[1024];
    state_lock_t lock;
    if (state_lock_take(&lock, cfg->state_dir, true, "serve", err, sizeof err) != STATE_LOCK_HELD) {
        fprintf(stderr, "eltd: %s: one eltd per state directory and warehouse\n", err);
        return EXIT_RUNTIME;
    }
    if (uv_loop_init(&s.loop) != 0) {
        state_lock_release(&lock);
        return EXIT_RUNTIME;
    }
    s.svc = service_new(&s.loop, cfg, err, sizeof err);
    if (!s.svc) {
        fprintf(stderr, "eltd: %s\n", err);
        uv_run(&s.loop, UV_RUN_DEFAULT);
        uv_loop_close(&s.loop);
        state_lock_release(&lock);
        return EXIT_RUNTIME;
    }
    uv_signal_init(&s.loop, &s.sigint);
    uv_signal_init(&s.loop, &s.sigterm);
    s.sigint.data = s.sigterm.data = &s;
    http_limits_t lim;
    http_limits_default(&lim);
    lim.max_connections = (unsigned)cfg->http.max_connections;
    lim.max_body_bytes = (size_t)cfg->http.max_body_bytes;
    lim.header_timeout_ms = (uint64_t)(cfg->http.header_timeout * 1000 + 0.5);
    static const char *const unpaced[] = {"/health", "/ready", NULL};
    lim.unpaced = unpaced;
    int rc = EXIT_OK;
    if (!api_init(&s.api, s.svc, token)) {
        fprintf(stderr, "eltd: cannot set up the API\n");
        rc = EXIT_RUNTIME;
    } else if (!(s.http_evicted =
                     metrics_counter(s.svc->metrics, "eltd_http_connections_evicted_total",
                                     "Idle HTTP connections closed to admit a new one, all of "
                                     "http.max_connections being open",
                                     METRICS_NO_LABELS)) ||
               !(s.http_paced = metrics_counter(
                     s.svc->metrics, "eltd_http_requests_paced_total",
                     "API requests that waited for their turn while a run was active "
                     "(http.rate_during_runs)",
                     METRICS_NO_LABELS))) {
        fprintf(stderr, "eltd: cannot register the HTTP metrics\n");
        rc = EXIT_RUNTIME;
    } else if (http_server_start(&s.http, &s.loop, host, port, &lim, api_handle, &s.api, err,
                                 sizeof err) != 0) {
        fprintf(stderr, "eltd: cannot listen on %s: %s\n", cfg->http.listen, err);
        rc = EXIT_RUNTIME;
    } else {
        s.http_open = true;
        http_server_set_event_cb(&s.http, on_http_event, &s);
        service_set_active_cb(s.svc, on_active, &s);
        bool v6 = strchr(host, ':') != NULL;
        log_info("event=listening addr=%s%s%s:%d token=%s", v6 ? "[" : "",
                 host[0] ? host : "0.0.0.0", v6 ? "]" : "", http_server_port(&s.http),
                 token ? "required" : "none");
        uv_signal_start(&s.sigint, on_signal, SIGINT);
        uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    }
    if (rc != EXIT_OK)
        stop(&s);
    uv_run(&s.loop, UV_RUN_DEFAULT);
    service_free(s.svc);
    api_free(&s.api);
    if (uv_loop_close(&s.loop) != 0)
        log_warn("event=loop_close_busy");
    state_lock_release(&lock);
    log_info("event=exit code=%d", rc);
    return rc;
}
