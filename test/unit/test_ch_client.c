/* test_ch_client.c — the ClickHouse HTTP client against a real server (CLICKHOUSE_URL,
 * CLICKHOUSE_USER, CLICKHOUSE_PASSWORD from test/servers.sh's env.sh): queries, errors,
 * streaming inserts with pause/resume, cancel, close with requests in flight, and the
 * quoting helpers. Every test closes its loop completely (uv_loop_close returns 0). */
#include "ch_client.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#define DEADLINE_MS 120000

/* ------------------------------------------------------------------ fixtures */

typedef struct env {
    uv_loop_t loop;
    ch_client_t *c;
    int closed;     /* closed callback count */
    int done_total; /* done callbacks seen, for ordering checks */
} env_t;

typedef struct result {
    env_t *env;
    int calls;
    long status;
    char *body;
    size_t len;
    char *err;
    int order; /* env->done_total when this done ran */
} result_t;

static const char *ch_url(void)
{
    const char *u = getenv("CLICKHOUSE_URL");
    return u && *u ? u : NULL;
}

static void need_server(void)
{
    if (!ch_url()) {
        print_message("CLICKHOUSE_URL is not set (source test/servers.sh's env.sh): skipped\n");
        skip();
    }
}

static void on_closed(void *ud)
{
    env_t *e = ud;
    e->closed++;
}

static void env_open_with(env_t *e, const char *url, const char *password, double timeout)
{
    memset(e, 0, sizeof *e);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    ch_client_opts_t o = {
        .url = url,
        .user = getenv("CLICKHOUSE_USER") ? getenv("CLICKHOUSE_USER") : "default",
        .password = password,
        .connect_timeout = 5,
        .query_timeout = timeout,
    };
    char err[256] = "";
    e->c = ch_client_new(&e->loop, &o, err, sizeof err);
    if (!e->c)
        fail_msg("ch_client_new: %s", err);
}

static void env_open(env_t *e)
{
    env_open_with(e, ch_url(), getenv("CLICKHOUSE_PASSWORD"), 60);
}

/* Runs the loop until *count reaches want, failing at the deadline. */
static void run_until(env_t *e, const int *count, int want)
{
    uint64_t start = uv_now(&e->loop);
    while (*count < want) {
        if (uv_now(&e->loop) - start > DEADLINE_MS)
            fail_msg("deadline passed waiting for %d events (have %d)", want, *count);
        if (uv_run(&e->loop, UV_RUN_ONCE) == 0 && *count < want)
            fail_msg("loop went idle with %d of %d events", *count, want);
    }
}

static void env_close(env_t *e)
{
    ch_client_close(e->c, on_closed, e);
    run_until(e, &e->closed, 1);
    assert_int_equal(e->closed, 1);
    assert_int_equal(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&e->loop), 0);
}

static void on_done(ch_request_t *req, void *ud, long status, const char *body, size_t len,
                    const char *err)
{
    result_t *r = ud;
    (void)req;
    assert_non_null(body);
    assert_int_equal(body[len], '\0');
    r->calls++;
    r->status = status;
    free(r->body);
    r->body = malloc(len + 1);
    memcpy(r->body, body, len + 1);
    r->len = len;
    free(r->err);
    r->err = err ? strdup(err) : NULL;
    if (r->env)
        r->order = ++r->env->done_total;
}

static void result_free(result_t *r)
{
    free(r->body);
    free(r->err);
    memset(r, 0, sizeof *r);
}

/* Runs one statement to completion and returns its result (caller frees). */
static void query(env_t *e, const char *sql, const char *settings, result_t *r)
{
    memset(r, 0, sizeof *r);
    assert_non_null(ch_query(e->c, sql, settings, on_done, r));
    run_until(e, &r->calls, 1);
    assert_int_equal(r->calls, 1);
}

static void query_ok(env_t *e, const char *sql)
{
    result_t r;
    query(e, sql, NULL, &r);
    if (r.err)
        fail_msg("%s: %s", sql, r.err);
    assert_int_equal(r.status, 200);
    result_free(&r);
}

/* ------------------------------------------------------------------ row generator */

/* Produces "id\tname_id\n" rows on the fly in small pieces, pausing every pause_every
 * calls and resuming from a timer, as a PostgreSQL COPY feeding the queue would. */
