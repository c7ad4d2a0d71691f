/* test_http_server.c — the HTTP server against raw clients on uv_tcp in the same loop: framing,
 * keep-alive, pipelining, async answers, every limit, refused requests and disconnects. Each
 * test waits for conditions with deadlines and ends with a closed, leak-free loop. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <unistd.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <uv.h>

#include "http_server.h"

#define MAX_CLIENTS 8
#define DEADLINE_MS 5000

typedef struct fixture_s fixture_t;

typedef struct client_s {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    fixture_t *fx;
    int slot;
    bool connected, eof;
    int error;
    char *resp;
    size_t resp_len, resp_cap;
} client_t;

struct fixture_s {
    uv_loop_t loop;
    uv_timer_t deadline;
    bool timed_out;
    http_server_t server;
    bool started, server_closed;
    int handled, cancelled;
    int answered, last_answered; /* responses the server sent itself, and the last status */
    int evicted;                 /* evictions reported through the event callback */
    int paced;                   /* requests held for their turn (HTTP_EVENT_PACED) */
    int n_echo;                  /* /echo requests the handler got */
    uint64_t echo_at[16];        /* loop time of each (the first 16) */
    int health_after;            /* /echo requests handled before /health; -1 = not yet */
    client_t *clients[MAX_CLIENTS];
};

typedef struct {
    int status;
    const char *head;
    size_t head_len;
    const char *body;
    size_t body_len;
} resp_t;

/* ---- loop driving ---- */

static void on_deadline(uv_timer_t *t)
{
    fixture_t *fx = t->data;
    fx->timed_out = true;
}

typedef bool (*cond_fn)(void *arg);

static bool run_until(fixture_t *fx, cond_fn cond, void *arg, uint64_t ms)
{
    fx->timed_out = false;
    uv_timer_start(&fx->deadline, on_deadline, ms, 0);
    while (!cond(arg) && !fx->timed_out)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_timer_stop(&fx->deadline);
    return cond(arg);
}

/* ---- the handler under test ---- */

typedef struct {
    uv_timer_t timer;
    http_exchange_t *ex;
    fixture_t *fx;
} async_t;

static void on_async_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_async_fire(uv_timer_t *t)
{
    async_t *a = t->data;
    http_respond(a->ex, 200, "text/plain", "later", 5);
    uv_close((uv_handle_t *)&a->timer, on_async_closed);
}

static void on_async_cancel(http_exchange_t *ex, void *ud)
{
    (void)ex;
    async_t *a = ud;
    a->fx->cancelled++;
    uv_timer_stop(&a->timer);
    uv_close((uv_handle_t *)&a->timer, on_async_closed);
}

static void start_async(fixture_t *fx, http_exchange_t *ex, uint64_t ms)
{
    async_t *a = calloc(1, sizeof *a);
    assert_non_null(a);
    a->ex = ex;
    a->fx = fx;
    uv_timer_init(&fx->loop, &a->timer);
    a->timer.data = a;
    uv_timer_start(&a->timer, on_async_fire, ms, 0);
    http_exchange_set_cancel(ex, on_async_cancel, a);
}

static void handler(http_exchange_t *ex, const http_request_t *req, void *ud)
{
    fixture_t *fx = ud;
    fx->handled++;
    assert_ptr_equal(http_exchange_request(ex), req);
    if (strcmp(req->path, "/echo") == 0 && fx->n_echo < 16)
        fx->echo_at[fx->n_echo++] = uv_now(&fx->loop);
    if (strcmp(req->path, "/health") == 0)
        fx->health_after = fx->n_echo;
    if (strcmp(req->path, "/echo") == 0) {
        const char *x = http_request_header(req, "x-test");
        char buf[4096];
        int n = snprintf(buf, sizeof buf, "%s %s ?%s [%.*s] x=%s peer=%s", req->method, req->path,
                         req->query, (int)req->body_len, req->body, x ? x : "-", req->peer);
        http_respond(ex, 200, "text/plain", buf, (size_t)n);
    } else if (strcmp(req->path, "/len") == 0) {
        char buf[64];
        int n = snprintf(buf, sizeof buf, "%zu", req->body_len);
        http_respond(ex, 200, "text/plain", buf, (size_t)n);
    } else if (strcmp(req->path, "/big") == 0) {
        size_t len = 8u << 20;
        char *big = malloc(len);
        assert_non_null(big);
        memset(big, 'B', len);
        http_respond(ex, 200, "application/octet-stream", big, len);
        free(big);
    } else if (strcmp(req->path, "/async") == 0) {
        start_async(fx, ex, 30);
    } else if (strcmp(req->path, "/hang") == 0) {
        start_async(fx, ex, 60000);
    } else if (strcmp(req->path, "/auth") == 0) {
        assert_int_equal(http_exchange_add_header(ex, "WWW-Authenticate", "Bearer"), 0);
        assert_int_equal(http_exchange_add_header(ex, "Retry-After", "5"), 0);
        assert_int_not_equal(http_exchange_add_header(ex, "Bad Name", "x"), 0);
        assert_int_not_equal(http_exchange_add_header(ex, "X-Split", "a\r\nInjected: 1"), 0);
        assert_int_not_equal(http_exchange_add_header(ex, "Content-Length", "3"), 0);
        http_respond_error(ex, 401, "token required");
    } else {
        http_respond_error(ex, 404, "not found");
    }
}

/* ---- fixture ---- */

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fx->health_after = -1;
    uv_timer_init(&fx->loop, &fx->deadline);
    fx->deadline.data = fx;
    *state = fx;
    return 0;
}

static void on_event(http_event_t ev, int status, void *ud)
{
    fixture_t *fx = ud;
    if (ev == HTTP_EVENT_EVICTED || ev == HTTP_EVENT_PACED) {
        assert_int_equal(status, 0);
        if (ev == HTTP_EVENT_EVICTED)
            fx->evicted++;
        else
            fx->paced++;
        return;
    }
    assert_int_equal(ev, HTTP_EVENT_ANSWERED);
    fx->answered++;
    fx->last_answered = status;
}

