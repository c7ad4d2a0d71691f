/* pg_conn.c — one nonblocking libpq connection on the libuv loop: the connect state
 * machine (PQconnectPoll on a socket that may change), statements, COPY OUT streaming
 * with pause/resume, and a close that is safe from inside any of its callbacks.
 * It owns its io_poll watchers, its uv_timer_t/uv_idle_t handles and the PGconn. */
#include "pg_conn.h"

#include "io_poll.h"
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define PG_ERR_MAX 1024
/* A COPY row is copied here from libpq's buffer for the data callback. */
#define PG_COPY_BUF (64 * 1024)
/* COPY bytes one readable event may move before yielding to the loop. libpq reads one
 * ~16 KB buffer per PQconsumeInput; returning to the loop after each made a load crawl at
 * one buffer per loop pass when 200 HTTP clients kept every pass busy (12k rows/s instead
 * of 1.1M). The consumer's back-pressure (pause) still stops the loop at once. */
#define PG_READ_BUDGET ((size_t)4 << 20)
/* A readable event that found less COPY data than this means PostgreSQL produces rows more
 * slowly than we take them: eltd then woke for every few KB the backend sent (~9k wake-ups
 * and context switches for 3M order_items rows, a third of eltd's CPU in the scheduler).
 * Reading pauses for PG_NAP_MS so the kernel gathers a bigger batch in the socket buffer
 * (~120 KB a millisecond at COPY speed; TCP autotuning keeps the window open): eltd's CPU
 * for that load 0.17-0.18 s -> 0.09-0.10 s, wall 0.95 -> 0.85 s (the backend wakes less
 * too). A faster source moves more than this per event and never naps. */
#define PG_NAP_BELOW ((size_t)64 << 10)
#define PG_NAP_MS    1

typedef enum {
    PG_ST_NEW,        /* allocated, connect not started */
    PG_ST_CONNECTING, /* PQconnectPoll in progress */
    PG_ST_READY,      /* connected, no operation */
    PG_ST_BUSY,       /* a query or COPY is in flight */
    PG_ST_DEAD,       /* connect failed or the connection broke: only close is left */
} pg_state_t;

typedef enum { PG_OP_NONE, PG_OP_QUERY, PG_OP_COPY } pg_op_t;

typedef enum {
    PG_PH_RESULTS, /* reading PGresults (before or after a COPY's rows) */
    PG_PH_DATA,    /* reading COPY rows with PQgetCopyData */
} pg_phase_t;

typedef enum { PG_SLOT_FREE, PG_SLOT_ACTIVE, PG_SLOT_CLOSING } pg_slot_state_t;

/* The socket can change during connect (libpq tries the next address, or retries without
 * SSL/GSS), and a watcher is bound to one fd for life: the old one must be closed and
 * stay valid until its close callback. Two embedded slots let a new watcher start while
 * the old one is still closing. */
typedef struct {
    io_poll_t io;          /* watches io.fd while ACTIVE, initialised unless FREE */
    pg_slot_state_t state; /* FREE, ACTIVE or CLOSING */
} pg_poll_slot_t;

#define PG_DEFER_CONNECT_FAIL 1u
#define PG_DEFER_DRAIN        2u

struct pg_conn {
    uv_loop_t *loop;         /* the loop every handle lives on */
    PGconn *conn;            /* libpq connection, NULL before connect */
    pg_state_t state;        /* see pg_state_t */
    pg_poll_slot_t slots[2]; /* poll handles on PQsocket, see pg_poll_slot_t */
    uv_timer_t timer;        /* connect timeout; then the nap between COPY reads */
    uv_idle_t idle;          /* deferred work: connect failure report, resume drain */
    unsigned deferred;       /* PG_DEFER_* bits the idle callback will handle */
    int connect_events;      /* UV_READABLE/UV_WRITABLE wanted by PQconnectPoll */
    double timeout_s;        /* connect timeout, for the message */
    bool flushing;           /* PQflush returned 1: poll for writable */
    bool paused;             /* back-pressure: no data callbacks, no reading in DATA phase */
    bool napping;            /* COPY rows trickle in: no reading until the timer, PG_NAP_MS */
    bool closing;            /* pg_conn_close was called */
    int pending_closes;      /* uv_close calls whose callbacks have not run yet */

