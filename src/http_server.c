/* http_server.c — the HTTP/1.1 server: owns the listening socket and every client connection
 * (its tcp handle, its one timer, its read buffer, the parsed head and body, the response being
 * written, the llhttp parser). What a request means is the handler's business, not this file's. */

#include "http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <llhttp.h>

#include "log.h"

#ifndef ELTD_VERSION
#define ELTD_VERSION "dev"
#endif

/* Bytes read from a client but not yet parsed. Reading stops while it is full, which only
 * happens when a client pipelines more than this behind a request still being answered. */
#define HTTP_RBUF_SIZE 16384
/* Extra response headers a handler may add to one response. */
#define HTTP_EXTRA_MAX 2048
/* After a final response, how long we keep draining a client before closing, so that the
 * kernel does not answer its late bytes with a reset that would destroy our response. */
#define HTTP_LINGER_MS 2000
/* Connections over the limit still get a 503; past this many at once they are just closed. */
#define HTTP_MAX_REJECTING 64
/* How many of the longest-idle connections eviction looks at for one without unread bytes. */
#define HTTP_EVICT_SCAN 16

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

typedef enum {
    CONN_HEAD,    /* reading a request line and headers (or waiting for the first byte) */
    CONN_BODY,    /* reading a body */
    CONN_PENDING, /* the handler holds the exchange */
    CONN_WRITING, /* writing a response */
    CONN_IDLE,    /* keep-alive: waiting for the next request */
    CONN_LINGER,  /* final response sent and write side shut: draining until EOF */
} conn_state_t;

struct http_exchange_s {
    http_conn_t *conn;          /* the connection this exchange lives in */
    http_cancel_fn cancel;      /* the async owner's cancel callback, or NULL */
    void *cancel_ud;            /* its user data */
    size_t extra_len;           /* bytes used in extra */
    char extra[HTTP_EXTRA_MAX]; /* extra response header lines, CRLF-terminated */
};

struct http_conn_s {
    uv_tcp_t tcp;                /* the client socket */
    uv_timer_t timer;            /* head, body, idle, write and linger deadlines */
    uv_write_t write_req;        /* the response being written */
    uv_write_t continue_req;     /* a "100 Continue" being written */
    uv_shutdown_t shutdown_req;  /* half-close after a final response */
    http_server_t *server;       /* owner */
    http_conn_t *prev, *next;    /* in server->conns */
    http_conn_t *idle_prev;      /* in server->idle_head..idle_tail, while evictable */
    http_conn_t *idle_next;      /* (see conn_evictable) */
    uint64_t active_ms;          /* last activity of an evictable connection (uv_now) */
    llhttp_t parser;             /* request parser; paused at head end and message end */
    conn_state_t state;          /* see conn_state_t */
    int open_handles;            /* handles not yet closed; freed at zero */
    bool closing;                /* conn_close was called */
    bool counted;                /* counted in server->n_active */
    bool in_idle;                /* linked in the server's idle list */
    bool paced;                  /* the request waits for its turn: the timer hands it over */
    bool reading;                /* uv_read_start is in effect */
    bool keep_alive;             /* keep the connection after the current response */
    bool is_head;                /* the current request is HEAD: send no body */
    bool url_done;               /* the request-target is complete (414 vs 431) */
    bool in_head;                /* header callbacks belong to the head, not to trailers */
    bool new_field;              /* the next header field span starts a new header */
    bool kick;                   /* run the parser once more even without new bytes */
    bool continue_pending;       /* continue_req is in flight */
    int err_status;              /* status chosen by a parser callback that refused */
    const char *err_msg;         /* and its reason */
    char prev_byte;              /* last head byte scanned: obs-fold detection across reads */
    size_t head_raw;             /* raw bytes of the current head so far */
    char *head;                  /* request-target, header names and values, NUL-separated */
    size_t head_len, head_cap;   /* bytes used in and size of head */
    http_header_t *headers;      /* lim.max_headers entries pointing into head */
    size_t n_headers;            /* complete headers */
    size_t trailer_bytes;        /* bytes of chunked trailers seen (counted, not kept) */
    char *body;                  /* decoded body, NUL-terminated */
    size_t body_len, body_cap;   /* bytes used in and size of body */
    char *out;                   /* response being written */
    uint64_t started_ms;         /* when the current request was dispatched */
    http_request_t req;          /* the request handed to the handler */
    http_exchange_t ex;          /* the exchange handed to the handler */
    char peer[INET6_ADDRSTRLEN]; /* client address */
    int peer_port;               /* client port */
    char reason[96];             /* why the connection closed */
    size_t rstart, rlen;         /* unparsed bytes are rbuf[rstart, rlen) */
    char rbuf[HTTP_RBUF_SIZE];   /* bytes read */
};

static void conn_close(http_conn_t *c, const char *reason);
static void conn_process(http_conn_t *c);
static void conn_fail(http_conn_t *c, int status, const char *msg);

/* ---- the idle list: evictable connections, least recently active first ---- */

