/* fuzz_http.c — libFuzzer target for the HTTP server's request handling: the input is the
 * byte stream a client sends on one connection, cut into separate reads at each "<<SPLIT>>".
 *
 * http_server.c is compiled into this file unchanged, so that the fuzzer drives its real
 * code: on_connection, on_alloc/on_read, the llhttp settings and leniencies, every refusal
 * check, keep-alive, pipelining, 100-continue, responses and close. The one substitution is
 * uv_accept: the "accepted" client is one end of a socketpair, opened with uv_tcp_open, so
 * no TCP port or TIME_WAIT is spent per input. The fuzzer holds the other end: it writes
 * each piece, runs the loop until the server is quiet, reads what the server wrote, and in
 * the end half-closes and waits until the server has freed the connection.
 *
 * Checked: no crash, leak or UB (sanitizers); every byte the server wrote parses as a
 * sequence of well-formed HTTP/1.1 responses (llhttp, strict, in response mode) with a
 * status in 100..599 and a Content-Length on every final response that may carry a body;
 * every request handed to the handler is consistent; the connection is always freed. */
#include <uv.h>

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fuzz_uv_accept(uv_stream_t *server, uv_stream_t *client);
#define uv_accept fuzz_uv_accept
#include "../../src/http_server.c"
#undef uv_accept

#include "fuzz.h"
#include "log.h"

#define FUZZ_SPLIT "<<SPLIT>>"

static uv_loop_t fuzz_loop;
static http_server_t fuzz_server;
static int fuzz_pending_fd = -1;

/* Answers in order; requests that were HEAD get no body, which the response parser must know. */
static bool fuzz_head_queue[4096];
static size_t fuzz_answered;

/* One exchange answered later, from a zero timer, as api.c does for some endpoints. */
static uv_timer_t fuzz_async_timer;
static http_exchange_t *fuzz_async_ex;

static int fuzz_uv_accept(uv_stream_t *server, uv_stream_t *client)
{
    (void)server;
    int fd = fuzz_pending_fd;
    fuzz_pending_fd = -1;
    return uv_tcp_open((uv_tcp_t *)client, fd);
}

static void fuzz_check_request(const http_request_t *req)
{
    CHECK(req->method && req->path && req->query && req->body && req->peer);
    CHECK(strchr(req->path, '?') == NULL);
    CHECK(req->body[req->body_len] == '\0');
    CHECK(req->http_minor == 0 || req->http_minor == 1);
    CHECK(req->n_headers <= 100);
    for (size_t i = 0; i < req->n_headers; i++) {
        CHECK(req->headers[i].name && req->headers[i].value);
        CHECK(is_token(req->headers[i].name));
        CHECK(strpbrk(req->headers[i].value, "\r\n") == NULL);
    }
    /* What the server promises to have refused already. */
    if (req->http_minor == 1)
        CHECK(count_headers(req, "Host") == 1);
    CHECK(count_headers(req, "Content-Length") <= 1);
    CHECK(count_headers(req, "Transfer-Encoding") <= 1);
    CHECK(!(http_request_header(req, "Content-Length") &&
             http_request_header(req, "Transfer-Encoding")));
}

/* Builds the answer from the request itself, so that hostile values reach the response
 * code too: X-Status picks the status, X-Type the content type, X-Name/X-Value an extra
 * header (refused unless valid), and the body is echoed. */
static void fuzz_answer(http_exchange_t *ex)
{
    const http_request_t *req = http_exchange_request(ex);
    const char *st = http_request_header(req, "X-Status");
    int status = st ? atoi(st) : 200;
    const char *name = http_request_header(req, "X-Name");
    const char *value = http_request_header(req, "X-Value");
    if (name && value && http_exchange_add_header(ex, name, value) != 0 && status == 200)
        status = 400;
    /* A path fits in a header value unless it is too long or holds a control character
     * (llhttp lets \f through in the request-target). */
    int rc = http_exchange_add_header(ex, "X-Path", req->path);
    CHECK(rc == 0 || (rc == UV_ENOBUFS && strlen(req->path) > 1000) ||
          (rc == UV_EINVAL && has_ctl_break(req->path)));
    if (fuzz_answered < sizeof fuzz_head_queue)
        fuzz_head_queue[fuzz_answered] = strcmp(req->method, "HEAD") == 0;
    fuzz_answered++;
    if (strcmp(req->path, "/error") == 0)
        http_respond_error(ex, status, req->query);
    else
        http_respond(ex, status, http_request_header(req, "X-Type"), req->body, req->body_len);
}

static void on_fuzz_async(uv_timer_t *t)
{
    (void)t;
    http_exchange_t *ex = fuzz_async_ex;
    fuzz_async_ex = NULL;
    if (ex)
        fuzz_answer(ex);
}

static void on_fuzz_cancel(http_exchange_t *ex, void *ud)
{
    (void)ud;
    CHECK(ex == fuzz_async_ex);
    fuzz_async_ex = NULL;
    uv_timer_stop(&fuzz_async_timer);
}

static void fuzz_handler(http_exchange_t *ex, const http_request_t *req, void *ud)
{
    (void)ud;
    fuzz_check_request(req);
    CHECK(http_exchange_request(ex) == req);
    if (strncmp(req->path, "/async", 6) == 0) {
        CHECK(fuzz_async_ex == NULL);
        fuzz_async_ex = ex;
        http_exchange_set_cancel(ex, on_fuzz_cancel, NULL);
        uv_timer_start(&fuzz_async_timer, on_fuzz_async, 0, 0);
        return;
    }
    fuzz_answer(ex);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);
    if (uv_loop_init(&fuzz_loop) != 0)
        abort();
    uv_timer_init(&fuzz_loop, &fuzz_async_timer);
    char err[256];
    if (http_server_start(&fuzz_server, &fuzz_loop, "127.0.0.1", 0, NULL, fuzz_handler, NULL,
                          err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_http: %s\n", err);
        abort();
    }
    return 0;
}