static void start_server(fixture_t *fx, const http_limits_t *lim)
{
    char err[256] = "";
    int rc = http_server_start(&fx->server, &fx->loop, "127.0.0.1", 0, lim, handler, fx, err,
                               sizeof err);
    if (rc != 0)
        fail_msg("start: %s", err);
    assert_true(http_server_port(&fx->server) > 0);
    http_server_set_event_cb(&fx->server, on_event, fx);
    fx->started = true;
}

static fixture_t *container_of_fx(http_server_t *s)
{
    return (fixture_t *)(void *)((char *)s - offsetof(fixture_t, server));
}

/* For a second server in one test: the loop's data points at its "closed" flag. */
static void on_v6_closed(http_server_t *s)
{
    *(bool *)s->loop->data = true;
}

static void on_server_closed(http_server_t *s)
{
    fixture_t *fx = container_of_fx(s);
    fx->server_closed = true;
}

static void on_client_closed(uv_handle_t *h)
{
    client_t *cl = h->data;
    free(cl->resp);
    free(cl);
}

static void client_close(client_t *cl)
{
    cl->fx->clients[cl->slot] = NULL;
    uv_close((uv_handle_t *)&cl->tcp, on_client_closed);
}

static bool is_true(void *arg)
{
    return *(bool *)arg;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (fx->clients[i])
            client_close(fx->clients[i]);
    if (fx->started) {
        http_server_close(&fx->server, on_server_closed);
        assert_true(run_until(fx, is_true, &fx->server_closed, DEADLINE_MS));
    }
    uv_close((uv_handle_t *)&fx->deadline, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free(fx);
    return 0;
}

/* ---- raw clients ---- */

static void on_client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    client_t *cl = h->data;
    if (cl->resp_cap - cl->resp_len < suggested + 1) {
        cl->resp_cap = cl->resp_len + suggested + 1;
        cl->resp = realloc(cl->resp, cl->resp_cap);
        assert_non_null(cl->resp);
    }
    buf->base = cl->resp + cl->resp_len;
    buf->len = cl->resp_cap - cl->resp_len - 1;
}

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    client_t *cl = s->data;
    if (nread < 0) {
        cl->eof = true;
        if (nread != UV_EOF)
            cl->error = (int)nread;
        uv_read_stop(s);
        return;
    }
    cl->resp_len += (size_t)nread;
    cl->resp[cl->resp_len] = '\0';
}

static void on_client_connect(uv_connect_t *req, int status)
{
    client_t *cl = req->handle->data;
    assert_int_equal(status, 0);
    cl->connected = true;
    assert_int_equal(uv_read_start((uv_stream_t *)&cl->tcp, on_client_alloc, on_client_read), 0);
}

static client_t *client_connect_to(fixture_t *fx, const char *ip, int port)
{
    client_t *cl = calloc(1, sizeof *cl);
    assert_non_null(cl);
    cl->fx = fx;
    cl->slot = -1;
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (!fx->clients[i]) {
            fx->clients[i] = cl;
            cl->slot = i;
            break;
        }
    assert_true(cl->slot >= 0);
    uv_tcp_init(&fx->loop, &cl->tcp);
    cl->tcp.data = cl;
    struct sockaddr_storage ss;
    if (strchr(ip, ':'))
        assert_int_equal(uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&ss), 0);
    else
        assert_int_equal(uv_ip4_addr(ip, port, (struct sockaddr_in *)&ss), 0);
    assert_int_equal(
        uv_tcp_connect(&cl->connect_req, &cl->tcp, (struct sockaddr *)&ss, on_client_connect), 0);
    assert_true(run_until(fx, is_true, &cl->connected, DEADLINE_MS));
    return cl;
}

static client_t *client_connect(fixture_t *fx)
{
    return client_connect_to(fx, "127.0.0.1", http_server_port(&fx->server));
}

typedef struct {
    uv_write_t req;
    char data[];
} client_write_t;

static void on_client_written(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void client_send(client_t *cl, const char *data, size_t len)
{
    client_write_t *w = malloc(sizeof *w + len);
    assert_non_null(w);
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    assert_int_equal(uv_write(&w->req, (uv_stream_t *)&cl->tcp, &b, 1, on_client_written), 0);
}

static void client_sends(client_t *cl, const char *s)
{
    client_send(cl, s, strlen(s));
}

static void on_client_flushed(uv_write_t *req, int status)
{
    (void)status;
    *(bool *)req->data = true;
    free(req);
}

/* Sends s and lets the server read it before returning, so that the next send arrives in a
 * separate read: on loopback the bytes are readable once the write has completed. */
static void client_sends_flushed(client_t *cl, const char *s)
{
    size_t len = strlen(s);
    client_write_t *w = malloc(sizeof *w + len);
    assert_non_null(w);
    memcpy(w->data, s, len);
    bool done = false;
    w->req.data = &done;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    assert_int_equal(uv_write(&w->req, (uv_stream_t *)&cl->tcp, &b, 1, on_client_flushed), 0);
    assert_true(run_until(cl->fx, is_true, &done, DEADLINE_MS));
    uv_run(&cl->fx->loop, UV_RUN_NOWAIT);
    uv_run(&cl->fx->loop, UV_RUN_NOWAIT);
}

static const char *find(const char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0)
            return hay + i;
    return NULL;
}

/* Value of a header in a response head, copied into out; false if absent. */
static bool resp_header(const resp_t *r, const char *name, char *out, size_t outlen)
{
    const char *p = r->head, *end = r->head + r->head_len;
    size_t nl = strlen(name);
    while (p < end) {
        const char *eol = find(p, (size_t)(end - p), "\r\n");
        if (!eol)
            break;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            snprintf(out, outlen, "%.*s", (int)(eol - v), v);
            return true;
        }
        p = eol + 2;
    }
    return false;
}

