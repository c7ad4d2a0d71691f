/* http_server.h — a generic HTTP/1.1 server on uv_tcp_t and llhttp: listening, connections,
 * request parsing and framing, limits and timeouts, keep-alive and pipelining. Routing is
 * the caller's: every complete request goes to one handler, which answers it now or later. */
#ifndef ELTD_HTTP_SERVER_H
#define ELTD_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define HTTP_MUST_CHECK __attribute__((warn_unused_result))

/* Bounds on what one client may cost. A zero field takes the default shown. */
typedef struct http_limits_s {
    size_t max_head_bytes;      /* raw request line + headers: 8 KiB → 431 (414 in the URI) */
    size_t max_headers;         /* header lines per request: 100 → 431 */
    size_t max_body_bytes;      /* decoded body: 1 MiB → 413 */
    uint64_t header_timeout_ms; /* whole head, and longest body stall: 10 s → 408 */
    uint64_t idle_timeout_ms;   /* keep-alive wait, and longest write stall: 60 s → close */
    unsigned max_connections;   /* open client connections: 512 → evict the longest idle */
    const char *const *unpaced; /* NULL-terminated paths pacing never holds; NULL = none */
} http_limits_t;

/* When a connection arrives and max_connections are open, the connection idle the longest is
 * closed to admit it: one waiting between keep-alive requests, one that has sent nothing or
 * only part of a head (idle since its last byte, so a slowloris goes first), or one draining
 * after its final response. A connection reading a body, waiting for its handler or being
 * written to is never evicted; only when every open one is such does the new one get 503. */

/* Fills *lim with the defaults. */
void http_limits_default(http_limits_t *lim);

typedef struct http_header_s {
    const char *name;  /* as sent, NUL-terminated */
    const char *value; /* without surrounding whitespace, NUL-terminated */
} http_header_t;

/* A complete request. Every pointer stays valid until the exchange ends (see below). */
typedef struct http_request_s {
    const char *method;           /* "GET", "POST", ... */
    const char *path;             /* raw request path before '?', not percent-decoded */
    const char *query;            /* raw text after '?', "" when there is none */
    const http_header_t *headers; /* in arrival order */
    size_t n_headers;             /* entries in headers */
    const char *body; /* decoded body (chunked is de-chunked); NUL-terminated, "" if none */
    size_t body_len;  /* bytes in body, not counting the terminating NUL */
    int http_minor;   /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
    const char *peer; /* client address as text: "127.0.0.1" or "::1" */
    int peer_port;    /* client port */
} http_request_t;

/* First value of the header called name (case-insensitive), or NULL. */
const char *http_request_header(const http_request_t *req, const char *name);

/* One request awaiting its answer. Lifetime: an exchange begins when the handler is called and
 * ends when http_respond() (or http_respond_error()) is called on it, or when its cancel callback
 * runs because the client went away or the server is closing. After its end the pointer must not
 * be used. A handler that answers later (asynchronously) must set a cancel callback before it
 * returns, so that it learns when to drop the pointer. */
typedef struct http_exchange_s http_exchange_t;

typedef void (*http_handler_fn)(http_exchange_t *ex, const http_request_t *req, void *ud);
typedef void (*http_cancel_fn)(http_exchange_t *ex, void *ud);

/* The request this exchange answers. */
const http_request_t *http_exchange_request(const http_exchange_t *ex);

/* cb runs at most once, if the exchange ends without a response; NULL removes it. */
void http_exchange_set_cancel(http_exchange_t *ex, http_cancel_fn cb, void *ud);

/* Adds "name: value" to the coming response (e.g. WWW-Authenticate, Retry-After). Refuses
 * names that are not tokens, values holding CR, LF or NUL, and more than 2 KiB in all. */
int http_exchange_add_header(http_exchange_t *ex, const char *name,
                             const char *value) HTTP_MUST_CHECK;

/* Answers and ends the exchange. The body is copied; content_type may be NULL when len is 0.
 * Adds Date, Server, Content-Length (not for 204/304) and Connection as needed; a HEAD request
 * gets the headers only. A status outside 200..599 is answered as 500. Never fails from the
 * caller's side: if the answer cannot be sent the connection is closed. */
