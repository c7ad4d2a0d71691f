#!/usr/bin/python3
"""faultproxy.py - a TCP fault-injection proxy for eltd's integration tests (issue 8).

    faultproxy.py --target HOST:PORT [--max-lifetime SEC] [--parent PID]

Listens on 127.0.0.1:<free port> and forwards every accepted connection to HOST:PORT.
At start it prints one line on stdout, "PORT CONTROL_PORT", and flushes it; the test reads
it (`read -r FP_PORT FP_CTL < <(...)` or from a file).  Standard library only (asyncio).

Control: a line protocol on 127.0.0.1:CONTROL_PORT.  Each command line gets one reply line,
"ok ..." or "error ...", and the connection may carry several commands.  From bash:
    exec 9<>/dev/tcp/127.0.0.1/$FP_CTL; echo "stall up" >&9; read -r reply <&9; exec 9>&-
DIR is `up` (client->server), `down` (server->client) or `both` (the default).  A mode
applies to the given direction(s) of every connection, open or future, from the moment the
reply is sent; setting a mode replaces the previous mode of that direction.

    pass [DIR]                  forward unchanged (the start state)
    delay MS [DIR]              sleep MS milliseconds before forwarding each chunk
    throttle BPS [DIR]          at most BPS bytes per second, per connection and direction
    stall [DIR]                 stop reading and forwarding; connections stay open (the
                                sender's TCP window fills, as with a hung peer)
    reset-after BYTES [DIR] [once]
                                once a connection has forwarded BYTES more bytes in DIR
                                (counted from this command; default DIR: up), forward up to
                                the threshold then reset both sides (SO_LINGER 0 -> RST).
                                With `once`, only the first connection to reach it is reset
                                and the direction goes back to pass.
    reset-now                   reset every open connection now
    status                      "ok conns=N open=N up=B down=B resets=N mode_up=.. mode_down=.."
    quit                        reset everything and exit

Bounded in time: exits after --max-lifetime seconds (default 900), when --parent PID is no
longer alive (checked twice a second), on SIGTERM/SIGINT, or on `quit`.
"""

import argparse
import asyncio
import os
import signal
import socket
import struct
import sys
import time

CHUNK = 65536


class Mode:
    def __init__(self):
        self.kind = "pass"  # pass | delay | throttle | stall | reset
        self.arg = 0
        self.once = False
        self.gen = 0  # bumped on every change; reset-after counts from the change

    def describe(self):
        if self.kind == "pass" or self.kind == "stall":
            return self.kind
        if self.kind == "reset":
            return "reset-after:%d%s" % (self.arg, ":once" if self.once else "")
        return "%s:%d" % (self.kind, self.arg)


class Proxy:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.modes = {"up": Mode(), "down": Mode()}
        self.changed = asyncio.Event()  # pulsed on any mode change (wakes stalled pumps)
        self.conns = set()
        self.total_conns = 0
        self.bytes = {"up": 0, "down": 0}
        self.resets = 0
        self.stop = asyncio.Event()

    def set_mode(self, dirs, kind, arg=0, once=False):
        for d in dirs:
            m = self.modes[d]
            m.kind, m.arg, m.once = kind, arg, once
            m.gen += 1
        self.pulse()

    def pulse(self):
        """Wakes every pump waiting in a stall (to see a new mode or its closed conn)."""
        self.changed.set()
        self.changed = asyncio.Event()

    async def handle_client(self, creader, cwriter):
        try:
            sreader, swriter = await asyncio.open_connection(self.host, self.port)
        except OSError:
            hard_close(cwriter)
            return
        conn = Conn(self, cwriter, swriter)
        self.conns.add(conn)
        self.total_conns += 1
        try:
            await asyncio.gather(conn.pump("up", creader, swriter),
                                 conn.pump("down", sreader, cwriter))
        finally:
            self.conns.discard(conn)
            conn.close()


def hard_close(writer):
    """Close with RST: SO_LINGER on, timeout 0, then close."""
    try:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


