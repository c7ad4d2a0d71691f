/* test_pg_conn.c — the nonblocking libpq connection against a real PostgreSQL: connect
 * (success, bad password, refused, timeout, socket switch), statements, COPY OUT with
 * byte and "COPY n" checks, pause/resume, a backend terminated mid-COPY, and closing from
 * inside callbacks. Every test closes its loop completely (uv_loop_close == 0).
 * Server cases read PGHOST/PGPORT/POSTGRES_DB/POSTGRES_USER/POSTGRES_PASSWORD and are
 * skipped when PGPORT is unset (test/servers.sh writes an env.sh that sets them). */
#include "pg_conn.h"

#include <arpa/inet.h>
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

/* ------------------------------------------------------------------ harness */

typedef struct {
    uv_loop_t loop;
    uv_timer_t tick; /* wakes the loop so deadlines are checked even when nothing happens */
} ctx_t;

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static void ctx_init(ctx_t *c)
{
    assert_int_equal(uv_loop_init(&c->loop), 0);
    assert_int_equal(uv_timer_init(&c->loop, &c->tick), 0);
    assert_int_equal(uv_timer_start(&c->tick, on_tick, 20, 20), 0);
}

/* Runs the loop until *flag or the deadline; returns *flag. */
static bool run_until(ctx_t *c, const bool *flag, double secs)
{
    uv_update_time(&c->loop);
    uint64_t deadline = uv_now(&c->loop) + (uint64_t)(secs * 1000);
    while (!*flag && uv_now(&c->loop) < deadline)
        uv_run(&c->loop, UV_RUN_ONCE);
    return *flag;
}

static void ctx_done(ctx_t *c)
{
    uv_close((uv_handle_t *)&c->tick, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&c->loop), 0);
}

static bool have_server(void)
{
    const char *port = getenv("PGPORT");
    if (port == NULL || *port == '\0') {
        print_message("PGPORT is unset: no PostgreSQL to test against (source the env.sh "
                      "that test/servers.sh start writes)\n");
        return false;
    }
    return true;
}

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return (v && *v) ? v : fallback;
}

typedef struct {
    const char *keys[8];
    const char *values[8];
} params_t;

/* The server's parameters; password/port may be overridden (NULL keeps the env's). */
static void params_fill(params_t *p, const char *password, const char *port)
{
    size_t i = 0;
    p->keys[i] = "host";
    p->values[i++] = env_or("PGHOST", "127.0.0.1");
    p->keys[i] = "port";
    p->values[i++] = port ? port : env_or("PGPORT", "5432");
    p->keys[i] = "dbname";
    p->values[i++] = env_or("POSTGRES_DB", "ecommerce_db");
    p->keys[i] = "user";
    p->values[i++] = env_or("POSTGRES_USER", "ecommerce");
    p->keys[i] = "password";
    p->values[i++] = password ? password : env_or("POSTGRES_PASSWORD", "ecommerce123");
    p->keys[i] = "application_name";
    p->values[i++] = "eltd_test_pg_conn";
    p->keys[i] = NULL;
    p->values[i] = NULL;
}

/* What the callbacks saw. */
typedef struct {
    bool connected;
    char *connect_err;
    bool query_done;
    char *query_err;
    int ntuples;
    char *value00; /* first field of the first row */
    bool closed;
    int closed_calls;
} probe_t;

static void probe_free(probe_t *p)
{
    free(p->connect_err);
    free(p->query_err);
    free(p->value00);
    memset(p, 0, sizeof *p);
}

static void on_connected(pg_conn_t *pg, void *ud, const char *err)
{
    (void)pg;
    probe_t *p = ud;
    assert_false(p->connected);
    p->connected = true;
    p->connect_err = err ? strdup(err) : NULL;
}

static void on_closed(void *ud)
{
    probe_t *p = ud;
    p->closed = true;
    p->closed_calls++;
}