/* Between requests, before a complete head, or draining after the final response: closing
 * the connection loses no request in progress. */
static bool conn_evictable(const http_conn_t *c)
{
    return c->counted && !c->closing &&
           (c->state == CONN_HEAD || c->state == CONN_IDLE || c->state == CONN_LINGER);
}

static void idle_unlink(http_conn_t *c)
{
    if (!c->in_idle)
        return;
    http_server_t *s = c->server;
    if (c->idle_prev)
        c->idle_prev->idle_next = c->idle_next;
    else
        s->idle_head = c->idle_next;
    if (c->idle_next)
        c->idle_next->idle_prev = c->idle_prev;
    else
        s->idle_tail = c->idle_prev;
    c->idle_prev = c->idle_next = NULL;
    c->in_idle = false;
}

/* Marks activity now: an evictable connection moves to the tail, so the list stays ordered by
 * last activity without a sort; one that is not evictable leaves the list. */
static void idle_touch(http_conn_t *c)
{
    idle_unlink(c);
    if (!conn_evictable(c))
        return;
    http_server_t *s = c->server;
    c->active_ms = uv_now(s->loop);
    c->idle_prev = s->idle_tail;
    if (s->idle_tail)
        s->idle_tail->idle_next = c;
    else
        s->idle_head = c;
    s->idle_tail = c;
    c->in_idle = true;
}

/* Every state change goes through here, so that list membership follows the state. Moving
 * from one evictable state to another (IDLE to HEAD as bytes arrive) keeps the place on_read
 * gave it; entering one from a busy state (a response written) is activity. */
static void conn_set_state(http_conn_t *c, conn_state_t state)
{
    c->state = state;
    if (!conn_evictable(c))
        idle_unlink(c);
    else if (!c->in_idle)
        idle_touch(c);
}

static void server_event(http_server_t *s, http_event_t ev, int status)
{
    if (s->on_event)
        s->on_event(ev, status, s->event_ud);
}

/* ---- small helpers ---- */

void http_limits_default(http_limits_t *lim)
{
    lim->max_head_bytes = 8192;
    lim->max_headers = 100;
    lim->max_body_bytes = 1024 * 1024;
    lim->header_timeout_ms = 10000;
    lim->idle_timeout_ms = 60000;
    lim->max_connections = 512;
}

static const struct {
    int status;
    const char *text;
} status_texts[] = {
    {100, "Continue"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {304, "Not Modified"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {411, "Length Required"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Content"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *http_status_text(int status)
{
    for (size_t i = 0; i < sizeof status_texts / sizeof status_texts[0]; i++)
        if (status_texts[i].status == status)
            return status_texts[i].text;
    return "Unknown";
}

const char *http_request_header(const http_request_t *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

static size_t count_headers(const http_request_t *req, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            n++;
    return n;
}

/* RFC 9110 tchar: what a header name may be made of. */
static bool is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch <= 32 || ch >= 127 || strchr("\"(),/:;<=>?@[\\]{}", ch))
            return false;
    }
    return true;
}

/* A field value may not hold control characters other than HTAB (RFC 9110 5.5): CR and LF
 * would split the response, and a strict client refuses the others. */
static bool has_ctl_break(const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch < 32 && ch != '\t') || ch == 127)
            return true;
    }
    return false;
}

