/* ch_client.c — the ClickHouse HTTP client: one CURLM per client driven by the libuv loop
 * (an io_poll per curl socket, one uv_timer_t for curl's timeout), request/response
 * bookkeeping, ClickHouse error detection, and the quoting helpers for SQL and URLs.
 * Curl is never entered re-entrantly from its own callbacks, and done callbacks only run
 * from loop callbacks (never inside curl, ch_request_cancel or ch_request_resume). */
#include "ch_client.h"

#include "io_poll.h"

#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* A response body larger than this is an error: eltd never reads result sets this big. */
#define CH_BODY_MAX ((size_t)64 << 20)
/* Bigger upload pieces cut the per-callback overhead of streaming inserts (curl >= 7.62). */
#define CH_UPLOAD_BUFFER (256L * 1024)
/* Body bytes one writable event may hand to curl. curl sends one upload buffer per
 * curl_multi_socket_action; when HTTP clients keep every loop pass busy, one 256 KiB piece
 * per pass throttled loads to a few MB/s (strace under wrk -c200: one 256 KiB write per
 * pass). The socket filling up or the body running dry ends the burst earlier. */
#define CH_WRITE_BUDGET ((uint64_t)4 << 20)

#define CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

typedef struct ch_sock ch_sock_t;

/* One socket curl asked us to watch; freed only in its watcher's close callback. */
struct ch_sock {
    io_poll_t io;    /* watches curl's socket, io.fd */
    ch_client_t *c;  /* owner */
    CURL *easy;      /* the transfer curl last named for this socket */
    bool closing;    /* io_poll_close called; curl no longer knows this context */
    ch_sock_t *prev; /* in c->socks */
    ch_sock_t *next;
};

struct ch_client {
    uv_loop_t *loop;
    CURLM *multi;            /* NULL once cleaned up during close */
    uv_timer_t curl_timer;   /* armed by CURLMOPT_TIMERFUNCTION */
    uv_timer_t defer_timer;  /* runs deferred cancels and resumes on a later iteration */
    char *base;              /* url without trailing slashes */
    struct curl_slist *auth; /* X-ClickHouse-User / X-ClickHouse-Key headers (template) */
    char *user_header;
    char *key_header;
    long connect_ms;
    long timeout_ms;    /* 0 = none */
    ch_request_t *reqs; /* every request whose done callback has not run */
    ch_sock_t *socks;   /* every live socket context */
    int open_handles;   /* handles not yet through their close callback */
    int in_curl;        /* depth of our calls into curl that may run its callbacks */
    uint64_t body_read; /* insert body bytes curl took from read callbacks, ever */
    bool closing;
    void (*closed)(void *ud);
    void *closed_ud;
};

struct ch_request {
    ch_client_t *c;
    CURL *easy;
    struct curl_slist *headers;
    char *url;
    ch_read_cb read; /* NULL for queries */
    ch_done_cb done;
    void *ud;
    char *body; /* response body, always NUL-terminated when non-NULL */
    size_t len;
    size_t cap;
    bool attached;       /* easy is in the multi */
    bool add_pending;    /* created inside a curl callback: added from the defer timer */
    bool paused;         /* the read callback returned CH_READ_PAUSE */
    bool resume_pending; /* resume asked while inside curl: done from the defer timer */
    bool cancelled;      /* done runs with "cancelled" from the defer timer */
    bool read_aborted;   /* the read callback returned CH_READ_ABORT */
    bool read_bad;       /* the read callback returned more than it was offered */
    bool too_big;        /* the response passed CH_BODY_MAX */
    bool sock_failed;    /* poll reported an error on this request's socket */
    int sock_errno;      /* that socket's SO_ERROR then (e.g. ECONNRESET), 0 if none */
    char errbuf[CURL_ERROR_SIZE];
    ch_request_t *prev; /* in c->reqs */
    ch_request_t *next;
};

/* ------------------------------------------------------------------ helpers */

static char *str_dup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static char *str_cat3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *p = malloc(la + lb + lc + 1);
    if (!p)
        return NULL;
    memcpy(p, a, la);
    memcpy(p + la, b, lb);
    memcpy(p + la + lb, c, lc + 1);
    return p;
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t';
}

static bool has_crlf(const char *s)
{
    return s && strpbrk(s, "\r\n") != NULL;
}