static void on_query(pg_conn_t *pg, void *ud, const PGresult *res, const char *err)
{
    (void)pg;
    probe_t *p = ud;
    assert_false(p->query_done);
    p->query_done = true;
    if (err) {
        assert_null(res);
        p->query_err = strdup(err);
        return;
    }
    assert_non_null(res);
    p->ntuples = PQntuples(res);
    if (p->ntuples > 0 && PQnfields(res) > 0)
        p->value00 = strdup(PQgetvalue(res, 0, 0));
}

static void close_and_wait(ctx_t *c, pg_conn_t *pg, probe_t *p)
{
    pg_conn_close(pg, on_closed, p);
    assert_true(run_until(c, &p->closed, 10));
    assert_int_equal(p->closed_calls, 1);
}

/* A connected pg_conn_t (asserted). */
static pg_conn_t *connect_ok(ctx_t *c, probe_t *p)
{
    params_t prm;
    params_fill(&prm, NULL, NULL);
    pg_conn_t *pg = pg_conn_new(&c->loop);
    assert_non_null(pg);
    assert_int_equal(pg_conn_connect(pg, prm.keys, prm.values, 10, on_connected, p), 0);
    assert_true(run_until(c, &p->connected, 15));
    if (p->connect_err)
        fail_msg("connect failed: %s", p->connect_err);
    return pg;
}

/* Runs sql to completion (asserted); the outcome is in p. */
static void query(ctx_t *c, pg_conn_t *pg, probe_t *p, const char *sql)
{
    free(p->query_err);
    free(p->value00);
    p->query_err = NULL;
    p->value00 = NULL;
    p->query_done = false;
    p->ntuples = 0;
    assert_int_equal(pg_conn_query(pg, sql, on_query, p), 0);
    assert_true(run_until(c, &p->query_done, 60));
}

static void query_ok(ctx_t *c, pg_conn_t *pg, probe_t *p, const char *sql)
{
    query(c, pg, p, sql);
    if (p->query_err)
        fail_msg("%s: %s", sql, p->query_err);
}

/* A loopback port nothing listens on. */
static int closed_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    return ntohs(a.sin_port);
}

/* ------------------------------------------------------------------ connect */

static void test_connect_ok(void **state)
{
    (void)state;
    if (!have_server())
        skip();
    ctx_t c;
    ctx_init(&c);
    probe_t p = {0};
    pg_conn_t *pg = connect_ok(&c, &p);
    assert_true(pg_conn_backend_pid(pg) > 0);
    assert_non_null(pg_conn_raw(pg));
    assert_int_equal(PQstatus(pg_conn_raw(pg)), CONNECTION_OK);
    assert_int_equal(PQisnonblocking(pg_conn_raw(pg)), 1);
    /* A second connect on the same object is refused without a callback. */
    params_t prm;
    params_fill(&prm, NULL, NULL);
    assert_int_equal(pg_conn_connect(pg, prm.keys, prm.values, 1, on_connected, &p), -1);
    assert_non_null(strstr(pg_conn_error(pg), "already"));
    close_and_wait(&c, pg, &p);
    probe_free(&p);
    ctx_done(&c);
}

static void check_connect_fails(const char *password, const char *port, const char *sslmode,
                                const char *want)
{
    ctx_t c;
    ctx_init(&c);
    probe_t p = {0};
    params_t prm;
    params_fill(&prm, password, port);
    if (sslmode) {
        prm.keys[6] = "sslmode";
        prm.values[6] = sslmode;
        prm.keys[7] = NULL;
        prm.values[7] = NULL;
    }
    pg_conn_t *pg = pg_conn_new(&c.loop);
    assert_non_null(pg);
    assert_int_equal(pg_conn_connect(pg, prm.keys, prm.values, 10, on_connected, &p), 0);
    /* Never synchronous, even when libpq fails at once. */
    assert_false(p.connected);
    assert_true(run_until(&c, &p.connected, 15));
    assert_non_null(p.connect_err);
    if (strstr(p.connect_err, want) == NULL)
        fail_msg("error %s lacks %s", p.connect_err, want);
    size_t n = strlen(p.connect_err);
    assert_true(n > 0 && p.connect_err[n - 1] != '\n');
    assert_string_equal(pg_conn_error(pg), p.connect_err);
    assert_int_equal(pg_conn_query(pg, "SELECT 1", on_query, &p), -1);
    close_and_wait(&c, pg, &p);
    probe_free(&p);
    ctx_done(&c);
}