/* IMF-fixdate, spelled out by hand so that no locale can change it. */
static void format_date(char *out, size_t len)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(out, len, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void conn_arm(http_conn_t *c, uint64_t ms);

/* ---- parser callbacks: they only collect; decisions are made once the head is complete ---- */

static int refuse(http_conn_t *c, int status, const char *msg)
{
    c->err_status = status;
    c->err_msg = msg;
    return HPE_USER;
}

static int head_append(http_conn_t *c, const char *at, size_t n)
{
    /* One byte always stays free for the terminating NUL. */
    if (c->head_len + n + 1 > c->head_cap)
        return refuse(c, c->url_done ? 431 : 414, "request head too large");
    memcpy(c->head + c->head_len, at, n);
    c->head_len += n;
    return 0;
}

static int head_terminate(http_conn_t *c)
{
    if (c->head_len + 1 > c->head_cap)
        return refuse(c, c->url_done ? 431 : 414, "request head too large");
    c->head[c->head_len++] = '\0';
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    http_conn_t *c = p->data;
    c->in_head = true;
    c->new_field = true;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    return head_append(p->data, at, n);
}

static int on_url_complete(llhttp_t *p)
{
    http_conn_t *c = p->data;
    int rc = head_terminate(c);
    c->url_done = true;
    return rc;
}

/* Trailers after a chunked body are counted against the head limit and dropped. */
static int count_trailer(http_conn_t *c, size_t n)
{
    c->trailer_bytes += n;
    if (c->trailer_bytes > c->server->lim.max_head_bytes)
        return refuse(c, 431, "trailers too large");
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    http_conn_t *c = p->data;
    /* llhttp keeps "Name :" as a field "Name "; RFC 9112 says such a request must be refused,
     * since intermediaries disagree on what the header is. */
    if (memchr(at, ' ', n) || memchr(at, '\t', n))
        return refuse(c, 400, "whitespace between header name and colon");
    if (!c->in_head)
        return count_trailer(c, n);
    if (c->new_field) {
        if (c->n_headers >= c->server->lim.max_headers)
            return refuse(c, 431, "too many headers");
        c->headers[c->n_headers].name = c->head + c->head_len;
        c->new_field = false;
    }
    return head_append(c, at, n);
}

static int on_header_field_complete(llhttp_t *p)
{
    http_conn_t *c = p->data;
    if (!c->in_head)
        return 0;
    /* llhttp lets an empty field name through (": x"); RFC 9110 requires a token, and peers
     * disagree on what such a line means. */
    if (c->new_field || c->headers[c->n_headers].name == c->head + c->head_len)
        return refuse(c, 400, "empty header name");
    int rc = head_terminate(c);
    c->headers[c->n_headers].value = c->head + c->head_len;
    return rc;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    http_conn_t *c = p->data;
    if (!c->in_head)
        return count_trailer(c, n);
    return head_append(c, at, n);
}

static int on_header_value_complete(llhttp_t *p)
{
    http_conn_t *c = p->data;
    if (!c->in_head)
        return 0;
    const char *start = c->headers[c->n_headers].value;
    while (c->head + c->head_len > start &&
           (c->head[c->head_len - 1] == ' ' || c->head[c->head_len - 1] == '\t'))
        c->head_len--;
    int rc = head_terminate(c);
    c->n_headers++;
    c->new_field = true;
    return rc;
}

/* Pausing here lets conn_process learn exactly where the head ended and vet it before any
 * body byte is taken. */
static int on_headers_complete(llhttp_t *p)
{
    http_conn_t *c = p->data;
    if (!c->in_head)
        return 0;
    c->in_head = false;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    http_conn_t *c = p->data;
    size_t max = c->server->lim.max_body_bytes;
    if (n > max - c->body_len)
        return refuse(c, 413, "request body too large");
    if (c->body_len + n + 1 > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 4096;
        while (cap < c->body_len + n + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = max + 1;
        char *nb = realloc(c->body, cap);
        if (!nb)
            return refuse(c, 500, "out of memory");
        c->body = nb;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, at, n);
    c->body_len += n;
    return 0;
}

/* Pausing here keeps pipelined requests unparsed until this one is answered. */
static int on_message_complete(llhttp_t *p)
{
    (void)p;
    return HPE_PAUSED;
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- responses ---- */

static void on_write_done(uv_write_t *req, int status);
static void on_shutdown_done(uv_shutdown_t *req, int status);

static void conn_send(http_conn_t *c, int status, const char *content_type, const char *body,
                      size_t len)
{
    if (status < 200 || status > 599)
        status = 500;
    bool bodiless = status == 204 || status == 304;
    if (content_type && has_ctl_break(content_type))
        content_type = NULL;
    if (bodiless)
        len = 0;
    char date[64];
    format_date(date, sizeof date);

    size_t ct_len = content_type ? strlen(content_type) : 0;
    size_t head_max = 256 + ct_len + c->ex.extra_len;
    bool send_body = !bodiless && !c->is_head;
    free(c->out);
    c->out = malloc(head_max + (send_body ? len : 0));
    if (!c->out) {
        conn_close(c, "out of memory building a response");
        return;
    }
    const char *conn_hdr = !c->keep_alive           ? "Connection: close\r\n"
                           : c->req.http_minor == 0 ? "Connection: keep-alive\r\n"
                                                    : "";
    char cl[48] = "";
    if (!bodiless)
        snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", len);
    int n = snprintf(c->out, head_max,
                     "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: eltd/" ELTD_VERSION "\r\n"
                     "%s%s%s%s%s%.*s\r\n",
                     status, http_status_text(status), date, content_type ? "Content-Type: " : "",
                     content_type ? content_type : "", content_type ? "\r\n" : "", cl, conn_hdr,
                     (int)c->ex.extra_len, c->ex.extra);
    if (n < 0 || (size_t)n >= head_max) {
        conn_close(c, "response head too large");
        return;
    }
    size_t total = (size_t)n;
    if (send_body && len > 0) {
        memcpy(c->out + total, body, len);
        total += len;
    }

    if (c->req.method)
        log_debug("msg=\"http request\" method=%s path=%s status=%d bytes=%zu ms=%llu peer=%s",
                  c->req.method, log_quote(c->req.path), status, len,
                  (unsigned long long)(uv_now(c->server->loop) - c->started_ms), c->peer);

    conn_set_state(c, CONN_WRITING);
    /* A client that stops reading must not pin the connection forever. */
    conn_arm(c, c->server->lim.idle_timeout_ms);
    uv_buf_t buf = uv_buf_init(c->out, (unsigned)total);
    int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, on_write_done);
    if (rc < 0)
        conn_close(c, uv_strerror(rc));
}

static char *json_error_body(const char *message, size_t *len)
{
    json_t *o = json_pack("{s:s}", "error", message ? message : "error");
    char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    *len = txt ? strlen(txt) : 0;
    return txt;
}

/* Refuses the request being read: a JSON error, then the connection closes. */
static void conn_fail(http_conn_t *c, int status, const char *msg)
{
    log_info("msg=\"http request refused\" status=%d reason=%s peer=%s", status, log_quote(msg),
             c->peer);
    server_event(c->server, HTTP_EVENT_ANSWERED, status);
    c->keep_alive = false;
    c->is_head = false;
    c->ex.extra_len = 0;
    if (status == 503 || status == 429) {
        static const char retry[] = "Retry-After: 1\r\n";
        memcpy(c->ex.extra, retry, sizeof retry - 1);
        c->ex.extra_len = sizeof retry - 1;
    }
    size_t len;
    char *body = json_error_body(msg, &len);
    if (!body) {
        conn_close(c, "out of memory building an error");
        return;
    }
    conn_send(c, status, "application/json", body, len);
    free(body);
}

const http_request_t *http_exchange_request(const http_exchange_t *ex)
{
    return &ex->conn->req;
}

void http_exchange_set_cancel(http_exchange_t *ex, http_cancel_fn cb, void *ud)
{
    ex->cancel = cb;
    ex->cancel_ud = ud;
}

int http_exchange_add_header(http_exchange_t *ex, const char *name, const char *value)
{
    if (!name || !value || !is_token(name) || has_ctl_break(value))
        return UV_EINVAL;
    /* Framing is ours: a handler setting these could desynchronise the connection. */
    if (strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Transfer-Encoding") == 0 ||
        strcasecmp(name, "Connection") == 0)
        return UV_EINVAL;
    size_t nl = strlen(name), vl = strlen(value);
    if (nl + vl + 4 > sizeof ex->extra - ex->extra_len)
        return UV_ENOBUFS;
    char *p = ex->extra + ex->extra_len;
    memcpy(p, name, nl);
    memcpy(p + nl, ": ", 2);
    memcpy(p + nl + 2, value, vl);
    memcpy(p + nl + 2 + vl, "\r\n", 2);
    ex->extra_len += nl + vl + 4;
    return 0;
}

void http_respond(http_exchange_t *ex, int status, const char *content_type, const char *body,
                  size_t len)
{
    http_conn_t *c = ex->conn;
    /* A response after the exchange ended (cancelled, or answered twice) is dropped. */
    if (c->closing || c->state != CONN_PENDING)
        return;
    ex->cancel = NULL;
    conn_send(c, status, content_type, body, len);
}

void http_respond_error(http_exchange_t *ex, int status, const char *message)
{
    size_t len;
    char *body = json_error_body(message ? message : http_status_text(status), &len);
    if (!body) {
        static const char fallback[] = "{\"error\":\"out of memory\"}";
        http_respond(ex, 500, "application/json", fallback, sizeof fallback - 1);
        return;
    }
    http_respond(ex, status, "application/json", body, len);
    free(body);
}

/* ---- connection lifecycle ---- */

static void on_timer(uv_timer_t *t);

static void conn_arm(http_conn_t *c, uint64_t ms)
{
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    http_conn_t *c = h->data;
    if (c->state == CONN_LINGER)
        c->rstart = c->rlen = 0;
    if (c->rstart > 0) {
        memmove(c->rbuf, c->rbuf + c->rstart, c->rlen - c->rstart);
        c->rlen -= c->rstart;
        c->rstart = 0;
    }
    buf->base = c->rbuf + c->rlen;
    buf->len = sizeof c->rbuf - c->rlen;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void conn_read_start(http_conn_t *c)
{
    if (c->reading || c->closing)
        return;
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        conn_close(c, uv_strerror(rc));
        return;
    }
    c->reading = true;
}

static void conn_read_stop(http_conn_t *c)
{
    if (!c->reading)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

/* Forgets the request just answered; the head buffer is kept for the next one. */
static void conn_reset_request(http_conn_t *c)
{
    c->head_raw = 0;
    c->head_len = 0;
    c->n_headers = 0;
    c->trailer_bytes = 0;
    c->url_done = false;
    c->in_head = true;
    c->new_field = true;
    c->prev_byte = '\0';
    c->err_status = 0;
    c->err_msg = NULL;
    free(c->body);
    c->body = NULL;
    c->body_len = c->body_cap = 0;
    memset(&c->req, 0, sizeof c->req);
    c->is_head = false;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    http_conn_t *c = stream->data;
    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        /* A response being written is still worth finishing for a half-closed client; a
         * request still with the handler is cancelled, as the client can no longer care. */
        if (nread == UV_EOF && c->state == CONN_WRITING) {
            c->keep_alive = false;
            conn_read_stop(c);
            return;
        }
        conn_close(c, nread == UV_EOF ? "client closed" : uv_strerror((int)nread));
        return;
    }
    c->rlen += (size_t)nread;
    switch (c->state) {
    case CONN_LINGER:
        c->rstart = c->rlen = 0;
        return;
    case CONN_PENDING:
    case CONN_WRITING:
        break;
    case CONN_BODY:
        conn_arm(c, c->server->lim.header_timeout_ms);
        conn_process(c);
        break;
    case CONN_HEAD:
    case CONN_IDLE:
        /* Idle since its last byte: a client trickling a head stays as old as that byte. */
        idle_touch(c);
        conn_process(c);
        break;
    }
    if (!c->closing && c->rlen - c->rstart == sizeof c->rbuf)
        conn_read_stop(c);
}

/* Looks through raw head bytes for what llhttp lets pass: obs-fold (a line starting with
 * space or tab) and NUL. */
static const char *scan_head(http_conn_t *c, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '\0')
            return "NUL byte in request head";
        if (c->prev_byte == '\n' && (ch == ' ' || ch == '\t'))
            return "folded header line";
        c->prev_byte = ch;
    }
    return NULL;
}

