/* ch_client.h — ClickHouse over HTTP through one libcurl multi handle driven by the libuv
 * loop (CURLMOPT_SOCKETFUNCTION with uv_poll_t, CURLMOPT_TIMERFUNCTION with uv_timer_t).
 * Statements are POSTed one per request; inserts stream their body from a read callback
 * that can pause and be resumed, so memory stays flat whatever the size. */
#ifndef ELTD_CH_CLIENT_H
#define ELTD_CH_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct ch_client ch_client_t;
typedef struct ch_request ch_request_t;

typedef struct ch_client_opts {
    const char *url;          /* http://host:port (a path or trailing slash is allowed) */
    const char *user;         /* sent as X-ClickHouse-User / basic auth, never in the URL */
    const char *password;
    double connect_timeout;   /* seconds */
    double query_timeout;     /* seconds for one request, 0 = none */
} ch_client_opts_t;

/* Called exactly once per request. err == NULL means HTTP 200 and no exception text in the
 * body; otherwise err holds ClickHouse's exception text (e.g. "Code: 60, e.displayText() =
 * DB::Exception: Table raw.x doesn't exist") or curl's error, and status the HTTP status
 * (0 when no response). body (NUL-terminated, may be empty) is only valid during the call.
 * The request is freed after the callback returns. */
typedef void (*ch_done_cb)(ch_request_t *req, void *ud, long status, const char *body,
                           size_t len, const char *err);

/* Fills buf with up to max bytes of insert body. Return the count; 0 ends the body;
 * CH_READ_PAUSE pauses the upload until ch_request_resume; CH_READ_ABORT aborts the request
 * (done is then called with an error). */
#define CH_READ_PAUSE ((size_t)-1)
#define CH_READ_ABORT ((size_t)-2)
typedef size_t (*ch_read_cb)(void *ud, char *buf, size_t max);

__attribute__((warn_unused_result)) ch_client_t *ch_client_new(uv_loop_t *loop,
                                                               const ch_client_opts_t *opts,
                                                               char *err, size_t errlen);

/* Runs one statement (POSTed as the body). settings is an optional URL query fragment such
 * as "wait_end_of_query=1" appended to the request URL. Returns NULL on out-of-memory. */
ch_request_t *ch_query(ch_client_t *c, const char *sql, const char *settings, ch_done_cb done,
                       void *ud);

/* Streams an insert: insert_sql (e.g. "INSERT INTO raw.t FORMAT TabSeparated") goes in the
 * URL, the body comes from read (chunked transfer encoding). */
ch_request_t *ch_insert(ch_client_t *c, const char *insert_sql, ch_read_cb read,
                        ch_done_cb done, void *ud);

/* Resumes an upload paused by CH_READ_PAUSE. Safe to call when not paused. */
void ch_request_resume(ch_request_t *req);

/* Aborts a request; done is called once (from a later loop iteration, never inside this
 * call) with err "cancelled". */
void ch_request_cancel(ch_request_t *req);

/* Cancels every request (their done callbacks run with "cancelled"), closes the handles,
 * frees the client, then calls closed(ud) if not NULL. */
void ch_client_close(ch_client_t *c, void (*closed)(void *ud), void *ud);

/* Percent-encodes s for a URL query parameter into a malloc'd string. */
char *ch_url_escape(const char *s);

/* Quotes s as a ClickHouse string literal ('...' with \\ and \' escapes), malloc'd. */
char *ch_quote_string(const char *s);
/* Quotes s as a ClickHouse identifier (`...`), malloc'd. */
char *ch_quote_ident(const char *s);

#endif