static void test_connect_bad_password(void **state)
{
    (void)state;
    if (!have_server())
        skip();
    check_connect_fails("not-the-password", NULL, "disable", "password authentication failed");
}

/* sslmode=allow retries with SSL on a NEW socket after the server's error: the poll
 * handle must follow the socket switch inside one connect. */
static void test_connect_socket_switch(void **state)
{
    (void)state;
    if (!have_server())
        skip();
    check_connect_fails("not-the-password", NULL, "allow", "password authentication failed");
}

static void test_connect_refused(void **state)
{
    (void)state;
    char port[16];
    snprintf(port, sizeof port, "%d", closed_port());
    check_connect_fails("x", port, NULL, "refused");
}

/* A listener that never accepts: the TCP handshake completes in the kernel, the startup
 * packet is sent, no answer ever comes; only our timer ends the connect. */
static void test_connect_timeout(void **state)
{
    (void)state;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s, 8), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", ntohs(a.sin_port));

    ctx_t c;
    ctx_init(&c);
    probe_t p = {0};
    params_t prm;
    params_fill(&prm, "x", port);
    prm.keys[6] = "sslmode";
    prm.values[6] = "disable";
    prm.keys[7] = NULL;
    pg_conn_t *pg = pg_conn_new(&c.loop);
    assert_non_null(pg);
    uv_update_time(&c.loop);
    uint64_t t0 = uv_now(&c.loop);
    assert_int_equal(pg_conn_connect(pg, prm.keys, prm.values, 0.3, on_connected, &p), 0);
    assert_true(run_until(&c, &p.connected, 10));
    uint64_t took = uv_now(&c.loop) - t0;
    assert_non_null(p.connect_err);
    assert_non_null(strstr(p.connect_err, "timeout"));
    assert_true(took >= 290 && took < 5000);
    close_and_wait(&c, pg, &p);
    probe_free(&p);
    ctx_done(&c);
    close(s);
}

static void test_close_while_connecting(void **state)
{
    (void)state;
    if (!have_server())
        skip();
    ctx_t c;
    ctx_init(&c);
    probe_t p = {0};
    params_t prm;
    params_fill(&prm, NULL, NULL);
    pg_conn_t *pg = pg_conn_new(&c.loop);
    assert_non_null(pg);
    assert_int_equal(pg_conn_connect(pg, prm.keys, prm.values, 10, on_connected, &p), 0);
    uv_run(&c.loop, UV_RUN_NOWAIT);
    close_and_wait(&c, pg, &p);
    assert_false(p.connected);
    probe_free(&p);
    ctx_done(&c);
}

static void test_close_never_connected(void **state)
{
    (void)state;
    ctx_t c;
    ctx_init(&c);
    probe_t p = {0};
    pg_conn_t *pg = pg_conn_new(&c.loop);
    assert_non_null(pg);
    assert_int_equal(pg_conn_query(pg, "SELECT 1", on_query, &p), -1);
    assert_false(pg_conn_paused(pg));
    close_and_wait(&c, pg, &p);
    probe_free(&p);
    ctx_done(&c);
}

/* ------------------------------------------------------------------ queries */

