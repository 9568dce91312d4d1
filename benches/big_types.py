#!/usr/bin/env python3
"""Commands on big values, latchkey and redis-server side by side in one run:
both are loaded with the same data over a Unix socket (pipelined), then
redis-benchmark sends one fixed command line to each in turn (-c 50, no
pipelining), in alternating rounds. Prints the median requests/s, the server's
CPU time per request (user + system from /proc/PID/stat) and the ratios.

Data:  z       a sorted set of 1,000,000 members m:000000000000 .. m:000000999999,
               member N with score N
       s1, s2  two sets of 100,000 members each, 10,000 of them in both
       h       a hash of 100 fields (field:N -> value:N)
Tests: ZADD z <random score> m:<random N>   (updates scores in the big set)
       ZRANGE z 0 9
       ZRANGEBYSCORE z <random N> +inf LIMIT 0 10
       ZRANK z m:<random N>
       SINTER s1 s2                         (10,000 members in the reply)
       HGETALL h
<random N> is redis-benchmark's __rand_int__ with -r 1000000: a 12-digit
number, so it names an existing member.

A test whose command latchkey does not know yet is reported as skipped for
latchkey, with its error. Usage:

  [PIN=1] benches/big_types.py [rounds]     (default 3)
PIN=1 runs both servers on CPU 1 and redis-benchmark on CPU 0.
"""

import os
import statistics
import subprocess
import sys

from resp_load import Servers, build_latchkey, cpu_seconds, cmd, is_unknown_command

ZSET_SIZE = 1_000_000
SET_SIZE = 100_000
SET_OVERLAP = 10_000
HASH_FIELDS = 100
CLIENTS = 50

# (name, data it needs, requests per run, needs -r, command line)
TESTS = [
    ("ZADD", "z", 200_000, True, ["ZADD", "z", "__rand_int__", "m:__rand_int__"]),
    ("ZRANGE 0 9", "z", 200_000, False, ["ZRANGE", "z", "0", "9"]),
    ("ZRANGEBYSCORE LIMIT 0 10", "z", 200_000, True,
     ["ZRANGEBYSCORE", "z", "__rand_int__", "+inf", "LIMIT", "0", "10"]),
    ("ZRANK", "z", 200_000, True, ["ZRANK", "z", "m:__rand_int__"]),
    ("SINTER 100k x 100k", "s", 100, False, ["SINTER", "s1", "s2"]),
    ("HGETALL 100 fields", "h", 200_000, False, ["HGETALL", "h"]),
]


def zset_data():
    for start in range(0, ZSET_SIZE, 200):
        args = []
        for i in range(start, min(start + 200, ZSET_SIZE)):
            args += [b"%d" % i, b"m:%012d" % i]
        yield cmd(b"ZADD", b"z", *args)


def set_data():
    for key, base in ((b"s1", 0), (b"s2", SET_SIZE - SET_OVERLAP)):
        for start in range(base, base + SET_SIZE, 200):
            yield cmd(b"SADD", key, *(b"e:%d" % i for i in range(start, start + 200)))


def hash_data():
    args = []
    for i in range(HASH_FIELDS):
        args += [b"field:%d" % i, b"value:%d" % i]
    yield cmd(b"HSET", b"h", *args)


# Each data set: the commands that load it, and a check that it is all there.
DATA = {
    "z": (zset_data, lambda c: int(c.call("ZCARD", "z")) == ZSET_SIZE),
    "s": (set_data, lambda c: [int(c.call("SCARD", k)) for k in ("s1", "s2")] == [SET_SIZE] * 2
          and len(c.call("SINTER", "s1", "s2")) == SET_OVERLAP),
    "h": (hash_data, lambda c: int(c.call("HLEN", "h")) == HASH_FIELDS),
}