/* Vets a complete head. Returns false if the request was refused. */
static bool conn_head_done(http_conn_t *c)
{
    http_server_t *s = c->server;
    llhttp_t *p = &c->parser;
    c->req.headers = c->headers;
    c->req.n_headers = c->n_headers;
    if (p->http_major != 1) {
        conn_fail(c, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
        return false;
    }
    if (p->http_minor == 1 && count_headers(&c->req, "Host") != 1) {
        conn_fail(c, 400, "HTTP/1.1 requests need exactly one Host header");
        return false;
    }
    /* Framing is decided on the headers as sent, not on llhttp's flags: it sets no
     * F_TRANSFER_ENCODING for an empty value, so "Content-Length: 0" beside
     * "Transfer-Encoding:" reached the handler (fuzz_http found it) — a smuggling shape. */
    size_t te = count_headers(&c->req, "Transfer-Encoding");
    if (te > 0 || (p->flags & F_TRANSFER_ENCODING)) {
        /* llhttp already refuses Content-Length beside a non-empty one and a last coding
         * other than chunked; codings stacked before chunked we do not implement. */
        if ((p->flags & F_CONTENT_LENGTH) || count_headers(&c->req, "Content-Length") > 0 ||
            te != 1) {
            conn_fail(c, 400, "conflicting Transfer-Encoding");
            return false;
        }
        const char *coding = http_request_header(&c->req, "Transfer-Encoding");
        if (!coding || !*coding) {
            conn_fail(c, 400, "empty Transfer-Encoding");
            return false;
        }
        if (strcasecmp(coding, "chunked") != 0) {
            conn_fail(c, 501, "only the chunked transfer coding is supported");
            return false;
        }
    }
    if ((p->flags & F_CONTENT_LENGTH) && count_headers(&c->req, "Content-Length") != 1) {
        conn_fail(c, 400, "duplicate Content-Length");
        return false;
    }
    bool has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length);
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > s->lim.max_body_bytes) {
        conn_fail(c, 413, "request body too large");
        return false;
    }
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0) {
        c->body = malloc((size_t)p->content_length + 1);
        if (!c->body) {
            conn_fail(c, 500, "out of memory");
            return false;
        }
        c->body_cap = (size_t)p->content_length + 1;
    }
    const char *expect = http_request_header(&c->req, "Expect");
    if (expect) {
        if (strcasecmp(expect, "100-continue") != 0) {
            conn_fail(c, 417, "unsupported Expect");
            return false;
        }
        if (has_body && p->http_minor >= 1 && !c->continue_pending) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            uv_buf_t b = uv_buf_init((char *)cont, sizeof cont - 1);
            if (uv_write(&c->continue_req, (uv_stream_t *)&c->tcp, &b, 1, on_write_done) == 0)
                c->continue_pending = true;
        }
    }
    conn_set_state(c, CONN_BODY);
    conn_arm(c, s->lim.header_timeout_ms);
    return true;
}