static void test_query_rows(void **state)
{
    (void)state;
    if (!have_server())
        skip();
    ctx_t c;
    ctx_init(&c);
    probe_t p = {0};
    pg_conn_t *pg = connect_ok(&c, &p);
    query_ok(&c, pg, &p, "SELECT 'r' || g FROM generate_series(1, 5) g");
    assert_int_equal(p.ntuples, 5);
    assert_string_equal(p.value00, "r1");
    /* The connection stays usable, one operation at a time. */
    free(p.value00);
    p.value00 = NULL;
    assert_int_equal(pg_conn_query(pg, "SELECT pg_sleep(0.05)", on_query, &p), 0);
    assert_int_equal(pg_conn_query(pg, "SELECT 2", on_query, &p), -1);
    assert_non_null(strstr(pg_conn_error(pg), "in progress"));
    p.query_done = false;
    assert_true(run_until(&c, &p.query_done, 10));
    assert_null(p.query_err);
    query_ok(&c, pg, &p, "");
    close_and_wait(&c, pg, &p);
    probe_free(&p);
    ctx_done(&c);
}

static void test_query_error(void **state)
{
    (void)state;
    if (!have_server())
        skip();
    ctx_t c;
    ctx_init(&c);
    probe_t p = {0};
    pg_conn_t *pg = connect_ok(&c, &p);
    query(&c, pg, &p, "SELEC 1");
    assert_non_null(p.query_err);
    assert_non_null(strstr(p.query_err, "syntax error"));
    assert_int_not_equal(p.query_err[strlen(p.query_err) - 1], '\n');
    assert_string_equal(pg_conn_error(pg), p.query_err);
    query_ok(&c, pg, &p, "SELECT 42");
    assert_string_equal(p.value00, "42");
    close_and_wait(&c, pg, &p);
    probe_free(&p);
    ctx_done(&c);
}

static void test_multi_statement(void **state)
{
    (void)state;
    if (!have_server())
        skip();
    ctx_t c;
    ctx_init(&c);
    probe_t p = {0};
    pg_conn_t *pg = connect_ok(&c, &p);
    query_ok(&c, pg, &p,
             "CREATE TEMP TABLE eltd_pgconn_multi (a int); "
             "INSERT INTO eltd_pgconn_multi VALUES (1), (2), (3); "
             "SELECT count(*) FROM eltd_pgconn_multi");
    assert_int_equal(p.ntuples, 1);
    assert_string_equal(p.value00, "3");
    /* The first error wins; the implicit transaction makes the server skip the rest. */
    query(&c, pg, &p, "SELECT 1; SELECT 1/0; SELECT no_such_column FROM eltd_pgconn_multi");
    assert_non_null(p.query_err);
    assert_non_null(strstr(p.query_err, "division by zero"));
    /* The insert of a failed multi-statement string was rolled back with it. */
    query(&c, pg, &p, "INSERT INTO eltd_pgconn_multi VALUES (4); SELECT 1/0");
    assert_non_null(p.query_err);
    query_ok(&c, pg, &p, "SELECT count(*) FROM eltd_pgconn_multi");
    assert_string_equal(p.value00, "3");
    /* A COPY TO STDOUT through pg_conn_query is refused, and the rows are drained. */
    query(&c, pg, &p, "COPY (SELECT g FROM generate_series(1, 1000) g) TO STDOUT");
    assert_non_null(p.query_err);
    assert_non_null(strstr(p.query_err, "pg_conn_copy_out"));
    query_ok(&c, pg, &p, "SELECT 7");
    assert_string_equal(p.value00, "7");
    close_and_wait(&c, pg, &p);
    probe_free(&p);
    ctx_done(&c);
}

static void on_query_then_close(pg_conn_t *pg, void *ud, const PGresult *res, const char *err)
{
    on_query(pg, ud, res, err);
    pg_conn_close(pg, on_closed, ud);
}