char *ch_url_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(n * 3 + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char ch = *p;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            *o++ = (char)ch;
        } else {
            *o++ = '%';
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 15];
        }
    }
    *o = '\0';
    return out;
}

/* Wraps s in quote, putting a backslash before quote and backslash characters. */
static char *quote_with(const char *s, char quote)
{
    size_t n = strlen(s);
    char *out = malloc(n * 2 + 3), *o = out;
    if (!out)
        return NULL;
    *o++ = quote;
    for (const char *p = s; *p; p++) {
        if (*p == quote || *p == '\\')
            *o++ = '\\';
        *o++ = *p;
    }
    *o++ = quote;
    *o = '\0';
    return out;
}

char *ch_quote_string(const char *s)
{
    return quote_with(s, '\'');
}

char *ch_quote_ident(const char *s)
{
    return quote_with(s, '`');
}

/* A query that fails after ClickHouse has started streaming its answer still ends with
 * HTTP 200: the exception is appended as the last line(s) of the body, e.g.
 * "Code: 395, e.displayText() = DB::Exception: ..." (18.x-20.x) or
 * "Code: 395. DB::Exception: ..." (newer). Returns where it starts, or NULL. */
static const char *find_trailing_exception(const char *b, size_t len)
{
    /* The exception text is short; look only at the tail. */
    size_t from = len > 65536 ? len - 65536 : 0;
    for (size_t i = len; i-- > from;) {
        if (b[i] != 'C' || (i > 0 && b[i - 1] != '\n'))
            continue;
        if (len - i < 6 || memcmp(b + i, "Code: ", 6) != 0)
            continue;
        size_t j = i + 6;
        while (j < len && b[j] >= '0' && b[j] <= '9')
            j++;
        if (j == i + 6)
            return NULL;
        static const char old_form[] = ", e.displayText() = ";
        static const char new_form[] = ". DB::Exception";
        if ((len - j >= sizeof old_form - 1 && memcmp(b + j, old_form, sizeof old_form - 1) == 0) ||
            (len - j >= sizeof new_form - 1 && memcmp(b + j, new_form, sizeof new_form - 1) == 0))
            return b + i;
        /* Only the last "Code: " line can be the server's own exception. */
        return NULL;
    }
    return NULL;
}

/* ------------------------------------------------------------------ requests */

static void request_unlink(ch_request_t *r)
{
    ch_client_t *c = r->c;
    if (r->prev)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static void request_free(ch_request_t *r)
{
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->url);
    free(r->body);
    free(r);
}

/* Detaches the easy handle from the multi; must not run inside a curl callback. */
static void request_detach(ch_request_t *r)
{
    if (r->attached && r->c->multi) {
        r->c->in_curl++;
        curl_multi_remove_handle(r->c->multi, r->easy);
        r->c->in_curl--;
    }
    r->attached = false;
}

/* Calls done exactly once, then frees the request. */
static void request_finish(ch_request_t *r, long status, const char *err)
{
    request_unlink(r);
    const char *body = r->body ? r->body : "";
    r->done(r, r->ud, status, body, r->body ? r->len : 0, err);
    request_free(r);
}

