/* load.c — one table's load attempt as a small state machine: connect and join the run's
 * snapshot, read the catalog, plan the streams, prepare the side table, stream COPY OUT into
 * chunked INSERTs through bounded queues (back-pressure both ways), check the row count,
 * publish. Every attempt starts clean; a failure drops the side table and leaves the target
 * as it was.
 *
 * Split loads: one PostgreSQL backend's COPY is the bound on a load's speed, so a table may
 * be copied as N ranges at once: ranges of its heap pages (`ctid >= '(a,0)' AND ctid <
 * '(b,0)'`, a TID range scan on PostgreSQL 14+: no index, any table) or of a single integer
 * key (its primary key, or a configured one-column key; an index range scan, for older
 * servers, views and partitioned tables). The bounds (page count, or min/max of the key) are
 * read in the snapshot on the first connection, N-1 more connections join the same snapshot,
 * and each stream_t runs its own `COPY (SELECT ... WHERE <range>)` into its own INSERT into
 * the one side table with its own queue and pause/resume. The count check compares the side
 * table with the sum of the N `COPY n` tags. Any stream's failure fails the whole attempt
 * once: every connection closed, every insert cancelled, the side table dropped. */
#include "load.h"

#include "log.h"
#include "pg_conn.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A stream's queue is a list of chunks of a quarter of its cap, within these bounds: big
 * enough that curl is woken in large steps, small enough that a split table's N queues
 * (each a 1/N share of run.queue_bytes) do not each hold several full-size chunks (4 streams
 * with 256 KiB chunks: peak RSS 16.7 MiB at 30M rows instead of 14.1 unsplit). */
#define CHUNK_MAX (256 * 1024)
#define CHUNK_MIN (16 * 1024)

typedef struct chunk {
    struct chunk *next;
    size_t len, off;
    char data[]; /* attempt_t.chunk bytes */
} chunk_t;

typedef struct column {
    char *name;
    typemap_out_t map;
    int pk_pos;   /* 1-based position in the primary key, 0 = not in it */
    bool integer; /* int2, int4, int8 or a domain over one: its ranges can split a load */
} column_t;

/* At most this many COPY streams per table (config: split 1..16; auto: up to 4). */
#define MAX_STREAMS      16
#define AUTO_MAX_STREAMS 4

/* One COPY stream of an attempt: a PostgreSQL connection in the run's snapshot copying one
 * page or key range (or the whole table) into its own chunked INSERT through its own bounded
 * queue. */
typedef struct stream {
    struct attempt *a;
    int no;            /* 1-based, for messages */
    pg_conn_t *pg;     /* NULL once closed */
    ch_request_t *req; /* its INSERT while in flight */
    char *range;       /* "k >= a AND k < b" or the same on ctid, NULL = every row */
    chunk_t *head, *tail;
    chunk_t *spare; /* sent chunks kept for reuse: a stream allocates its chunks once */
    size_t queued;
    bool joined; /* connected and inside the run's snapshot */
    bool copy_done, insert_paused, insert_done;
    int64_t copy_rows;
} stream_t;

typedef struct load_task {
    load_env_t *env;
    const config_table_t *table;
    dag_task_t *task;
    struct attempt *att; /* current attempt, NULL when idle */
} load_task_t;

typedef struct attempt {
    load_task_t *lt; /* NULL once the task has been told the outcome */
    load_env_t *env;
    const config_table_t *table;
    int refs;          /* pg connections open + ClickHouse requests in flight + self */
    pg_conn_t *pg;     /* the first connection (catalog, key bounds) until stream 1 takes it */
    ch_request_t *req; /* the one ClickHouse statement in flight (not the inserts) */
    bool failing, finished;
    char error[1024];

    column_t *cols;
    size_t ncols;
    char *target, *side, *old; /* `raw`.`t`, `raw`.`t__eltd_new`, `raw`.`t__eltd_old` */
    char *create_sql;          /* CREATE TABLE side ... */
    bool target_exists, same_structure, incremental;
    char *target_ddl;           /* SHOW CREATE of the target, for comparison */
    char *watermark;            /* incremental: text of max(cursor), NULL = none */
    const column_t *split_col;  /* the integer key the ranges are cut on, NULL = pages */
    char relkind;               /* pg_class.relkind of the source: 'r' table, 'v' view ... */
    int64_t bound_lo, bound_hi; /* the split's bounds while the planner is asked for rows */

    /* streaming */
    stream_t *streams;
    int nstreams;
    int joining;              /* streams whose connection is not yet in the snapshot */
    int inserts_left;         /* streams whose insert has not ended well */
    bool side_ready;          /* side table created, watermark known: the streams may start */
    size_t cap;               /* queue cap of each stream: run.queue_bytes / nstreams */
    size_t chunk;             /* size of the queue's chunks: cap / 4 within the bounds */
    int64_t copy_rows, bytes; /* sums over the streams */
    uint64_t t0;
} attempt_t;

