"""latchkey's native lock from Python, through redis-py's generic execute_command.

An example as much as a test (the README shows it): two workers want the same
job; the second waits on the server, in its FIFO queue, instead of polling, and
the fencing token tells a resource which holder is current.

Usage: python3 tests/clients/native_lock.py PATH_TO_LATCHKEY
(against redis-server, which has no LOCK.* commands, it reports a skip)
"""

import sys
import threading
import time

import redis

from harness import binary_arg, is_latchkey, run, server


def acquire(r, key, owner, ttl_ms, wait_ms=None):
    """LOCK.ACQUIRE: a fencing token (int) once held, None if not granted in time."""
    args = ["LOCK.ACQUIRE", key, owner, ttl_ms]
    if wait_ms is not None:
        args += ["WAIT", wait_ms]
    return r.execute_command(*args)


def release(r, key, owner):
    """LOCK.RELEASE: True if `owner` held the lock and now does not."""
    return r.execute_command("LOCK.RELEASE", key, owner) == 1


def check_a_waiter_is_handed_the_lock_with_a_newer_token(r):
    port = r.connection_pool.connection_kwargs["port"]
    t1 = acquire(r, "job", "worker-1", 10_000)
    assert isinstance(t1, int) and t1 > 0

    got = {}

    def worker_2():
        r2 = redis.Redis(port=port)
        started = time.monotonic()
        got["token"] = acquire(r2, "job", "worker-2", 10_000, wait_ms=5_000)  # blocks
        got["waited"] = time.monotonic() - started
        r2.close()

    t = threading.Thread(target=worker_2)
    t.start()
    time.sleep(0.3)  # worker 2 is queued on the server meanwhile
    assert release(r, "job", "worker-1")
    t.join(5)
    t2 = got["token"]
    assert isinstance(t2, int) and t2 > t1, (t1, t2)
    assert 0.25 < got["waited"] < 2, got["waited"]
    # A resource guarded by the lock accepts only the current token.
    assert r.execute_command("LOCK.VALIDATE", "job", t1) == 0
    assert r.execute_command("LOCK.VALIDATE", "job", t2) == 1
    assert r.execute_command("LOCK.EXTEND", "job", "worker-2", 20_000) == 1
    assert r.execute_command("LOCK.EXTEND", "job", "worker-1", 20_000) == 0
    assert release(r, "job", "worker-2")
    assert not release(r, "job", "worker-2")


def check_wait_runs_out_with_none(r):
    acquire(r, "busy", "holder", 10_000)
    started = time.monotonic()
    assert acquire(r, "busy", "other", 10_000, wait_ms=200) is None
    assert time.monotonic() - started >= 0.19


def main():
    binary = binary_arg()
    if not is_latchkey(binary):
        print("native lock: skipped (LOCK.* are latchkey commands)")
        return 0
    with server(binary) as (port, _):
        r = redis.Redis(port=port)
        checks = [check_a_waiter_is_handed_the_lock_with_a_newer_token, check_wait_runs_out_with_none]
        return run("native lock (redis-py %s)" % redis.__version__, checks, r, before=r.flushall)


if __name__ == "__main__":
    sys.exit(main())
