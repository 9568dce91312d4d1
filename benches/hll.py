#!/usr/bin/env python3
"""HyperLogLog, latchkey and redis-server side by side in one run, on Unix sockets,
in alternating rounds; prints medians and the latchkey/redis ratios.

Tests:
  PFADD 1M x N   1,000,000 distinct elements (e:0 .. e:999999) added to a new key
                 with PFADDs of N elements each (N = 10, 100, 1000), pipelined 200
                 commands at a time from one connection. Reported: elements/s
                 (wall clock, client included) and the server's CPU time per
                 element (user + system from /proc/PID/stat). The key goes from
                 sparse to dense on the way, as in Redis.
  PFCOUNT 10     redis-benchmark -c 50: PFCOUNT over 10 dense keys of 100,000
                 elements each (a union computed on every call, not cached).
  PFCOUNT 1      redis-benchmark -c 50: PFCOUNT of one dense key (its cached count).
Both servers must answer the same counts, or the run stops.

Usage:  [PIN=1] benches/hll.py [rounds]     (default 3)
PIN=1 runs both servers on CPU 1 and the load on CPU 0.
"""

import os
import statistics
import subprocess
import sys
import time

from resp_load import Servers, build_latchkey, cmd, cpu_seconds

ELEMENTS = 1_000_000
BATCHES = (10, 100, 1000)
PIPELINE = 200
UNION_KEYS = 10
UNION_ELEMENTS = 100_000
CLIENTS = 50


def pfadd_commands(key, per_command):
    return [cmd(b"PFADD", key, *(b"e:%d" % i for i in range(start, min(start + per_command, ELEMENTS))))
            for start in range(0, ELEMENTS, per_command)]


def timed_pfadd(servers, name, key, commands):
    conn = servers.conn(name)
    pid = servers.pid(name)
    try:
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        _, error = conn.pipeline(commands, batch=PIPELINE)
        wall, cpu = time.monotonic() - t0, cpu_seconds(pid) - cpu0
        if error is not None:
            raise SystemExit("%s: PFADD failed: %s" % (name, error))
        count = int(conn.call("PFCOUNT", key))
        conn.call("DEL", key)
        return ELEMENTS / wall, cpu / ELEMENTS * 1e9, count
    finally:
        conn.close()


def load_union_keys(servers, name):
    conn = servers.conn(name)
    try:
        for k in range(UNION_KEYS):
            key = b"u%d" % k
            commands = [cmd(b"PFADD", key, *(b"%d:%d" % (k, i) for i in range(s, s + 1000)))
                        for s in range(0, UNION_ELEMENTS, 1000)]
            _, error = conn.pipeline(commands, batch=PIPELINE)
            if error is not None:
                raise SystemExit("%s: loading failed: %s" % (name, error))
        keys = ["u%d" % k for k in range(UNION_KEYS)]
        return int(conn.call("PFCOUNT", *keys)), int(conn.call("PFCOUNT", "u0"))
    finally:
        conn.close()


def benchmark(servers, name, requests, line, client_cpu):
    pid = servers.pid(name)
    args = client_cpu + ["redis-benchmark", "-s", servers.sockets[name], "-c", str(CLIENTS),
                         "-n", str(requests), "--csv"] + line
    before = cpu_seconds(pid)
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=600).stdout
    cpu = cpu_seconds(pid) - before
    rows = [r for r in out.splitlines() if r and not r.startswith('"test"')]
    return float(rows[-1].split(",")[1].strip('"')), cpu / requests * 1e6


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    pin = os.environ.get("PIN") == "1"
    build_latchkey()
    client_cpu = ["taskset", "-c", "0"] if pin else []
    version = os.popen("redis-server --version").read().split()[2][2:]
    print("HyperLogLog: latchkey vs redis-server %s on Unix sockets, %d rounds alternating "
          "servers, medians%s" % (version, rounds, "; pinned: servers CPU 1, load CPU 0" if pin else ""))
    commands = {n: pfadd_commands(b"big", n) for n in BATCHES}
    union_line = ["PFCOUNT"] + ["u%d" % k for k in range(UNION_KEYS)]
    with Servers(taskset="1" if pin else None) as servers:
        counts = {name: load_union_keys(servers, name) for name in Servers.NAMES}
        if counts["redis"] != counts["latchkey"]:
            raise SystemExit("PFCOUNT differs: %s" % counts)
        runs = {}
        for r in range(rounds):
            order = Servers.NAMES if r % 2 == 0 else Servers.NAMES[::-1]
            for n in BATCHES:
                for name in order:
                    rate, cpu, count = timed_pfadd(servers, name, b"big", commands[n])
                    runs.setdefault(("PFADD 1M x %d" % n, name), []).append((rate, cpu))
                    runs.setdefault(("count", n), set()).add(count)
            for test, requests, line in (("PFCOUNT 10 keys", 20_000, union_line),
                                         ("PFCOUNT 1 key", 200_000, ["PFCOUNT", "u0"])):
                for name in order:
                    runs.setdefault((test, name), []).append(
                        benchmark(servers, name, requests, line, client_cpu))
        for n in BATCHES:
            if len(runs[("count", n)]) != 1:
                raise SystemExit("PFCOUNT after PFADD differs: %s" % runs[("count", n)])
    print("PFCOUNT of 1,000,000 added: %s; of the 10-key union: %d"
          % (", ".join(str(c) for n in BATCHES for c in runs[("count", n)]), counts["redis"][0]))
    report(runs, ["PFADD 1M x %d" % n for n in BATCHES] + ["PFCOUNT 10 keys", "PFCOUNT 1 key"])


def report(runs, tests):
    """Medians per test: requests or elements per second (wall clock) and the
    server's CPU time per request or element, with latchkey/redis ratios (for CPU,
    redis/latchkey: above 1 means latchkey uses less)."""
    print("%-16s %10s %10s %6s  %-8s %9s %9s %6s" % ("test", "redis/s", "latchkey/s", "lk/r",
                                                   "CPU per", "redis", "latchkey", "r/lk"))
    for test in tests:
        rr = statistics.median(x[0] for x in runs[(test, "redis")])
        lr = statistics.median(x[0] for x in runs[(test, "latchkey")])
        rc = statistics.median(x[1] for x in runs[(test, "redis")])
        lc = statistics.median(x[1] for x in runs[(test, "latchkey")])
        unit = "element" if test.startswith("PFADD") else "request"
        scale = "ns" if test.startswith("PFADD") else "us"
        print("%-16s %10.0f %10.0f %6.2f  %-8s %7.1f%s %7.1f%s %6.2f"
              % (test, rr, lr, lr / rr, unit, rc, scale, lc, scale, rc / lc))

if __name__ == "__main__":
    main()