class Conn:
    def __init__(self, proxy, cwriter, swriter):
        self.p = proxy
        self.cw, self.sw = cwriter, swriter
        self.closed = False
        self.reset_done = False
        # bytes forwarded per direction since the reset mode's generation started
        self.count = {"up": [0, -1], "down": [0, -1]}

    def reset(self):
        if self.closed:
            return
        self.closed = True
        self.reset_done = True
        self.p.resets += 1
        hard_close(self.cw)
        hard_close(self.sw)
        self.p.pulse()

    def close(self):
        if self.closed:
            return
        self.closed = True
        for w in (self.cw, self.sw):
            try:
                w.close()
            except Exception:
                pass
        self.p.pulse()

    async def wait_not_stalled(self, d):
        while self.p.modes[d].kind == "stall" and not self.closed:
            await self.p.changed.wait()

    async def pump(self, d, reader, writer):
        p = self.p
        try:
            while not self.closed:
                await self.wait_not_stalled(d)
                m = p.modes[d]
                want = CHUNK
                if m.kind == "throttle":
                    want = max(1, min(CHUNK, m.arg // 20))
                data = await reader.read(want)
                if self.closed:
                    return
                if not data:
                    try:
                        writer.write_eof()
                    except (OSError, RuntimeError):
                        pass
                    return
                # A stall set while we were reading holds this chunk too.
                await self.wait_not_stalled(d)
                m = p.modes[d]
                if m.kind == "delay":
                    await asyncio.sleep(m.arg / 1000.0)
                elif m.kind == "throttle":
                    await asyncio.sleep(len(data) / float(m.arg))
                elif m.kind == "reset":
                    c = self.count[d]
                    if c[1] != m.gen:
                        c[0], c[1] = 0, m.gen
                    if c[0] + len(data) >= m.arg:
                        head = data[: max(0, m.arg - c[0])]
                        if head:
                            writer.write(head)
                            p.bytes[d] += len(head)
                            try:
                                await asyncio.wait_for(writer.drain(), 2)
                            except Exception:
                                pass
                        if m.once:
                            p.set_mode([d], "pass")
                        self.reset()
                        return
                    c[0] += len(data)
                if self.closed:
                    return
                writer.write(data)
                p.bytes[d] += len(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, RuntimeError):
            # One side went away: take the other down with it (an RST if it was a reset).
            if not self.closed:
                self.reset()


async def control(proxy, reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            reply = command(proxy, line.decode("utf-8", "replace").split())
            writer.write((reply + "\n").encode())
            await writer.drain()
            if reply == "ok bye":
                proxy.stop.set()
                break
    except OSError:
        pass
    finally:
        writer.close()


def parse_dir(words, i, default="both"):
    d = words[i] if len(words) > i else default
    if d == "both":
        return ["up", "down"]
    if d in ("up", "down"):
        return [d]
    raise ValueError("direction must be up, down or both: %r" % d)


def command(proxy, w):
    if not w:
        return "error empty command"
    cmd = w[0]
    try:
        if cmd == "pass":
            proxy.set_mode(parse_dir(w, 1), "pass")
        elif cmd == "stall":
            proxy.set_mode(parse_dir(w, 1), "stall")
        elif cmd in ("delay", "throttle"):
            n = int(w[1])
            if n < 0 or (cmd == "throttle" and n == 0):
                return "error %s needs a positive number" % cmd
            proxy.set_mode(parse_dir(w, 2), cmd, n)
        elif cmd == "reset-after":
            n = int(w[1])
            rest = w[2:]
            once = "once" in rest
            rest = [x for x in rest if x != "once"]
            proxy.set_mode(parse_dir(rest, 0, "up"), "reset", max(0, n), once)
        elif cmd == "reset-now":
            for c in list(proxy.conns):
                c.reset()
        elif cmd == "status":
            return "ok conns=%d open=%d up=%d down=%d resets=%d mode_up=%s mode_down=%s" % (
                proxy.total_conns, len(proxy.conns), proxy.bytes["up"], proxy.bytes["down"],
                proxy.resets, proxy.modes["up"].describe(), proxy.modes["down"].describe())
        elif cmd == "quit":
            for c in list(proxy.conns):
                c.reset()
            return "ok bye"
        else:
            return "error unknown command %r" % cmd
    except (IndexError, ValueError) as e:
        return "error %s" % e
    return "ok"


async def main():
    ap = argparse.ArgumentParser(description="TCP fault-injection proxy (see the docstring)")
    ap.add_argument("--target", required=True, help="HOST:PORT to forward to")
    ap.add_argument("--max-lifetime", type=float, default=900.0)
    ap.add_argument("--parent", type=int, default=0, help="exit when this pid is gone")
    a = ap.parse_args()
    host, _, port = a.target.rpartition(":")
    proxy = Proxy(host or "127.0.0.1", int(port))

    srv = await asyncio.start_server(proxy.handle_client, "127.0.0.1", 0, reuse_address=True)
    ctl = await asyncio.start_server(lambda r, w: control(proxy, r, w), "127.0.0.1", 0)
    sys.stdout.write("%d %d\n" % (srv.sockets[0].getsockname()[1],
                                  ctl.sockets[0].getsockname()[1]))
    sys.stdout.flush()

    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, proxy.stop.set)
    deadline = time.monotonic() + a.max_lifetime
    while not proxy.stop.is_set():
        if time.monotonic() > deadline:
            sys.stderr.write("faultproxy: max lifetime reached, exiting\n")
            break
        if a.parent:
            try:
                os.kill(a.parent, 0)
            except ProcessLookupError:
                break
            except PermissionError:
                pass
        try:
            await asyncio.wait_for(proxy.stop.wait(), 0.5)
        except asyncio.TimeoutError:
            pass
    srv.close()
    ctl.close()
    for c in list(proxy.conns):
        c.reset()


if __name__ == "__main__":
    asyncio.run(main())