static void request_complete(ch_request_t *r, CURLcode rc)
{
    long status = 0;
    char msg[CURL_ERROR_SIZE + 192];
    const char *err = NULL;
    char *text = NULL;

    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    if (r->body) {
        /* Trimmed copy of the body, used as the error text. */
        size_t a = 0, z = r->len;
        while (a < z && is_space(r->body[a]))
            a++;
        while (z > a && is_space(r->body[z - 1]))
            z--;
        if (status != 200 && z > a) {
            text = malloc(z - a + 1);
            if (text) {
                memcpy(text, r->body + a, z - a);
                text[z - a] = '\0';
            }
        } else if (status == 200 && rc == CURLE_OK) {
            const char *ex = find_trailing_exception(r->body, z);
            if (ex) {
                size_t n = (size_t)(r->body + z - ex);
                text = malloc(n + 1);
                if (text) {
                    memcpy(text, ex, n);
                    text[n] = '\0';
                }
                if (!text)
                    err = "ClickHouse exception at the end of the response";
            }
        }
    }
    if (text) {
        err = text;
    } else if (err) {
        /* already set */
    } else if (r->too_big) {
        snprintf(msg, sizeof msg, "response body exceeds %zu MiB", CH_BODY_MAX >> 20);
        err = msg;
    } else if (r->read_aborted) {
        err = "insert aborted by its read callback";
    } else if (r->read_bad) {
        err = "insert read callback returned more bytes than asked";
    } else if (rc != CURLE_OK && r->sock_failed) {
        /* curl only says "select/poll returned error" for a socket poll flagged: name the
         * socket's own error, which is what happened to the connection. */
        const char *curl_text = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
        if (r->sock_errno)
            snprintf(msg, sizeof msg, "connection to ClickHouse failed: %s (errno %d); curl: %s",
                     strerror(r->sock_errno), r->sock_errno, curl_text);
        else
            snprintf(msg, sizeof msg,
                     "connection to ClickHouse reset or closed (poll reported a socket error); "
                     "curl: %s",
                     curl_text);
        err = msg;
    } else if (rc != CURLE_OK) {
        snprintf(msg, sizeof msg, "%s", r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
        err = msg;
    } else if (status != 200) {
        snprintf(msg, sizeof msg, "HTTP status %ld", status);
        err = msg;
    }
    request_finish(r, status, err);
    free(text);
}

/* Finished transfers: drain curl's messages and run their done callbacks. Called only
 * from loop callbacks, after curl has returned. */
static void check_done(ch_client_t *c)
{
    CURLMsg *m;
    int left;
    while (!c->closing && c->multi && (m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode rc = m->data.result;
        ch_request_t *r = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
        if (!r || r->cancelled)
            continue; /* the defer timer reports it */
        request_detach(r);
        request_complete(r, rc);
    }
}

static void on_defer(uv_timer_t *t);

/* Runs on_defer from the loop's next timer phase. Starting a timer cannot fail. */
static void arm_defer(ch_client_t *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->defer_timer))
        (void)uv_timer_start(&c->defer_timer, on_defer, 0, 0);
}

/* ------------------------------------------------------------------ curl callbacks */