typedef struct gen {
    env_t *env;
    ch_request_t *req;
    uint64_t first;   /* first id */
    uint64_t next;    /* next id to write */
    uint64_t end;     /* one past the last id; UINT64_MAX streams forever */
    uint64_t bad_at;  /* write an unparsable row at this id (0 = never) */
    size_t piece;     /* most bytes produced per call */
    int pause_every;  /* 0 = never pause */
    int abort_after;  /* return CH_READ_ABORT at this call (0 = never) */
    int cancel_after; /* cancel from a timer (1) or inside the callback (2) at this call */
    int cancel_how;
    bool pause_forever;  /* pause at the first call and never resume */
    bool hold;           /* pause until another generator releases us */
    struct gen *release; /* at call 3: release it and start a query, inside curl */
    result_t side;       /* the query started from inside the read callback */
    char row[64];
    size_t row_len;
    size_t row_off;
    uint64_t calls;
    uint64_t pauses;
    size_t max_asked;
    size_t min_asked;
    bool resumed;      /* the previous call paused and was resumed */
    result_t res;      /* the insert's outcome */
    uv_timer_t timer;  /* resumes the request */
    uv_timer_t cancel; /* cancels the request */
    bool timer_init;
} gen_t;

/* The request is freed once this returns: its timers must not reach it after. */
static void on_gen_done(ch_request_t *req, void *ud, long status, const char *body, size_t len,
                        const char *err)
{
    gen_t *g = ud;
    uv_timer_stop(&g->timer);
    uv_timer_stop(&g->cancel);
    g->req = NULL;
    on_done(req, &g->res, status, body, len, err);
}

static void on_gen_resume(uv_timer_t *t)
{
    gen_t *g = t->data;
    if (!g->req)
        return;
    g->resumed = true;
    ch_request_resume(g->req);
}

static void on_gen_cancel(uv_timer_t *t)
{
    gen_t *g = t->data;
    if (g->req)
        ch_request_cancel(g->req);
}

static void gen_init(gen_t *g, env_t *e, uint64_t first, uint64_t count)
{
    memset(g, 0, sizeof *g);
    g->env = e;
    g->first = g->next = first;
    g->end = count == UINT64_MAX ? UINT64_MAX : first + count;
    g->piece = 1000;
    g->min_asked = SIZE_MAX;
    g->res.env = e;
    assert_int_equal(uv_timer_init(&e->loop, &g->timer), 0);
    assert_int_equal(uv_timer_init(&e->loop, &g->cancel), 0);
    g->timer.data = g;
    g->cancel.data = g;
    g->timer_init = true;
}

static size_t gen_read(void *ud, char *buf, size_t max)
{
    gen_t *g = ud;
    g->calls++;
    if (max > g->max_asked)
        g->max_asked = max;
    if (max < g->min_asked)
        g->min_asked = max;
    if (g->pause_forever || g->hold)
        return CH_READ_PAUSE;
    if (g->release && g->calls == 3) {
        /* Both calls come from inside curl: the client must defer them to the loop. */
        g->release->hold = false;
        if (g->release->req)
            ch_request_resume(g->release->req);
        assert_non_null(ch_query(g->env->c, "SELECT 42", NULL, on_done, &g->side));
    }
    if (g->abort_after && g->calls == (uint64_t)g->abort_after)
        return CH_READ_ABORT;
    if (g->cancel_after && g->calls == (uint64_t)g->cancel_after) {
        if (g->cancel_how == 2) {
            ch_request_cancel(g->req);
            return 0;
        }
        assert_int_equal(uv_timer_start(&g->cancel, on_gen_cancel, 1, 0), 0);
    }
    if (g->pause_every && g->calls % (uint64_t)g->pause_every == 0 && !g->resumed) {
        g->pauses++;
        assert_int_equal(uv_timer_start(&g->timer, on_gen_resume, 1, 0), 0);
        return CH_READ_PAUSE;
    }
    g->resumed = false;
    size_t lim = max < g->piece ? max : g->piece, n = 0;
    while (n < lim) {
        if (g->row_off == g->row_len) {
            if (g->next == g->end)
                break;
            if (g->bad_at && g->next == g->bad_at)
                g->row_len = (size_t)snprintf(g->row, sizeof g->row, "oops\tnot a number\n");
            else
                g->row_len =
                    (size_t)snprintf(g->row, sizeof g->row, "%llu\tname_%llu\n",
                                     (unsigned long long)g->next, (unsigned long long)g->next);
            g->row_off = 0;
            g->next++;
        }
        size_t k = g->row_len - g->row_off;
        if (k > lim - n)
            k = lim - n;
        memcpy(buf + n, g->row + g->row_off, k);
        g->row_off += k;
        n += k;
    }
    return n;
}