static void step_ch(attempt_t *a, const char *sql, void (*next)(attempt_t *, const char *body));
static void fail(attempt_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void load_pg_params(const config_t *cfg, const char *keys[16], const char *values[16],
                    char port_buf[16], char timeout_buf[16])
{
    int i = 0;
    snprintf(port_buf, 16, "%lld", (long long)cfg->source.port);
    snprintf(timeout_buf, 16, "%d", (int)(cfg->source.connect_timeout + 0.999));
    keys[i] = "host", values[i++] = cfg->source.host;
    keys[i] = "port", values[i++] = port_buf;
    keys[i] = "dbname", values[i++] = cfg->source.database;
    keys[i] = "user", values[i++] = cfg->source.user;
    keys[i] = "password", values[i++] = cfg->source.password;
    keys[i] = "connect_timeout", values[i++] = timeout_buf;
    keys[i] = "application_name", values[i++] = "eltd";
    keys[i] = "client_encoding", values[i++] = "UTF8";
    /* COPY text must be ISO dates in UTC with round-trip floats: the type map relies on it. */
    keys[i] = "options", values[i++] = "-c DateStyle=ISO -c TimeZone=UTC -c extra_float_digits=3 "
                                       "-c IntervalStyle=iso_8601";
    keys[i] = NULL, values[i] = NULL;
}

void load_ch_opts(const config_t *cfg, ch_client_opts_t *opts)
{
    *opts = (ch_client_opts_t){
        .url = cfg->warehouse.url,
        .user = cfg->warehouse.user,
        .password = cfg->warehouse.password,
        .connect_timeout = cfg->warehouse.connect_timeout,
        .query_timeout = cfg->warehouse.query_timeout,
    };
}

/* ---- lifetime ---------------------------------------------------------------------- */

static void free_chunks(chunk_t *c)
{
    while (c) {
        chunk_t *next = c->next;
        free(c);
        c = next;
    }
}

static void attempt_free(attempt_t *a)
{
    for (size_t i = 0; i < a->ncols; i++) {
        free(a->cols[i].name);
        typemap_out_free(&a->cols[i].map);
    }
    free(a->cols);
    free(a->target);
    free(a->side);
    free(a->old);
    free(a->create_sql);
    free(a->target_ddl);
    free(a->watermark);
    for (int i = 0; i < a->nstreams; i++) {
        stream_t *s = &a->streams[i];
        free_chunks(s->head);
        free_chunks(s->spare);
        free(s->range);
    }
    free(a->streams);
    free(a);
}

static void unref(attempt_t *a)
{
    if (--a->refs == 0)
        attempt_free(a);
}

static void on_pg_closed(void *ud)
{
    unref(ud);
}

static void close_conn(attempt_t *a, pg_conn_t **pgp)
{
    if (*pgp) {
        pg_conn_t *pg = *pgp;
        *pgp = NULL;
        pg_conn_close(pg, on_pg_closed, a);
    }
}

/* Every PostgreSQL connection of the attempt. */
static void close_pg(attempt_t *a)
{
    close_conn(a, &a->pg);
    for (int i = 0; i < a->nstreams; i++)
        close_conn(a, &a->streams[i].pg);
}

static bool inserts_in_flight(const attempt_t *a)
{
    for (int i = 0; i < a->nstreams; i++)
        if (a->streams[i].req)
            return true;
    return false;
}

/* Tells the engine once; the attempt lives on until its connections are closed. */
static void finish(attempt_t *a, bool ok)
{
    if (a->finished)
        return;
    a->finished = true;
    close_pg(a);
    load_task_t *lt = a->lt;
    a->lt = NULL;
    if (lt) {
        lt->att = NULL;
        dag_task_t *t = lt->task;
        if (ok) {
            t->rows = a->copy_rows;
            t->bytes = a->bytes;
        }
        double secs = (double)(uv_now(a->env->loop) - a->t0) / 1000.0;
        if (ok)
            log_info("run=%s task=%s attempt=%d event=loaded rows=%lld bytes=%lld "
                     "duration=%.3f streams=%d",
                     a->env->run_id, t->name, t->attempt, (long long)a->copy_rows,
                     (long long)a->bytes, secs, a->nstreams);
        dag_task_finish(t, ok, ok ? NULL : a->error);
    }
    unref(a);
}

static void on_cleanup_done(ch_request_t *req, void *ud, long status, const char *body, size_t len,
                            const char *err)
{
    (void)req, (void)status, (void)body, (void)len;
    attempt_t *a = ud;
    a->req = NULL;
    if (err)
        log_warn("run=%s table=%s event=cleanup_failed error=%s", a->env->run_id, a->table->name,
                 log_quote(err));
    finish(a, false);
    unref(a);
}

/* Drops the side table (the target is never touched on failure), then reports. */
static void cleanup_and_fail(attempt_t *a)
{
    close_pg(a);
    if (a->req || inserts_in_flight(a))
        return; /* their callbacks come back here; the last one goes on */
    if (!a->side) {
        finish(a, false);
        return;
    }
    char *sql = util_asprintf("DROP TABLE IF EXISTS %s", a->side);
    ch_request_t *r = sql ? ch_query(a->env->ch, sql, NULL, on_cleanup_done, a) : NULL;
    free(sql);
    if (!r) {
        finish(a, false);
        return;
    }
    a->req = r;
    a->refs++;
}

/* PostgreSQL's text for a range-guard error is 'invalid input syntax for type integer:
 * "eltd: ..."': show only the eltd part. */
static void tidy_pg_error(char *msg)
{
    char *p = strstr(msg, "\"eltd: ");
    if (!p)
        return;
    char *e = strchr(p + 1, '"');
    size_t n = e ? (size_t)(e - p - 1) : strlen(p + 1);
    memmove(msg, p + 1, n);
    msg[n] = '\0';
}

static void fail(attempt_t *a, const char *fmt, ...)
{
    if (a->failing || a->finished)
        return;
    a->failing = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->error, sizeof a->error, fmt, ap);
    va_end(ap);
    tidy_pg_error(a->error);
    if (a->lt)
        log_warn("run=%s task=%s attempt=%d event=load_failed rows=%lld bytes=%lld "
                 "duration=%.3f error=%s",
                 a->env->run_id, a->lt->task->name, a->lt->task->attempt, (long long)a->copy_rows,
                 (long long)a->bytes, (double)(uv_now(a->env->loop) - a->t0) / 1000.0,
                 log_quote(a->error));
    if (a->req)
        ch_request_cancel(a->req);
    for (int i = 0; i < a->nstreams; i++)
        if (a->streams[i].req)
            ch_request_cancel(a->streams[i].req);
    cleanup_and_fail(a);
}

/* ---- ClickHouse steps -------------------------------------------------------------- */

typedef void (*step_fn)(attempt_t *, const char *body);

typedef struct step_ctx {
    attempt_t *a;
    step_fn next;
    char *sql;
} step_ctx_t;

static void on_step_done(ch_request_t *req, void *ud, long status, const char *body, size_t len,
                         const char *err)
{
    (void)req, (void)status, (void)len;
    step_ctx_t *s = ud;
    attempt_t *a = s->a;
    a->req = NULL;
    if (a->failing) {
        cleanup_and_fail(a);
    } else if (err) {
        fail(a, "ClickHouse: %s (while running: %.200s)", err, s->sql);
    } else {
        s->next(a, body);
    }
    free(s->sql);
    free(s);
    unref(a);
}

static void step_ch(attempt_t *a, const char *sql, step_fn next)
{
    step_ctx_t *s = calloc(1, sizeof *s);
    if (!s || !(s->sql = strdup(sql))) {
        free(s);
        fail(a, "out of memory");
        return;
    }
    s->a = a;
    s->next = next;
    a->refs++;
    a->req = ch_query(a->env->ch, sql, NULL, on_step_done, s);
    if (!a->req) {
        a->refs--;
        free(s->sql);
        free(s);
        fail(a, "out of memory");
    }
}

/* ---- streaming --------------------------------------------------------------------- */

static size_t on_insert_read(void *ud, char *buf, size_t max)
{
    stream_t *s = ud;
    attempt_t *a = s->a;
    if (a->failing)
        return CH_READ_ABORT;
    size_t n = 0;
    while (n < max && s->head) {
        chunk_t *c = s->head;
        size_t take = c->len - c->off;
        if (take > max - n)
            take = max - n;
        memcpy(buf + n, c->data + c->off, take);
        c->off += take;
        n += take;
        if (c->off == c->len) {
            s->head = c->next;
            if (!s->head)
                s->tail = NULL;
            /* Kept, not freed: the queue never holds more than its cap plus a chunk, so
             * neither do the spares, and a load mallocs its chunks once instead of once
             * per 256 KiB moved (under ASan each free went to the quarantine: RSS grew with
             * the bytes loaded). */
            c->next = s->spare;
            s->spare = c;
        }
    }
    s->queued -= n;
    a->bytes += (int64_t)n;
    if (s->pg && pg_conn_paused(s->pg) && s->queued <= a->cap / 2 && !s->copy_done)
        pg_conn_resume(s->pg);
    if (n > 0)
        return n;
    if (s->copy_done)
        return 0; /* PostgreSQL said this stream's COPY succeeded: end its body */
    s->insert_paused = true;
    return CH_READ_PAUSE;
}