static void test_close_in_query_cb(void **state)
{
    (void)state;
    if (!have_server())
        skip();
    ctx_t c;
    ctx_init(&c);
    probe_t p = {0};
    pg_conn_t *pg = connect_ok(&c, &p);
    assert_int_equal(pg_conn_query(pg, "SELECT 1; SELECT 2", on_query_then_close, &p), 0);
    assert_true(run_until(&c, &p.closed, 10));
    assert_true(p.query_done);
    assert_string_equal(p.value00, "2");
    assert_int_equal(p.closed_calls, 1);
    probe_free(&p);
    ctx_done(&c);
}

/* ------------------------------------------------------------------ COPY OUT */

typedef struct {
    pg_conn_t *pg;
    ctx_t *ctx;
    int64_t bytes;
    int64_t data_calls;
    int64_t next_id; /* the id the next row must carry */
    char partial[64];
    size_t partial_len;
    bool order_broken;
    bool done;
    int done_calls;
    int64_t rows;
    char *err;
    /* pause/resume */
    int64_t pause_every;
    bool paused_by_test;
    bool in_resume;
    bool called_while_paused;
    int pauses;
    uv_timer_t resume_timer;
    /* close from inside */
    int64_t close_after;
    probe_t *probe;
    bool close_requested;
    /* terminate */
    pg_conn_t *killer;
    probe_t *killer_probe;
    bool kill_sent;
    int kill_attempts;
} copy_t;

/* Checks that lines start with consecutive ids, whatever the chunking. */
static void copy_check_line(copy_t *cp, const char *line, size_t len)
{
    char num[32];
    size_t i = 0;
    while (i < len && i < sizeof num - 1 && line[i] >= '0' && line[i] <= '9') {
        num[i] = line[i];
        i++;
    }
    num[i] = '\0';
    if (i == 0 || strtoll(num, NULL, 10) != cp->next_id)
        cp->order_broken = true;
    cp->next_id++;
}

static void copy_scan(copy_t *cp, const char *buf, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (cp->partial_len > 0) {
            size_t take = i - start;
            if (cp->partial_len + take > sizeof cp->partial)
                take = sizeof cp->partial - cp->partial_len;
            memcpy(cp->partial + cp->partial_len, buf + start, take);
            copy_check_line(cp, cp->partial, cp->partial_len + take);
            cp->partial_len = 0;
        } else {
            copy_check_line(cp, buf + start, i - start);
        }
        start = i + 1;
    }
    size_t rest = len - start;
    if (rest > sizeof cp->partial - cp->partial_len)
        rest = sizeof cp->partial - cp->partial_len;
    memcpy(cp->partial + cp->partial_len, buf + start, rest);
    cp->partial_len += rest;
}

static void on_resume_timer(uv_timer_t *t)
{
    copy_t *cp = t->data;
    cp->paused_by_test = false;
    cp->in_resume = true;
    pg_conn_resume(cp->pg);
    cp->in_resume = false;
}

static void send_kill(copy_t *cp);

static void on_kill_retry(uv_timer_t *t)
{
    send_kill(t->data);
}

static void on_kill_done(pg_conn_t *pg, void *ud, const PGresult *res, const char *err)
{
    copy_t *cp = ud;
    if (!err && PQntuples(res) == 0 && cp->kill_attempts < 1000) {
        /* The paused backend is not blocked on its full socket yet: ask again soon. */
        assert_int_equal(uv_timer_start(&cp->resume_timer, on_kill_retry, 5, 0), 0);
        return;
    }
    on_query(pg, cp->killer_probe, res, err);
    if (cp->paused_by_test) {
        cp->paused_by_test = false;
        pg_conn_resume(cp->pg);
    }
}

/* Streaming variant: kill at once. Paused variant: kill only once the backend waits in
 * ClientWrite, so it dies with its FATAL message undeliverable. */