/* ---- pacing ---- */

/* Milliseconds the request must wait for its turn, taking the turn; 0 = go now. Turns are
 * 1/pace apart; one not taken is not saved up, so no burst follows a quiet spell. */
static uint64_t pace_wait(const http_conn_t *c)
{
    http_server_t *s = c->server;
    if (s->pace_per_s <= 0)
        return 0;
    for (const char *const *p = s->lim.unpaced; p && *p; p++)
        if (!strcmp(c->req.path, *p))
            return 0;
    double now = (double)uv_now(s->loop);
    double turn = s->pace_next_ms > now ? s->pace_next_ms : now;
    s->pace_next_ms = turn + 1000.0 / s->pace_per_s;
    return (uint64_t)(turn - now + 0.5);
}

/* The request's turn came (or pacing ended): the handler gets it. A connection closed while
 * waiting never gets here: closing closes its timer. */
static void on_turn(uv_timer_t *t)
{
    http_conn_t *c = t->data;
    c->paced = false;
    c->server->handler(&c->ex, &c->req, c->server->ud);
}

void http_server_set_pace(http_server_t *s, double per_second)
{
    s->pace_per_s = per_second > 0 ? per_second : 0;
    if (s->pace_per_s > 0)
        return;
    s->pace_next_ms = 0;
    for (http_conn_t *c = s->conns; c; c = c->next)
        if (c->paced && !c->closing)
            uv_timer_start(&c->timer, on_turn, 0, 0);
}