/* ---- the client's view: responses parsed strictly ---- */

typedef struct {
    llhttp_t parser;
    size_t n_final;     /* final (non-1xx) responses seen */
    bool has_length;    /* the response being parsed carried Content-Length */
    bool in_message;    /* between message begin and complete */
} fuzz_client_t;

static int on_resp_begin(llhttp_t *p)
{
    fuzz_client_t *fc = p->data;
    fc->has_length = false;
    fc->in_message = true;
    return 0;
}

static int on_resp_field(llhttp_t *p, const char *at, size_t n)
{
    fuzz_client_t *fc = p->data;
    if (n == 14 && strncasecmp(at, "Content-Length", 14) == 0)
        fc->has_length = true;
    return 0;
}

static int on_resp_headers_complete(llhttp_t *p)
{
    fuzz_client_t *fc = p->data;
    int st = p->status_code;
    CHECK(st >= 100 && st <= 599);
    CHECK(p->http_major == 1 && p->http_minor == 1);
    if (st < 200)
        return 0;
    if (st != 204 && st != 304)
        CHECK(fc->has_length);
    CHECK(!(p->flags & F_TRANSFER_ENCODING));
    /* Responses to a HEAD request carry the headers only. */
    bool head = fc->n_final < fuzz_answered && fc->n_final < sizeof fuzz_head_queue &&
                fuzz_head_queue[fc->n_final];
    return head ? 1 : 0;
}

static int on_resp_complete(llhttp_t *p)
{
    fuzz_client_t *fc = p->data;
    fc->in_message = false;
    if (p->status_code >= 200)
        fc->n_final++;
    return 0;
}

static const llhttp_settings_t resp_settings = {
    .on_message_begin = on_resp_begin,
    .on_header_field = on_resp_field,
    .on_headers_complete = on_resp_headers_complete,
    .on_message_complete = on_resp_complete,
};

/* Reads what the server wrote and parses it. Returns the number of bytes read. */
static size_t fuzz_drain(int fd, fuzz_client_t *fc, bool *eof)
{
    char buf[65536];
    size_t total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0) {
            *eof = true;
            break;
        }
        if (n < 0)
            break;
        total += (size_t)n;
        llhttp_errno_t e = llhttp_execute(&fc->parser, buf, (size_t)n);
        if (e != HPE_OK) {
            fprintf(stderr, "fuzz_http: malformed response: %s (%s)\n", llhttp_errno_name(e),
                    llhttp_get_error_reason(&fc->parser));
            abort();
        }
    }
    return total;
}

/* Runs the loop without blocking until nothing more happens. */
static void fuzz_settle(int fd, fuzz_client_t *fc, bool *eof)
{
    int quiet = 0;
    for (int i = 0; i < 10000 && quiet < 3; i++) {
        uv_run(&fuzz_loop, UV_RUN_NOWAIT);
        size_t got = fuzz_drain(fd, fc, eof);
        quiet = got || fuzz_async_ex ? 0 : quiet + 1;
    }
}

static void fuzz_send(int fd, const uint8_t *p, size_t n, fuzz_client_t *fc, bool *eof)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            /* The server stopped reading (its buffer is full) or closed: let it work. */
            if (fuzz_server.n_conns == 0)
                return;
            fuzz_settle(fd, fc, eof);
            if (*eof)
                return;
            continue;
        }
        p += w;
        n -= (size_t)w;
    }
    fuzz_settle(fd, fc, eof);
}

static const uint8_t *fuzz_find(const uint8_t *p, const uint8_t *end, const uint8_t *s, size_t n)
{
    for (; (size_t)(end - p) >= n; p++)
        if (memcmp(p, s, n) == 0)
            return p;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    fuzz_answered = 0;
    fuzz_pending_fd = sv[0];
    on_connection((uv_stream_t *)&fuzz_server.listener, 0);
    CHECK(fuzz_server.n_conns == 1);

    fuzz_client_t fc = {0};
    llhttp_init(&fc.parser, HTTP_RESPONSE, &resp_settings);
    fc.parser.data = &fc;
    bool eof = false;

    const uint8_t *p = data, *end = data + size;
    size_t sl = sizeof FUZZ_SPLIT - 1;
    while (p < end && !eof && fuzz_server.n_conns > 0) {
        const uint8_t *cut = fuzz_find(p, end, (const uint8_t *)FUZZ_SPLIT, sl);
        size_t n = cut ? (size_t)(cut - p) : (size_t)(end - p);
        fuzz_send(sv[1], p, n, &fc, &eof);
        p += n + (cut ? sl : 0);
    }

    /* The client is done: half-close and let the server answer, linger and close. */
    shutdown(sv[1], SHUT_WR);
    for (int i = 0; i < 100000 && fuzz_server.n_conns > 0; i++) {
        uv_run(&fuzz_loop, UV_RUN_NOWAIT);
        fuzz_drain(sv[1], &fc, &eof);
    }
    if (fuzz_server.n_conns != 0) {
        fprintf(stderr, "fuzz_http: connection still open after the client's EOF (state %d)\n",
                fuzz_server.conns->state);
        abort();
    }
    fuzz_drain(sv[1], &fc, &eof);
    /* Nothing may be cut off: the last response is complete. */
    if (fc.in_message) {
        fprintf(stderr, "fuzz_http: truncated response\n");
        abort();
    }
    CHECK(fuzz_async_ex == NULL);
    close(sv[1]);
    return 0;
}
