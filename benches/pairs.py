#!/usr/bin/env python3
"""Unpipelined load for side-by-side measures: each of CONNS connections sends one
request, waits for its reply, and sends the next (a bounded number of rounds).

  pairs.py PORT_OR_SOCKET MODE ROUNDS [CONNS]

MODE is `lock` (LOCK.ACQUIRE key owner 10000 then LOCK.RELEASE key owner, on
latchkey), `redislock` (SET key owner NX PX 10000 then EVALSHA of the
compare-and-delete release script, the same pair done the Redis way), `getset`
(SET key v then GET key) or `ping`.
Each connection uses its own key, so every lock pair is uncontended. Prints the
number of requests sent; every reply is checked.
"""
import socket
import sys

RELEASE = b'if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("del",KEYS[1]) else return 0 end'


def cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def connect(target):
    if target.isdigit():
        s = socket.create_connection(("127.0.0.1", int(target)))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    else:
        s = socket.socket(socket.AF_UNIX)
        s.connect(target)
    s.settimeout(30)
    return s


def reply(s, buf):
    """Reads one simple reply line (all replies here are one line)."""
    while b"\r\n" not in buf[0]:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("server closed the connection")
        buf[0] += chunk
    line, _, rest = buf[0].partition(b"\r\n")
    buf[0] = rest
    if line.startswith(b"-"):
        raise SystemExit("error reply: %r" % line)
    return line


def main():
    target, mode, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    conns = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    socks = [connect(target) for _ in range(conns)]
    bufs = [[b""] for _ in socks]
    if mode == "ping":
        steps = [[cmd(b"PING")] for _ in socks]
    elif mode == "lock":
        steps = [[cmd(b"LOCK.ACQUIRE", b"k%d" % i, b"o%d" % i, b"10000"),
                  cmd(b"LOCK.RELEASE", b"k%d" % i, b"o%d" % i)] for i in range(conns)]
    elif mode == "getset":
        steps = [[cmd(b"SET", b"k%d" % i, b"v"), cmd(b"GET", b"k%d" % i)] for i in range(conns)]
    elif mode == "redislock":
        socks[0].sendall(cmd(b"SCRIPT", b"LOAD", RELEASE))
        sha = reply(socks[0], bufs[0])
        sha = reply(socks[0], bufs[0]) if sha.startswith(b"$") else sha
        steps = [[cmd(b"SET", b"k%d" % i, b"o%d" % i, b"NX", b"PX", b"10000"),
                  cmd(b"EVALSHA", sha, b"1", b"k%d" % i, b"o%d" % i)] for i in range(conns)]
    else:
        raise SystemExit("mode: lock, redislock, getset or ping")
    sent = 0
    for _ in range(rounds):
        for step in range(len(steps[0])):
            for s, st in zip(socks, steps):
                s.sendall(st[step])
            for s, b in zip(socks, bufs):
                r = reply(s, b)
                if r.startswith(b"$"):  # a bulk string's payload line follows
                    reply(s, b)
                if r in (b"$-1", b"_", b":0"):
                    raise SystemExit("lock not granted or not released: %r" % r)
            sent += len(socks)
    print(sent)


if __name__ == "__main__":
    main()
