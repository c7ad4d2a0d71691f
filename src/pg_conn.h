/* pg_conn.h — one nonblocking libpq connection driven by the libuv loop: connect, run
 * statements, and stream COPY OUT with pause/resume for back-pressure. Nothing here
 * ever blocks the loop (PQconnectStartParams/PQconnectPoll, PQsendQuery, PQconsumeInput,
 * PQgetCopyData(async=1), all driven by a uv_poll_t on PQsocket). */
#ifndef ELTD_PG_CONN_H
#define ELTD_PG_CONN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct pg_conn pg_conn_t;

/* Connection established (err == NULL) or failed (err = libpq's message, trimmed). */
typedef void (*pg_conn_cb)(pg_conn_t *pg, void *ud, const char *err);
/* A statement finished. res is the LAST result of the statement(s); it stays owned by
 * pg_conn and is cleared after the callback returns. On failure res is NULL and err holds
 * the server's message (PQresultErrorMessage / PQerrorMessage, trimmed). */
typedef void (*pg_result_cb)(pg_conn_t *pg, void *ud, const PGresult *res, const char *err);
/* One COPY row (or a few), exactly as the server sent it; buf is only valid during the call. */
typedef void (*pg_copy_data_cb)(pg_conn_t *pg, void *ud, const char *buf, size_t len);
/* The COPY ended. rows is the count from the final "COPY n" command tag. err != NULL when
 * PostgreSQL's final result was not PGRES_COMMAND_OK (e.g. backend terminated mid-COPY):
 * only this tells a truncated stream from a complete one. */
typedef void (*pg_copy_done_cb)(pg_conn_t *pg, void *ud, int64_t rows, const char *err);
/* The connection is fully closed; the pg_conn_t has been freed after this returns. */
typedef void (*pg_closed_cb)(void *ud);

/* Allocates a connection bound to loop. Returns NULL on out-of-memory. */
pg_conn_t *pg_conn_new(uv_loop_t *loop);

/* Starts connecting with libpq keyword/value arrays (NULL-terminated, as for
 * PQconnectStartParams). cb is called exactly once unless this returns non-zero.
 * timeout_s bounds the whole connect. Returns 0, or -1 with pg_conn_error() set. */
__attribute__((warn_unused_result)) int pg_conn_connect(pg_conn_t *pg, const char *const *keys,
                                                        const char *const *values,
                                                        double timeout_s, pg_conn_cb cb,
                                                        void *ud);

/* Sends sql (may hold several statements separated by ';') and calls cb exactly once
 * when every result has been read: err is the first error, else res is the last result.
 * One operation at a time per connection. Returns 0 or -1 (not connected / busy). */
__attribute__((warn_unused_result)) int pg_conn_query(pg_conn_t *pg, const char *sql,
                                                      pg_result_cb cb, void *ud);

/* Sends "COPY (...) TO STDOUT" (sql is the whole COPY statement) and streams rows to data
 * as they arrive, then calls done exactly once. Returns 0 or -1. */
__attribute__((warn_unused_result)) int pg_conn_copy_out(pg_conn_t *pg, const char *sql,
                                                         pg_copy_data_cb data,
                                                         pg_copy_done_cb done, void *ud);

/* Back-pressure: after pause, no data callback is made (may be called from inside the data
 * callback: the current batch stops after that row) and the socket is not polled for
 * reading. resume first delivers the rows libpq already buffered (deferred to the next loop
 * iteration, never re-entrant), then re-arms the poll. */
void pg_conn_pause(pg_conn_t *pg);
void pg_conn_resume(pg_conn_t *pg);
bool pg_conn_paused(const pg_conn_t *pg);

/* Closes the connection: in-flight operations are abandoned WITHOUT their callbacks being
 * called; closed (may be NULL) is called once the handles are closed and the struct freed.
 * Safe to call from inside any pg_conn callback. */
void pg_conn_close(pg_conn_t *pg, pg_closed_cb closed, void *ud);

/* Last error text (never NULL), and the backend's PID (for tests that terminate it). */
const char *pg_conn_error(const pg_conn_t *pg);
int pg_conn_backend_pid(const pg_conn_t *pg);
PGconn *pg_conn_raw(pg_conn_t *pg); /* for PQescapeIdentifier and the like, never for I/O */

#endif
