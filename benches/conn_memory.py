#!/usr/bin/env python3
"""Memory and stalls of one server's connections, for benches/connections.sh.

  conn_memory.py bigset PORT PID MB   peak RSS growth of PID (VmHWM, reset
                                      first) for one SET of MB megabytes, and
                                      the worst PING round trip of a second
                                      client during it
  conn_memory.py idle PORT PID N      RSS per connection of N connections that
                                      each ran one PING and then sit idle, and
                                      again 5 s after a tenth of them asked
                                      for 4 replies of 256 KB all at once
Loopback only; every loop is bounded in count and time.
"""
import socket
import sys
import threading
import time


def status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_reply(s, n):
    """Reads exactly n bytes."""
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(1 << 20, n - len(buf)))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def bigset(port, pid, mb):
    size = mb << 20
    value = b"v" * size
    before = status(pid, "VmRSS:")
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")
    done = threading.Event()
    worst = [0.0]

    def ping():
        p = connect(port)
        deadline = time.monotonic() + 120
        while not done.is_set() and time.monotonic() < deadline:
            t = time.perf_counter()
            p.sendall(b"PING\r\n")
            read_reply(p, 7)
            worst[0] = max(worst[0], time.perf_counter() - t)
            time.sleep(0.001)

    pinger = threading.Thread(target=ping)
    pinger.start()
    s = connect(port)
    t = time.perf_counter()
    s.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n" % size)
    view = memoryview(value)
    for i in range(0, size, 1 << 20):
        s.sendall(view[i:i + (1 << 20)])
    s.sendall(b"\r\n")
    assert read_reply(s, 5) == b"+OK\r\n"
    took = time.perf_counter() - t
    done.set()
    pinger.join()
    peak = status(pid, "VmHWM:")
    print(f"SET {mb} MB: {took:.2f} s, peak RSS {peak >> 20} MB "
          f"(+{(peak - before) >> 20} MB), worst PING {worst[0] * 1000:.1f} ms")


def idle(port, pid, n):
    base = status(pid, "VmRSS:")
    conns = []
    for _ in range(n):
        s = connect(port)
        s.sendall(b"PING\r\n")
        conns.append(s)
    for s in conns:
        assert read_reply(s, 7) == b"+PONG\r\n"
    time.sleep(5)  # both servers release idle buffers after 2-4 s
    rss = status(pid, "VmRSS:")
    print(f"{n} idle connections: {(rss - base) / n / 1024:.1f} KB each")
    big = 256 << 10
    setter = connect(port)
    setter.sendall(b"*3\r\n$3\r\nSET\r\n$4\r\nbig1\r\n$%d\r\n" % big + b"x" * big + b"\r\n")
    assert read_reply(setter, 5) == b"+OK\r\n"
    header = b"$%d\r\n" % big
    loaded = conns[: n // 10]
    # All at once: every server-side write buffer holds a big reply together.
    for s in loaded:
        s.sendall(b"GET big1\r\n" * 4)
    peak = status(pid, "VmRSS:")
    for s in loaded:
        for _ in range(4):
            assert read_reply(s, len(header) + big + 2).startswith(header)
    time.sleep(5)
    rss = status(pid, "VmRSS:")
    print(f"after {len(loaded)} of them read 4 replies of 256 KB at once "
          f"(RSS {peak >> 20} MB as they were sent): {(rss - base) / n / 1024:.1f} KB each")
    for s in conns:
        s.close()


if __name__ == "__main__":
    mode, port, pid, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    {"bigset": bigset, "idle": idle}[mode](port, pid, count)
