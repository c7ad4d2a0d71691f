/* io_poll.c — a uv_poll_t that tracks its wanted events (see io_poll.h): start/stop only
 * on a change, a forced re-registration for a reused fd number, and the bookkeeping for
 * libuv stopping the watcher on a socket error. */
#include "io_poll.h"

#include <stddef.h>

static io_poll_t *from_handle(uv_handle_t *h)
{
    return (io_poll_t *)(void *)((char *)h - offsetof(io_poll_t, handle));
}

static void on_uv_poll(uv_poll_t *h, int status, int events)
{
    io_poll_t *p = from_handle((uv_handle_t *)h);
    /* libuv reports POLLERR as UV_EBADF after stopping the watcher itself. */
    if (status < 0)
        p->events = 0;
    p->cb(p, status, events);
}

static void on_uv_closed(uv_handle_t *h)
{
    io_poll_t *p = from_handle(h);
    /* The owner may free p: nothing touches it after this call. */
    if (p->close_cb)
        p->close_cb(p);
}

int io_poll_init(uv_loop_t *loop, io_poll_t *p, int fd, io_poll_cb cb)
{
    int rc = uv_poll_init_socket(loop, &p->handle, fd);
    if (rc != 0)
        return rc;
    p->cb = cb;
    p->close_cb = NULL;
    p->fd = fd;
    p->events = 0;
    p->closing = false;
    return 0;
}

void io_poll_stop(io_poll_t *p)
{
    if (p->closing || p->events == 0)
        return;
    uv_poll_stop(&p->handle);
    p->events = 0;
}

int io_poll_want(io_poll_t *p, int events)
{
    if (p->closing || events == p->events)
        return 0;
    if (events == 0) {
        io_poll_stop(p);
        return 0;
    }
    int rc = uv_poll_start(&p->handle, events, on_uv_poll);
    if (rc == 0)
        p->events = events;
    return rc;
}

int io_poll_rearm(io_poll_t *p, int events)
{
    /* Stopping drops libuv's record of the registration, so the start below makes the
     * next loop iteration add the fd to epoll afresh. */
    io_poll_stop(p);
    return io_poll_want(p, events);
}

void io_poll_close(io_poll_t *p, io_poll_close_cb close_cb)
{
    if (p->closing)
        return;
    p->closing = true;
    p->close_cb = close_cb;
    p->events = 0;
    uv_close((uv_handle_t *)&p->handle, on_uv_closed);
}