static void send_kill(copy_t *cp)
{
    char sql[200];
    snprintf(
        sql, sizeof sql, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = %d%s",
        pg_conn_backend_pid(cp->pg), cp->paused_by_test ? " AND wait_event = 'ClientWrite'" : "");
    cp->kill_attempts++;
    assert_int_equal(pg_conn_query(cp->killer, sql, on_kill_done, cp), 0);
}

static void on_copy_data(pg_conn_t *pg, void *ud, const char *buf, size_t len)
{
    copy_t *cp = ud;
    assert_ptr_equal(pg, cp->pg);
    if (cp->paused_by_test || cp->in_resume || cp->done || cp->close_requested)
        cp->called_while_paused = true;
    cp->data_calls++;
    cp->bytes += (int64_t)len;
    copy_scan(cp, buf, len);
    if (cp->close_after > 0 && cp->data_calls == cp->close_after) {
        cp->close_requested = true;
        pg_conn_close(pg, on_closed, cp->probe);
        return;
    }
    if (cp->pause_every > 0 && cp->data_calls % cp->pause_every == 0) {
        pg_conn_pause(pg);
        assert_true(pg_conn_paused(pg));
        cp->paused_by_test = true;
        cp->pauses++;
        assert_int_equal(uv_timer_start(&cp->resume_timer, on_resume_timer, 1, 0), 0);
    }
    if (cp->killer && !cp->kill_sent) {
        cp->kill_sent = true;
        if (cp->pause_every < 0) {
            /* Variant: hold the stream while the backend dies blocked on a full socket. */
            pg_conn_pause(pg);
            cp->paused_by_test = true;
        }
        send_kill(cp);
    }
}

static void on_copy_done(pg_conn_t *pg, void *ud, int64_t rows, const char *err)
{
    copy_t *cp = ud;
    assert_ptr_equal(pg, cp->pg);
    if (cp->close_requested)
        cp->called_while_paused = true;
    cp->done = true;
    cp->done_calls++;
    cp->rows = rows;
    cp->err = err ? strdup(err) : NULL;
}

static void copy_init(copy_t *cp, ctx_t *c, pg_conn_t *pg)
{
    memset(cp, 0, sizeof *cp);
    cp->ctx = c;
    cp->pg = pg;
    cp->next_id = 1;
    assert_int_equal(uv_timer_init(&c->loop, &cp->resume_timer), 0);
    cp->resume_timer.data = cp;
}

static void on_timer_closed(uv_handle_t *h)
{
    *(bool *)h->data = true;
}

/* Waits for the resume timer's close, so the copy_t may be reused. */
static void copy_fini(copy_t *cp)
{
    bool closed = false;
    cp->resume_timer.data = &closed;
    uv_close((uv_handle_t *)&cp->resume_timer, on_timer_closed);
    assert_true(run_until(cp->ctx, &closed, 5));
    free(cp->err);
    cp->err = NULL;
}

static void copy_run(copy_t *cp, const char *sql, double secs)
{
    assert_int_equal(pg_conn_copy_out(cp->pg, sql, on_copy_data, on_copy_done, cp), 0);
    assert_int_equal(pg_conn_query(cp->pg, "SELECT 1", on_query, NULL), -1);
    assert_true(run_until(cp->ctx, &cp->done, secs));
    assert_int_equal(cp->done_calls, 1);
}

#define COPY_ROWS 200000
#define COPY_SQL  "COPY (SELECT id, h FROM eltd_pgconn_rows ORDER BY id) TO STDOUT"

/* Fills a temp table and returns the byte size of its COPY text. */
static int64_t copy_setup(ctx_t *c, pg_conn_t *pg, probe_t *p)
{
    query_ok(c, pg, p,
             "CREATE TEMP TABLE eltd_pgconn_rows AS "
             "SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 200000) g");
    query_ok(c, pg, p, "SELECT sum(length(id::text) + 1 + length(h) + 1) FROM eltd_pgconn_rows");
    return strtoll(p->value00, NULL, 10);
}