static void on_timer_closed(uv_handle_t *h)
{
    (void)h;
}

static void gen_close(gen_t *g)
{
    if (g->timer_init) {
        uv_close((uv_handle_t *)&g->timer, on_timer_closed);
        uv_close((uv_handle_t *)&g->cancel, on_timer_closed);
    }
    g->timer_init = false;
}

static void make_table(env_t *e, const char *name)
{
    char sql[256];
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS default.%s", name);
    query_ok(e, sql);
    snprintf(sql, sizeof sql,
             "CREATE TABLE default.%s (id UInt64, name String) ENGINE = MergeTree ORDER BY id",
             name);
    query_ok(e, sql);
}

static void expect_rows(env_t *e, const char *table, const char *want)
{
    char sql[256];
    result_t r;
    snprintf(sql, sizeof sql, "SELECT count(), sum(id) FROM default.%s", table);
    query(e, sql, NULL, &r);
    assert_null(r.err);
    assert_string_equal(r.body, want);
    result_free(&r);
}

/* ------------------------------------------------------------------ tests */

static void test_quoting(void **state)
{
    (void)state;
    char *s = ch_quote_string("it's a \\ test");
    assert_string_equal(s, "'it\\'s a \\\\ test'");
    free(s);
    s = ch_quote_string("");
    assert_string_equal(s, "''");
    free(s);
    s = ch_quote_ident("we`ird\\name");
    assert_string_equal(s, "`we\\`ird\\\\name`");
    free(s);
    s = ch_quote_ident("orders");
    assert_string_equal(s, "`orders`");
    free(s);
    s = ch_url_escape("INSERT INTO raw.t FORMAT TabSeparated");
    assert_string_equal(s, "INSERT%20INTO%20raw.t%20FORMAT%20TabSeparated");
    free(s);
    s = ch_url_escape("a&b=c+d%/?#\xc3\xa9~_-.");
    assert_string_equal(s, "a%26b%3Dc%2Bd%25%2F%3F%23%C3%A9~_-.");
    free(s);
}

static void test_bad_options(void **state)
{
    (void)state;
    uv_loop_t loop;
    char err[128];
    assert_int_equal(uv_loop_init(&loop), 0);
    ch_client_opts_t o = {.url = "127.0.0.1:8123"};
    assert_null(ch_client_new(&loop, &o, err, sizeof err));
    assert_non_null(strstr(err, "http://"));
    o.url = "http://h:1/?user=x";
    assert_null(ch_client_new(&loop, &o, err, sizeof err));
    o.url = "http://h:1";
    o.password = "a\r\nX-Evil: 1";
    assert_null(ch_client_new(&loop, &o, err, sizeof err));
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_select_one(void **state)
{
    (void)state;
    need_server();
    env_t e;
    /* A trailing slash on the URL is allowed. */
    char url[256];
    snprintf(url, sizeof url, "%s/", ch_url());
    env_open_with(&e, url, getenv("CLICKHOUSE_PASSWORD"), 60);
    result_t r;
    query(&e, "SELECT 1", NULL, &r);
    assert_null(r.err);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "1\n");
    result_free(&r);
    query(&e, "SELECT 'a\\tb', 2", "wait_end_of_query=1", &r);
    assert_null(r.err);
    assert_string_equal(r.body, "a\\tb\t2\n");
    result_free(&r);
    env_close(&e);
}