static size_t on_curl_write(char *data, size_t size, size_t nmemb, void *p)
{
    ch_request_t *r = p;
    size_t n = size * nmemb;
    if (r->cancelled)
        return 0;
    if (n > CH_BODY_MAX - r->len) {
        r->too_big = true;
        return 0;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *b = realloc(r->body, cap);
        if (!b)
            return 0;
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

static size_t on_curl_read(char *buf, size_t size, size_t nitems, void *p)
{
    ch_request_t *r = p;
    size_t max = size * nitems;
    if (r->cancelled)
        return CURL_READFUNC_ABORT;
    size_t n = r->read(r->ud, buf, max);
    /* The reader may have cancelled its own request from inside the callback. */
    if (r->cancelled)
        return CURL_READFUNC_ABORT;
    if (n == CH_READ_PAUSE) {
        r->paused = true;
        return CURL_READFUNC_PAUSE;
    }
    if (n == CH_READ_ABORT) {
        r->read_aborted = true;
        return CURL_READFUNC_ABORT;
    }
    if (n > max) {
        r->read_bad = true;
        return CURL_READFUNC_ABORT;
    }
    r->c->body_read += n;
    return n;
}

static void on_sock_closed(io_poll_t *p);
static void client_maybe_free(ch_client_t *c);

static void sock_close(ch_sock_t *s)
{
    ch_client_t *c = s->c;
    if (s->closing)
        return;
    s->closing = true;
    if (s->prev)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    io_poll_close(&s->io, on_sock_closed);
}

static void on_sock_closed(io_poll_t *p)
{
    ch_sock_t *s = CONTAINER_OF(p, ch_sock_t, io);
    ch_client_t *c = s->c;
    free(s);
    c->open_handles--;
    client_maybe_free(c);
}

/* Poll reported an error on s's socket (libuv's UV_EBADF for POLLERR): keep the socket's
 * own error on the request using it, for its error text. Read before curl fails the
 * transfer. */
static void sock_note_error(ch_sock_t *s)
{
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(s->io.fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
        soerr = 0;
    for (ch_request_t *r = s->c->reqs; r; r = r->next) {
        if (r->easy != s->easy)
            continue;
        r->sock_failed = true;
        r->sock_errno = soerr;
    }
}

/* curl_multi_socket_action on s; with CURL_CSELECT_OUT, repeated while curl takes body
 * pieces, until the body has nothing buffered, curl stops wanting to write, the socket is
 * full (curl then takes no new piece) or CH_WRITE_BUDGET bytes moved. The caller holds
 * in_curl and runs check_done (or has the timer run it). */
static void sock_action(ch_sock_t *s, int flags)
{
    ch_client_t *c = s->c;
    int running;
    uint64_t start = c->body_read;
    for (;;) {
        uint64_t before = c->body_read;
        curl_multi_socket_action(c->multi, s->io.fd, flags, &running);
        if (!(flags & CURL_CSELECT_OUT) || c->closing || s->closing ||
            !(s->io.events & UV_WRITABLE) || c->body_read == before ||
            c->body_read - start >= CH_WRITE_BUDGET)
            break;
    }
}

static void on_sock_event(io_poll_t *p, int status, int events)
{
    ch_sock_t *s = CONTAINER_OF(p, ch_sock_t, io);
    ch_client_t *c = s->c;
    int flags = 0;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
        sock_note_error(s);
    } else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    c->in_curl++;
    sock_action(s, flags);
    c->in_curl--;
    check_done(c);
}

/* CURLMOPT_SOCKETFUNCTION: create, update or remove the watch on one socket. After
 * CURL_POLL_REMOVE curl may open a new socket with the same fd number at once; the old
 * context is only closing (its watcher already left the loop in uv_close) and a fresh
 * context is made for the new socket, so the two never share state. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    ch_client_t *c = userp;
    ch_sock_t *s = socketp;
    if (c->closing)
        return 0; /* every context is already closed; socketp may be stale */
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(c->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s)
            return -1;
        if (io_poll_init(c->loop, &s->io, fd, on_sock_event) != 0) {
            free(s);
            return -1;
        }
        s->c = c;
        s->next = c->socks;
        if (c->socks)
            c->socks->prev = s;
        c->socks = s;
        c->open_handles++;
        curl_multi_assign(c->multi, fd, s);
    }
    s->easy = easy;
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    return io_poll_want(&s->io, events) != 0 ? -1 : 0;
}

static void on_curl_timer(uv_timer_t *t)
{
    ch_client_t *c = CONTAINER_OF(t, ch_client_t, curl_timer);
    int running;
    c->in_curl++;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    c->in_curl--;
    check_done(c);
}

/* CURLMOPT_TIMERFUNCTION: a timeout of 0 fires from the loop's next timer phase, never
 * from inside this callback. */