static void wake_insert(stream_t *s)
{
    if (s->insert_paused && s->req) {
        s->insert_paused = false;
        ch_request_resume(s->req);
    }
}

static void on_copy_data(pg_conn_t *pg, void *ud, const char *buf, size_t len)
{
    stream_t *s = ud;
    attempt_t *a = s->a;
    while (len > 0) {
        chunk_t *c = s->tail;
        if (!c || c->len == a->chunk) {
            if (s->spare) {
                c = s->spare;
                s->spare = c->next;
            } else if (!(c = malloc(sizeof *c + a->chunk))) {
                fail(a, "out of memory");
                return;
            }
            c->next = NULL;
            c->len = c->off = 0;
            if (s->tail)
                s->tail->next = c;
            else
                s->head = c;
            s->tail = c;
        }
        size_t take = a->chunk - c->len;
        if (take > len)
            take = len;
        memcpy(c->data + c->len, buf, take);
        c->len += take;
        s->queued += take;
        buf += take;
        len -= take;
    }
    /* Wake curl in large steps, not per row: each resume costs a syscall round. A full
     * queue wakes it whatever its size: with a cap below one chunk, waiting for a whole
     * chunk after pausing PostgreSQL would stall both sides for good. */
    if (s->queued >= a->cap) {
        pg_conn_pause(pg);
        wake_insert(s);
    } else if (s->queued >= a->chunk) {
        wake_insert(s);
    }
}

/* " (stream 2 of 4: k >= a AND k < b)" for messages about one stream of a split load. */
static const char *stream_label(const stream_t *s, char *buf, size_t len)
{
    if (s->a->nstreams < 2)
        return "";
    snprintf(buf, len, " (stream %d of %d: %s)", s->no, s->a->nstreams, s->range);
    return buf;
}

static void on_copy_done(pg_conn_t *pg, void *ud, int64_t rows, const char *err)
{
    (void)pg;
    stream_t *s = ud;
    attempt_t *a = s->a;
    char label[256];
    if (err) {
        fail(a, "PostgreSQL COPY of %s.%s failed: %s%s", a->table->schema, a->table->name, err,
             stream_label(s, label, sizeof label));
        return;
    }
    s->copy_done = true;
    s->copy_rows = rows;
    if (a->nstreams > 1)
        log_debug("run=%s table=%s event=stream_copied stream=%d rows=%lld", a->env->run_id,
                  a->table->name, s->no, (long long)rows);
    /* The transaction only read; end it so the connection can go. */
    close_conn(a, &s->pg);
    wake_insert(s);
}

static void after_count(attempt_t *a, const char *body);

static void on_insert_done(ch_request_t *req, void *ud, long status, const char *body, size_t len,
                           const char *err)
{
    (void)req, (void)status, (void)body, (void)len;
    stream_t *s = ud;
    attempt_t *a = s->a;
    char label[256];
    s->req = NULL;
    if (a->failing) {
        cleanup_and_fail(a);
    } else if (err) {
        fail(a, "ClickHouse insert into %s failed: %s%s", a->side, err,
             stream_label(s, label, sizeof label));
    } else if (!s->copy_done) {
        fail(a, "ClickHouse ended the insert before PostgreSQL ended the COPY%s",
             stream_label(s, label, sizeof label));
    } else {
        s->insert_done = true;
        if (--a->inserts_left == 0) {
            /* Every stream's COPY succeeded and its insert ended: check the sum. */
            a->copy_rows = 0;
            for (int i = 0; i < a->nstreams; i++)
                a->copy_rows += a->streams[i].copy_rows;
            char *sql = util_asprintf("SELECT count() FROM %s", a->side);
            if (sql)
                step_ch(a, sql, after_count);
            else
                fail(a, "out of memory");
            free(sql);
        }
    }
    unref(a);
}

/* Starts one stream: its INSERT, then its COPY (select is "SELECT exprs FROM schema.table",
 * filter the watermark condition or NULL). */
static void start_one(stream_t *s, const char *select, const char *filter, const char *insert)
{
    attempt_t *a = s->a;
    char *copy;
    if (filter && s->range)
        copy = util_asprintf("COPY (%s WHERE %s AND %s) TO STDOUT", select, filter, s->range);
    else if (filter || s->range)
        copy = util_asprintf("COPY (%s WHERE %s) TO STDOUT", select, filter ? filter : s->range);
    else
        copy = util_asprintf("COPY (%s) TO STDOUT", select);
    if (!copy) {
        fail(a, "out of memory");
        return;
    }
    log_debug("run=%s table=%s copy=%s", a->env->run_id, a->table->name, log_quote(copy));
    a->refs++;
    s->req = ch_insert(a->env->ch, insert, on_insert_read, on_insert_done, s);
    if (!s->req) {
        a->refs--;
        free(copy);
        fail(a, "out of memory");
        return;
    }
    if (pg_conn_copy_out(s->pg, copy, on_copy_data, on_copy_done, s) != 0)
        fail(a, "PostgreSQL: %s", pg_conn_error(s->pg));
    free(copy);
}

/* Starts every stream once the side table is ready and every connection has joined. */
static void start_streams(attempt_t *a)
{
    if (!a->side_ready || a->joining > 0 || a->failing)
        return;
    /* Build "SELECT exprs FROM schema.table" and the watermark condition. */
    size_t cap = 256;
    for (size_t i = 0; i < a->ncols; i++)
        cap += strlen(a->cols[i].map.select_expr) + strlen(a->cols[i].name) * 2 + 16;
    char *cols = malloc(cap), *names = malloc(cap);
    char *qs = typemap_pg_ident(a->table->schema), *qt = typemap_pg_ident(a->table->name);
    char *filter = NULL;
    if (cols && names) {
        size_t o = 0, p = 0;
        for (size_t i = 0; i < a->ncols; i++) {
            char *qi = ch_quote_ident(a->cols[i].name);
            o += (size_t)snprintf(cols + o, cap - o, "%s%s", i ? ", " : "",
                                  a->cols[i].map.select_expr);
            p += (size_t)snprintf(names + p, cap - p, "%s%s", i ? ", " : "", qi ? qi : "");
            free(qi);
        }
    }
    bool filter_ok = true;
    if (a->watermark) {
        char *qc = typemap_pg_ident(a->table->cursor), *lit = typemap_pg_literal(a->watermark);
        filter = (qc && lit) ? util_asprintf("%s >= %s", qc, lit) : NULL;
        filter_ok = filter != NULL;
        free(qc);
        free(lit);
    }
    char *select = (cols && qs && qt) ? util_asprintf("SELECT %s FROM %s.%s", cols, qs, qt) : NULL;
    char *insert =
        names ? util_asprintf("INSERT INTO %s (%s) FORMAT TabSeparated", a->side, names) : NULL;
    free(cols);
    free(names);
    free(qs);
    free(qt);
    if (!select || !insert || !filter_ok) {
        fail(a, "out of memory");
    } else {
        a->inserts_left = a->nstreams;
        for (int i = 0; i < a->nstreams && !a->failing; i++)
            start_one(&a->streams[i], select, filter, insert);
    }
    free(select);
    free(insert);
    free(filter);
}

