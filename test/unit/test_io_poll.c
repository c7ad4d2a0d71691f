/* test_io_poll.c — the poll wrapper on socketpairs: readable and writable events, the
 * wanted set (start, stop, change), libuv's error stop on a refused connect, re-arming a
 * socket reopened under the same fd number, and closing (and freeing the owner) from inside
 * the callback. Every test closes its loop completely (uv_loop_close == 0). */
#include "io_poll.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

/* ------------------------------------------------------------------ harness */

typedef struct {
    io_poll_t io;
    int calls;      /* poll callbacks so far */
    int status;     /* of the last callback */
    int events;     /* of the last callback */
    int stop_after; /* want 0 once calls reaches this (0 = never) */
    bool *closed;   /* set by the close callback */
} owner_t;

static void on_owner_event(io_poll_t *p, int status, int events)
{
    owner_t *o = p->data;
    o->calls++;
    o->status = status;
    o->events = events;
    if (o->stop_after && o->calls >= o->stop_after)
        assert_int_equal(io_poll_want(p, 0), 0);
}

static void on_owner_closed(io_poll_t *p)
{
    owner_t *o = p->data;
    *o->closed = true;
}

static void on_owner_freed(io_poll_t *p)
{
    owner_t *o = p->data;
    *o->closed = true;
    free(o);
}

static void on_close_and_free(io_poll_t *p, int status, int events)
{
    owner_t *o = p->data;
    o->calls++;
    o->status = status;
    o->events = events;
    bool *closed = o->closed;
    io_poll_close(p, on_owner_freed);
    /* A second close, still inside the callback, must do nothing. */
    io_poll_close(p, on_owner_freed);
    assert_false(*closed);
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* A loop with a ticking timer that wakes it, so deadlines are checked even when nothing
 * happens. */
typedef struct {
    uv_loop_t loop;
    uv_timer_t tick;
} ctx_t;

static void ctx_init(ctx_t *c)
{
    assert_int_equal(uv_loop_init(&c->loop), 0);
    assert_int_equal(uv_timer_init(&c->loop, &c->tick), 0);
    assert_int_equal(uv_timer_start(&c->tick, on_tick, 20, 20), 0);
}

static void ctx_done(ctx_t *c)
{
    uv_close((uv_handle_t *)&c->tick, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&c->loop), 0);
}

/* Runs the loop until *flag or a 5 s deadline; returns *flag. */
static bool run_until(ctx_t *c, const bool *flag)
{
    uv_update_time(&c->loop);
    uint64_t deadline = uv_now(&c->loop) + 5000;
    while (!*flag && uv_now(&c->loop) < deadline)
        uv_run(&c->loop, UV_RUN_ONCE);
    return *flag;
}

/* Runs the loop until the owner has seen calls callbacks or a 5 s deadline. */
static bool run_until_calls(ctx_t *c, const owner_t *o, int calls)
{
    uv_update_time(&c->loop);
    uint64_t deadline = uv_now(&c->loop) + 5000;
    while (o->calls < calls && uv_now(&c->loop) < deadline)
        uv_run(&c->loop, UV_RUN_ONCE);
    return o->calls >= calls;
}

/* A few loop turns: enough for an armed watcher on a ready socket to fire. */
static void spin(ctx_t *c)
{
    for (int i = 0; i < 5; i++)
        uv_run(&c->loop, UV_RUN_NOWAIT);
}

static void make_pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

static void close_and_finish(ctx_t *c, owner_t *o, bool *closed)
{
    o->closed = closed;
    io_poll_close(&o->io, on_owner_closed);
    assert_true(run_until(c, closed));
    ctx_done(c);
}

/* ------------------------------------------------------------------ tests */

/* Writable at once, readable only after the peer writes, nothing once stopped. */
static void test_events_follow_wanted_set(void **state)
{
    (void)state;
    ctx_t c;
    int sv[2];
    owner_t o = {0};
    bool closed = false;
    ctx_init(&c);
    make_pair(sv);
    assert_int_equal(io_poll_init(&c.loop, &o.io, sv[0], on_owner_event), 0);
    o.io.data = &o;
    assert_int_equal(o.io.fd, sv[0]);
    assert_int_equal(o.io.events, 0);
    assert_false(uv_is_active((uv_handle_t *)&o.io.handle));

    /* Stopped: no callback even though the socket is writable. */
    spin(&c);
    assert_int_equal(o.calls, 0);

    assert_int_equal(io_poll_want(&o.io, UV_WRITABLE), 0);
    assert_int_equal(o.io.events, UV_WRITABLE);
    assert_true(uv_is_active((uv_handle_t *)&o.io.handle));
    o.stop_after = 1;
    assert_true(run_until_calls(&c, &o, 1));
    assert_int_equal(o.status, 0);
    assert_true(o.events & UV_WRITABLE);
    assert_false(o.events & UV_READABLE);
    assert_int_equal(o.io.events, 0);
    assert_false(uv_is_active((uv_handle_t *)&o.io.handle));
    spin(&c);
    assert_int_equal(o.calls, 1);

    /* Readable: nothing until the peer writes. */
    o.stop_after = 0;
    assert_int_equal(io_poll_want(&o.io, UV_READABLE), 0);
    spin(&c);
    assert_int_equal(o.calls, 1);
    assert_int_equal(write(sv[1], "x", 1), 1);
    assert_true(run_until_calls(&c, &o, 2));
    assert_int_equal(o.status, 0);
    assert_true(o.events & UV_READABLE);

    /* Unchanged set: the watcher stays as it is and keeps firing (level-triggered). */
    assert_int_equal(io_poll_want(&o.io, UV_READABLE), 0);
    assert_true(run_until_calls(&c, &o, 3));

    /* Both: the data is still unread and the socket writable. */
    assert_int_equal(io_poll_want(&o.io, UV_READABLE | UV_WRITABLE), 0);
    assert_int_equal(o.io.events, UV_READABLE | UV_WRITABLE);
    int before = o.calls;
    assert_true(run_until_calls(&c, &o, before + 1));
    assert_int_equal(o.events & (UV_READABLE | UV_WRITABLE), UV_READABLE | UV_WRITABLE);

    /* Stop: the pending byte no longer wakes us. */
    assert_int_equal(io_poll_want(&o.io, 0), 0);
    assert_int_equal(o.io.events, 0);
    before = o.calls;
    spin(&c);
    assert_int_equal(o.calls, before);

    close_and_finish(&c, &o, &closed);
    close(sv[0]);
    close(sv[1]);
}