static void test_syntax_error(void **state)
{
    (void)state;
    need_server();
    env_t e;
    env_open(&e);
    result_t r;
    query(&e, "SELEC 1", NULL, &r);
    assert_non_null(r.err);
    assert_non_null(strstr(r.err, "Syntax error"));
    assert_true(r.status >= 400 && r.status < 500);
    /* The error text is the trimmed body. */
    assert_int_not_equal(r.err[strlen(r.err) - 1], '\n');
    result_free(&r);
    query(&e, "SELECT 1", "no_such_setting=1", &r);
    assert_non_null(r.err);
    assert_non_null(strstr(r.err, "Unknown setting"));
    assert_int_equal(r.status, 404);
    result_free(&r);
    query(&e, "SELECT * FROM default.no_such_table_xyz", NULL, &r);
    assert_non_null(r.err);
    assert_non_null(strstr(r.err, "Code: 60"));
    result_free(&r);
    env_close(&e);
}

static void test_wrong_password(void **state)
{
    (void)state;
    need_server();
    env_t e;
    env_open_with(&e, ch_url(), "not-the-password", 60);
    result_t r;
    query(&e, "SELECT 1", NULL, &r);
    assert_non_null(r.err);
    assert_non_null(strstr(r.err, "password"));
    assert_int_not_equal(r.status, 200);
    print_message("wrong password: HTTP %ld: %s\n", r.status, r.err);
    result_free(&r);
    env_close(&e);
}

static void test_connection_refused(void **state)
{
    (void)state;
    /* A port that was free a moment ago: nothing listens there. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    env_t e;
    env_open_with(&e, url, "x", 10);
    result_t r;
    query(&e, "SELECT 1", NULL, &r);
    assert_non_null(r.err);
    assert_int_equal(r.status, 0);
    print_message("refused: %s\n", r.err);
    result_free(&r);
    env_close(&e);
}

/* A server on the test's loop that reads an insert body and resets the connection (RST)
 * once it has 256 KiB of it. */
typedef struct reset_srv {
    uv_tcp_t listener;
    uv_tcp_t conn;
    bool accepted;
    size_t got;
    char buf[65536];
} reset_srv_t;

static void on_rs_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    reset_srv_t *rs = h->data;
    (void)suggested;
    b->base = rs->buf;
    b->len = sizeof rs->buf;
}

static void on_rs_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    reset_srv_t *rs = st->data;
    (void)b;
    if (uv_is_closing((uv_handle_t *)st))
        return;
    if (n < 0) {
        uv_close((uv_handle_t *)st, on_timer_closed);
        return;
    }
    rs->got += (size_t)n;
    if (rs->got > 256 * 1024)
        assert_int_equal(uv_tcp_close_reset(&rs->conn, on_timer_closed), 0);
}

static void on_rs_connection(uv_stream_t *l, int status)
{
    reset_srv_t *rs = l->data;
    assert_int_equal(status, 0);
    assert_false(rs->accepted);
    assert_int_equal(uv_tcp_init(l->loop, &rs->conn), 0);
    rs->conn.data = rs;
    rs->accepted = true;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&rs->conn), 0);
    assert_int_equal(uv_read_start((uv_stream_t *)&rs->conn, on_rs_alloc, on_rs_read), 0);
}

/* A connection reset in the middle of an insert body fails the insert with a message
 * that says so (not curl's bare "select/poll returned error"). */
static void test_reset_mid_body(void **state)
{
    (void)state;
    reset_srv_t *rs = calloc(1, sizeof *rs);
    assert_non_null(rs);
    env_t e;
    memset(&e, 0, sizeof e);
    assert_int_equal(uv_loop_init(&e.loop), 0);
    struct sockaddr_in a;
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &a), 0);
    assert_int_equal(uv_tcp_init(&e.loop, &rs->listener), 0);
    rs->listener.data = rs;
    assert_int_equal(uv_tcp_bind(&rs->listener, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&rs->listener, 4, on_rs_connection), 0);
    int alen = sizeof a;
    assert_int_equal(uv_tcp_getsockname(&rs->listener, (struct sockaddr *)&a, &alen), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    ch_client_opts_t o = {
        .url = url, .user = "default", .password = "x", .connect_timeout = 5, .query_timeout = 30};
    char err[256] = "";
    e.c = ch_client_new(&e.loop, &o, err, sizeof err);
    if (!e.c)
        fail_msg("ch_client_new: %s", err);

    gen_t g;
    gen_init(&g, &e, 1, UINT64_MAX);
    g.piece = 65536;
    g.req = ch_insert(e.c, "INSERT INTO t FORMAT TabSeparated", gen_read, on_gen_done, &g);
    assert_non_null(g.req);
    run_until(&e, &g.res.calls, 1);
    assert_non_null(g.res.err);
    print_message("reset mid-body: %s (server read %zu bytes)\n", g.res.err, rs->got);
    assert_true(rs->got > 256 * 1024);
    assert_non_null(strstr(g.res.err, "reset"));
    result_free(&g.res);
    gen_close(&g);
    uv_close((uv_handle_t *)&rs->listener, on_timer_closed);
    env_close(&e);
    free(rs);
}

