#!/usr/bin/python3
"""A small raw-socket HTTP/1.1 client for hostile requests (test/integration/hostile_http.sh).

Requests are given as Python expressions that evaluate to bytes, so a test can write
b"GET /" + b"a" * 100000 + b" HTTP/1.1\\r\\n..." without a shell in the way.

  rawhttp.py send PORT EXPR [TIMEOUT]
      sends EXPR in one write and reads until the server closes or TIMEOUT (default 5 s);
      prints the statuses of the responses, in order, space-separated ("closed" if none
      came), then on a second line the first response's body (UTF-8, replaced).
  rawhttp.py trickle PORT EXPR INTERVAL MAX_SECONDS
      sends EXPR one byte per INTERVAL seconds until the server answers or closes (or
      MAX_SECONDS pass); prints "STATUS SECONDS" ("closed" or "timeout" for no status).
  rawhttp.py flood PORT N HOLD_SECONDS
      opens N connections that send nothing, one after another; once that settles counts the ones
      the server answered with 503, the ones it closed without an answer, and the ones
      still open; then, still holding them, asks GET /health on a fresh connection;
      then closes all but the first 10 of those still open and asks GET /health again.
      Prints "opened=N s503=N dropped=N open=N health_full=S health_after=S".
"""
import re
import socket
import sys
import time

HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def parse(data):
    """Splits a byte stream into (status, body) pairs, using Content-Length."""
    out = []
    while True:
        m = re.match(rb"HTTP/1\.[01] (\d{3})[^\r\n]*\r\n", data)
        if not m:
            break
        end = data.find(b"\r\n\r\n")
        if end < 0:
            out.append((int(m.group(1)), b""))
            break
        head = data[:end]
        cl = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
        n = int(cl.group(1)) if cl else 0
        status = int(m.group(1))
        body = data[end + 4:end + 4 + n]
        data = data[end + 4 + n:]
        if status >= 200:  # a 100 Continue is not an answer
            out.append((status, body))
    return out


def read_all(s, timeout):
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except (socket.timeout, OSError):
        pass
    return data


def still_open(s):
    """True while the server has neither closed nor reset the connection (no byte pending)."""
    s.setblocking(False)
    try:
        s.recv(65536)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.setblocking(True)


def exchange(port, raw, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(raw)
    except OSError:
        pass  # the server may refuse before the whole request is written
    data = read_all(s, timeout)
    s.close()
    return parse(data)


def status_of(port, raw, timeout=3.0):
    try:
        r = exchange(port, raw, timeout)
    except OSError:
        return "refused"
    return str(r[0][0]) if r else "closed"


def build(expr):
    """Evaluates a request expression (trusted test code) to bytes."""
    raw = eval(expr, {"__builtins__": {"range": range, "len": len, "bytes": bytes}}, {})
    if not isinstance(raw, bytes):
        sys.exit("rawhttp: the request expression must give bytes")
    return raw


def cmd_send(port, expr, timeout=5.0):
    raw = build(expr)
    res = exchange(port, raw, timeout)
    print(" ".join(str(st) for st, _ in res) if res else "closed")
    print(res[0][1].decode("utf-8", "replace").replace("\n", " ") if res else "")


def cmd_trickle(port, expr, interval, max_s):
    raw = build(expr)
    s = socket.create_connection(("127.0.0.1", port), timeout=max_s)
    s.setblocking(False)
    t0 = time.time()
    data = b""
    closed = False
    i = 0
    while time.time() - t0 < max_s:
        if i < len(raw):
            try:
                s.send(raw[i:i + 1])
            except OSError:
                closed = True
            i += 1
        time.sleep(interval)
        try:
            b = s.recv(65536)
            if not b:
                closed = True
            data += b
        except BlockingIOError:
            pass
        except OSError:
            closed = True
        if closed or b"\r\n\r\n" in data:
            break
    res = parse(data)
    what = str(res[0][0]) if res else ("closed" if closed else "timeout")
    print("%s %.1f" % (what, time.time() - t0))


def cmd_flood(port, n, hold):
    conns = []
    for _ in range(n):
        try:
            conns.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            break
    # Classify until a pass finds nothing new (at least 1 s, at most 5 s): connections
    # still in the accept backlog have not been answered yet.
    s503 = dropped = 0
    still = conns
    t0 = time.time()
    time.sleep(1.0)
    while True:
        left = []
        for s in still:
            s.setblocking(False)
            try:
                b = s.recv(65536)
            except BlockingIOError:
                left.append(s)
                continue
            except OSError:
                b = b""
            if b.startswith(b"HTTP/1.1 503 "):
                s503 += 1
            else:
                dropped += 1
            s.close()
        changed = len(left) != len(still)
        still = left
        if not changed or time.time() - t0 > 5:
            break
        time.sleep(0.5)
    full = status_of(port, HEALTH)
    time.sleep(max(0.0, hold - 1.0))
    for s in still[10:]:
        s.close()
    time.sleep(0.3)
    after = status_of(port, HEALTH)
    for s in still[:10]:
        s.close()
    print("opened=%d s503=%d dropped=%d open=%d health_full=%s health_after=%s" %
          (len(conns), s503, dropped, len(still), full, after))


def main(argv):
    cmd, port = argv[1], int(argv[2])
    if cmd == "send":
        cmd_send(port, argv[3], float(argv[4]) if len(argv) > 4 else 5.0)
    elif cmd == "trickle":
        cmd_trickle(port, argv[3], float(argv[4]), float(argv[5]))
    elif cmd == "flood":
        cmd_flood(port, int(argv[3]), float(argv[4]))
    else:
        sys.exit("usage: see the docstring of " + argv[0])


if __name__ == "__main__":
    main(sys.argv)