/* The side table is created (and the watermark read): stream when the connections are in. */
static void start_stream(attempt_t *a)
{
    a->side_ready = true;
    start_streams(a);
}

/* ---- publish ----------------------------------------------------------------------- */

static void after_drop_old(attempt_t *a, const char *body)
{
    (void)body;
    finish(a, true);
}

static void after_publish(attempt_t *a, const char *body)
{
    (void)body;
    char *sql = util_asprintf("DROP TABLE IF EXISTS %s", a->side);
    if (!sql) {
        fail(a, "out of memory");
        return;
    }
    step_ch(a, sql, after_drop_old);
    free(sql);
}

static void after_rename_swap(attempt_t *a, const char *body)
{
    (void)body;
    char *sql = util_asprintf("DROP TABLE IF EXISTS %s", a->old);
    if (!sql) {
        fail(a, "out of memory");
        return;
    }
    step_ch(a, sql, after_drop_old);
    free(sql);
}

static void publish(attempt_t *a)
{
    char *sql;
    step_fn next;
    const char *how;
    if (!a->target_exists) {
        sql = util_asprintf("RENAME TABLE %s TO %s", a->side, a->target);
        next = after_drop_old;
        how = "rename";
    } else if (a->incremental && a->watermark && a->same_structure) {
        /* New and changed rows join the target; ReplacingMergeTree keeps the newest. */
        sql = util_asprintf("ALTER TABLE %s ATTACH PARTITION tuple() FROM %s", a->target, a->side);
        next = after_publish;
        how = "attach_partition";
    } else if (a->env->raw_atomic) {
        /* One atomic metadata swap; the side table then holds the old rows and is dropped. */
        sql = util_asprintf("EXCHANGE TABLES %s AND %s", a->side, a->target);
        next = after_publish;
        how = "exchange_tables";
    } else {
        /* Servers without Atomic databases (18.16): a rename pair. Not REPLACE PARTITION:
         * there the replaced part stays on disk, inactive, for old_parts_lifetime, and a
         * server killed in that window loads it again next to the new one (rows doubled,
         * seen in load_atomic). The rename pair is crash-safe: a leftover __eltd_old whose
         * target is missing is renamed back by the next run's setup step. */
        sql =
            util_asprintf("RENAME TABLE %s TO %s, %s TO %s", a->target, a->old, a->side, a->target);
        next = after_rename_swap;
        how = a->same_structure ? "rename_pair" : "rename_pair_structure_changed";
    }
    if (!sql) {
        fail(a, "out of memory");
        return;
    }
    log_info("run=%s table=%s event=publish method=%s rows=%lld", a->env->run_id, a->table->name,
             how, (long long)a->copy_rows);
    step_ch(a, sql, next);
    free(sql);
}

static void after_count(attempt_t *a, const char *body)
{
    long long n = strtoll(body, NULL, 10);
    if (n != a->copy_rows) {
        fail(a, "row count mismatch: PostgreSQL COPY sent %lld rows, %s holds %lld",
             (long long)a->copy_rows, a->side, n);
        return;
    }
    publish(a);
}

/* ---- preparing the side table ------------------------------------------------------ */

static void after_watermark(attempt_t *a, const char *body)
{
    long long count = strtoll(body, NULL, 10);
    const char *tab = strchr(body, '\t');
    /* A Nullable cursor that is NULL everywhere gives \N: no watermark, copy all. */
    if (count > 0 && tab && strncmp(tab + 1, "\\N", 2) != 0) {
        size_t n = strcspn(tab + 1, "\n");
        a->watermark = strndup(tab + 1, n);
    }
    log_info("run=%s table=%s event=watermark cursor=%s value=%s", a->env->run_id, a->table->name,
             a->table->cursor, log_quote(a->watermark ? a->watermark : ""));
    start_stream(a);
}

/* SHOW CREATE output with the side table's name put back to the target's. */
static bool ddl_equal(const attempt_t *a, const char *side_ddl)
{
    if (!a->target_ddl)
        return false;
    const char *p = strstr(side_ddl, LOAD_SIDE_SUFFIX);
    if (!p)
        return false;
    size_t pre = (size_t)(p - side_ddl), suf = strlen(LOAD_SIDE_SUFFIX);
    return strlen(a->target_ddl) == strlen(side_ddl) - suf &&
           !strncmp(a->target_ddl, side_ddl, pre) && !strcmp(a->target_ddl + pre, p + suf);
}

static void after_side_ddl(attempt_t *a, const char *body)
{
    a->same_structure = ddl_equal(a, body);
    if (a->target_exists && !a->same_structure)
        log_info("run=%s table=%s event=structure_changed action=full_reload", a->env->run_id,
                 a->table->name);
    if (a->incremental && a->target_exists && a->same_structure) {
        char *qc = ch_quote_ident(a->table->cursor);
        char *sql =
            qc ? util_asprintf("SELECT count(), toString(max(%s)) FROM %s", qc, a->target) : NULL;
        free(qc);
        if (!sql) {
            fail(a, "out of memory");
            return;
        }
        step_ch(a, sql, after_watermark);
        free(sql);
        return;
    }
    start_stream(a);
}

static void after_target_ddl(attempt_t *a, const char *body)
{
    a->target_ddl = strdup(body);
    char *sql = util_asprintf("SHOW CREATE TABLE %s", a->side);
    if (!a->target_ddl || !sql) {
        free(sql);
        fail(a, "out of memory");
        return;
    }
    step_ch(a, sql, after_side_ddl);
    free(sql);
}

static void after_create(attempt_t *a, const char *body)
{
    (void)body;
    if (!a->target_exists) {
        start_stream(a);
        return;
    }
    char *sql = util_asprintf("SHOW CREATE TABLE %s", a->target);
    if (!sql) {
        fail(a, "out of memory");
        return;
    }
    step_ch(a, sql, after_target_ddl);
    free(sql);
}

static void after_drop_side(attempt_t *a, const char *body)
{
    (void)body;
    step_ch(a, a->create_sql, after_create);
}

static void after_exists(attempt_t *a, const char *body)
{
    a->target_exists = body[0] == '1';
    char *sql = util_asprintf("DROP TABLE IF EXISTS %s", a->side);
    if (!sql) {
        fail(a, "out of memory");
        return;
    }
    step_ch(a, sql, after_drop_side);
    free(sql);
}

static const char *cast_for(const config_table_t *t, const char *column)
{
    for (size_t i = 0; i < t->ncasts; i++)
        if (!strcmp(t->casts[i].column, column))
            return t->casts[i].type;
    return NULL;
}