def load(servers, name, data):
    """Loads one data set; returns None, or the reason the server cannot."""
    commands, check = DATA[data]
    conn = servers.conn(name)
    try:
        _, error = conn.pipeline(commands(), batch=500)
        if error is not None:
            if is_unknown_command(error):
                return error.short()
            raise SystemExit("%s: loading failed: %s" % (name, error))
        if not check(conn):
            raise SystemExit("%s: the data set %s is not all there after loading" % (name, data))
        return None
    finally:
        conn.close()


def probe(servers, name, line):
    """None if the server runs this command line, else its error."""
    conn = servers.conn(name)
    try:
        reply = conn.call(*[a.replace("__rand_int__", "000000000001") for a in line])
        return reply.short() if is_unknown_command(reply) else None
    finally:
        conn.close()


def bench(servers, name, requests, random, line, client_cpu):
    pid = servers.pid(name)
    args = client_cpu + ["redis-benchmark", "-s", servers.sockets[name], "-c", str(CLIENTS),
                         "-n", str(requests), "--csv"]
    if random:
        args += ["-r", str(ZSET_SIZE)]
    before = cpu_seconds(pid)
    out = subprocess.run(args + line, capture_output=True, text=True, check=True,
                         timeout=600).stdout
    cpu = cpu_seconds(pid) - before
    rows = [r for r in out.splitlines() if r and not r.startswith('"test"')]
    rps = float(rows[-1].split(",")[1].strip('"'))
    return rps, cpu / requests * 1e6


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    pin = os.environ.get("PIN") == "1"
    build_latchkey()
    client_cpu = ["taskset", "-c", "0"] if pin else []
    version = os.popen("redis-server --version").read().split()[2][2:]
    print("big values: latchkey vs redis-server %s, redis-benchmark -c %d on Unix sockets, "
          "%d rounds alternating servers, medians%s"
          % (version, CLIENTS, rounds, "; pinned: servers CPU 1, load CPU 0" if pin else ""))
    with Servers(taskset="1" if pin else None) as servers:
        skip = {}
        for data in DATA:
            for name in Servers.NAMES:
                reason = load(servers, name, data)
                if reason and name != "latchkey":
                    raise SystemExit("%s cannot load the data: %s" % (name, reason))
                if reason:
                    skip.update((t[0], reason) for t in TESTS if t[1] == data)
        for test, _, _, _, line in TESTS:
            if test not in skip:
                reason = probe(servers, "latchkey", line)
                if reason:
                    skip[test] = reason
        runs = {}
        for r in range(rounds):
            order = Servers.NAMES if r % 2 == 0 else Servers.NAMES[::-1]
            for test, _, requests, random, line in TESTS:
                for name in order:
                    if name == "latchkey" and test in skip:
                        continue
                    runs.setdefault((test, name), []).append(
                        bench(servers, name, requests, random, line, client_cpu))
    print("%-26s %10s %10s %6s %9s %9s %6s" % ("", "requests/s", "", "ratio", "CPU us/", "request",
                                              "ratio"))
    print("%-26s %10s %10s %6s %9s %9s %6s" % ("test", "redis", "latchkey", "lk/r", "redis",
                                              "latchkey", "lk/r"))
    for test, _, _, _, _ in TESTS:
        rr = statistics.median(x[0] for x in runs[(test, "redis")])
        rc = statistics.median(x[1] for x in runs[(test, "redis")])
        if test in skip:
            print("%-26s %10.0f %10s %6s %9.2f %9s %6s   latchkey skipped: %s"
                  % (test, rr, "-", "-", rc, "-", "-", skip[test]))
            continue
        lr = statistics.median(x[0] for x in runs[(test, "latchkey")])
        lc = statistics.median(x[1] for x in runs[(test, "latchkey")])
        print("%-26s %10.0f %10.0f %6.2f %9.2f %9.2f %6.2f" % (test, rr, lr, lr / rr, rc, lc,
                                                               lc / rc))


if __name__ == "__main__":
    main()