static int on_curl_timeout(CURLM *multi, long timeout_ms, void *userp)
{
    ch_client_t *c = userp;
    (void)multi;
    if (c->closing)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&c->curl_timer);
    else if (uv_timer_start(&c->curl_timer, on_curl_timer, (uint64_t)timeout_ms, 0) != 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------ deferred work */

static void client_maybe_free(ch_client_t *c)
{
    if (c->open_handles > 0 || c->multi)
        return;
    void (*closed)(void *) = c->closed;
    void *ud = c->closed_ud;
    curl_slist_free_all(c->auth);
    free(c->base);
    free(c);
    if (closed)
        closed(ud);
}

static void on_handle_closed(uv_handle_t *h)
{
    ch_client_t *c = h->data;
    c->open_handles--;
    client_maybe_free(c);
}

static void on_defer(uv_timer_t *t)
{
    ch_client_t *c = CONTAINER_OF(t, ch_client_t, defer_timer);
    bool again = true;
    /* Done callbacks may add, cancel or resume requests: rescan after each one. */
    while (again) {
        again = false;
        for (ch_request_t *r = c->reqs; r; r = r->next) {
            if (r->cancelled) {
                request_detach(r);
                request_finish(r, 0, "cancelled");
                again = true;
                break;
            }
            if (r->add_pending) {
                r->add_pending = false;
                if (curl_multi_add_handle(c->multi, r->easy) != CURLM_OK) {
                    request_finish(r, 0, "cannot start the request (curl_multi_add_handle)");
                    again = true;
                    break;
                }
                r->attached = true;
            }
            if (r->resume_pending && !c->closing) {
                r->resume_pending = false;
                ch_request_resume(r);
            }
        }
    }
    if (c->closing && !c->reqs && c->multi) {
        curl_multi_cleanup(c->multi);
        c->multi = NULL;
        uv_close((uv_handle_t *)&c->defer_timer, on_handle_closed);
    }
}

/* ------------------------------------------------------------------ public API */

ch_client_t *ch_client_new(uv_loop_t *loop, const ch_client_opts_t *opts, char *err, size_t errlen)
{
    if (!opts || !opts->url || !*opts->url) {
        snprintf(err, errlen, "clickhouse url is empty");
        return NULL;
    }
    if (strncmp(opts->url, "http://", 7) != 0 && strncmp(opts->url, "https://", 8) != 0) {
        snprintf(err, errlen, "clickhouse url must start with http:// or https://");
        return NULL;
    }
    if (strchr(opts->url, '?') || strchr(opts->url, '#') || has_crlf(opts->url)) {
        snprintf(err, errlen, "clickhouse url must not hold a query string");
        return NULL;
    }
    if (has_crlf(opts->user) || has_crlf(opts->password)) {
        snprintf(err, errlen, "clickhouse user and password must not hold line breaks");
        return NULL;
    }
    ch_client_t *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->loop = loop;
    c->base = str_dup(opts->url);
    if (!c->base)
        goto oom;
    size_t n = strlen(c->base);
    while (n > 0 && c->base[n - 1] == '/')
        c->base[--n] = '\0';
    c->connect_ms = opts->connect_timeout > 0 ? (long)(opts->connect_timeout * 1000.0) : 0;
    c->timeout_ms = opts->query_timeout > 0 ? (long)(opts->query_timeout * 1000.0) : 0;

    /* ClickHouse 18.16 accepts X-ClickHouse-User/X-ClickHouse-Key (and basic auth);
     * headers keep the password out of URLs and access logs. */
    if (opts->user && *opts->user) {
        char *h = str_cat3("X-ClickHouse-User: ", opts->user, "");
        struct curl_slist *l = h ? curl_slist_append(c->auth, h) : NULL;
        free(h);
        if (!l)
            goto oom;
        c->auth = l;
    }
    if (opts->password && *opts->password) {
        char *h = str_cat3("X-ClickHouse-Key: ", opts->password, "");
        struct curl_slist *l = h ? curl_slist_append(c->auth, h) : NULL;
        if (h) {
            memset(h, 0, strlen(h));
            free(h);
        }
        if (!l)
            goto oom;
        c->auth = l;
    }

    c->multi = curl_multi_init();
    if (!c->multi)
        goto oom;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timeout);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);

    uv_timer_init(loop, &c->curl_timer);
    uv_timer_init(loop, &c->defer_timer);
    c->curl_timer.data = c;
    c->defer_timer.data = c;
    c->open_handles = 2;
    return c;
oom:
    curl_slist_free_all(c->auth);
    free(c->base);
    free(c);
    snprintf(err, errlen, "out of memory");
    return NULL;
}

static ch_request_t *request_new(ch_client_t *c, char *url, ch_done_cb done, void *ud)
{
    ch_request_t *r = calloc(1, sizeof *r);
    if (!r) {
        free(url);
        return NULL;
    }
    r->c = c;
    r->url = url;
    r->done = done;
    r->ud = ud;
    r->easy = curl_easy_init();
    if (!r->easy)
        goto fail;
    for (struct curl_slist *h = c->auth; h; h = h->next) {
        struct curl_slist *l = curl_slist_append(r->headers, h->data);
        if (!l)
            goto fail;
        r->headers = l;
    }
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    if (c->connect_ms > 0)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
    if (c->timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    return r;
fail:
    request_free(r);
    return NULL;
}

static ch_request_t *request_start(ch_request_t *r)
{
    ch_client_t *c = r->c;
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
    if (c->in_curl) {
        /* Inside a curl callback (a read callback starting a request): curl refuses
         * recursive calls, so add the handle from the loop. */
        r->add_pending = true;
        arm_defer(c);
    } else {
        /* curl_multi_add_handle only calls the timer function: no read/write callback. */
        if (curl_multi_add_handle(c->multi, r->easy) != CURLM_OK) {
            request_free(r);
            return NULL;
        }
        r->attached = true;
    }
    r->next = c->reqs;
    if (c->reqs)
        c->reqs->prev = r;
    c->reqs = r;
    return r;
}

ch_request_t *ch_query(ch_client_t *c, const char *sql, const char *settings, ch_done_cb done,
                       void *ud)
{
    if (c->closing)
        return NULL;
    char *url =
        settings && *settings ? str_cat3(c->base, "/?", settings) : str_cat3(c->base, "/", "");
    if (!url)
        return NULL;
    ch_request_t *r = request_new(c, url, done, ud);
    if (!r)
        return NULL;
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(sql));
    if (curl_easy_setopt(r->easy, CURLOPT_COPYPOSTFIELDS, sql) != CURLE_OK) {
        request_free(r);
        return NULL;
    }
    return request_start(r);
}