    pg_op_t op;          /* operation in flight */
    pg_phase_t phase;    /* where the operation is */
    bool copy_started;   /* the COPY OUT result was seen */
    bool discard_copy;   /* drain rows of an unexpected COPY OUT without delivering them */
    bool op_failed;      /* op_err holds the operation's first error */
    bool copy_have_rows; /* copy_rows was read from a "COPY n" tag */
    int64_t copy_rows;   /* rows from the final command tag */
    size_t copy_bytes;   /* COPY bytes taken from libpq, ever: progress within a wake-up */
    PGresult *last;      /* last good result of a query */
    char op_err[PG_ERR_MAX];

    pg_conn_cb connect_cb;
    pg_result_cb result_cb;
    pg_copy_data_cb data_cb;
    pg_copy_done_cb done_cb;
    void *op_ud; /* user data of the connect or the operation */

    pg_closed_cb closed_cb;
    void *closed_ud;

    char err[PG_ERR_MAX]; /* last error, trimmed */

    char copy_buf[PG_COPY_BUF]; /* the COPY row on its way to data_cb */
};

static void pg_poll_update(pg_conn_t *pg, bool rearm);
static void pg_op_advance(pg_conn_t *pg);

/* ------------------------------------------------------------------ errors */

static void copy_trimmed(char *dst, const char *src)
{
    if (src == NULL || *src == '\0')
        src = "unknown error";
    size_t n = strlen(src);
    if (n >= PG_ERR_MAX)
        n = PG_ERR_MAX - 1;
    while (n > 0 &&
           (src[n - 1] == '\n' || src[n - 1] == '\r' || src[n - 1] == ' ' || src[n - 1] == '\t'))
        n--;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void set_err(pg_conn_t *pg, const char *msg)
{
    copy_trimmed(pg->err, msg);
}

static void set_errf(pg_conn_t *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_errf(pg_conn_t *pg, const char *fmt, ...)
{
    char buf[PG_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    set_err(pg, buf);
}

static const char *conn_message(const pg_conn_t *pg)
{
    const char *m = pg->conn ? PQerrorMessage(pg->conn) : NULL;
    return (m && *m) ? m : "connection to server lost";
}

/* Remembers the operation's first error; later ones are consequences. */
static void op_error(pg_conn_t *pg, const char *msg)
{
    if (pg->op_failed)
        return;
    pg->op_failed = true;
    copy_trimmed(pg->op_err, msg);
}

static void on_notice(void *arg, const char *message)
{
    (void)arg;
    char buf[PG_ERR_MAX];
    copy_trimmed(buf, message);
    log_debug("component=pg_conn notice=%s", log_quote(buf));
}

/* ------------------------------------------------------------------ lifetime */

static void pg_finalize(pg_conn_t *pg)
{
    pg_closed_cb cb = pg->closed_cb;
    void *ud = pg->closed_ud;
    if (pg->last)
        PQclear(pg->last);
    if (pg->conn)
        PQfinish(pg->conn);
    free(pg);
    if (cb)
        cb(ud);
}

/* One of our handles finished closing. */
static void handle_gone(pg_conn_t *pg)
{
    pg->pending_closes--;
    if (pg->closing) {
        if (pg->pending_closes == 0)
            pg_finalize(pg);
        return;
    }
    /* A socket switch may have waited for this slot. */
    pg_poll_update(pg, false);
}

static void on_handle_closed(uv_handle_t *h)
{
    handle_gone(h->data);
}

static void on_slot_closed(io_poll_t *p)
{
    pg_conn_t *pg = p->data;
    for (size_t i = 0; i < 2; i++) {
        if (&pg->slots[i].io == p)
            pg->slots[i].state = PG_SLOT_FREE;
    }
    handle_gone(pg);
}

static void close_handle(pg_conn_t *pg, uv_handle_t *h)
{
    pg->pending_closes++;
    uv_close(h, on_handle_closed);
}

static void close_slot(pg_conn_t *pg, pg_poll_slot_t *slot)
{
    slot->state = PG_SLOT_CLOSING;
    pg->pending_closes++;
    io_poll_close(&slot->io, on_slot_closed);
}

pg_conn_t *pg_conn_new(uv_loop_t *loop)
{
    pg_conn_t *pg = calloc(1, sizeof *pg);
    if (pg == NULL)
        return NULL;
    pg->loop = loop;
    pg->state = PG_ST_NEW;
    for (size_t i = 0; i < 2; i++)
        pg->slots[i].state = PG_SLOT_FREE;
    if (uv_timer_init(loop, &pg->timer) != 0 || uv_idle_init(loop, &pg->idle) != 0) {
        /* Neither can fail on a live loop; if one did we could not close it cleanly. */
        abort();
    }
    pg->timer.data = pg;
    pg->idle.data = pg;
    strcpy(pg->err, "no error");
    return pg;
}

void pg_conn_close(pg_conn_t *pg, pg_closed_cb closed, void *ud)
{
    if (pg == NULL || pg->closing)
        return;
    pg->closing = true;
    pg->closed_cb = closed;
    pg->closed_ud = ud;
    pg->op = PG_OP_NONE;
    /* Closing a watcher removes the fd from epoll now, before PQfinish closes it
     * in the last close callback. */
    for (size_t i = 0; i < 2; i++) {
        if (pg->slots[i].state == PG_SLOT_ACTIVE)
            close_slot(pg, &pg->slots[i]);
    }
    close_handle(pg, (uv_handle_t *)&pg->timer);
    close_handle(pg, (uv_handle_t *)&pg->idle);
}

/* ------------------------------------------------------------------ polling */

static void on_poll(io_poll_t *p, int status, int events);

static int wanted_events(const pg_conn_t *pg)
{
    switch (pg->state) {
    case PG_ST_CONNECTING:
        return pg->connect_events;
    case PG_ST_BUSY: {
        int ev = pg->flushing ? UV_WRITABLE : 0;
        bool copy_rows = pg->phase == PG_PH_DATA && !pg->discard_copy;
        if (!(copy_rows && (pg->paused || pg->napping)))
            ev |= UV_READABLE;
        return ev;
    }
    default:
        return 0;
    }
}

/* Makes the watchers match what the state wants: the right fd, the right events.
 * rearm re-registers the fd so that a socket libpq closed and reopened under the same
 * number (possible during connect) is watched again. */
static void pg_poll_update(pg_conn_t *pg, bool rearm)
{
    if (pg->closing)
        return;
    int fd = (pg->conn && pg->state != PG_ST_DEAD) ? PQsocket(pg->conn) : -1;
    int events = fd >= 0 ? wanted_events(pg) : 0;
    pg_poll_slot_t *active = NULL;
    for (size_t i = 0; i < 2; i++) {
        if (pg->slots[i].state == PG_SLOT_ACTIVE)
            active = &pg->slots[i];
    }
    if (active && active->io.fd != fd) {
        log_debug("component=pg_conn event=socket_changed old_fd=%d new_fd=%d", active->io.fd, fd);
        close_slot(pg, active);
        active = NULL;
    }
    if (events == 0) {
        if (active)
            io_poll_stop(&active->io);
        return;
    }
    if (active == NULL) {
        for (size_t i = 0; i < 2 && active == NULL; i++) {
            if (pg->slots[i].state == PG_SLOT_FREE)
                active = &pg->slots[i];
        }
        if (active == NULL)
            return; /* both closing: on_slot_closed calls us again */
        int rc = io_poll_init(pg->loop, &active->io, fd, on_poll);
        if (rc != 0) {
            /* Nothing to close: a failed init leaves no handle on the loop. */
            log_error("component=pg_conn event=poll_init_failed error=%s",
                      log_quote(uv_strerror(rc)));
            return;
        }
        active->io.data = pg;
        active->state = PG_SLOT_ACTIVE;
    }
    int rc = rearm ? io_poll_rearm(&active->io, events) : io_poll_want(&active->io, events);
    if (rc != 0)
        log_error("component=pg_conn event=poll_start_failed error=%s", log_quote(uv_strerror(rc)));
}

static void on_idle(uv_idle_t *h);

static void schedule(pg_conn_t *pg, unsigned what)
{
    pg->deferred |= what;
    uv_idle_start(&pg->idle, on_idle);
}

/* ------------------------------------------------------------------ connect */

static void connect_finish(pg_conn_t *pg, const char *err)
{
    char msg[PG_ERR_MAX];
    uv_timer_stop(&pg->timer);
    pg->state = err ? PG_ST_DEAD : PG_ST_READY;
    if (err) {
        copy_trimmed(msg, err);
        set_err(pg, msg);
    }
    pg_poll_update(pg, false);
    pg_conn_cb cb = pg->connect_cb;
    void *ud = pg->connect_cb ? pg->op_ud : NULL;
    pg->connect_cb = NULL;
    pg->op_ud = NULL;
    if (cb)
        cb(pg, ud, err ? msg : NULL);
}

static void connect_step(pg_conn_t *pg)
{
    switch (PQconnectPoll(pg->conn)) {
    case PGRES_POLLING_OK:
        if (PQsetnonblocking(pg->conn, 1) != 0) {
            connect_finish(pg, conn_message(pg));
            return;
        }
        connect_finish(pg, NULL);
        return;
    case PGRES_POLLING_FAILED:
        connect_finish(pg, conn_message(pg));
        return;
    case PGRES_POLLING_READING:
        pg->connect_events = UV_READABLE;
        break;
    case PGRES_POLLING_WRITING:
    default:
        pg->connect_events = UV_WRITABLE;
        break;
    }
    if (PQsocket(pg->conn) < 0) {
        connect_finish(pg, conn_message(pg));
        return;
    }
    pg_poll_update(pg, true);
}

static void on_connect_timeout(uv_timer_t *t)
{
    pg_conn_t *pg = t->data;
    if (pg->closing || pg->state != PG_ST_CONNECTING)
        return;
    char msg[PG_ERR_MAX];
    snprintf(msg, sizeof msg, "timeout expired after %gs while connecting", pg->timeout_s);
    connect_finish(pg, msg);
}

int pg_conn_connect(pg_conn_t *pg, const char *const *keys, const char *const *values,
                    double timeout_s, pg_conn_cb cb, void *ud)
{
    if (pg->closing || pg->state != PG_ST_NEW) {
        set_err(pg, "pg_conn_connect: connection already started");
        return -1;
    }
    pg->conn = PQconnectStartParams(keys, values, 0);
    if (pg->conn == NULL) {
        set_err(pg, "out of memory starting the connection");
        return -1;
    }
    PQsetNoticeProcessor(pg->conn, on_notice, pg);
    pg->state = PG_ST_CONNECTING;
    pg->connect_cb = cb;
    pg->op_ud = ud;
    /* Failures that libpq found at once (bad option, refused on every address) are reported
     * through cb on the next loop iteration, like any other connect failure. */
    if (PQstatus(pg->conn) == CONNECTION_BAD || PQsocket(pg->conn) < 0) {
        set_err(pg, conn_message(pg));
        schedule(pg, PG_DEFER_CONNECT_FAIL);
        return 0;
    }
    if (timeout_s > 0) {
        double ms = timeout_s * 1000.0;
        pg->timeout_s = timeout_s;
        uv_timer_start(&pg->timer, on_connect_timeout, ms < 1 ? 1 : (uint64_t)ms, 0);
    }
    /* libpq's documented starting point: behave as if PQconnectPoll said WRITING. */
    pg->connect_events = UV_WRITABLE;
    pg_poll_update(pg, true);
    return 0;
}

/* ------------------------------------------------------------------ operations */

static void op_reset(pg_conn_t *pg)
{
    pg->op = PG_OP_NONE;
    pg->phase = PG_PH_RESULTS;
    pg->copy_started = false;
    pg->discard_copy = false;
    pg->op_failed = false;
    pg->copy_have_rows = false;
    pg->copy_rows = 0;
    pg->flushing = false;
    pg->napping = false;
    uv_timer_stop(&pg->timer);
    pg->op_err[0] = '\0';
    pg->result_cb = NULL;
    pg->data_cb = NULL;
    pg->done_cb = NULL;
    pg->op_ud = NULL;
}

/* Ends the operation and calls its callback. The callback may start another operation or
 * close the connection, so callers return right after this. */
static void op_finish(pg_conn_t *pg, bool broken)
{
    pg_op_t op = pg->op;
    char err[PG_ERR_MAX];
    bool failed = pg->op_failed;
    if (failed) {
        memcpy(err, pg->op_err, sizeof err);
        set_err(pg, err);
    }
    PGresult *res = failed ? NULL : pg->last;
    if (failed && pg->last)
        PQclear(pg->last);
    pg->last = NULL;
    int64_t rows = pg->copy_have_rows ? pg->copy_rows : 0;
    if (failed)
        rows = -1;
    pg_result_cb result_cb = pg->result_cb;
    pg_copy_done_cb done_cb = pg->done_cb;
    void *ud = pg->op_ud;
    op_reset(pg);

    if (broken || PQstatus(pg->conn) != CONNECTION_OK ||
        PQtransactionStatus(pg->conn) == PQTRANS_ACTIVE)
        pg->state = PG_ST_DEAD;
    else
        pg->state = PG_ST_READY;
    /* Stop (or drop) the poll before user code runs: if libpq closed the socket, its number
     * may be reused by whatever the callback opens. */
    pg_poll_update(pg, false);

    if (op == PG_OP_QUERY && result_cb)
        result_cb(pg, ud, res, failed ? err : NULL);
    else if (op == PG_OP_COPY && done_cb)
        done_cb(pg, ud, rows, failed ? err : NULL);
    if (res)
        PQclear(res);
}

static bool result_ok(ExecStatusType st)
{
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY ||
           st == PGRES_SINGLE_TUPLE;
}

/* Folds one PGresult into the operation (and frees or keeps it). */
static void op_take_result(pg_conn_t *pg, PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COPY_OUT) {
        if (pg->op == PG_OP_COPY && !pg->copy_started) {
            pg->copy_started = true;
        } else {
            op_error(pg, pg->op == PG_OP_COPY
                             ? "pg_conn_copy_out: more than one COPY OUT in the statement"
                             : "pg_conn_query: COPY TO STDOUT needs pg_conn_copy_out");
            pg->discard_copy = true;
        }
        pg->phase = PG_PH_DATA;
        PQclear(r);
        return;
    }
    if (st == PGRES_COPY_IN || st == PGRES_COPY_BOTH) {
        op_error(pg, "pg_conn: COPY FROM STDIN is not supported");
        /* Ends COPY IN with an error, so the server sends its error result next. */
        if (st == PGRES_COPY_IN && PQputCopyEnd(pg->conn, "COPY FROM STDIN not supported") == 1)
            pg->flushing = PQflush(pg->conn) == 1;
        PQclear(r);
        return;
    }
    if (!result_ok(st)) {
        const char *m = PQresultErrorMessage(r);
        op_error(pg, (m && *m) ? m : PQresStatus(st));
        PQclear(r);
        return;
    }
    if (pg->op == PG_OP_QUERY) {
        if (pg->last)
            PQclear(pg->last);
        pg->last = r;
        return;
    }
    /* COPY: the first command result after the rows carries "COPY n". */
    if (pg->copy_started && !pg->copy_have_rows && st == PGRES_COMMAND_OK &&
        strncmp(PQcmdStatus(r), "COPY", 4) == 0) {
        pg->copy_rows = strtoll(PQcmdTuples(r), NULL, 10);
        pg->copy_have_rows = true;
    }
    PQclear(r);
}

/* Runs the operation as far as libpq's buffers allow. Returns after any user callback
 * that may have closed the connection or ended the operation. */
static void pg_op_advance(pg_conn_t *pg)
{
    while (!pg->closing && pg->state == PG_ST_BUSY) {
        if (pg->phase == PG_PH_DATA) {
            bool deliver = !pg->discard_copy;
            if (deliver && pg->paused)
                return;
            /* PQgetlineAsync copies the next buffered row into copy_buf: unlike
             * PQgetCopyData, no malloc/free per row (callgrind, 0.3M order_items rows:
             * ~150 fewer instructions per row, a third of eltd's per-row cost). One row
             * per callback, as before; a row longer than copy_buf comes in pieces, in
             * order. */
            int n = PQgetlineAsync(pg->conn, pg->copy_buf, (int)sizeof pg->copy_buf);
            if (n > 0) {
                pg->copy_bytes += (size_t)n;
                if (deliver && pg->data_cb)
                    pg->data_cb(pg, pg->op_ud, pg->copy_buf, (size_t)n);
                continue; /* the loop re-checks closing and paused */
            }
            if (n == 0) {
                /* No complete row buffered. A dropped connection can't bring more: go
                 * read the final (error) result instead of waiting on a dead socket. */
                if (PQstatus(pg->conn) == CONNECTION_BAD) {
                    pg->phase = PG_PH_RESULTS;
                    continue;
                }
                return;
            }
            /* -1: the COPY data ended (CopyDone, or an error or other message), and libpq
             * reads results again. PQgetlineAsync also folds PQgetCopyData's -2 (protocol
             * sync lost) into -1: libpq then saved an error result and dropped the
             * connection, so PQgetResult hands that error out and ends without blocking,
             * as for the dropped connection above. */
            pg->phase = PG_PH_RESULTS;
            pg->discard_copy = false;
            continue;
        }
        if (PQisBusy(pg->conn))
            return;
        PGresult *r = PQgetResult(pg->conn);
        if (r == NULL) {
            if (pg->op == PG_OP_COPY && !pg->copy_started)
                op_error(pg, "pg_conn_copy_out: the statement did not start a COPY TO STDOUT");
            else if (pg->op == PG_OP_COPY && !pg->copy_have_rows && !pg->op_failed)
                op_error(pg, "pg_conn_copy_out: no COPY command tag after the rows");
            op_finish(pg, false);
            return;
        }
        op_take_result(pg, r);
    }
}

/* The socket error behind a failed poll, for when libpq itself saw nothing wrong. */
static const char *socket_error(const pg_conn_t *pg, int status)
{
    int fd = pg->conn ? PQsocket(pg->conn) : -1;
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr != 0)
        return strerror(soerr);
    return uv_strerror(status);
}

/* One readiness event of an operation. With readable, COPY rows are read and delivered
 * until the socket has nothing more, the consumer pauses, or PG_READ_BUDGET bytes moved.
 * force_read reads even while paused: after a socket error, only libpq's read turns the
 * error into its own message (e.g. "server closed the connection unexpectedly"). */
static void op_io(pg_conn_t *pg, int events, bool force_read)
{
    if (pg->flushing) {
        int f = PQflush(pg->conn);
        if (f < 0) {
            op_error(pg, conn_message(pg));
            op_finish(pg, true);
            return;
        }
        pg->flushing = f == 1;
    }
    size_t start = pg->copy_bytes;
    for (;;) {
        bool paused_rows = pg->phase == PG_PH_DATA && !pg->discard_copy && pg->paused;
        if ((events & UV_READABLE) && (!paused_rows || force_read)) {
            if (!PQconsumeInput(pg->conn)) {
                op_error(pg, conn_message(pg));
                if (PQstatus(pg->conn) != CONNECTION_BAD) {
                    op_finish(pg, true);
                    return;
                }
                /* Connection gone: libpq hands out the (error) results without blocking. */
                pg_op_advance(pg);
                return;
            }
        }
        size_t before = pg->copy_bytes;
        pg_op_advance(pg);
        /* Read again only while rows are flowing: nothing new means the socket is drained
         * (or a row longer than libpq's buffer is still arriving), and the poll says when
         * there is more. The callbacks may have closed the connection or ended the
         * operation (the struct stays valid until the close callbacks). */
        if (!(events & UV_READABLE) || force_read || pg->closing || pg->state != PG_ST_BUSY ||
            pg->phase != PG_PH_DATA || pg->paused || pg->copy_bytes == before ||
            pg->copy_bytes - start >= PG_READ_BUDGET)
            return;
    }
}

static void on_nap_end(uv_timer_t *t)
{
    pg_conn_t *pg = t->data;
    pg->napping = false;
    pg_poll_update(pg, false);
}

/* After a readable event of a COPY: nap when it brought less than PG_NAP_BELOW bytes. */
static void maybe_nap(pg_conn_t *pg, size_t moved)
{
    if (pg->closing || pg->state != PG_ST_BUSY || pg->phase != PG_PH_DATA || pg->discard_copy ||
        pg->paused || moved >= PG_NAP_BELOW)
        return;
    pg->napping = true;
    uv_timer_start(&pg->timer, on_nap_end, PG_NAP_MS, 0);
}

static void on_poll(io_poll_t *p, int status, int events)
{
    pg_conn_t *pg = p->data;
    if (pg->closing)
        return;
    if (status < 0) {
        /* A pending socket error such as a refused connect; libuv stopped the watcher.
         * libpq reads the real error from the socket, so hand it the event; the watcher is
         * restarted by the update below. */
        if (pg->state == PG_ST_CONNECTING) {
            connect_step(pg);
        } else if (pg->state == PG_ST_BUSY) {
            /* Read even when paused by back-pressure: libpq's message for a reset
             * connection is the one to report, not libuv's UV_EBADF for POLLERR. */
            op_io(pg, UV_READABLE, true);
            /* Should libpq see nothing wrong, fail rather than spin on the error. The
             * first error wins: libpq's, when it found one, stays the operation's. */
            if (!pg->closing && pg->state == PG_ST_BUSY) {
                char msg[PG_ERR_MAX];
                snprintf(msg, sizeof msg, "polling the PostgreSQL socket failed: %s",
                         socket_error(pg, status));
                op_error(pg, msg);
                op_finish(pg, true);
                return;
            }
        }
        if (!pg->closing)
            pg_poll_update(pg, false);
        return;
    }
    if (pg->state == PG_ST_CONNECTING) {
        connect_step(pg);
    } else if (pg->state == PG_ST_BUSY) {
        size_t start = pg->copy_bytes;
        op_io(pg, events, false);
        if (events & UV_READABLE)
            maybe_nap(pg, pg->copy_bytes - start);
    }
    if (!pg->closing)
        pg_poll_update(pg, false);
}

static void on_idle(uv_idle_t *h)
{
    pg_conn_t *pg = h->data;
    unsigned what = pg->deferred;
    pg->deferred = 0;
    uv_idle_stop(h);
    if (pg->closing)
        return;
    if ((what & PG_DEFER_CONNECT_FAIL) && pg->state == PG_ST_CONNECTING) {
        connect_finish(pg, pg->err);
        return;
    }
    if ((what & PG_DEFER_DRAIN) && pg->state == PG_ST_BUSY) {
        /* Rows libpq already holds first; the poll is re-armed only once they are out. */
        pg_op_advance(pg);
        if (!pg->closing)
            pg_poll_update(pg, false);
    }
}

static int op_start(pg_conn_t *pg, const char *sql, const char *what)
{
    if (pg->closing || pg->state != PG_ST_READY) {
        set_errf(pg, "%s: %s", what,
                 pg->state == PG_ST_BUSY ? "another operation is in progress"
                                         : "connection is not open");
        return -1;
    }
    if (!PQsendQuery(pg->conn, sql)) {
        set_errf(pg, "%s: %s", what, conn_message(pg));
        if (PQstatus(pg->conn) != CONNECTION_OK) {
            pg->state = PG_ST_DEAD;
            pg_poll_update(pg, false);
        }
        return -1;
    }
    pg->state = PG_ST_BUSY;
    pg->phase = PG_PH_RESULTS;
    pg->flushing = true; /* the first writable event flushes what PQsendQuery queued */
    return 0;
}

int pg_conn_query(pg_conn_t *pg, const char *sql, pg_result_cb cb, void *ud)
{
    if (op_start(pg, sql, "pg_conn_query") != 0)
        return -1;
    pg->op = PG_OP_QUERY;
    pg->result_cb = cb;
    pg->op_ud = ud;
    pg_poll_update(pg, false);
    return 0;
}

int pg_conn_copy_out(pg_conn_t *pg, const char *sql, pg_copy_data_cb data, pg_copy_done_cb done,
                     void *ud)
{
    if (op_start(pg, sql, "pg_conn_copy_out") != 0)
        return -1;
    pg->op = PG_OP_COPY;
    pg->data_cb = data;
    pg->done_cb = done;
    pg->op_ud = ud;
    pg_poll_update(pg, false);
    return 0;
}

/* ------------------------------------------------------------------ back-pressure */

void pg_conn_pause(pg_conn_t *pg)
{
    if (pg->paused)
        return;
    pg->paused = true;
    /* Inside the data loop the flag alone stops it; the poll is updated on the way out. */
    pg_poll_update(pg, false);
}

void pg_conn_resume(pg_conn_t *pg)
{
    if (!pg->paused)
        return;
    pg->paused = false;
    if (pg->closing)
        return;
    if (pg->state == PG_ST_BUSY && pg->phase == PG_PH_DATA)
        schedule(pg, PG_DEFER_DRAIN);
    else
        pg_poll_update(pg, false);
}

bool pg_conn_paused(const pg_conn_t *pg)
{
    return pg->paused;
}

/* ------------------------------------------------------------------ accessors */

const char *pg_conn_error(const pg_conn_t *pg)
{
    return pg->err;
}

int pg_conn_backend_pid(const pg_conn_t *pg)
{
    return pg->conn ? PQbackendPID(pg->conn) : 0;
}

PGconn *pg_conn_raw(pg_conn_t *pg)
{
    return pg->conn;
}
