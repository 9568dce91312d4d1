"""The Python test fixture's speed: the same pytest suite of small tests run
through five fixtures, side by side, and the start-up of a spawned server.

Suites (each test: SET/GET, INCR, RPUSH/LRANGE, HSET/HGETALL, EXPIRE, and a
check that it starts on an empty server):
  latchkey-fresh     latchkey_fresh: a latchkey server spawned per test
  redis-fresh        a redis-server (Debian's) spawned per test, the same way
  latchkey-reset     latchkey: one server, DEBUG RESET before each test
  redis-flushall     one redis-server, FLUSHALL before each test
  fakeredis          fakeredis.FakeRedis per test (in-process, no server)
The latchkey suites' tests take the plugin's fixture itself, as a suite using
the plugin does; the others take an `r` fixture of their conftest.
For each: the pytest run's wall time, the median test's setup+teardown time
(every fixture's share) and its whole time (setup, call, teardown, report);
medians over --rounds runs, the modes taken round-robin.

Start-up: --spawns spawns of each server, interleaved: spawn to ready
(latchkey's --ready-file; redis-server's port accepting), spawn to the first
PONG, and SIGTERM to exit; medians.

Usage (the venv test.sh makes, plus fakeredis):
  target/pypkg-venv/bin/pip install -r python/requirements-bench.txt
  target/pypkg-venv/bin/python benches/fixture_py.py [--tests 200] [--rounds 3] [--spawns 50] [--modes a,b]
or from a checkout, in any venv with python/requirements-test.txt and
python/requirements-bench.txt installed:
  PYTHONPATH=python LATCHKEY_BIN=target/release/latchkey python benches/fixture_py.py
The binary is the installed wheel's, or LATCHKEY_BIN. Every server binds
127.0.0.1 only; every loop is bounded.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

TESTS = '''
import pytest

@pytest.mark.parametrize("i", range(%(n)d))
def test_small(%(fixture)s, i):
    r = %(client)s
    assert r.exists("counter", "list", "hash") == 0, "starts empty"
    r.set("k%%d" %% i, i)
    assert r.get("k%%d" %% i) == str(i)
    assert r.incr("counter") == 1
    r.rpush("list", "a", "b", "c")
    assert r.lrange("list", 0, -1) == ["a", "b", "c"]
    r.hset("hash", mapping={"f": "v", "g": "w"})
    assert r.hgetall("hash") == {"f": "v", "g": "w"}
    assert r.expire("hash", 60)
'''

# Times each test's setup and teardown phases (all its fixtures) into
# $FIXTURE_TIMES.
TIMING = '''
import json, os, time
import pytest

_times = {}

@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    t = time.perf_counter()
    try:
        return (yield)
    finally:
        _times[item.nodeid] = time.perf_counter() - t

@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    t = time.perf_counter()
    try:
        return (yield)
    finally:
        _times[item.nodeid] = _times.get(item.nodeid, 0) + time.perf_counter() - t

_whole = {}

@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    t = time.perf_counter()
    try:
        return (yield)
    finally:
        _whole[item.nodeid] = time.perf_counter() - t

def pytest_sessionfinish(session):
    with open(os.environ["FIXTURE_TIMES"], "w") as f:
        json.dump([list(_times.values()), list(_whole.values())], f)
'''

# A redis-server spawned as latchkey.Server spawns latchkey: free port, no
# persistence, output to a file, polled every 0.1 ms (5 ms after 100 ms), SIGKILL,
# and reaped later (at the next stop or at exit), not waited for.
REDIS_SPAWN = '''
import atexit, os, shutil, socket, subprocess, tempfile, time
import redis

_killed = []

@atexit.register
def _reap_all():
    for p in _killed:
        p.wait()

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

class RedisServer:
    def __init__(self, binary):
        self.binary = binary
    def __enter__(self):
        self.tmp = tempfile.mkdtemp(prefix="redis-bench-")
        self.port = free_port()
        self.log = open(os.path.join(self.tmp, "log"), "wb")
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.tmp, "--loglevel", "warning"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.tmp)
        started = time.monotonic()
        deadline = started + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.0001 if time.monotonic() - started < 0.1 else 0.005)
        self.client = redis.Redis(port=self.port, decode_responses=True)
        return self
    def __exit__(self, *exc):
        self.client.close()
        _killed[:] = [p for p in _killed if p.poll() is None]
        self.proc.kill()
        _killed.append(self.proc)
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
'''

# What each suite's tests take: the latchkey modes take the plugin's
# fixtures directly, as a suite using the plugin does (a wrapper fixture of
# the suite's own would be one more fixture per test, which pytest charges
# about 30 us); the others take the `r` of their conftest.
TEST_ARGS = {
    "latchkey-fresh": ("latchkey_fresh", "latchkey_fresh.client"),
    "latchkey-reset": ("latchkey", "latchkey.client"),
}

CONFTESTS = {
    "latchkey-fresh": "",
    "redis-fresh": REDIS_SPAWN + '''
@pytest.fixture
def r():
    with RedisServer(%(redis)r) as s:
        yield s.client
''',
    "latchkey-reset": "",
    "redis-flushall": REDIS_SPAWN + '''
@pytest.fixture(scope="session")
def redis_session():
    with RedisServer(%(redis)r) as s:
        yield s

@pytest.fixture
def r(redis_session):
    redis_session.client.flushall()
    return redis_session.client
''',
    "fakeredis": '''
import fakeredis

@pytest.fixture
def r():
    c = fakeredis.FakeRedis(decode_responses=True)
    c.flushall()
    return c
''',
}


def write_suite(mode, n, work):
    d = os.path.join(work, mode.replace("-", "_"))
    os.makedirs(d)
    with open(os.path.join(d, "test_small.py"), "w") as f:
        fixture, client = TEST_ARGS.get(mode, ("r", "r"))
        f.write(TESTS % {"n": n, "fixture": fixture, "client": client})
    with open(os.path.join(d, "conftest.py"), "w") as f:
        f.write(TIMING + CONFTESTS[mode] % {"redis": REDIS_SERVER})
    return d


def run_suite(mode, n, d):
    """One pytest run: (wall s, median setup+teardown s, median whole test s)."""
    times_file = os.path.join(d, "times.json")
    if True:
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "-p", "latchkey.pytest_plugin", d],
            cwd=d, env=dict(os.environ, FIXTURE_TIMES=times_file,
                            PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"),
            capture_output=True, text=True, timeout=600)
        wall = time.perf_counter() - started
        if out.returncode != 0 or "%d passed" % n not in out.stdout:
            sys.exit("%s failed:\n%s%s" % (mode, out.stdout[-3000:], out.stderr[-3000:]))
        with open(times_file) as f:
            fixture, whole = json.load(f)
    return wall, statistics.median(fixture), statistics.median(whole)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ping(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"PING\r\n")
        assert s.recv(64).startswith(b"+PONG")


def spawn_latchkey():
    import latchkey

    t0 = time.perf_counter()
    s = latchkey.Server().start()
    t1 = time.perf_counter()
    ping(s.port)
    t2 = time.perf_counter()
    s.process.terminate()
    s.process.wait(10)
    t3 = time.perf_counter()
    s.stop()
    return t1 - t0, t2 - t0, t3 - t2


def spawn_redis(work):
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", work, "--loglevel", "warning"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        cwd=work)
    started = time.monotonic()
    deadline = started + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.0001 if time.monotonic() - started < 0.1 else 0.005)
    t1 = time.perf_counter()
    ping(port)
    t2 = time.perf_counter()
    proc.terminate()
    proc.wait(10)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t0, t3 - t2


def ms(x):
    return "%.2f ms" % (x * 1000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tests", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--spawns", type=int, default=50)
    ap.add_argument("--modes", default=",".join(CONFTESTS))
    args = ap.parse_args()
    # The suites run pytest in directories of their own: relative paths in
    # these would name nothing there (or the installed wheel's package).
    if os.environ.get("LATCHKEY_BIN"):
        os.environ["LATCHKEY_BIN"] = os.path.abspath(os.environ["LATCHKEY_BIN"])
    if os.environ.get("PYTHONPATH"):
        os.environ["PYTHONPATH"] = os.pathsep.join(
            os.path.abspath(p) for p in os.environ["PYTHONPATH"].split(os.pathsep) if p)
    import latchkey
    import redis

    print("latchkey: %s" % latchkey.find_binary())
    print("redis-server: %s (%s)" % (REDIS_SERVER, subprocess.run(
        [REDIS_SERVER, "--version"], capture_output=True, text=True).stdout.split()[2]))
    print("redis-py %s, python %s, load average %s" % (
        redis.__version__, sys.version.split()[0], " ".join(
            "%.2f" % x for x in os.getloadavg())))

    work = tempfile.mkdtemp(prefix="fixture-bench-")
    try:
        lk, rs = [], []
        for _ in range(args.spawns):
            lk.append(spawn_latchkey())
            rs.append(spawn_redis(work))
        print("\nstart-up, median of %d spawns each (interleaved)" % args.spawns)
        print("%-14s %14s %14s %14s" % ("", "spawn->ready", "spawn->PONG", "SIGTERM->exit"))
        for name, runs in (("latchkey", lk), ("redis-server", rs)):
            print("%-14s %14s %14s %14s" % ((name,) + tuple(
                ms(statistics.median(r[i] for r in runs)) for i in range(3))))
        print("ratio (redis/latchkey) spawn->PONG: %.2fx" % (
            statistics.median(r[1] for r in rs) / statistics.median(r[1] for r in lk)))

        modes = args.modes.split(",")
        dirs = {mode: write_suite(mode, args.tests, work) for mode in modes}
        runs = {mode: [] for mode in modes}
        for _ in range(args.rounds):  # round-robin: the load falls on every mode alike
            for mode in modes:
                runs[mode].append(run_suite(mode, args.tests, dirs[mode]))
        print("\npytest suite of %d tests, median of %d runs each (round-robin)"
              % (args.tests, args.rounds))
        print("%-16s %10s %16s %16s" % ("fixture", "wall", "fixture/test", "whole test"))
        results = {}
        for mode in modes:
            results[mode] = [statistics.median(r[i] for r in runs[mode]) for i in range(3)]
            wall, fixture, whole = results[mode]
            print("%-16s %9.2fs %16s %16s" % (mode, wall, ms(fixture), ms(whole)))
        for a, b in (("latchkey-fresh", "redis-fresh"), ("latchkey-reset", "redis-flushall"),
                     ("latchkey-reset", "fakeredis")):
            if a in results and b in results:
                print("%s vs %s: wall %.2fx, fixture %.2fx, whole test %.2fx" % ((a, b) + tuple(
                    results[b][i] / results[a][i] for i in range(3))))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