/* The owner closes and frees itself from inside its poll callback; close_cb runs later. */
static void test_close_inside_callback(void **state)
{
    (void)state;
    ctx_t c;
    int sv[2];
    bool closed = false;
    ctx_init(&c);
    make_pair(sv);
    owner_t *o = calloc(1, sizeof *o);
    assert_non_null(o);
    o->closed = &closed;
    assert_int_equal(io_poll_init(&c.loop, &o->io, sv[0], on_close_and_free), 0);
    o->io.data = o;
    assert_int_equal(io_poll_want(&o->io, UV_READABLE), 0);
    assert_int_equal(write(sv[1], "x", 1), 1);
    assert_true(run_until(&c, &closed));
    ctx_done(&c);
    close(sv[0]);
    close(sv[1]);
}

/* A refused connect: libuv reports UV_EBADF and stops the watcher; the wrapper's wanted
 * set reads 0 so that wanting the same events again restarts it. */
static void test_error_stops_watcher(void **state)
{
    (void)state;
    ctx_t c;
    owner_t o = {0};
    bool closed = false;
    ctx_init(&c);

    /* A loopback port nobody listens on: bind one, then close it. */
    int l = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(l >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    close(l);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    assert_true(rc == 0 || errno == EINPROGRESS || errno == ECONNREFUSED);
    if (rc != 0 && errno == ECONNREFUSED) {
        /* Refused synchronously: nothing left for poll to report. */
        close(fd);
        ctx_done(&c);
        skip();
    }
    assert_int_equal(io_poll_init(&c.loop, &o.io, fd, on_owner_event), 0);
    o.io.data = &o;
    assert_int_equal(io_poll_want(&o.io, UV_WRITABLE), 0);
    assert_true(run_until_calls(&c, &o, 1));
    assert_true(o.status < 0);
    assert_int_equal(o.io.events, 0);
    assert_false(uv_is_active((uv_handle_t *)&o.io.handle));

    /* The same set again is a change from "stopped" and starts the watcher. */
    assert_int_equal(io_poll_want(&o.io, UV_WRITABLE), 0);
    assert_true(uv_is_active((uv_handle_t *)&o.io.handle));
    assert_int_equal(o.io.events, UV_WRITABLE);

    close_and_finish(&c, &o, &closed);
    close(fd);
}

/* The watched fd number is closed and reopened onto another socket, as libpq does during
 * connect: io_poll_rearm makes the new socket's events arrive. */
static void test_rearm_after_socket_change(void **state)
{
    (void)state;
    ctx_t c;
    int sv[2], nv[2];
    owner_t o = {0};
    bool closed = false;
    ctx_init(&c);
    make_pair(sv);
    make_pair(nv);
    assert_int_equal(io_poll_init(&c.loop, &o.io, sv[0], on_owner_event), 0);
    o.io.data = &o;
    assert_int_equal(io_poll_want(&o.io, UV_READABLE), 0);
    /* One turn so that the first socket is really registered with epoll. */
    spin(&c);
    assert_int_equal(o.calls, 0);

    /* dup2 closes the old socket (epoll drops it) and puts the new one on its number. */
    assert_int_equal(dup2(nv[0], sv[0]), sv[0]);
    close(nv[0]);
    assert_int_equal(write(nv[1], "y", 1), 1);
    assert_int_equal(io_poll_rearm(&o.io, UV_READABLE), 0);
    assert_int_equal(o.io.events, UV_READABLE);
    assert_true(run_until_calls(&c, &o, 1));
    assert_int_equal(o.status, 0);
    assert_true(o.events & UV_READABLE);

    /* Rearm with nothing wanted just stops. */
    assert_int_equal(io_poll_rearm(&o.io, 0), 0);
    assert_false(uv_is_active((uv_handle_t *)&o.io.handle));
    int before = o.calls;
    spin(&c);
    assert_int_equal(o.calls, before);

    close_and_finish(&c, &o, &closed);
    close(sv[0]);
    close(sv[1]);
    close(nv[1]);
}

/* Closing a watcher that was never started, and wanting events after close, are no-ops. */
static void test_close_idle_watcher(void **state)
{
    (void)state;
    ctx_t c;
    int sv[2];
    owner_t o = {0};
    bool closed = false;
    ctx_init(&c);
    make_pair(sv);
    assert_int_equal(io_poll_init(&c.loop, &o.io, sv[0], on_owner_event), 0);
    o.io.data = &o;
    o.closed = &closed;
    io_poll_close(&o.io, on_owner_closed);
    assert_int_equal(io_poll_want(&o.io, UV_READABLE), 0);
    assert_int_equal(o.io.events, 0);
    assert_true(run_until(&c, &closed));
    assert_int_equal(o.calls, 0);
    ctx_done(&c);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_follow_wanted_set),
        cmocka_unit_test(test_close_inside_callback),
        cmocka_unit_test(test_error_stops_watcher),
        cmocka_unit_test(test_rearm_after_socket_change),
        cmocka_unit_test(test_close_idle_watcher),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