static const column_t *find_col(const attempt_t *a, const char *name)
{
    for (size_t i = 0; i < a->ncols; i++)
        if (!strcmp(a->cols[i].name, name))
            return &a->cols[i];
    return NULL;
}

/* CREATE TABLE for the side table from the mapped columns. */
static char *build_create(attempt_t *a, char *err, size_t errlen)
{
    const config_table_t *t = a->table;
    size_t cap = 1024;
    for (size_t i = 0; i < a->ncols; i++)
        cap += strlen(a->cols[i].name) * 2 + strlen(a->cols[i].map.ch_type) + 16;
    char *cols = malloc(cap), *key = malloc(cap);
    if (!cols || !key) {
        free(cols);
        free(key);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    size_t o = 0, k = 0;
    key[0] = '\0';
    for (size_t i = 0; i < a->ncols; i++) {
        char *q = ch_quote_ident(a->cols[i].name);
        o += (size_t)snprintf(cols + o, cap - o, "%s%s %s", i ? ", " : "", q ? q : "",
                              a->cols[i].map.ch_type);
        free(q);
    }
    /* The key: configured, else PostgreSQL's primary key in its order. */
    size_t nkey = 0;
    if (t->nkey) {
        for (size_t i = 0; i < t->nkey; i++) {
            const column_t *c = find_col(a, t->key[i]);
            if (!c) {
                snprintf(err, errlen, "table %s: key column %s does not exist", t->name, t->key[i]);
                goto bad;
            }
            if (!strncmp(c->map.ch_type, "Nullable(", 9)) {
                snprintf(err, errlen, "table %s: key column %s is nullable", t->name, t->key[i]);
                goto bad;
            }
            char *q = ch_quote_ident(t->key[i]);
            k += (size_t)snprintf(key + k, cap - k, "%s%s", nkey++ ? ", " : "", q ? q : "");
            free(q);
        }
    } else {
        for (int pos = 1; pos <= (int)a->ncols; pos++)
            for (size_t i = 0; i < a->ncols; i++)
                if (a->cols[i].pk_pos == pos) {
                    char *q = ch_quote_ident(a->cols[i].name);
                    k += (size_t)snprintf(key + k, cap - k, "%s%s", nkey++ ? ", " : "", q ? q : "");
                    free(q);
                }
    }
    /* The engine follows the table's mode, not this run's: a --full-refresh of an
     * incremental table must keep ReplacingMergeTree, or the next incremental run would
     * see a changed structure and reload everything again. */
    char engine[512];
    if (t->mode == LOAD_MODE_INCREMENTAL) {
        if (!nkey) {
            snprintf(err, errlen,
                     "table %s: incremental mode needs a primary key or a configured key", t->name);
            goto bad;
        }
        const column_t *cur = find_col(a, t->cursor);
        if (!cur) {
            snprintf(err, errlen, "table %s: cursor column %s does not exist", t->name, t->cursor);
            goto bad;
        }
        /* The cursor doubles as ReplacingMergeTree's version when the engine allows it;
         * otherwise the last inserted row wins, which is the newer one too. */
        const char *ty = cur->map.ch_type;
        bool version_ok =
            !strncmp(ty, "DateTime", 8) || !strncmp(ty, "Date", 4) || !strncmp(ty, "UInt", 4);
        char *qc = ch_quote_ident(t->cursor);
        snprintf(engine, sizeof engine, "ReplacingMergeTree(%s)", version_ok && qc ? qc : "");
        free(qc);
    } else {
        snprintf(engine, sizeof engine, "MergeTree()");
    }
    char *sql =
        util_asprintf("CREATE TABLE %s (%s) ENGINE = %s ORDER BY %s%s%s", a->side, cols, engine,
                      nkey > 1 ? "(" : "", nkey ? key : "tuple()", nkey > 1 ? ")" : "");
    free(cols);
    free(key);
    return sql;
bad:
    free(cols);
    free(key);
    return NULL;
}

/* ---- planning the streams ---------------------------------------------------------- */

/* "BEGIN ... SET TRANSACTION SNAPSHOT '...'": every connection reads the run's snapshot. */
static char *begin_sql(const attempt_t *a)
{
    if (!a->env->snapshot[0])
        return strdup("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    char *lit = typemap_pg_literal(a->env->snapshot);
    char *sql = lit ? util_asprintf("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "
                                    "SET TRANSACTION SNAPSHOT %s",
                                    lit)
                    : NULL;
    free(lit);
    return sql;
}

/* n streams; the first takes the attempt's connection. Each gets an equal share of
 * run.queue_bytes (at least 64 KiB), so a table's memory does not grow with its streams. */
static bool make_streams(attempt_t *a, int n)
{
    a->streams = calloc((size_t)n, sizeof *a->streams);
    if (!a->streams)
        return false;
    a->nstreams = n;
    for (int i = 0; i < n; i++) {
        a->streams[i].a = a;
        a->streams[i].no = i + 1;
    }
    a->streams[0].pg = a->pg;
    a->streams[0].joined = true;
    a->pg = NULL;
    size_t cap = (size_t)a->env->cfg->run.queue_bytes / (size_t)n;
    a->cap = cap < 65536 ? 65536 : cap;
    a->chunk = a->cap / 4 > CHUNK_MAX ? CHUNK_MAX : a->cap / 4 < CHUNK_MIN ? CHUNK_MIN : a->cap / 4;
    return true;
}

static void prepare_side(attempt_t *a);

static void one_stream(attempt_t *a)
{
    if (!make_streams(a, 1)) {
        fail(a, "out of memory");
        return;
    }
    prepare_side(a);
}

/* Logs why a load runs as one stream: at info when the config asked for more. */
static void no_split(attempt_t *a, const char *why)
{
    if (a->table->split > 1)
        log_info("run=%s table=%s event=no_split split=%lld reason=%s", a->env->run_id,
                 a->table->name, (long long)a->table->split, log_quote(why));
    else
        log_debug("run=%s table=%s event=no_split split=auto reason=%s", a->env->run_id,
                  a->table->name, log_quote(why));
    one_stream(a);
}

/* The column a load may be split on: the configured key when it is one column, else a
 * one-column primary key, and only an integer one. NULL with the reason otherwise. */
static const column_t *split_key(const attempt_t *a, const char **why)
{
    const config_table_t *t = a->table;
    const column_t *k = NULL;
    if (t->nkey > 1) {
        *why = "the configured key has several columns";
        return NULL;
    }
    if (t->nkey == 1) {
        k = find_col(a, t->key[0]);
    } else {
        int npk = 0;
        for (size_t i = 0; i < a->ncols; i++)
            if (a->cols[i].pk_pos) {
                npk++;
                k = &a->cols[i];
            }
        if (npk > 1) {
            *why = "the primary key has several columns";
            return NULL;
        }
    }
    if (!k) {
        *why = "no primary key and no configured key";
        return NULL;
    }
    if (!k->integer) {
        *why = "the key is not an integer column (int2, int4 or int8)";
        return NULL;
    }
    return k;
}

/* The exporting transaction died with its connection (PostgreSQL restarted, say): no
 * attempt can join it again. Forget it so retries read a snapshot of their own rather than
 * fail until the run gives up; the log says the run's tables may now differ in time. */
static void forget_lost_snapshot(attempt_t *a, const char *err)
{
    if (!a->env->snapshot[0] || !strstr(err, "invalid snapshot identifier"))
        return;
    log_warn("run=%s table=%s event=snapshot_lost snapshot=%s action=retries_use_own_snapshot",
             a->env->run_id, a->table->name, a->env->snapshot);
    a->env->snapshot[0] = '\0';
}

static void on_stream_begin(pg_conn_t *pg, void *ud, const PGresult *res, const char *err)
{
    (void)pg, (void)res;
    stream_t *s = ud;
    attempt_t *a = s->a;
    if (err) {
        forget_lost_snapshot(a, err);
        fail(a, "PostgreSQL: cannot join the run's snapshot: %s (stream %d of %d)", err, s->no,
             a->nstreams);
        return;
    }
    s->joined = true;
    a->joining--;
    start_streams(a);
}

static void on_stream_connected(pg_conn_t *pg, void *ud, const char *err)
{
    stream_t *s = ud;
    attempt_t *a = s->a;
    if (err) {
        fail(a, "PostgreSQL connection failed: %s (stream %d of %d)", err, s->no, a->nstreams);
        return;
    }
    char *sql = begin_sql(a);
    if (!sql || pg_conn_query(pg, sql, on_stream_begin, s) != 0)
        fail(a, "PostgreSQL: %s", sql ? pg_conn_error(pg) : "out of memory");
    free(sql);
}

/* Opens the connections of streams 2..n; they join the snapshot while ClickHouse prepares
 * the side table. */
static void open_streams(attempt_t *a)
{
    const char *keys[16], *values[16];
    char port[16], timeout[16];
    load_pg_params(a->env->cfg, keys, values, port, timeout);
    for (int i = 1; i < a->nstreams && !a->failing; i++) {
        stream_t *s = &a->streams[i];
        s->pg = pg_conn_new(a->env->loop);
        if (!s->pg) {
            fail(a, "out of memory");
            return;
        }
        a->refs++; /* held by the open connection */
        a->joining++;
        if (pg_conn_connect(s->pg, keys, values, a->env->cfg->source.connect_timeout,
                            on_stream_connected, s) != 0)
            fail(a, "PostgreSQL: %s", pg_conn_error(s->pg));
    }
}

/* Cuts [lo, hi] into n ranges of equal width: stream i gets col >= b(i) AND col < b(i+1)
 * with b(i) = lo + floor(i * (hi - lo + 1) / n); the first range is open below and the last
 * above, so the ranges cover every row whatever the bounds. No overflow over all of int8.
 * col is a quoted integer key, or ctid with page numbers: then a bound is the TID '(b,0)'. */
static bool set_ranges(attempt_t *a, const char *col, bool pages, int64_t lo, int64_t hi)
{
    int n = a->nstreams;
    uint64_t d = (uint64_t)hi - (uint64_t)lo; /* width - 1 */
    uint64_t q = d / (uint64_t)n, r = d % (uint64_t)n + 1;
    if (r == (uint64_t)n) {
        q++;
        r = 0;
    }
    char b[MAX_STREAMS + 1][32];
    for (int i = 1; i < n; i++) {
        long long v = (long long)((uint64_t)lo + (uint64_t)i * q + (uint64_t)i * r / (uint64_t)n);
        snprintf(b[i], sizeof b[i], pages ? "'(%lld,0)'" : "%lld", v);
    }
    for (int i = 0; i < n; i++) {
        stream_t *s = &a->streams[i];
        if (i == 0)
            s->range = util_asprintf("%s < %s", col, b[1]);
        else if (i == n - 1)
            s->range = util_asprintf("%s >= %s", col, b[i]);
        else
            s->range = util_asprintf("%s >= %s AND %s < %s", col, b[i], col, b[i + 1]);
        if (!s->range)
            return false;
    }
    return true;
}

/* The number of streams for a table of about est rows (-1: unknown) over at most units
 * ranges (pages, or key values); below 2, why is set. */
static int64_t stream_count(const attempt_t *a, int64_t est, uint64_t units, char *why,
                            size_t whylen)
{
    int64_t n = a->table->split;
    if (n == 0) {
        n = est < 0 ? 0 : est / a->env->cfg->run.split_rows;
        if (n > AUTO_MAX_STREAMS)
            n = AUTO_MAX_STREAMS;
        if (n < 2) {
            if (est < 0)
                snprintf(why, whylen, "no row estimate (the table was never analysed)");
            else
                snprintf(why, whylen, "about %lld rows, below 2 x run.split_rows", (long long)est);
            return n;
        }
    }
    if ((uint64_t)n > units)
        n = (int64_t)units; /* no more ranges than pages or key values */
    if (n < 2)
        snprintf(why, whylen, a->split_col ? "the key has one value" : "the table has one page");
    return n;
}

/* Splits [lo, hi] (keys, or pages 0..count-1) for a table of about est rows. */
static void split_on(attempt_t *a, int64_t lo, int64_t hi, int64_t est)
{
    const column_t *k = a->split_col;
    uint64_t d = (uint64_t)hi - (uint64_t)lo;
    uint64_t units = d == UINT64_MAX ? UINT64_MAX : d + 1;
    /* A key never analysed: the width of its range stands for the rows. */
    if (est < 0 && k)
        est = units > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)units;
    char why[128];
    int64_t n = stream_count(a, est, units, why, sizeof why);
    if (n < 2) {
        no_split(a, why);
        return;
    }
    if (!make_streams(a, (int)n)) {
        fail(a, "out of memory");
        return;
    }
    if (k)
        log_info("run=%s table=%s event=split key=%s streams=%d min=%lld max=%lld "
                 "estimated_rows=%lld queue_bytes=%zu",
                 a->env->run_id, a->table->name, k->name, a->nstreams, (long long)lo, (long long)hi,
                 (long long)est, a->cap);
    else
        log_info("run=%s table=%s event=split by=pages streams=%d pages=%lld "
                 "estimated_rows=%lld queue_bytes=%zu",
                 a->env->run_id, a->table->name, a->nstreams, (long long)hi + 1, (long long)est,
                 a->cap);
    char *col = k ? typemap_pg_ident(k->name) : strdup("ctid");
    bool ok = col && set_ranges(a, col, !k, lo, hi);
    free(col);
    if (!ok) {
        fail(a, "out of memory");
        return;
    }
    open_streams(a);
    if (!a->failing)
        prepare_side(a);
}

/* EXPLAIN's first line: "Seq Scan on t  (cost=0.00..123.00 rows=4567 width=28)". */
static void on_row_estimate(pg_conn_t *pg, void *ud, const PGresult *res, const char *err)
{
    (void)pg;
    attempt_t *a = ud;
    const char *line = !err && PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "";
    const char *rows = strstr(line, " rows=");
    split_on(a, a->bound_lo, a->bound_hi, rows ? strtoll(rows + 6, NULL, 10) : -1);
}

static void on_bounds(pg_conn_t *pg, void *ud, const PGresult *res, const char *err)
{
    attempt_t *a = ud;
    const column_t *k = a->split_col;
    if (err) {
        fail(a, "PostgreSQL: reading the %s of %s.%s failed: %s", k ? "key range" : "page count",
             a->table->schema, a->table->name, err);
        return;
    }
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0) || PQgetisnull(res, 0, 1)) {
        no_split(a, "the table is empty");
        return;
    }
    /* Keys: min and max. Pages: 0 and the page count - 1 (may be -1: no page at all). */
    int64_t lo = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    int64_t hi = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    if (hi < lo) {
        no_split(a, "the table is empty");
        return;
    }
    int64_t est = PQgetisnull(res, 0, 2) ? -1 : strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    if (est >= 0 || k || a->table->split != 0) {
        split_on(a, lo, hi, est);
        return;
    }
    /* split: auto on pages of a table never analysed (reltuples -1, as after a bulk load
     * until autovacuum comes by): the planner still estimates its rows from its pages. */
    a->bound_lo = lo;
    a->bound_hi = hi;
    char *qs = typemap_pg_ident(a->table->schema), *qt = typemap_pg_ident(a->table->name);
    char *sql = (qs && qt) ? util_asprintf("EXPLAIN SELECT * FROM %s.%s", qs, qt) : NULL;
    free(qs);
    free(qt);
    if (!sql || pg_conn_query(pg, sql, on_row_estimate, a) != 0)
        fail(a, "PostgreSQL: %s", sql ? pg_conn_error(pg) : "out of memory");
    free(sql);
}

