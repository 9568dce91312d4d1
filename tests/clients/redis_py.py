"""redis-py (PyPI `redis`) against a latchkey binary, as an application uses it.

Run by test.sh: python3 tests/clients/redis_py.py PATH_TO_LATCHKEY
Starts the server on a free loopback port and a Unix socket, runs each check in
RESP2 and RESP3, and prints "redis-py ...: N passed, M failed".
"""

import sys

import redis
from redis.exceptions import LockNotOwnedError, NoScriptError, ResponseError

from harness import binary_arg, is_latchkey, run, server


def check_basics(r):
    assert r.ping() is True
    assert r.set("k", "v", ex=100) is True
    assert r.get("k") == b"v"
    assert 99 <= r.ttl("k") <= 100
    assert r.set("k", "w", nx=True) is None
    assert r.incr("n") == 1 and r.incrby("n", 41) == 42
    r.select(2)
    assert r.get("k") is None
    r.select(0)
    try:
        r.incr("k")
        raise AssertionError("INCR on a non-integer must fail")
    except ResponseError as e:
        assert str(e) == "value is not an integer or out of range", str(e)


def check_pipeline_and_transaction(r):
    p = r.pipeline(transaction=False)
    p.set("a", 1).incr("a").get("a")
    assert p.execute() == [True, 2, b"2"]
    with r.pipeline() as p:  # MULTI/EXEC
        p.set("b", 1).incr("b")
        assert p.execute() == [True, 2]


def check_lock(r):
    lock = r.lock("resource", timeout=5, blocking_timeout=0.5)
    assert lock.acquire() is True
    other = r.lock("resource", timeout=5, blocking_timeout=0.2)
    assert other.acquire() is False, "held by the first lock"
    assert lock.extend(5) is True  # extend script
    assert 5000 < r.pttl("resource") <= 10000
    assert lock.reacquire() is True  # reacquire script
    assert 4000 < r.pttl("resource") <= 5000
    lock.release()  # release script
    assert r.get("resource") is None
    # The server-side check: the release script refuses a lock that is gone.
    stolen = r.lock("resource", timeout=5)
    assert stolen.acquire(blocking=False) is True
    r.delete("resource")
    try:
        stolen.release()
        raise AssertionError("releasing a lock that is gone must fail")
    except LockNotOwnedError:
        pass
    with r.lock("resource", timeout=5, blocking_timeout=1) as held:
        assert held.owned()


def check_scripts(r):
    script = r.register_script("return {KEYS[1], ARGV[1], redis.call('incr', KEYS[1])}")
    assert script(keys=["s"], args=["x"]) == [b"s", b"x", 1]
    r.script_flush()
    # EVALSHA fails with NOSCRIPT, then redis-py falls back to EVAL.
    assert script(keys=["s"], args=["y"]) == [b"s", b"y", 2]
    try:
        r.evalsha("0" * 40, 0)
        raise AssertionError("unknown sha must fail")
    except NoScriptError:
        pass


def check_native_lock(r):
    token = r.execute_command("LOCK.ACQUIRE", "job", "me", 10000, "WAIT", 1000)
    assert isinstance(token, int) and token > 0
    assert r.execute_command("LOCK.ACQUIRE", "job", "you", 10000) is None
    assert r.execute_command("LOCK.VALIDATE", "job", token) == 1
    assert r.execute_command("LOCK.RELEASE", "job", "me") == 1
    assert r.type("job") in (b"none", "none")


CHECKS = [check_basics, check_pipeline_and_transaction, check_lock, check_scripts, check_native_lock]


def check_unix_socket(r, sock):
    u = redis.Redis(unix_socket_path=sock, protocol=r.connection_pool.connection_kwargs.get("protocol", 2))
    try:
        assert u.set("via-socket", "1") is True
        assert r.get("via-socket") == b"1"
    finally:
        u.close()


def main():
    binary = binary_arg()
    status = 0
    with server(binary) as (port, sock):
        for protocol in (2, 3):
            r = redis.Redis(port=port, protocol=protocol)
            checks = CHECKS if is_latchkey(binary) else [c for c in CHECKS if c is not check_native_lock]
            name = "redis-py %s RESP%d" % (redis.__version__, protocol)
            status |= run(name, checks, r, before=r.flushall)
            status |= run(name + " unix socket", [check_unix_socket], r, sock)
            r.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