static void conn_dispatch(http_conn_t *c)
{
    http_server_t *s = c->server;
    llhttp_t *p = &c->parser;
    /* After an upgrade request the bytes that follow are not HTTP; we answer and close. */
    c->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade && !s->closing;
    conn_set_state(c, CONN_PENDING);
    uv_timer_stop(&c->timer);

    char *target = c->head;
    char *q = strchr(target, '?');
    c->req.path = target;
    c->req.query = "";
    if (q) {
        *q = '\0';
        c->req.query = q + 1;
    }
    c->req.method = llhttp_method_name((llhttp_method_t)p->method);
    c->is_head = p->method == HTTP_HEAD;
    c->req.headers = c->headers;
    c->req.n_headers = c->n_headers;
    if (c->body)
        c->body[c->body_len] = '\0';
    c->req.body = c->body ? c->body : "";
    c->req.body_len = c->body_len;
    c->req.http_minor = p->http_minor;
    c->req.peer = c->peer;
    c->req.peer_port = c->peer_port;

    c->ex.conn = c;
    c->ex.cancel = NULL;
    c->ex.cancel_ud = NULL;
    c->ex.extra_len = 0;
    c->started_ms = uv_now(s->loop);
    uint64_t wait = pace_wait(c);
    if (wait > 0) {
        c->paced = true;
        uv_timer_start(&c->timer, on_turn, wait, 0);
        server_event(s, HTTP_EVENT_PACED, 0);
        return;
    }
    s->handler(&c->ex, &c->req, s->ud);
}

/* Feeds buffered bytes to llhttp while a request is being read. The head is fed at most up
 * to its limit, so an oversized head is refused before it is all buffered. */
static void conn_process(http_conn_t *c)
{
    http_server_t *s = c->server;
    while (!c->closing &&
           (c->state == CONN_HEAD || c->state == CONN_BODY || c->state == CONN_IDLE)) {
        size_t n = c->rlen - c->rstart;
        if (n == 0 && !c->kick)
            break;
        c->kick = false;
        if (c->state == CONN_IDLE) {
            conn_set_state(c, CONN_HEAD);
            conn_arm(c, s->lim.header_timeout_ms);
        }
        bool head = c->state == CONN_HEAD;
        if (head && n > s->lim.max_head_bytes - c->head_raw)
            n = s->lim.max_head_bytes - c->head_raw;
        const char *data = c->rbuf + c->rstart;
        llhttp_errno_t e = llhttp_execute(&c->parser, data, n);
        if (e != HPE_OK && e != HPE_PAUSED) {
            if (c->err_status)
                conn_fail(c, c->err_status, c->err_msg);
            else if (e == HPE_INVALID_VERSION)
                conn_fail(c, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
            else
                conn_fail(c, 400, llhttp_get_error_reason(&c->parser));
            return;
        }
        size_t used = e == HPE_OK ? n : (size_t)(llhttp_get_error_pos(&c->parser) - data);
        c->rstart += used;
        if (head) {
            const char *bad = scan_head(c, data, used);
            if (bad) {
                conn_fail(c, 400, bad);
                return;
            }
            c->head_raw += used;
        }
        if (e == HPE_OK) {
            if (head && c->head_raw >= s->lim.max_head_bytes) {
                if (c->url_done)
                    conn_fail(c, 431, "request head too large");
                else
                    conn_fail(c, 414, "request-target too long");
                return;
            }
            continue;
        }
        llhttp_resume(&c->parser);
        if (head) {
            if (!conn_head_done(c))
                return;
            /* A head with no body completes its message without another byte. */
            c->kick = true;
            continue;
        }
        conn_dispatch(c);
    }
    if (c->rstart == c->rlen)
        c->rstart = c->rlen = 0;
}

static void on_write_done(uv_write_t *req, int status)
{
    http_conn_t *c = req->handle->data;
    if (req == &c->continue_req) {
        c->continue_pending = false;
        if (status < 0 && !c->closing)
            conn_close(c, uv_strerror(status));
        return;
    }
    free(c->out);
    c->out = NULL;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c, uv_strerror(status));
        return;
    }
    if (!c->keep_alive) {
        int rc = uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown_done);
        if (rc < 0) {
            conn_close(c, "response sent");
            return;
        }
        conn_set_state(c, CONN_LINGER);
        c->rstart = c->rlen = 0;
        conn_arm(c, HTTP_LINGER_MS);
        conn_read_start(c);
        return;
    }
    conn_reset_request(c);
    conn_set_state(c, CONN_IDLE);
    conn_arm(c, c->server->lim.idle_timeout_ms);
    conn_read_start(c);
    conn_process(c);
}