/* Why the table's heap pages cannot be split into ranges, NULL when they can: TID range
 * scans came with PostgreSQL 14, and only a table or materialized view has pages of its
 * own (a view has none, a partitioned table's are in its partitions). */
static const char *pages_unavailable(attempt_t *a)
{
    if (PQserverVersion(pg_conn_raw(a->pg)) < 140000)
        return "page ranges need PostgreSQL 14 or later";
    if (a->relkind != 'r' && a->relkind != 'm')
        return "page ranges need a table or materialized view";
    return NULL;
}

/* One stream, or a split: then the bounds come first, read in the snapshot on the first
 * connection: the page count, or the integer key's min and max. */
static void plan_streams(attempt_t *a)
{
    if (a->table->split == 1) {
        one_stream(a);
        return;
    }
    if (!a->env->snapshot[0]) {
        no_split(a, "no exported snapshot to share between connections");
        return;
    }
    if (a->table->split == 0 && a->incremental) {
        no_split(a, "auto does not split incremental runs");
        return;
    }
    const char *why = pages_unavailable(a), *key_why = NULL;
    const column_t *k = NULL;
    if (a->table->split_by == SPLIT_BY_KEY || (a->table->split_by == SPLIT_BY_AUTO && why)) {
        k = split_key(a, &key_why);
        if (!k && a->table->split_by == SPLIT_BY_AUTO) {
            char both[256];
            snprintf(both, sizeof both, "%s; %s", why, key_why);
            no_split(a, both);
            return;
        }
        why = key_why;
    }
    if (!k && why) {
        no_split(a, why);
        return;
    }
    a->split_col = k;
    char *qs = typemap_pg_ident(a->table->schema), *qt = typemap_pg_ident(a->table->name);
    char *qk = k ? typemap_pg_ident(k->name) : strdup("");
    char *name = (qs && qt) ? util_asprintf("%s.%s", qs, qt) : NULL;
    char *rel = name ? typemap_pg_literal(name) : NULL;
    char *sql = NULL;
    if (rel && qk && k)
        sql = util_asprintf("SELECT min(%s)::int8, max(%s)::int8, (SELECT reltuples::int8 FROM "
                            "pg_class WHERE oid = %s::regclass AND reltuples >= 0) FROM %s",
                            qk, qk, rel, name);
    else if (rel && qk)
        sql = util_asprintf("SELECT 0, pg_relation_size(%s::regclass) / "
                            "current_setting('block_size')::int8 - 1, (SELECT reltuples::int8 "
                            "FROM pg_class WHERE oid = %s::regclass AND reltuples >= 0)",
                            rel, rel);
    free(qs);
    free(qt);
    free(qk);
    free(name);
    free(rel);
    if (!sql || pg_conn_query(a->pg, sql, on_bounds, a) != 0)
        fail(a, "PostgreSQL: %s", sql ? pg_conn_error(a->pg) : "out of memory");
    free(sql);
}