static void test_copy_out(void **state)
{
    (void)state;
    if (!have_server())
        skip();
    ctx_t c;
    ctx_init(&c);
    probe_t p = {0};
    pg_conn_t *pg = connect_ok(&c, &p);
    int64_t want_bytes = copy_setup(&c, pg, &p);
    assert_true(want_bytes > COPY_ROWS * 34);
    copy_t cp;
    copy_init(&cp, &c, pg);
    copy_run(&cp, COPY_SQL, 60);
    assert_null(cp.err);
    assert_int_equal(cp.rows, COPY_ROWS);
    assert_int_equal(cp.bytes, want_bytes);
    assert_int_equal(cp.next_id, COPY_ROWS + 1);
    assert_int_equal(cp.partial_len, 0);
    assert_false(cp.order_broken);
    assert_true(cp.data_calls > 0 && cp.data_calls <= COPY_ROWS);
    /* The connection is ready for the next statement. */
    query_ok(&c, pg, &p, "SELECT 5");
    assert_string_equal(p.value00, "5");
    copy_fini(&cp);
    close_and_wait(&c, pg, &p);
    probe_free(&p);
    ctx_done(&c);
}

static void test_copy_errors(void **state)
{
    (void)state;
    if (!have_server())
        skip();
    ctx_t c;
    ctx_init(&c);
    probe_t p = {0};
    pg_conn_t *pg = connect_ok(&c, &p);
    copy_t cp;

    copy_init(&cp, &c, pg);
    copy_run(&cp, "COPY (SELECT 1/0) TO STDOUT", 10);
    assert_non_null(cp.err);
    assert_non_null(strstr(cp.err, "division by zero"));
    assert_int_equal(cp.rows, -1);
    copy_fini(&cp);

    copy_init(&cp, &c, pg);
    copy_run(&cp, "SELECT 1", 10);
    assert_non_null(cp.err);
    assert_non_null(strstr(cp.err, "did not start"));
    copy_fini(&cp);

    /* Statements before the COPY are allowed; an error after the rows still fails it. */
    copy_init(&cp, &c, pg);
    copy_run(&cp,
             "SET LOCAL work_mem = '8MB'; COPY (SELECT g FROM generate_series(1, 3) g) "
             "TO STDOUT; SELECT 1/0",
             10);
    assert_non_null(cp.err);
    assert_int_equal(cp.next_id, 4);
    copy_fini(&cp);

    copy_init(&cp, &c, pg);
    copy_run(&cp, "COPY (SELECT g FROM generate_series(1, 0) g) TO STDOUT", 10);
    assert_null(cp.err);
    assert_int_equal(cp.rows, 0);
    assert_int_equal(cp.data_calls, 0);
    copy_fini(&cp);

    query_ok(&c, pg, &p, "SELECT 6");
    close_and_wait(&c, pg, &p);
    probe_free(&p);
    ctx_done(&c);
}

static void test_copy_pause_resume(void **state)
{
    (void)state;
    if (!have_server())
        skip();
    ctx_t c;
    ctx_init(&c);
    probe_t p = {0};
    pg_conn_t *pg = connect_ok(&c, &p);
    int64_t want_bytes = copy_setup(&c, pg, &p);
    copy_t cp;
    copy_init(&cp, &c, pg);
    cp.pause_every = 7919;
    copy_run(&cp, COPY_SQL, 120);
    assert_null(cp.err);
    assert_false(cp.called_while_paused);
    assert_true(cp.pauses >= COPY_ROWS / 7919 - 1);
    assert_int_equal(cp.rows, COPY_ROWS);
    assert_int_equal(cp.bytes, want_bytes);
    assert_int_equal(cp.next_id, COPY_ROWS + 1);
    assert_false(cp.order_broken);
    /* resume outside a COPY is harmless, pause state is the caller's to end. */
    assert_false(pg_conn_paused(pg));
    copy_fini(&cp);
    close_and_wait(&c, pg, &p);
    probe_free(&p);
    ctx_done(&c);
}