static int parse_responses(const client_t *cl, resp_t *out, int max)
{
    size_t off = 0;
    int n = 0;
    while (n < max && off < cl->resp_len) {
        const char *start = cl->resp + off;
        size_t left = cl->resp_len - off;
        const char *end = find(start, left, "\r\n\r\n");
        if (!end)
            break;
        resp_t r = {
            .status = atoi(start + 9), .head = start, .head_len = (size_t)(end - start) + 2};
        char v[32];
        size_t body_len = resp_header(&r, "Content-Length", v, sizeof v) ? strtoul(v, NULL, 10) : 0;
        size_t hl = (size_t)(end - start) + 4;
        if (left < hl + body_len)
            break;
        r.body = start + hl;
        r.body_len = body_len;
        out[n++] = r;
        off += hl + body_len;
    }
    return n;
}

typedef struct {
    client_t *cl;
    int n;
} want_t;

static bool has_responses(void *arg)
{
    want_t *w = arg;
    resp_t *r = calloc((size_t)w->n, sizeof *r);
    assert_non_null(r);
    bool done = parse_responses(w->cl, r, w->n) >= w->n || w->cl->eof;
    free(r);
    return done;
}

typedef struct {
    client_t *cl;
    int n;
} status_lines_t;

/* For responses without a parseable length (HEAD): counts status lines. */
static bool has_status_lines(void *arg)
{
    status_lines_t *w = arg;
    int n = 0;
    for (const char *p = w->cl->resp;
         p && (p = find(p, w->cl->resp_len - (size_t)(p - w->cl->resp), "HTTP/1.1 ")); p++)
        n++;
    return n >= w->n;
}

static bool client_eof(void *arg)
{
    return ((client_t *)arg)->eof;
}

/* Waits for n responses and returns how many arrived. */
static int wait_responses(client_t *cl, int n, resp_t *out)
{
    want_t w = {cl, n};
    run_until(cl->fx, has_responses, &w, DEADLINE_MS);
    return parse_responses(cl, out, n);
}

static bool wait_eof(client_t *cl)
{
    return run_until(cl->fx, client_eof, cl, DEADLINE_MS);
}

typedef struct {
    fixture_t *fx;
    unsigned n;
} conns_t;

static bool conns_are(void *arg)
{
    conns_t *c = arg;
    return http_server_connections(&c->fx->server) == c->n;
}

static bool wait_conns(fixture_t *fx, unsigned n)
{
    conns_t c = {fx, n};
    return run_until(fx, conns_are, &c, DEADLINE_MS);
}

static void assert_body(const resp_t *r, const char *expect)
{
    char got[4096];
    snprintf(got, sizeof got, "%.*s", (int)r->body_len, r->body);
    assert_string_equal(got, expect);
}

/* Sends a request on a fresh connection and expects status with a JSON error and a close. */
static void expect_refusal(fixture_t *fx, const char *request, size_t len, int status)
{
    int answered = fx->answered;
    client_t *cl = client_connect(fx);
    client_send(cl, request, len);
    assert_true(wait_eof(cl));
    resp_t r[2];
    assert_int_equal(parse_responses(cl, r, 2), 1);
    assert_int_equal(r[0].status, status);
    char v[128];
    assert_true(resp_header(&r[0], "Connection", v, sizeof v));
    assert_string_equal(v, "close");
    assert_true(resp_header(&r[0], "Content-Type", v, sizeof v));
    assert_string_equal(v, "application/json");
    assert_true(r[0].body_len > 10 && strncmp(r[0].body, "{\"error\":", 9) == 0);
    /* The owner heard of it once, with the status sent. */
    assert_int_equal(fx->answered, answered + 1);
    assert_int_equal(fx->last_answered, status);
    client_close(cl);
}

#define REFUSE(fx, lit, status) expect_refusal(fx, lit, sizeof(lit) - 1, status)

/* ---- tests ---- */

static void test_status_text(void **state)
{
    (void)state;
    assert_string_equal(http_status_text(200), "OK");
    assert_string_equal(http_status_text(404), "Not Found");
    assert_string_equal(http_status_text(431), "Request Header Fields Too Large");
    assert_string_equal(http_status_text(799), "Unknown");
}

static void test_get_with_query(void **state)
{
    fixture_t *fx = *state;
    start_server(fx, NULL);
    client_t *cl = client_connect(fx);
    client_sends(cl, "GET /echo?a=1&b=two HTTP/1.1\r\nHost: t\r\nX-Test: hi there  \r\n\r\n");
    resp_t r[1];
    assert_int_equal(wait_responses(cl, 1, r), 1);
    assert_int_equal(r[0].status, 200);
    assert_body(&r[0], "GET /echo ?a=1&b=two [] x=hi there peer=127.0.0.1");
    char v[128];
    assert_true(resp_header(&r[0], "Date", v, sizeof v));
    assert_true(strlen(v) == 29 && strcmp(v + 25, " GMT") == 0);
    assert_true(resp_header(&r[0], "Server", v, sizeof v));
    assert_true(strncmp(v, "eltd/", 5) == 0);
    assert_true(resp_header(&r[0], "Content-Type", v, sizeof v));
    assert_string_equal(v, "text/plain");
    assert_false(resp_header(&r[0], "Connection", v, sizeof v));
    assert_false(cl->eof);
}