static void test_query_timeout(void **state)
{
    (void)state;
    need_server();
    env_t e;
    env_open_with(&e, ch_url(), getenv("CLICKHOUSE_PASSWORD"), 0.3);
    result_t r;
    query(&e, "SELECT sleep(2)", NULL, &r);
    assert_non_null(r.err);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err, "timed out"));
    result_free(&r);
    env_close(&e);
}

static void test_streaming_insert(void **state)
{
    (void)state;
    need_server();
    env_t e;
    env_open(&e);
    make_table(&e, "chc_stream");
    gen_t g;
    gen_init(&g, &e, 1, 1000000);
    g.piece = 4000;
    g.pause_every = 29;
    g.req = ch_insert(e.c, "INSERT INTO default.chc_stream FORMAT TabSeparated", gen_read,
                      on_gen_done, &g);
    assert_non_null(g.req);
    run_until(&e, &g.res.calls, 1);
    if (g.res.err)
        fail_msg("insert: %s", g.res.err);
    assert_int_equal(g.res.status, 200);
    assert_int_equal(g.next, 1000001);
    print_message("1M rows: %llu read calls, %llu pauses, curl asked %zu..%zu bytes\n",
                  (unsigned long long)g.calls, (unsigned long long)g.pauses, g.min_asked,
                  g.max_asked);
    assert_true(g.pauses > 100);
    result_free(&g.res);
    gen_close(&g);
    /* sum(1..1e6) = 500000500000 */
    expect_rows(&e, "chc_stream", "1000000\t500000500000\n");
    query_ok(&e, "DROP TABLE default.chc_stream");
    env_close(&e);
}

static void test_two_concurrent_inserts(void **state)
{
    (void)state;
    need_server();
    env_t e;
    env_open(&e);
    make_table(&e, "chc_two");
    gen_t a, b;
    gen_init(&a, &e, 1, 300000);
    gen_init(&b, &e, 300001, 300000);
    a.pause_every = 50;
    b.pause_every = 73;
    b.piece = 777;
    a.req = ch_insert(e.c, "INSERT INTO default.chc_two FORMAT TabSeparated", gen_read, on_gen_done,
                      &a);
    b.req = ch_insert(e.c, "INSERT INTO default.chc_two FORMAT TabSeparated", gen_read, on_gen_done,
                      &b);
    assert_non_null(a.req);
    assert_non_null(b.req);
    run_until(&e, &e.done_total, 2);
    assert_null(a.res.err);
    assert_null(b.res.err);
    assert_int_equal(a.res.calls, 1);
    assert_int_equal(b.res.calls, 1);
    result_free(&a.res);
    result_free(&b.res);
    gen_close(&a);
    gen_close(&b);
    /* sum(1..600000) = 180000300000 */
    expect_rows(&e, "chc_two", "600000\t180000300000\n");
    query_ok(&e, "DROP TABLE default.chc_two");
    env_close(&e);
}

static void test_insert_invalid_row(void **state)
{
    (void)state;
    need_server();
    env_t e;
    env_open(&e);
    make_table(&e, "chc_bad");
    gen_t g;
    gen_init(&g, &e, 1, 200000);
    g.bad_at = 150000;
    g.req = ch_insert(e.c, "INSERT INTO default.chc_bad FORMAT TabSeparated", gen_read, on_gen_done,
                      &g);
    run_until(&e, &g.res.calls, 1);
    assert_non_null(g.res.err);
    print_message("invalid row: HTTP %ld, %.160s...\n", g.res.status, g.res.err);
    assert_non_null(strstr(g.res.err, "DB::Exception"));
    result_free(&g.res);
    gen_close(&g);
    query_ok(&e, "DROP TABLE default.chc_bad");
    env_close(&e);
}