static void on_shutdown_done(uv_shutdown_t *req, int status)
{
    http_conn_t *c = req->handle->data;
    if (status < 0 && !c->closing)
        conn_close(c, uv_strerror(status));
}

static void on_timer(uv_timer_t *t)
{
    http_conn_t *c = t->data;
    switch (c->state) {
    case CONN_HEAD:
        if (c->head_raw > 0 || c->rlen > c->rstart)
            conn_fail(c, 408, "request head not received in time");
        else
            conn_close(c, "no request in time");
        break;
    case CONN_BODY:
        conn_fail(c, 408, "request body not received in time");
        break;
    case CONN_IDLE:
        conn_close(c, "idle");
        break;
    case CONN_WRITING:
        conn_close(c, "client not reading the response");
        break;
    case CONN_LINGER:
        conn_close(c, "response sent");
        break;
    case CONN_PENDING:
        break;
    }
}

static void server_maybe_done(http_server_t *s)
{
    if (!s->closing || s->listener_open || s->n_conns > 0 || !s->close_cb)
        return;
    http_server_close_fn cb = s->close_cb;
    s->close_cb = NULL;
    cb(s);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    http_conn_t *c = h->data;
    if (--c->open_handles > 0)
        return;
    http_server_t *s = c->server;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    free(c->head);
    free(c->headers);
    free(c->body);
    free(c->out);
    free(c);
    server_maybe_done(s);
}

static void conn_close(http_conn_t *c, const char *reason)
{
    if (c->closing)
        return;
    c->closing = true;
    snprintf(c->reason, sizeof c->reason, "%s", reason);
    log_debug("msg=\"http connection closed\" peer=%s reason=%s", c->peer, log_quote(c->reason));
    idle_unlink(c);
    if (c->counted) {
        c->counted = false;
        c->server->n_active--;
    }
    if (c->state == CONN_PENDING) {
        /* The exchange ends here; its owner must drop the pointer. */
        http_cancel_fn cb = c->ex.cancel;
        c->ex.cancel = NULL;
        c->state = CONN_LINGER;
        if (cb)
            cb(&c->ex, c->ex.cancel_ud);
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

/* Bytes the kernel holds for the connection that the loop has not read yet. */
static bool conn_has_unread(const http_conn_t *c)
{
    uv_os_fd_t fd;
    int n = 0;
    if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0 || ioctl(fd, FIONREAD, &n) != 0)
        return false;
    return n > 0;
}

/* Closes the connection idle the longest, so that a new one can be admitted; false if every
 * open connection is busy. One whose bytes wait unread in the kernel only looks idle: during
 * a burst of accepts the loop has not come round to reading it yet, and it may be a request
 * just sent on a connection accepted a moment before the burst. Such connections are passed
 * over (among the first HTTP_EVICT_SCAN); if every one looked at has bytes waiting, the
 * oldest goes. */
static bool server_evict_idle(http_server_t *s)
{
    http_conn_t *victim = s->idle_head;
    if (!victim)
        return false;
    int scanned = 0;
    for (http_conn_t *c = victim; c && scanned < HTTP_EVICT_SCAN; c = c->idle_next, scanned++)
        if (!conn_has_unread(c)) {
            victim = c;
            break;
        }
    char reason[96];
    snprintf(reason, sizeof reason, "evicted after %llu ms idle: max_connections in use",
             (unsigned long long)(uv_now(s->loop) - victim->active_ms));
    conn_close(victim, reason);
    s->evictions++;
    server_event(s, HTTP_EVENT_EVICTED, 0);
    return true;
}

static void on_connection(uv_stream_t *listener, int status)
{
    http_server_t *s = container_of(listener, http_server_t, listener);
    if (status < 0) {
        log_warn("msg=\"http accept failed\" error=%s", log_quote(uv_strerror(status)));
        return;
    }
    http_conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        log_error("msg=\"http accept failed\" error=\"out of memory\"");
        return;
    }
    if (uv_tcp_init(s->loop, &c->tcp) < 0) {
        free(c);
        return;
    }
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    c->server = s;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    snprintf(c->peer, sizeof c->peer, "-");
    c->state = CONN_HEAD;
    conn_reset_request(c);

    int rc = uv_accept(listener, (uv_stream_t *)&c->tcp);
    if (rc < 0) {
        conn_close(c, uv_strerror(rc));
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(a6, c->peer, sizeof c->peer);
            c->peer_port = ntohs(a6->sin6_port);
        } else if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a4 = (const struct sockaddr_in *)&ss;
            uv_ip4_name(a4, c->peer, sizeof c->peer);
            c->peer_port = ntohs(a4->sin_port);
        }
    }

    llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
    c->parser.data = c;
    /* Every leniency stays off: each one is a request-smuggling door. */
    llhttp_set_lenient_headers(&c->parser, 0);
    llhttp_set_lenient_chunked_length(&c->parser, 0);
    llhttp_set_lenient_keep_alive(&c->parser, 0);
    llhttp_set_lenient_transfer_encoding(&c->parser, 0);

    conn_read_start(c);
    if (c->closing)
        return;

    if (s->n_active >= s->lim.max_connections && !server_evict_idle(s)) {
        if (s->n_conns - s->n_active > HTTP_MAX_REJECTING)
            conn_close(c, "too many connections");
        else
            conn_fail(c, 503, "too many connections");
        return;
    }
    c->counted = true;
    s->n_active++;
    c->head_cap = s->lim.max_head_bytes + 2 * s->lim.max_headers + 8;
    c->head = malloc(c->head_cap);
    c->headers = calloc(s->lim.max_headers + 1, sizeof *c->headers);
    if (!c->head || !c->headers) {
        conn_close(c, "out of memory");
        return;
    }
    idle_touch(c);
    conn_arm(c, s->lim.header_timeout_ms);
}

