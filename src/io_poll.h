/* io_poll.h — the one socket watcher of eltd: a uv_poll_t that remembers the events it
 * was started with, so owners (the libpq and the curl glue) say what they want after every
 * step and the handle is only touched when that changes. It is embedded by its owner, who
 * finds itself through data (or container_of) and is freed only in the close callback. */
#ifndef ELTD_IO_POLL_H
#define ELTD_IO_POLL_H

#include <stdbool.h>
#include <uv.h>

#define IO_POLL_MUST_CHECK __attribute__((warn_unused_result))

typedef struct io_poll io_poll_t;

/* Readiness (status 0, events UV_READABLE/UV_WRITABLE) or a socket error (status < 0,
 * e.g. UV_EBADF for a refused connect): libuv has then stopped the watcher, and the wanted
 * set reads as 0 so that the next io_poll_want starts it again. */
typedef void (*io_poll_cb)(io_poll_t *p, int status, int events);
/* The handle has left the loop: the owner may free the memory holding p. */
typedef void (*io_poll_close_cb)(io_poll_t *p);

struct io_poll {
    uv_poll_t handle;          /* the libuv watcher; private */
    io_poll_cb cb;             /* readiness callback */
    io_poll_close_cb close_cb; /* set by io_poll_close */
    void *data;                /* the owner's, untouched by io_poll */
    int fd;                    /* the socket the watcher was initialised on */
    int events;                /* events currently started, 0 when stopped */
    bool closing;              /* io_poll_close was called */
};

/* Watches fd (stopped until io_poll_want). Returns 0, or a libuv error and then nothing is
 * on the loop and no close is needed. */
IO_POLL_MUST_CHECK int io_poll_init(uv_loop_t *loop, io_poll_t *p, int fd, io_poll_cb cb);

/* Watches for events (UV_READABLE|UV_WRITABLE, 0 = stop); calls libuv only when that
 * differs from what is started. Returns 0 or a libuv error (the old set stays then). */
IO_POLL_MUST_CHECK int io_poll_want(io_poll_t *p, int events);

/* io_poll_want(p, 0), which cannot fail. */
void io_poll_stop(io_poll_t *p);

/* io_poll_want that re-registers the fd with the kernel even when the set is unchanged:
 * for a socket that was closed and reopened under the same fd number, which epoll forgot. */
IO_POLL_MUST_CHECK int io_poll_rearm(io_poll_t *p, int events);

/* Stops and closes the watcher; close_cb runs from the loop. Safe from inside the poll
 * callback; no poll callback runs afterwards. A second call does nothing. */
void io_poll_close(io_poll_t *p, io_poll_close_cb close_cb);

#endif