/* A backend terminated mid-COPY must end in done(err), never in a clean success, whether
 * it was streaming (FATAL message sent) or blocked on a full socket (no message, EOF). */
static void check_copy_terminated(bool paused)
{
    ctx_t c;
    ctx_init(&c);
    probe_t p = {0}, kp = {0};
    pg_conn_t *pg = connect_ok(&c, &p);
    pg_conn_t *killer = connect_ok(&c, &kp);
    copy_t cp;
    copy_init(&cp, &c, pg);
    cp.killer = killer;
    cp.killer_probe = &kp;
    cp.pause_every = paused ? -1 : 0;
    copy_run(&cp, "COPY (SELECT g, repeat('x', 200) FROM generate_series(1, 20000000) g) TO STDOUT",
             120);
    assert_true(run_until(&c, &kp.query_done, 10));
    assert_null(kp.query_err);
    assert_string_equal(kp.value00, "t");
    assert_non_null(cp.err);
    print_message("terminated mid-COPY (%s, %d kill attempts) after %lld rows: %s\n",
                  paused ? "blocked" : "streaming", cp.kill_attempts, (long long)(cp.next_id - 1),
                  cp.err);
    assert_int_equal(cp.rows, -1);
    assert_true(cp.next_id - 1 < 20000000);
    assert_false(cp.order_broken);
    assert_int_equal(pg_conn_query(pg, "SELECT 1", on_query, &p), -1);
    copy_fini(&cp);
    close_and_wait(&c, pg, &p);
    p.closed = false;
    p.closed_calls = 0;
    close_and_wait(&c, killer, &p);
    probe_free(&p);
    probe_free(&kp);
    ctx_done(&c);
}

static void test_copy_terminated_streaming(void **state)
{
    (void)state;
    if (!have_server())
        skip();
    check_copy_terminated(false);
}

static void test_copy_terminated_paused(void **state)
{
    (void)state;
    if (!have_server())
        skip();
    check_copy_terminated(true);
}

static void test_close_in_copy_cb(void **state)
{
    (void)state;
    if (!have_server())
        skip();
    ctx_t c;
    ctx_init(&c);
    probe_t p = {0};
    pg_conn_t *pg = connect_ok(&c, &p);
    copy_t cp;
    copy_init(&cp, &c, pg);
    cp.close_after = 10;
    cp.probe = &p;
    assert_int_equal(pg_conn_copy_out(pg,
                                      "COPY (SELECT g FROM generate_series(1, 200000) g) "
                                      "TO STDOUT",
                                      on_copy_data, on_copy_done, &cp),
                     0);
    assert_true(run_until(&c, &p.closed, 20));
    /* Let anything stray fire before looking. */
    for (int i = 0; i < 5; i++)
        uv_run(&c.loop, UV_RUN_NOWAIT);
    assert_int_equal(p.closed_calls, 1);
    assert_int_equal(cp.data_calls, 10);
    assert_false(cp.done);
    assert_false(cp.called_while_paused);
    copy_fini(&cp);
    probe_free(&p);
    ctx_done(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_close_never_connected),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_connect_ok),
        cmocka_unit_test(test_connect_bad_password),
        cmocka_unit_test(test_connect_socket_switch),
        cmocka_unit_test(test_close_while_connecting),
        cmocka_unit_test(test_query_rows),
        cmocka_unit_test(test_query_error),
        cmocka_unit_test(test_multi_statement),
        cmocka_unit_test(test_close_in_query_cb),
        cmocka_unit_test(test_copy_out),
        cmocka_unit_test(test_copy_errors),
        cmocka_unit_test(test_copy_pause_resume),
        cmocka_unit_test(test_copy_terminated_streaming),
        cmocka_unit_test(test_copy_terminated_paused),
        cmocka_unit_test(test_close_in_copy_cb),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