/* ---- the server ---- */

static void on_listener_closed(uv_handle_t *h)
{
    http_server_t *s = container_of(h, http_server_t, listener);
    s->listener_open = false;
    server_maybe_done(s);
}

int http_server_start(http_server_t *s, uv_loop_t *loop, const char *host, int port,
                      const http_limits_t *lim, http_handler_fn handler, void *ud, char *err,
                      size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->handler = handler;
    s->ud = ud;
    http_limits_default(&s->lim);
    if (lim) {
        if (lim->max_head_bytes)
            s->lim.max_head_bytes = lim->max_head_bytes;
        if (lim->max_headers)
            s->lim.max_headers = lim->max_headers;
        if (lim->max_body_bytes)
            s->lim.max_body_bytes = lim->max_body_bytes;
        if (lim->header_timeout_ms)
            s->lim.header_timeout_ms = lim->header_timeout_ms;
        if (lim->idle_timeout_ms)
            s->lim.idle_timeout_ms = lim->idle_timeout_ms;
        if (lim->max_connections)
            s->lim.max_connections = lim->max_connections;
        s->lim.unpaced = lim->unpaced;
    }
    if (!host || !*host)
        host = "0.0.0.0";
    if (port < 0 || port > 65535) {
        snprintf(err, errlen, "port %d out of range", port);
        return UV_EINVAL;
    }
    if (!handler) {
        snprintf(err, errlen, "no handler");
        return UV_EINVAL;
    }

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    if (strchr(host, ':')) {
        if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
            snprintf(err, errlen, "invalid IPv6 address \"%s\"", host);
            return UV_EINVAL;
        }
        sl = sizeof(struct sockaddr_in6);
    } else {
        struct in_addr probe;
        if (inet_pton(AF_INET, host, &probe) != 1 ||
            uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0) {
            snprintf(err, errlen, "invalid address \"%s\" (an IPv4 or IPv6 literal is needed)",
                     host);
            return UV_EINVAL;
        }
        sl = sizeof(struct sockaddr_in);
    }

    /* libuv writes with write(2): a client that resets mid-response would otherwise kill the
     * daemon with SIGPIPE. A disposition someone else chose is left alone. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);

    /* The socket is bound and listening before any libuv handle exists, so that every
     * likely failure leaves nothing to close. */
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "socket: %s", strerror(e));
        return -e;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 511) < 0) {
        int e = errno;
        snprintf(err, errlen, "listen on %s port %d: %s", host, port, strerror(e));
        close(fd);
        return -e;
    }
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &bl) == 0)
        s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);

    int rc = uv_tcp_init(loop, &s->listener);
    if (rc < 0) {
        snprintf(err, errlen, "uv_tcp_init: %s", uv_strerror(rc));
        close(fd);
        return rc;
    }
    s->listener_open = true;
    rc = uv_tcp_open(&s->listener, fd);
    if (rc < 0)
        close(fd); /* not yet the handle's to close */
    else
        rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "listen on %s port %d: %s", host, port, uv_strerror(rc));
        s->closing = true;
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
        return rc;
    }
    log_info("msg=\"http listening\" host=%s port=%d", host, s->port);
    return 0;
}

int http_server_port(const http_server_t *s)
{
    return s->port;
}

unsigned http_server_connections(const http_server_t *s)
{
    return s->n_conns;
}

uint64_t http_server_evictions(const http_server_t *s)
{
    return s->evictions;
}

void http_server_set_event_cb(http_server_t *s, http_event_fn cb, void *ud)
{
    s->on_event = cb;
    s->event_ud = ud;
}

void http_server_close(http_server_t *s, http_server_close_fn cb)
{
    if (s->closing)
        return;
    s->closing = true;
    s->close_cb = cb;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    for (http_conn_t *c = s->conns; c; c = c->next)
        conn_close(c, "server closing");
    server_maybe_done(s);
}