static void test_post_body(void **state)
{
    fixture_t *fx = *state;
    start_server(fx, NULL);
    client_t *cl = client_connect(fx);
    client_sends(cl, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello=world");
    resp_t r[1];
    assert_int_equal(wait_responses(cl, 1, r), 1);
    assert_int_equal(r[0].status, 200);
    assert_body(&r[0], "POST /echo ? [hello=world] x=- peer=127.0.0.1");
}

static void test_body_split_across_writes(void **state)
{
    fixture_t *fx = *state;
    start_server(fx, NULL);
    client_t *cl = client_connect(fx);
    client_sends_flushed(cl, "POST /echo HTTP/1.1\r\nHo");
    client_sends_flushed(cl, "st: t\r\nContent-Len");
    client_sends_flushed(cl, "gth: 5\r\n\r\nab");
    client_sends(cl, "cde");
    resp_t r[1];
    assert_int_equal(wait_responses(cl, 1, r), 1);
    assert_body(&r[0], "POST /echo ? [abcde] x=- peer=127.0.0.1");
}

static void test_keepalive_sequential(void **state)
{
    fixture_t *fx = *state;
    start_server(fx, NULL);
    client_t *cl = client_connect(fx);
    client_sends(cl, "GET /echo?n=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    resp_t r[2];
    assert_int_equal(wait_responses(cl, 1, r), 1);
    client_sends(cl, "GET /echo?n=2 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(wait_responses(cl, 2, r), 2);
    assert_body(&r[0], "GET /echo ?n=1 [] x=- peer=127.0.0.1");
    assert_body(&r[1], "GET /echo ?n=2 [] x=- peer=127.0.0.1");
    assert_int_equal(fx->handled, 2);
    assert_int_equal(http_server_connections(&fx->server), 1);
    assert_false(cl->eof);
}

static void test_pipelined_in_order(void **state)
{
    fixture_t *fx = *state;
    start_server(fx, NULL);
    client_t *cl = client_connect(fx);
    /* The slow one first: the fast one must not overtake it. */
    client_sends(cl, "GET /async HTTP/1.1\r\nHost: t\r\n\r\n"
                     "POST /echo?second HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok"
                     "GET /echo?third HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_true(wait_eof(cl));
    resp_t r[4];
    assert_int_equal(parse_responses(cl, r, 4), 3);
    assert_body(&r[0], "later");
    assert_body(&r[1], "POST /echo ?second [ok] x=- peer=127.0.0.1");
    assert_body(&r[2], "GET /echo ?third [] x=- peer=127.0.0.1");
    char v[32];
    assert_true(resp_header(&r[2], "Connection", v, sizeof v));
    assert_string_equal(v, "close");
}

static void test_pipelined_backpressure(void **state)
{
    fixture_t *fx = *state;
    start_server(fx, NULL);
    client_t *cl = client_connect(fx);
    /* More than the server's read buffer queues behind a slow request: reading pauses, then
     * everything is answered in order. */
    enum { N = 600 };
    size_t cap = 64 + N * 48, len = 0;
    char *reqs = malloc(cap);
    assert_non_null(reqs);
    len += (size_t)snprintf(reqs, cap, "GET /async HTTP/1.1\r\nHost: t\r\n\r\n");
    for (int i = 0; i < N; i++)
        len +=
            (size_t)snprintf(reqs + len, cap - len, "GET /echo?%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
    assert_true(len > 16384);
    client_send(cl, reqs, len);
    free(reqs);
    resp_t *r = calloc(N + 1, sizeof *r);
    assert_non_null(r);
    assert_int_equal(wait_responses(cl, N + 1, r), N + 1);
    assert_body(&r[0], "later");
    for (int i = 0; i < N; i++) {
        char expect[64];
        snprintf(expect, sizeof expect, "GET /echo ?%d [] x=- peer=127.0.0.1", i);
        assert_body(&r[i + 1], expect);
    }
    free(r);
}

static void test_async_response(void **state)
{
    fixture_t *fx = *state;
    start_server(fx, NULL);
    client_t *cl = client_connect(fx);
    client_sends(cl, "GET /async HTTP/1.1\r\nHost: t\r\n\r\n");
    resp_t r[1];
    assert_int_equal(wait_responses(cl, 1, r), 1);
    assert_int_equal(r[0].status, 200);
    assert_body(&r[0], "later");
    assert_int_equal(fx->cancelled, 0);
}

static void test_not_found_and_head(void **state)
{
    fixture_t *fx = *state;
    start_server(fx, NULL);
    client_t *cl = client_connect(fx);
    client_sends(cl, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n");
    resp_t r[2];
    assert_int_equal(wait_responses(cl, 1, r), 1);
    assert_int_equal(r[0].status, 404);
    assert_body(&r[0], "{\"error\":\"not found\"}");
    /* HEAD: the same Content-Length, no body bytes; the next response must parse cleanly. */
    client_sends(cl, "HEAD /echo HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\n");
    status_lines_t w = {cl, 3};
    assert_true(run_until(fx, has_status_lines, &w, DEADLINE_MS));
    assert_int_equal(parse_responses(cl, r, 1), 1); /* the buffer may have moved */
    const char *second = r[0].body + r[0].body_len;
    assert_true(strncmp(second, "HTTP/1.1 200 OK\r\n", 17) == 0);
    resp_t head = {
        .head = second,
        .head_len = (size_t)(find(second, cl->resp_len - (size_t)(second - cl->resp), "\r\n\r\n") -
                             second) +
                    2};
    char v[32];
    assert_true(resp_header(&head, "Content-Length", v, sizeof v));
    assert_true(atoi(v) > 10);
    const char *third = second + head.head_len + 2;
    assert_true(strncmp(third, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
    assert_true(
        find(third, cl->resp_len - (size_t)(third - cl->resp), "{\"error\":\"not found\"}"));
}

static void test_extra_headers(void **state)
{
    fixture_t *fx = *state;
    start_server(fx, NULL);
    client_t *cl = client_connect(fx);
    client_sends(cl, "GET /auth HTTP/1.1\r\nHost: t\r\n\r\n");
    resp_t r[1];
    assert_int_equal(wait_responses(cl, 1, r), 1);
    assert_int_equal(r[0].status, 401);
    char v[64];
    assert_true(resp_header(&r[0], "WWW-Authenticate", v, sizeof v));
    assert_string_equal(v, "Bearer");
    assert_true(resp_header(&r[0], "Retry-After", v, sizeof v));
    assert_string_equal(v, "5");
    assert_false(resp_header(&r[0], "X-Split", v, sizeof v));
    assert_false(resp_header(&r[0], "Injected", v, sizeof v));
}

static void test_http10(void **state)
{
    fixture_t *fx = *state;
    start_server(fx, NULL);
    client_t *cl = client_connect(fx);
    client_sends(cl, "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    resp_t r[2];
    assert_int_equal(wait_responses(cl, 1, r), 1);
    char v[32];
    assert_true(resp_header(&r[0], "Connection", v, sizeof v));
    assert_string_equal(v, "keep-alive");
    client_sends(cl, "GET /echo HTTP/1.0\r\n\r\n");
    assert_true(wait_eof(cl));
    assert_int_equal(parse_responses(cl, r, 2), 2);
    assert_true(resp_header(&r[1], "Connection", v, sizeof v));
    assert_string_equal(v, "close");
}

static void test_head_too_large_431(void **state)
{
    fixture_t *fx = *state;
    http_limits_t lim = {.max_head_bytes = 1024};
    start_server(fx, &lim);
    char req[4096];
    int n = snprintf(req, sizeof req, "GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: %01500d\r\n\r\n", 7);
    expect_refusal(fx, req, (size_t)n, 431);
    /* Too many header lines is the same refusal. */
    http_limits_t lim2 = {.max_headers = 3};
    http_server_close(&fx->server, on_server_closed);
    assert_true(run_until(fx, is_true, &fx->server_closed, DEADLINE_MS));
    fx->server_closed = false;
    start_server(fx, &lim2);
    REFUSE(fx, "GET / HTTP/1.1\r\nHost: t\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431);
}

static void test_uri_too_long_414(void **state)
{
    fixture_t *fx = *state;
    http_limits_t lim = {.max_head_bytes = 1024};
    start_server(fx, &lim);
    char req[4096];
    int n = snprintf(req, sizeof req, "GET /%01500d HTTP/1.1\r\nHost: t\r\n\r\n", 7);
    expect_refusal(fx, req, (size_t)n, 414);
    /* Exactly at the limit is still fine. */
    client_t *cl = client_connect(fx);
    const char *tail = " HTTP/1.1\r\nHost: t\r\n\r\n";
    size_t pad = 1024 - strlen("GET /echo?") - strlen(tail);
    n = snprintf(req, sizeof req, "GET /echo?%0*d%s", (int)pad, 0, tail);
    assert_int_equal(n, 1024);
    client_send(cl, req, (size_t)n);
    resp_t r[1];
    assert_int_equal(wait_responses(cl, 1, r), 1);
    assert_int_equal(r[0].status, 200);
}

static void test_body_too_large_413(void **state)
{
    fixture_t *fx = *state;
    http_limits_t lim = {.max_body_bytes = 1000};
    start_server(fx, &lim);
    REFUSE(fx, "POST /len HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n", 413);
    /* A chunked body is counted as it arrives. */
    client_t *cl = client_connect(fx);
    client_sends(cl, "POST /len HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[700];
    memset(chunk, 'z', sizeof chunk);
    for (int i = 0; i < 2; i++) {
        client_sends(cl, "2bc\r\n");
        client_send(cl, chunk, sizeof chunk);
        client_sends(cl, "\r\n");
    }
    assert_true(wait_eof(cl));
    resp_t r[1];
    assert_int_equal(parse_responses(cl, r, 1), 1);
    assert_int_equal(r[0].status, 413);
    client_close(cl);
    /* Exactly at the limit passes. */
    cl = client_connect(fx);
    client_sends(cl, "POST /len HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n");
    char body[1000];
    memset(body, 'b', sizeof body);
    client_send(cl, body, sizeof body);
    assert_int_equal(wait_responses(cl, 1, r), 1);
    assert_body(&r[0], "1000");
}

static void test_default_body_limit_1mib(void **state)
{
    fixture_t *fx = *state;
    start_server(fx, NULL);
    client_t *cl = client_connect(fx);
    size_t len = 1024 * 1024;
    char *body = malloc(len);
    assert_non_null(body);
    memset(body, 'q', len);
    client_sends(cl, "POST /len HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n");
    client_send(cl, body, len);
    free(body);
    resp_t r[1];
    assert_int_equal(wait_responses(cl, 1, r), 1);
    assert_body(&r[0], "1048576");
    client_close(cl);
    REFUSE(fx, "POST /len HTTP/1.1\r\nHost: t\r\nContent-Length: 1048577\r\n\r\n", 413);
}

static void test_header_timeout_408(void **state)
{
    fixture_t *fx = *state;
    http_limits_t lim = {.header_timeout_ms = 100};
    start_server(fx, &lim);
    client_t *cl = client_connect(fx);
    client_sends(cl, "GET /echo HTTP/1.1\r\nHost: t\r\n");
    assert_true(wait_eof(cl));
    resp_t r[1];
    assert_int_equal(parse_responses(cl, r, 1), 1);
    assert_int_equal(r[0].status, 408);
    client_close(cl);
    /* A stalled body too. */
    cl = client_connect(fx);
    client_sends(cl, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    assert_true(wait_eof(cl));
    assert_int_equal(parse_responses(cl, r, 1), 1);
    assert_int_equal(r[0].status, 408);
    client_close(cl);
    /* A connection that never sends a byte is closed without a word. */
    cl = client_connect(fx);
    assert_true(wait_eof(cl));
    assert_int_equal(cl->resp_len, 0);
    assert_int_equal(fx->handled, 0);
    /* Both 408s were reported to the owner; the silent close was no answer. */
    assert_int_equal(fx->answered, 2);
    assert_int_equal(fx->last_answered, 408);
}

static void test_idle_timeout(void **state)
{
    fixture_t *fx = *state;
    http_limits_t lim = {.idle_timeout_ms = 100};
    start_server(fx, &lim);
    client_t *cl = client_connect(fx);
    client_sends(cl, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    resp_t r[1];
    assert_int_equal(wait_responses(cl, 1, r), 1);
    assert_true(wait_eof(cl));
    client_close(cl);
    assert_true(wait_conns(fx, 0));
}

static bool handled_one(void *arg)
{
    return ((fixture_t *)arg)->handled == 1;
}

static bool client_got_continue(void *arg)
{
    const client_t *cl = arg;
    return find(cl->resp, cl->resp_len, "HTTP/1.1 100 Continue\r\n\r\n") != NULL;
}

/* With every slot taken, a new connection evicts the one idle the longest, whatever kind of
 * idle: silent since accept, between keep-alive requests, or part way through a head (a byte
 * of head counts as activity, so a trickling client is as old as its last byte). */
static void test_max_connections_evicts_idle(void **state)
{
    fixture_t *fx = *state;
    http_limits_t lim = {.max_connections = 3};
    start_server(fx, &lim);
    resp_t r[2];
    client_t *silent = client_connect(fx);
    assert_true(wait_conns(fx, 1));
    client_t *kept = client_connect(fx);
    client_sends(kept, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(wait_responses(kept, 1, r), 1);
    client_t *partial = client_connect(fx);
    client_sends_flushed(partial, "GET /echo HTTP/1.1\r\nHo");
    /* The silent one speaks: now the keep-alive one is the longest idle. */
    client_sends_flushed(silent, "GET /ec");
    assert_true(wait_conns(fx, 3));
    assert_int_equal(http_server_evictions(&fx->server), 0);

    client_t *d = client_connect(fx);
    assert_true(wait_eof(kept));
    assert_int_equal(parse_responses(kept, r, 2), 1);
    assert_int_equal(fx->evicted, 1);
    client_t *e = client_connect(fx);
    assert_true(wait_eof(partial));
    assert_int_equal(partial->resp_len, 0);
    assert_int_equal(fx->evicted, 2);
    client_t *f = client_connect(fx);
    assert_true(wait_eof(silent));
    assert_int_equal(silent->resp_len, 0);
    assert_int_equal(fx->evicted, 3);
    assert_false(d->eof || e->eof || f->eof);

    /* The admitted ones are served; nothing was answered by the server itself. */
    client_sends(d, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(wait_responses(d, 1, r), 1);
    assert_int_equal(r[0].status, 200);
    assert_int_equal(http_server_evictions(&fx->server), 3);
    assert_int_equal(fx->answered, 0);
}

static bool evicted_one(void *arg)
{
    return ((fixture_t *)arg)->evicted == 1;
}

/* A connection whose request waits unread in the kernel is not idle, only not read yet: in a
 * burst of accepts the loop admits the new ones before it reads the old. The new connection
 * here is complete in the listen queue before the oldest idle one sends its request, so the
 * loop accepts it (and must evict) first; the one with bytes waiting is passed over and
 * served, the silent one goes. */
static void test_evict_passes_over_unread(void **state)
{
    fixture_t *fx = *state;
    http_limits_t lim = {.max_connections = 2};
    start_server(fx, &lim);
    client_t *sender = client_connect(fx);
    assert_true(wait_conns(fx, 1));
    client_t *silent = client_connect(fx);
    assert_true(wait_conns(fx, 2));

    /* A plain blocking connect: the kernel completes it without the loop running. */
    int raw = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(raw >= 0);
    struct sockaddr_in sa;
    assert_int_equal(uv_ip4_addr("127.0.0.1", http_server_port(&fx->server), &sa), 0);
    assert_int_equal(connect(raw, (struct sockaddr *)&sa, sizeof sa), 0);
    /* uv_write sends at once when nothing is queued: the bytes are in the server's socket. */
    client_sends(sender, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");

    assert_true(run_until(fx, evicted_one, fx, DEADLINE_MS));
    resp_t r[1];
    assert_int_equal(wait_responses(sender, 1, r), 1);
    assert_int_equal(r[0].status, 200);
    assert_true(wait_eof(silent));
    assert_int_equal(silent->resp_len, 0);
    assert_false(sender->eof);
    assert_int_equal(http_server_evictions(&fx->server), 1);
    close(raw);
}

static bool paced_is(void *arg)
{
    fixture_t *fx = ((void **)arg)[0];
    return fx->paced == *(int *)((void **)arg)[1];
}

static bool echoes_are(void *arg)
{
    fixture_t *fx = ((void **)arg)[0];
    return fx->n_echo == *(int *)((void **)arg)[1];
}

static bool health_seen(void *arg)
{
    return ((fixture_t *)arg)->health_after >= 0;
}

/* Pacing at 10 requests a second: of five clients' requests the first reaches the handler at
 * once and the others wait their turns, 100 ms apart; an unpaced path overtakes them; a
 * client that leaves while waiting never reaches the handler; ending the pace hands a
 * waiting request over at once (its turn was 10 s away). */
static void test_pacing(void **state)
{
    fixture_t *fx = *state;
    static const char *const unpaced[] = {"/health", NULL};
    http_limits_t lim = {.unpaced = unpaced};
    start_server(fx, &lim);
    http_server_set_pace(&fx->server, 10);
    client_t *cl[5];
    for (int i = 0; i < 5; i++) {
        cl[i] = client_connect(fx);
        client_sends(cl[i], "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    int want = 4;
    void *args[2] = {fx, &want};
    assert_true(run_until(fx, paced_is, args, DEADLINE_MS));
    assert_true(fx->n_echo < 5);
    client_t *h = client_connect(fx);
    client_sends(h, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(run_until(fx, health_seen, fx, DEADLINE_MS));
    assert_true(fx->health_after < 5);

    /* The last one leaves while it waits: four are handled, none before its turn. Turns are
     * 100 ms apart from the first, which went at once; a timer may fire late (a loaded
     * machine), never early, so the i-th is at least i * 100 ms after the first, while two
     * neighbours may be closer when the earlier one was late. */
    client_close(cl[4]);
    want = 4;
    assert_true(run_until(fx, echoes_are, args, DEADLINE_MS));
    for (int i = 1; i < 4; i++)
        assert_true(fx->echo_at[i] - fx->echo_at[0] >= (uint64_t)(100 * i));
    want = 5;
    assert_false(run_until(fx, echoes_are, args, 300));

    /* One turn each 10 s: the second request waits, until pacing ends. */
    http_server_set_pace(&fx->server, 0.1);
    client_sends(cl[0], "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    client_sends(cl[1], "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    want = 5;
    assert_true(run_until(fx, paced_is, args, DEADLINE_MS));
    http_server_set_pace(&fx->server, 0);
    want = 6;
    assert_true(run_until(fx, echoes_are, args, 2000));
    resp_t r[2];
    assert_int_equal(wait_responses(cl[1], 2, r), 2);
    assert_int_equal(r[1].status, 200);
    assert_int_equal(fx->evicted, 0);
    assert_int_equal(fx->answered, 0);
}

/* A request in progress is never evicted: with every slot reading a body or awaiting its
 * handler, a new connection gets 503; once one is idle again it is the one evicted. */
static void test_max_connections_503_when_busy(void **state)
{
    fixture_t *fx = *state;
    http_limits_t lim = {.max_connections = 2};
    start_server(fx, &lim);
    client_t *pending = client_connect(fx);
    client_sends(pending, "GET /hang HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(run_until(fx, handled_one, fx, DEADLINE_MS));
    client_t *body = client_connect(fx);
    client_sends(body, "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                       "Content-Length: 10\r\n\r\nabc");
    assert_true(run_until(fx, client_got_continue, body, DEADLINE_MS));

    client_t *c = client_connect(fx);
    assert_true(wait_eof(c));
    resp_t r[2];
    assert_int_equal(parse_responses(c, r, 1), 1);
    assert_int_equal(r[0].status, 503);
    char v[16];
    assert_true(resp_header(&r[0], "Retry-After", v, sizeof v));
    client_close(c);
    assert_int_equal(fx->evicted, 0);
    assert_int_equal(fx->answered, 1);
    assert_int_equal(fx->last_answered, 503);

    /* The body completes; its connection waits for the next request and may be evicted. */
    client_sends(body, "defghij");
    assert_int_equal(wait_responses(body, 2, r), 2);
    assert_int_equal(r[1].status, 200);
    assert_body(&r[1], "POST /echo ? [abcdefghij] x=- peer=127.0.0.1");
    client_t *d = client_connect(fx);
    assert_true(wait_eof(body));
    assert_int_equal(fx->evicted, 1);
    assert_false(pending->eof);
    client_sends(d, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(wait_responses(d, 1, r), 1);
    assert_int_equal(r[0].status, 200);
}

static void test_malformed_400_then_ok(void **state)
{
    fixture_t *fx = *state;
    start_server(fx, NULL);
    REFUSE(fx, "GARBAGE\r\n\r\n", 400);
    REFUSE(fx, "GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400);
    REFUSE(fx, "GET / HTTP/1.1\r\n\r\n", 400); /* HTTP/1.1 without Host */
    REFUSE(fx, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    REFUSE(fx, "GET / HTTP/3.0\r\nHost: t\r\n\r\n", 505);
    client_t *cl = client_connect(fx);
    client_sends(cl, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    resp_t r[1];
    assert_int_equal(wait_responses(cl, 1, r), 1);
    assert_int_equal(r[0].status, 200);
    assert_int_equal(fx->handled, 1);
}

static void test_smuggling_refused(void **state)
{
    fixture_t *fx = *state;
    start_server(fx, NULL);
    REFUSE(fx, "GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400);
    REFUSE(fx, "GET / HTTP/1.1\r\nHost: t\r\nX-A\t: 1\r\n\r\n", 400);
    REFUSE(fx, "GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n  folded\r\n\r\n", 400);
    REFUSE(fx, "GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n\tfolded\r\n\r\n", 400);
    REFUSE(fx,
           "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
           "0\r\n\r\n",
           400);
    REFUSE(fx,
           "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
           "0\r\n\r\n",
           400);
    REFUSE(fx, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
           400);
    /* An empty Transfer-Encoding, beside Content-Length (either order) or alone (fuzz_http). */
    REFUSE(fx, "POST / HTTP/1.1\r\nHost:\r\nContent-Length: 0\r\nTransfer-Encoding:\r\n\r\n", 400);
    REFUSE(fx, "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: \r\nContent-Length: 3\r\n\r\nabc",
           400);
    REFUSE(fx, "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\r\n\r\n", 400);
    REFUSE(fx, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3, 3\r\n\r\nabc", 400);
    REFUSE(fx, "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nabc", 501);
    REFUSE(fx, "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
           501);
    REFUSE(fx, "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n", 400);
    REFUSE(fx, "GET / HTTP/1.1\r\nHost: t\r\nX-A\0: ab\r\n\r\n", 400);
    REFUSE(fx, "GET /a\0b HTTP/1.1\r\nHost: t\r\n\r\n", 400);
    REFUSE(fx, "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n", 400);
    REFUSE(fx, "GET / HTTP/1.1\nHost: t\n\n", 400);
    REFUSE(fx, "POST / HTTP/1.1\r\nHost: t\r\nExpect: magic\r\nContent-Length: 1\r\n\r\nx", 417);
    assert_int_equal(fx->handled, 0);
}

static void test_fold_split_across_reads(void **state)
{
    fixture_t *fx = *state;
    start_server(fx, NULL);
    client_t *cl = client_connect(fx);
    client_sends_flushed(cl, "GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n");
    client_sends(cl, " folded\r\n\r\n");
    resp_t r[1];
    assert_true(wait_eof(cl));
    assert_int_equal(parse_responses(cl, r, 1), 1);
    assert_int_equal(r[0].status, 400);
    assert_int_equal(fx->handled, 0);
}

static void test_chunked_body(void **state)
{
    fixture_t *fx = *state;
    start_server(fx, NULL);
    client_t *cl = client_connect(fx);
    client_sends(cl, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
                     "GET /echo?after HTTP/1.1\r\nHost: t\r\n\r\n");
    resp_t r[2];
    assert_int_equal(wait_responses(cl, 2, r), 2);
    assert_int_equal(r[0].status, 200);
    assert_body(&r[0], "POST /echo ? [hello world] x=- peer=127.0.0.1");
    assert_body(&r[1], "GET /echo ?after [] x=- peer=127.0.0.1");
}

static void test_expect_continue(void **state)
{
    fixture_t *fx = *state;
    start_server(fx, NULL);
    client_t *cl = client_connect(fx);
    client_sends(
        cl, "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    resp_t r[2];
    assert_int_equal(wait_responses(cl, 1, r), 1);
    assert_int_equal(r[0].status, 100);
    client_sends(cl, "data");
    assert_int_equal(wait_responses(cl, 2, r), 2);
    assert_int_equal(r[1].status, 200);
    assert_body(&r[1], "POST /echo ? [data] x=- peer=127.0.0.1");
}

static void test_disconnect_mid_request(void **state)
{
    fixture_t *fx = *state;
    start_server(fx, NULL);
    client_t *cl = client_connect(fx);
    client_sends(cl, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly a part");
    assert_true(wait_conns(fx, 1));
    client_close(cl);
    assert_true(wait_conns(fx, 0));
    cl = client_connect(fx);
    client_sends(cl, "GET /echo HTTP/1.1\r\nHo");
    client_close(cl);
    assert_true(wait_conns(fx, 0));
    assert_int_equal(fx->handled, 0);
}

static bool client_has_bytes(void *arg)
{
    return ((client_t *)arg)->resp_len > 0;
}

static void test_disconnect_while_writing(void **state)
{
    fixture_t *fx = *state;
    start_server(fx, NULL);
    client_t *cl = client_connect(fx);
    client_sends(cl, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(run_until(fx, client_has_bytes, cl, DEADLINE_MS));
    /* Unread data at close makes the kernel send a reset into the server's write. */
    client_close(cl);
    assert_true(wait_conns(fx, 0));
    client_t *again = client_connect(fx);
    client_sends(again, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    resp_t r[1];
    assert_int_equal(wait_responses(again, 1, r), 1);
    assert_int_equal(r[0].status, 200);
}

static void test_disconnect_while_pending(void **state)
{
    fixture_t *fx = *state;
    start_server(fx, NULL);
    client_t *cl = client_connect(fx);
    /* A pipelined request waits behind the pending one and must be dropped with it. */
    client_sends(cl, "GET /hang HTTP/1.1\r\nHost: t\r\n\r\nGET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(run_until(fx, handled_one, fx, DEADLINE_MS));
    client_close(cl);
    assert_true(wait_conns(fx, 0));
    assert_int_equal(fx->cancelled, 1);
    assert_int_equal(fx->handled, 1);
}

static void test_close_cancels_pending(void **state)
{
    fixture_t *fx = *state;
    start_server(fx, NULL);
    client_t *cl = client_connect(fx);
    client_sends(cl, "GET /hang HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(run_until(fx, handled_one, fx, DEADLINE_MS));
    http_server_close(&fx->server, on_server_closed);
    assert_int_equal(fx->cancelled, 1);
    assert_true(run_until(fx, is_true, &fx->server_closed, DEADLINE_MS));
    assert_true(wait_eof(cl));
    fx->started = false;
}

static void test_ipv6_and_start_errors(void **state)
{
    fixture_t *fx = *state;
    char err[256];
    http_server_t bad;
    assert_int_not_equal(
        http_server_start(&bad, &fx->loop, "localhost", 0, NULL, handler, fx, err, sizeof err), 0);
    assert_non_null(strstr(err, "literal"));
    assert_int_not_equal(
        http_server_start(&bad, &fx->loop, "127.0.0.1", 70000, NULL, handler, fx, err, sizeof err),
        0);
    start_server(fx, NULL);
    assert_int_not_equal(http_server_start(&bad, &fx->loop, "127.0.0.1",
                                           http_server_port(&fx->server), NULL, handler, fx, err,
                                           sizeof err),
                         0);
    assert_non_null(strstr(err, "in use"));

    http_server_t v6;
    int rc = http_server_start(&v6, &fx->loop, "::1", 0, NULL, handler, fx, err, sizeof err);
    if (rc != 0) {
        print_message("skipping IPv6 part: %s\n", err);
        return;
    }
    client_t *cl = client_connect_to(fx, "::1", http_server_port(&v6));
    client_sends(cl, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    resp_t r[1];
    assert_int_equal(wait_responses(cl, 1, r), 1);
    assert_body(&r[0], "GET /echo ? [] x=- peer=::1");
    client_close(cl);
    bool closed = false;
    v6.loop->data = &closed;
    http_server_close(&v6, on_v6_closed);
    assert_true(run_until(fx, is_true, &closed, DEADLINE_MS));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_text),
        cmocka_unit_test_setup_teardown(test_get_with_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_split_across_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_sequential, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extra_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http10, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_too_large_431, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uri_too_long_414, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_too_large_413, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_body_limit_1mib, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_timeout_408, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_connections_evicts_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evict_passes_over_unread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_connections_503_when_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pacing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_400_then_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_smuggling_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fold_split_across_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expect_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_mid_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_while_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_while_writing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_cancels_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv6_and_start_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
