/* api.h — the HTTP API of `eltd serve`: routes, bearer-token check, request bodies checked
 * against the configured tables and known models, JSON answers with jansson, and the
 * readiness probe. Plugged into http_server as its handler; the daemon is service.h. */
#ifndef ELTD_API_H
#define ELTD_API_H

#include "http_server.h"
#include "service.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bodies nested deeper than this are refused before jansson sees them. */
#define API_MAX_JSON_DEPTH 16
/* How long GET /ready waits for PostgreSQL and ClickHouse. */
#define API_READY_TIMEOUT_MS 3000

typedef struct api api_t;
typedef struct ready_check ready_check_t;

struct api {
    service_t *svc;               /* the daemon */
    char *token;                  /* bearer token for POST, NULL = none (never logged) */
    metrics_family_t *http_total; /* eltd_http_requests_total{code} */
    ready_check_t *checks;        /* readiness probes in flight */
    char *metrics_text;           /* last /metrics body, reused within one loop pass */
    size_t metrics_len;           /* its length */
    uint64_t metrics_at;          /* uv_now when it was rendered */
};

/* token may be NULL or "" for none. Registers eltd_http_requests_total in the service's
 * registry. */
bool api_init(api_t *a, service_t *svc, const char *token) __attribute__((warn_unused_result));

/* The http_server handler; ud is the api_t. */
void api_handle(http_exchange_t *ex, const http_request_t *req, void *ud);

/* Abandons the readiness probes in flight (their connections close); call before the
 * service shuts down. */
void api_shutdown(api_t *a);

/* Frees the token and the cached /metrics body; after api_shutdown and once the loop has closed the probes. */
void api_free(api_t *a);

/* Pure helpers, exposed for unit tests. */

/* Constant-time comparison of the "Authorization" value with "Bearer <token>". */
bool api_token_ok(const char *authorization, const char *token);

/* Nesting depth of JSON text (brackets outside strings), stopping once max is exceeded. */
int api_json_depth(const char *text, size_t len, int max);

/* Parses and checks a trigger body into the service's request shape (see svc_run_t):
 * {"tables": [..], "models": [..], "select": [..], "exclude": [..], "full_refresh": bool,
 * "vars": {..}}. An empty body is {}. On failure returns NULL and err holds the message
 * for a 400. known_model may be NULL (then only selectors naming tables are accepted). */
json_t *api_parse_trigger(const char *body, size_t len, const config_t *cfg,
                          bool (*known_model)(const void *ud, const char *name), const void *ud,
                          char *err, size_t errlen);

#endif