static void on_catalog(pg_conn_t *pg, void *ud, const PGresult *res, const char *err)
{
    (void)pg;
    attempt_t *a = ud;
    if (err) {
        fail(a, "PostgreSQL catalog query for %s.%s failed: %s", a->table->schema, a->table->name,
             err);
        return;
    }
    int n = PQntuples(res);
    if (n == 0) {
        fail(a, "table %s.%s not found in PostgreSQL (or it has no columns)", a->table->schema,
             a->table->name);
        return;
    }
    a->cols = calloc((size_t)n, sizeof *a->cols);
    if (!a->cols) {
        fail(a, "out of memory");
        return;
    }
    a->relkind = PQgetvalue(res, 0, 8)[0];
    char msg[512];
    for (int i = 0; i < n; i++) {
        const char *name = PQgetvalue(res, i, 0);
        const char *typname = PQgetvalue(res, i, 1);
        const char *base = PQgetvalue(res, i, 6);
        typemap_column_t tc = {
            .name = name,
            .typname = *base ? base : typname,
            .typtype = PQgetvalue(res, i, 5)[0],
            .precision = PQgetisnull(res, i, 3) ? -1 : atoi(PQgetvalue(res, i, 3)),
            .scale = PQgetisnull(res, i, 4) ? -1 : atoi(PQgetvalue(res, i, 4)),
            .notnull = PQgetvalue(res, i, 2)[0] == 't',
            .cast = cast_for(a->table, name),
        };
        column_t *c = &a->cols[a->ncols];
        if (!(c->name = strdup(name))) {
            fail(a, "out of memory");
            return;
        }
        a->ncols++;
        c->pk_pos = PQgetisnull(res, i, 7) ? 0 : atoi(PQgetvalue(res, i, 7));
        c->integer = !strcmp(tc.typname, "int2") || !strcmp(tc.typname, "int4") ||
                     !strcmp(tc.typname, "int8");
        if (!typemap_column(&tc, a->table->name, &a->env->caps, &c->map, msg, sizeof msg)) {
            fail(a, "%s", msg);
            return;
        }
    }
    for (size_t i = 0; i < a->table->ncasts; i++)
        if (!find_col(a, a->table->casts[i].column)) {
            fail(a, "table %s: cast for unknown column %s", a->table->name,
                 a->table->casts[i].column);
            return;
        }
    a->create_sql = build_create(a, msg, sizeof msg);
    if (!a->create_sql) {
        fail(a, "%s", msg);
        return;
    }
    plan_streams(a);
}