ch_request_t *ch_insert(ch_client_t *c, const char *insert_sql, ch_read_cb read, ch_done_cb done,
                        void *ud)
{
    if (c->closing)
        return NULL;
    char *q = ch_url_escape(insert_sql);
    char *url = q ? str_cat3(c->base, "/?query=", q) : NULL;
    free(q);
    if (!url)
        return NULL;
    ch_request_t *r = request_new(c, url, done, ud);
    if (!r)
        return NULL;
    r->read = read;
    struct curl_slist *l = curl_slist_append(r->headers, "Transfer-Encoding: chunked");
    if (l)
        r->headers = l;
    if (l)
        l = curl_slist_append(r->headers, "Expect:");
    if (!l) {
        request_free(r);
        return NULL;
    }
    r->headers = l;
    /* CURLOPT_UPLOAD=0 resets the method to GET: POST must come after it. */
    curl_easy_setopt(r->easy, CURLOPT_UPLOAD, 0L);
    curl_easy_setopt(r->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(r->easy, CURLOPT_READFUNCTION, on_curl_read);
    curl_easy_setopt(r->easy, CURLOPT_READDATA, r);
#if LIBCURL_VERSION_NUM >= 0x073e00
    curl_easy_setopt(r->easy, CURLOPT_UPLOAD_BUFFERSIZE, CH_UPLOAD_BUFFER);
#endif
    return request_start(r);
}

void ch_request_resume(ch_request_t *r)
{
    ch_client_t *c = r->c;
    if (!r->paused || r->cancelled || !r->attached)
        return;
    if (c->in_curl) {
        /* Called from inside a curl callback: unpause from the loop instead. */
        r->resume_pending = true;
        arm_defer(c);
        return;
    }
    r->paused = false;
    /* curl may call the read callback right here, which may pause again; finished
     * transfers are picked up by curl's timer (curl_easy_pause arms it, and so do we
     * below), so no done callback runs inside this call. */
    c->in_curl++;
    curl_easy_pause(r->easy, CURLPAUSE_CONT);
    /* Unpausing only arms curl's timer: the body would wait a loop pass (several ms when
     * HTTP clients keep passes busy) before its first byte moved. Offer curl the socket
     * now; a socket that is not writable just takes nothing. */
    ch_sock_t *s = c->socks;
    while (s && s->easy != r->easy)
        s = s->next;
    if (s && !r->paused && !r->cancelled && (s->io.events & UV_WRITABLE)) {
        sock_action(s, CURL_CSELECT_OUT);
        if (!c->closing)
            (void)uv_timer_start(&c->curl_timer, on_curl_timer, 0, 0);
    }
    c->in_curl--;
}

void ch_request_cancel(ch_request_t *r)
{
    if (r->cancelled)
        return;
    r->cancelled = true;
    arm_defer(r->c);
}

void ch_client_close(ch_client_t *c, void (*closed)(void *ud), void *ud)
{
    if (c->closing)
        return;
    c->closing = true;
    c->closed = closed;
    c->closed_ud = ud;
    for (ch_request_t *r = c->reqs; r; r = r->next)
        r->cancelled = true;
    while (c->socks)
        sock_close(c->socks);
    uv_close((uv_handle_t *)&c->curl_timer, on_handle_closed);
    /* The defer timer reports the cancelled requests, cleans up the multi handle and
     * closes itself; the client is freed when the last handle has closed. */
    uv_timer_start(&c->defer_timer, on_defer, 0, 0);
}
