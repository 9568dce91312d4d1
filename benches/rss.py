#!/usr/bin/env python3
"""Memory per item, latchkey and redis-server side by side: for each scenario
both servers are started fresh, their RSS (VmRSS from /proc/PID/status) is read
empty, the scenario's data is loaded with pipelined commands on a Unix socket,
and RSS is read again. Prints the growth per item of each server and the ratio
latchkey/redis.

  locks     1,000,000 held locks: latchkey `LOCK.ACQUIRE lock:N <owner> 600000`,
            Redis the usual way, `SET lock:N <owner> NX PX 600000`
            (owner: a 16-byte token)
  hashes    100,000 hashes of 10 short fields (HSET h:N f0 v0 ... f9 v9)
  zset      one sorted set of 1,000,000 members (ZADD, 100 members a command)
  sets      100,000 sets of 10 small integers (SADD s:N ...)
  bighash   one hash of 1,000,000 fields (HSET, 100 fields a command)
  biglist   one list of 1,000,000 short elements (RPUSH, 100 a command)
  lists     100,000 lists of 10 short elements (RPUSH l:N ...)
  stream    one stream of 1,000,000 entries of one small field and value
            (XADD stream <ms>-<seq> field value:N, 100 entries a millisecond,
            so both servers get the same IDs and the same nodes)

A server that does not know a scenario's command (latchkey before the types
land) is reported as skipped with the server's error; one whose load fails
otherwise stops the run. Usage:

  benches/rss.py [scenario ...]     (default: all, in the order above)
  SCALE=0.1 benches/rss.py          (a tenth of every count, for a quick look)
"""

import os
import sys
import time

from resp_load import Servers, build_latchkey, cmd, is_unknown_command, rss_bytes

SCALE = float(os.environ.get("SCALE", "1"))


def n(count):
    return max(1, int(count * SCALE))


def locks(server):
    count = n(1_000_000)
    if server == "latchkey":
        gen = (cmd(b"LOCK.ACQUIRE", b"lock:%d" % i, b"owner-%010d" % i, b"600000")
               for i in range(count))
    else:
        gen = (cmd(b"SET", b"lock:%d" % i, b"owner-%010d" % i, b"NX", b"PX", b"600000")
               for i in range(count))
    return count, "held locks", gen


def hashes(_):
    count = n(100_000)
    fields = []
    for f in range(10):
        fields += [b"f%d" % f, b"v%d" % f]
    return count, "hashes of 10 fields", (cmd(b"HSET", b"h:%d" % i, *fields) for i in range(count))


def zset(_):
    count = n(1_000_000)

    def gen():
        for start in range(0, count, 100):
            args = []
            for i in range(start, min(start + 100, count)):
                args += [b"%d" % i, b"member:%d" % i]
            yield cmd(b"ZADD", b"z", *args)

    return count, "sorted-set members", gen()


def sets(_):
    count = n(100_000)
    members = [b"%d" % m for m in range(10)]
    return count, "sets of 10 integers", (cmd(b"SADD", b"s:%d" % i, *members) for i in range(count))


def bighash(_):
    count = n(1_000_000)

    def gen():
        for start in range(0, count, 100):
            args = []
            for i in range(start, min(start + 100, count)):
                args += [b"field:%d" % i, b"value:%d" % i]
            yield cmd(b"HSET", b"big", *args)

    return count, "fields of one hash", gen()


def biglist(_):
    count = n(1_000_000)

    def gen():
        for start in range(0, count, 100):
            yield cmd(b"RPUSH", b"biglist",
                      *(b"element:%d" % i for i in range(start, min(start + 100, count))))

    return count, "elements of one list", gen()


def lists(_):
    count = n(100_000)
    elements = [b"element:%d" % e for e in range(10)]
    return count, "lists of 10 elements", (cmd(b"RPUSH", b"l:%d" % i, *elements) for i in range(count))


def stream(_):
    count = n(1_000_000)
    gen = (cmd(b"XADD", b"stream", b"%d-%d" % (1 + i // 100, i % 100), b"field", b"value:%d" % i)
           for i in range(count))
    return count, "stream entries", gen


# Checks that the load did what it should (so a silent failure cannot pass as
# a small RSS): the number of keys, and a size where there is one big key.
def expect(scenario, conn, count):
    dbsize = int(conn.call("DBSIZE"))
    if scenario == "zset":
        return dbsize == 1 and int(conn.call("ZCARD", "z")) == count
    if scenario == "bighash":
        return dbsize == 1 and int(conn.call("HLEN", "big")) == count
    if scenario == "biglist":
        return dbsize == 1 and int(conn.call("LLEN", "biglist")) == count
    if scenario == "stream":
        return dbsize == 1 and int(conn.call("XLEN", "stream")) == count
    return dbsize == count


SCENARIOS = {"locks": locks, "hashes": hashes, "zset": zset, "sets": sets, "bighash": bighash,
             "biglist": biglist, "lists": lists, "stream": stream}


def measure(scenario):
    results = {}
    with Servers() as servers:
        time.sleep(0.2)  # let both settle after start-up
        for name in Servers.NAMES:
            pid = servers.pid(name)
            conn = servers.conn(name)
            before = rss_bytes(pid)
            count, unit, gen = SCENARIOS[scenario](name)
            start = time.monotonic()
            sent, error = conn.pipeline(gen)
            took = time.monotonic() - start
            if error is not None:
                if is_unknown_command(error):
                    results[name] = ("skipped", error.short())
                    conn.close()
                    continue
                raise SystemExit("%s %s: %s" % (name, scenario, error))
            if not expect(scenario, conn, count):
                raise SystemExit("%s %s: the data is not all there after loading" % (name, scenario))
            time.sleep(0.2)
            after = rss_bytes(pid)
            results[name] = ("ok", (after - before) / count, after - before, took)
            conn.close()
    return count, unit, results


def main():
    wanted = sys.argv[1:] or list(SCENARIOS)
    for s in wanted:
        if s not in SCENARIOS:
            raise SystemExit("unknown scenario %r: one of %s" % (s, ", ".join(SCENARIOS)))
    build_latchkey()
    print("RSS growth per item after loading, fresh servers per scenario (VmRSS; "
          "redis-server %s)" % os.popen("redis-server --version").read().split()[2][2:])
    for scenario in wanted:
        count, unit, results = measure(scenario)
        cells = []
        for name in Servers.NAMES:
            r = results[name]
            if r[0] == "skipped":
                cells.append("%s skipped (%s)" % (name, r[1]))
            else:
                cells.append("%s %.1f B/item (%.1f MiB, loaded in %.1f s)"
                             % (name, r[1], r[2] / 2**20, r[3]))
        line = "%-8s %s %s: %s" % (scenario, format(count, ","), unit, "; ".join(cells))
        if all(results[x][0] == "ok" for x in Servers.NAMES):
            line += "; ratio latchkey/redis %.2f" % (results["latchkey"][1] / results["redis"][1])
        print(line, flush=True)


if __name__ == "__main__":
    main()
