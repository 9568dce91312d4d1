#!/usr/bin/env python3
"""A burst of connections, side by side with redis-server, in one run.

    python3 benches/connection_burst.py [connections] [rounds]   (defaults 5000, 5)

Starts redis-server and target/release/latchkey (build it first) on free
127.0.0.1 ports, each with tcp-backlog 511, plus latchkey with tcp-backlog 128.
Each round stops a server (SIGSTOP), opens every connection at once so they
queue in its listen backlog, resumes it 0.2 s later, and times until every
connection has answered PING. Connections that do not fit the backlog are
dropped by the kernel and retried by the client after 1 s, 3 s, ... Prints the
median and every round's time, and the server's CPU time (from /proc) per burst.
Standard library only; every server is stopped on exit.
"""

import os
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ms(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 // os.sysconf("SC_CLK_TCK")


def burst(port, n, pid):
    os.kill(pid, signal.SIGSTOP)
    sel = selectors.DefaultSelector()
    start = time.monotonic()
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            sel.register(s, selectors.EVENT_WRITE, b"")
            socks.append(s)
    finally:
        time.sleep(0.2)
        os.kill(pid, signal.SIGCONT)
    pending, deadline = n, start + 120
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            if key.events == selectors.EVENT_WRITE:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    sys.exit("a connection failed")
                s.send(b"PING\r\n")
                sel.modify(s, selectors.EVENT_READ, b"")
                continue
            got = key.data + s.recv(64)
            if not got:
                sys.exit("a connection was closed")
            if got.endswith(b"\r\n"):
                if got != b"+PONG\r\n":
                    sys.exit(f"unexpected reply {got!r}")
                sel.unregister(s)
                pending -= 1
            else:
                sel.modify(s, selectors.EVENT_READ, got)
    took = time.monotonic() - start
    for s in socks:
        s.close()
    if pending:
        sys.exit(f"{pending} connections never answered")
    return took


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    latchkey = os.path.join(ROOT, "target", "release", "latchkey")
    redis = shutil.which("redis-server")
    if not redis or not os.path.exists(latchkey):
        sys.exit("needs redis-server and target/release/latchkey (cargo build --release)")
    workdir = tempfile.mkdtemp(prefix="latchkey-burst-")
    servers = []
    for name, exe, backlog in [
        ("redis-server", redis, 511),
        ("latchkey", latchkey, 511),
        ("latchkey", latchkey, 128),
    ]:
        port = free_port()
        args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--tcp-backlog", str(backlog), "--maxclients", str(n + 100),
                "--dir", workdir, "--loglevel", "warning"]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        servers.append((f"{name} tcp-backlog {backlog}", port, proc))
    try:
        time.sleep(1)
        results = {label: ([], 0) for label, _, _ in servers}
        for _ in range(rounds):
            for label, port, proc in servers:
                before = cpu_ms(proc.pid)
                took = burst(port, n, proc.pid)
                times, cpu = results[label]
                times.append(took)
                results[label] = (times, cpu + cpu_ms(proc.pid) - before)
                time.sleep(2)
        for label, (times, cpu) in results.items():
            shown = " ".join(f"{t:.2f}" for t in times)
            print(f"{label:28} median {statistics.median(times):.2f} s  "
                  f"(rounds: {shown})  server CPU {cpu // rounds} ms per burst")
    finally:
        for _, _, proc in servers:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