/* Is there a target already? Then drop a leftover side table and create it afresh. EXISTS
 * TABLE asks about this one table: a scan of system.tables fails on ClickHouse 18.16 when
 * another load drops its __eltd_old during the scan ("Table …__eltd_old doesn't exist", seen
 * in serve_api's parallel loads). */
static void prepare_side(attempt_t *a)
{
    char *sql = util_asprintf("EXISTS TABLE %s", a->target);
    if (!sql) {
        fail(a, "out of memory");
        return;
    }
    step_ch(a, sql, after_exists);
    free(sql);
}

static void on_begin(pg_conn_t *pg, void *ud, const PGresult *res, const char *err)
{
    (void)res;
    attempt_t *a = ud;
    if (err) {
        forget_lost_snapshot(a, err);
        fail(a, "PostgreSQL: cannot join the run's snapshot: %s", err);
        return;
    }
    char *rel = NULL;
    {
        char *qs = typemap_pg_ident(a->table->schema), *qt = typemap_pg_ident(a->table->name);
        char *name = (qs && qt) ? util_asprintf("%s.%s", qs, qt) : NULL;
        rel = name ? typemap_pg_literal(name) : NULL;
        free(qs);
        free(qt);
        free(name);
    }
    /* Columns in order with type, nullability, numeric precision/scale, the base type of
     * domains and the 1-based position in the primary key (indkey is an int2vector,
     * subscripted from 0: array_position alone made the first key column look like no
     * key column at all) and the relation's kind (page ranges need a heap of its own). A domain
     * carries its own typmod and NOT NULL. to_regclass: a missing table is an empty answer, not an
     * error that aborts the transaction. */
    char *sql =
        rel ? util_asprintf("SELECT a.attname, t.typname, a.attnotnull OR t.typnotnull, "
                            "CASE WHEN m.tm >= 4 AND coalesce(bt.typname, t.typname) = "
                            "'numeric' THEN ((m.tm - 4) >> 16) & 65535 END, "
                            "CASE WHEN m.tm >= 4 AND coalesce(bt.typname, t.typname) = "
                            "'numeric' THEN (m.tm - 4) & 65535 END, "
                            "t.typtype, coalesce(bt.typname, ''), "
                            "(SELECT array_position(i.indkey::int2[], a.attnum) - "
                            "array_lower(i.indkey::int2[], 1) + 1 FROM pg_index i "
                            "WHERE i.indrelid = a.attrelid AND i.indisprimary), "
                            "(SELECT c.relkind FROM pg_class c WHERE c.oid = a.attrelid) "
                            "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                            "LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype "
                            "CROSS JOIN LATERAL (SELECT CASE WHEN t.typtype = 'd' THEN "
                            "t.typtypmod ELSE a.atttypmod END AS tm) m "
                            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT "
                            "a.attisdropped ORDER BY a.attnum",
                            rel)
            : NULL;
    free(rel);
    if (!sql || pg_conn_query(pg, sql, on_catalog, a) != 0)
        fail(a, "PostgreSQL: %s", sql ? pg_conn_error(pg) : "out of memory");
    free(sql);
}

static void on_connected(pg_conn_t *pg, void *ud, const char *err)
{
    attempt_t *a = ud;
    if (err) {
        fail(a, "PostgreSQL connection failed: %s", err);
        return;
    }
    char *sql = begin_sql(a);
    if (!sql || pg_conn_query(pg, sql, on_begin, a) != 0)
        fail(a, "PostgreSQL: %s", sql ? pg_conn_error(pg) : "out of memory");
    free(sql);
}

/* ---- task ops ---------------------------------------------------------------------- */

static void load_start(dag_task_t *t)
{
    load_task_t *lt = t->impl;
    lt->task = t;
    attempt_t *a = calloc(1, sizeof *a);
    if (!a) {
        dag_task_finish(t, false, "out of memory");
        return;
    }
    a->lt = lt;
    a->env = lt->env;
    a->table = lt->table;
    a->refs = 1;
    a->cap = (size_t)lt->env->cfg->run.queue_bytes;
    a->t0 = uv_now(lt->env->loop);
    a->incremental = lt->table->mode == LOAD_MODE_INCREMENTAL && !lt->env->full_refresh;
    lt->att = a;
    const char *db = lt->env->cfg->warehouse.raw_database;
    char *qdb = ch_quote_ident(db), *qt = ch_quote_ident(lt->table->target);
    char *side_name = util_asprintf("%s%s", lt->table->target, LOAD_SIDE_SUFFIX);
    char *old_name = util_asprintf("%s%s", lt->table->target, LOAD_OLD_SUFFIX);
    char *qs = side_name ? ch_quote_ident(side_name) : NULL;
    char *qo = old_name ? ch_quote_ident(old_name) : NULL;
    if (qdb && qt && qs && qo) {
        a->target = util_asprintf("%s.%s", qdb, qt);
        a->side = util_asprintf("%s.%s", qdb, qs);
        a->old = util_asprintf("%s.%s", qdb, qo);
    }
    free(qdb);
    free(qt);
    free(qs);
    free(qo);
    free(side_name);
    free(old_name);
    if (!a->target || !a->side || !a->old) {
        free(a->side);
        a->side = NULL;
        fail(a, "out of memory");
        return;
    }
    /* The side table is only ours to drop once we created it in this attempt; until the
     * catalog is read, a failure has nothing to clean up. It is dropped anyway before the
     * CREATE, so leftovers of a killed process go too. */
    a->pg = pg_conn_new(lt->env->loop);
    if (!a->pg) {
        fail(a, "out of memory");
        return;
    }
    a->refs++; /* held by the open connection */
    const char *keys[16], *values[16];
    char port[16], timeout[16];
    load_pg_params(lt->env->cfg, keys, values, port, timeout);
    if (pg_conn_connect(a->pg, keys, values, lt->env->cfg->source.connect_timeout, on_connected,
                        a) != 0)
        fail(a, "PostgreSQL: %s", pg_conn_error(a->pg));
}

static void load_cancel(dag_task_t *t)
{
    load_task_t *lt = t->impl;
    if (lt->att)
        fail(lt->att, "%s", t->timed_out ? "attempt timed out" : "cancelled");
}

static void load_destroy(dag_task_t *t)
{
    free(t->impl);
}

const dag_task_ops_t load_task_ops = {load_start, load_cancel, load_destroy};

void *load_task_new(load_env_t *env, const config_table_t *table)
{
    load_task_t *lt = calloc(1, sizeof *lt);
    if (!lt)
        return NULL;
    lt->env = env;
    lt->table = table;
    return lt;
}