static void test_insert_read_abort(void **state)
{
    (void)state;
    need_server();
    env_t e;
    env_open(&e);
    make_table(&e, "chc_abort");
    gen_t g;
    gen_init(&g, &e, 1, UINT64_MAX);
    g.abort_after = 20;
    g.req = ch_insert(e.c, "INSERT INTO default.chc_abort FORMAT TabSeparated", gen_read,
                      on_gen_done, &g);
    run_until(&e, &g.res.calls, 1);
    assert_non_null(g.res.err);
    assert_non_null(strstr(g.res.err, "aborted"));
    result_free(&g.res);
    gen_close(&g);
    query_ok(&e, "DROP TABLE default.chc_abort");
    env_close(&e);
}

static void cancel_insert(int how)
{
    need_server();
    env_t e;
    env_open(&e);
    make_table(&e, "chc_cancel");
    gen_t g;
    gen_init(&g, &e, 1, UINT64_MAX);
    g.pause_every = 10;
    g.cancel_after = 200;
    g.cancel_how = how;
    g.req = ch_insert(e.c, "INSERT INTO default.chc_cancel FORMAT TabSeparated", gen_read,
                      on_gen_done, &g);
    run_until(&e, &g.res.calls, 1);
    assert_int_equal(g.res.calls, 1);
    assert_non_null(g.res.err);
    assert_string_equal(g.res.err, "cancelled");
    assert_int_equal(g.res.status, 0);
    result_free(&g.res);
    gen_close(&g);
    /* The client is still usable after a cancel. */
    query_ok(&e, "DROP TABLE default.chc_cancel");
    env_close(&e);
}

static void test_cancel_from_timer(void **state)
{
    (void)state;
    cancel_insert(1);
}

static void test_cancel_inside_read(void **state)
{
    (void)state;
    cancel_insert(2);
}

static void test_cancel_query_not_synchronous(void **state)
{
    (void)state;
    need_server();
    env_t e;
    env_open(&e);
    result_t r = {0};
    ch_request_t *q = ch_query(e.c, "SELECT sleep(1)", NULL, on_done, &r);
    assert_non_null(q);
    ch_request_cancel(q);
    ch_request_cancel(q); /* twice is harmless */
    assert_int_equal(r.calls, 0);
    run_until(&e, &r.calls, 1);
    assert_string_equal(r.err, "cancelled");
    result_free(&r);
    env_close(&e);
}

static void test_calls_from_inside_read(void **state)
{
    (void)state;
    need_server();
    env_t e;
    env_open(&e);
    make_table(&e, "chc_inside");
    gen_t a, b;
    gen_init(&a, &e, 1, 100000);
    gen_init(&b, &e, 100001, 100000);
    b.hold = true;
    a.release = &b;
    a.side.env = &e;
    b.req = ch_insert(e.c, "INSERT INTO default.chc_inside FORMAT TabSeparated", gen_read,
                      on_gen_done, &b);
    a.req = ch_insert(e.c, "INSERT INTO default.chc_inside FORMAT TabSeparated", gen_read,
                      on_gen_done, &a);
    assert_non_null(a.req);
    assert_non_null(b.req);
    run_until(&e, &e.done_total, 3);
    assert_null(a.res.err);
    assert_null(b.res.err);
    assert_null(a.side.err);
    assert_string_equal(a.side.body, "42\n");
    assert_true(b.calls > 1);
    result_free(&a.res);
    result_free(&b.res);
    result_free(&a.side);
    gen_close(&a);
    gen_close(&b);
    /* sum(1..200000) = 20000100000 */
    expect_rows(&e, "chc_inside", "200000\t20000100000\n");
    query_ok(&e, "DROP TABLE default.chc_inside");
    env_close(&e);
}

typedef struct closer {
    env_t *env;
    uv_timer_t timer;
} closer_t;