void http_respond(http_exchange_t *ex, int status, const char *content_type, const char *body,
                  size_t len);

/* Answers {"error": message} as application/json and ends the exchange. */
void http_respond_error(http_exchange_t *ex, int status, const char *message);

/* Reason phrase of a status code ("Not Found"), or "Unknown". */
const char *http_status_text(int status);

typedef struct http_server_s http_server_t;
typedef struct http_conn_s http_conn_t;
typedef void (*http_server_close_fn)(http_server_t *s);

/* What the server does without the handler, told to its owner (for metrics). */
typedef enum {
    HTTP_EVENT_ANSWERED, /* the server answered status itself: a refused request or a 503 */
    HTTP_EVENT_EVICTED,  /* an idle connection was closed to admit a new one (status 0) */
    HTTP_EVENT_PACED,    /* a request waits for its turn under http_server_set_pace (0) */
} http_event_t;
typedef void (*http_event_fn)(http_event_t ev, int status, void *ud);

/* Embed in the owner; fields are private to http_server.c. */
struct http_server_s {
    uv_tcp_t listener;             /* the listening socket */
    uv_loop_t *loop;               /* the loop everything runs on */
    http_limits_t lim;             /* effective limits, defaults filled in */
    http_handler_fn handler;       /* called once per complete request */
    void *ud;                      /* handler's user data */
    http_conn_t *conns;            /* open connections, a doubly-linked list */
    http_conn_t *idle_head;        /* evictable connections, least recently active first */
    http_conn_t *idle_tail;        /* and most recently active last */
    unsigned n_conns;              /* connections allocated and not yet freed */
    unsigned n_active;             /* connections counted against max_connections */
    uint64_t evictions;            /* connections evicted since start */
    double pace_per_s;             /* requests a second the handler gets; 0 = no pacing */
    double pace_next_ms;           /* loop time of the next free turn (see conn_dispatch) */
    http_event_fn on_event;        /* told of answers and evictions, or NULL */
    void *event_ud;                /* its user data */
    int port;                      /* bound port */
    bool closing;                  /* http_server_close was called */
    bool listener_open;            /* listener not yet closed */
    http_server_close_fn close_cb; /* called once all is closed */
};

/* Binds host (an IPv4 or IPv6 literal; NULL or "" means 0.0.0.0) and port (0 picks a free
 * one) and starts serving on loop. lim may be NULL for the defaults. On error returns a
 * negative libuv code, writes the reason into err and leaves nothing open (address, bind and
 * listen errors all come before the handle exists; should libuv then refuse the socket, the
 * handle is closed and the loop must run once before s is freed). Sets SIGPIPE to ignored if
 * it was at its default, so that a client resetting mid-response cannot kill the process. */
int http_server_start(http_server_t *s, uv_loop_t *loop, const char *host, int port,
                      const http_limits_t *lim, http_handler_fn handler, void *ud, char *err,
                      size_t errlen) HTTP_MUST_CHECK;

/* The bound port (useful after port 0). */
int http_server_port(const http_server_t *s);

/* Open client connections. */
unsigned http_server_connections(const http_server_t *s);

/* Connections evicted to admit new ones since start. */
uint64_t http_server_evictions(const http_server_t *s);

/* cb (NULL removes it) is called for every response the server sends without the handler
 * (400, 408, 413, 414, 417, 431, 501, 505, 503...), and for every eviction. Call after a
 * successful http_server_start. */
void http_server_set_event_cb(http_server_t *s, http_event_fn cb, void *ud);

/* Pacing: while per_second > 0, the handler gets at most that many requests a second;
 * a request beyond it waits for its turn (turns are handed out in arrival order, 1/per_second
 * apart), holding its connection's one request — a client waits for an answer before it
 * sends the next, so a flood of clients slows to the pace instead of taking the CPU from
 * the rest of the loop. Paths in lim.unpaced are never held. 0 ends pacing; the requests
 * waiting then go to the handler at once. */
void http_server_set_pace(http_server_t *s, double per_second);

/* Stops accepting and closes every connection, cancelling pending exchanges; cb (may be NULL)
 * runs once every handle is closed, after which s may be freed. Call once, after a successful
 * http_server_start. */
void http_server_close(http_server_t *s, http_server_close_fn cb);

#endif