static void on_close_now(uv_timer_t *t)
{
    closer_t *k = t->data;
    ch_client_close(k->env->c, on_closed, k->env);
    /* Closing twice is harmless. */
    ch_client_close(k->env->c, on_closed, k->env);
    uv_close((uv_handle_t *)t, on_timer_closed);
}

static void test_close_in_flight(void **state)
{
    (void)state;
    need_server();
    env_t e;
    env_open(&e);
    make_table(&e, "chc_close");
    gen_t g1, g2;
    gen_init(&g1, &e, 1, UINT64_MAX);
    gen_init(&g2, &e, 1, UINT64_MAX);
    g1.pause_every = 5;
    g2.pause_forever = true;
    result_t r3 = {.env = &e};
    g1.req = ch_insert(e.c, "INSERT INTO default.chc_close FORMAT TabSeparated", gen_read,
                       on_gen_done, &g1);
    g2.req = ch_insert(e.c, "INSERT INTO default.chc_close FORMAT TabSeparated", gen_read,
                       on_gen_done, &g2);
    assert_non_null(ch_query(e.c, "SELECT sleep(2)", NULL, on_done, &r3));
    closer_t k = {.env = &e};
    assert_int_equal(uv_timer_init(&e.loop, &k.timer), 0);
    k.timer.data = &k;
    assert_int_equal(uv_timer_start(&k.timer, on_close_now, 300, 0), 0);
    run_until(&e, &e.closed, 1);
    assert_int_equal(e.done_total, 3);
    assert_int_equal(g1.res.calls, 1);
    assert_int_equal(g2.res.calls, 1);
    assert_int_equal(r3.calls, 1);
    assert_string_equal(g1.res.err, "cancelled");
    assert_string_equal(g2.res.err, "cancelled");
    assert_string_equal(r3.err, "cancelled");
    assert_true(g1.calls > 10);
    result_free(&g1.res);
    result_free(&g2.res);
    result_free(&r3);
    gen_close(&g1);
    gen_close(&g2);
    assert_int_equal(uv_run(&e.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&e.loop), 0);

    /* Clean up the table with a fresh client. */
    env_open(&e);
    query_ok(&e, "DROP TABLE default.chc_close");
    env_close(&e);
}

static void test_exception_after_200(void **state)
{
    (void)state;
    need_server();
    env_t e;
    env_open(&e);
    result_t r;
    /* 1,000,000 rows of "0\n" overflow the server's 1 MiB HTTP buffer, so the header
     * and first rows are out before throwIf fires: 200, exception at the end. */
    const char *sql = "SELECT throwIf(number = 1000000) FROM system.numbers LIMIT 2000000";
    query(&e, sql, NULL, &r);
    print_message("mid-stream failure: HTTP %ld, %zu body bytes, err=%s\n", r.status, r.len,
                  r.err ? r.err : "(none)");
    assert_int_equal(r.status, 200);
    assert_non_null(r.err);
    assert_true(strncmp(r.err, "Code: 395", 9) == 0);
    result_free(&r);
    /* wait_end_of_query=1 buffers the answer server-side: a proper HTTP 500. */
    query(&e, sql, "wait_end_of_query=1", &r);
    assert_int_equal(r.status, 500);
    assert_non_null(r.err);
    assert_true(strncmp(r.err, "Code: 395", 9) == 0);
    result_free(&r);
    /* Data that merely mentions "Code: " is not an exception. */
    query(&e, "SELECT 'Code: 1 is fine'", NULL, &r);
    assert_null(r.err);
    result_free(&r);
    env_close(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quoting),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_select_one),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_wrong_password),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_query_timeout),
        cmocka_unit_test(test_reset_mid_body),
        cmocka_unit_test(test_streaming_insert),
        cmocka_unit_test(test_two_concurrent_inserts),
        cmocka_unit_test(test_insert_invalid_row),
        cmocka_unit_test(test_insert_read_abort),
        cmocka_unit_test(test_cancel_from_timer),
        cmocka_unit_test(test_cancel_inside_read),
        cmocka_unit_test(test_cancel_query_not_synchronous),
        cmocka_unit_test(test_calls_from_inside_read),
        cmocka_unit_test(test_close_in_flight),
        cmocka_unit_test(test_exception_after_200),
    };
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return 1;
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
