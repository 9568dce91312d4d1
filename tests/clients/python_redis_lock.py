"""python-redis-lock (PyPI, import name redis_lock) against a server binary: its
unlock, extend and reset scripts, auto-renewal, and the BLPOP signal that wakes a
waiter in another process when the holder releases.

Usage: python3 tests/clients/python_redis_lock.py PATH_TO_SERVER_BINARY
"""

import logging
import multiprocessing
import sys
import time

import redis
import redis_lock

from harness import binary_arg, run, server


def check_acquire_release_and_ownership(r):
    lock = redis_lock.Lock(r, "job", expire=30)
    assert lock.acquire(blocking=False) is True
    want = lock.id if isinstance(lock.id, bytes) else lock.id.encode()
    assert r.get("lock:job") == want
    assert redis_lock.Lock(r, "job").acquire(blocking=False) is False
    # Releasing with someone else's id runs the unlock script, which refuses.
    try:
        redis_lock.Lock(r, "job", id="someone-else").release()
        raise AssertionError("a non-owner must not release")
    except redis_lock.NotAcquired:
        pass
    assert lock.locked()
    lock.release()
    assert not lock.locked()
    assert r.exists("lock:job") == 0


def check_extend(r):
    lock = redis_lock.Lock(r, "ext", expire=10)
    lock.acquire()
    lock.extend(expire=100)  # the extend script
    assert 95 <= r.ttl("lock:ext") <= 100
    other = redis_lock.Lock(r, "ext", id="not-me")
    try:
        other.extend(expire=100)
        raise AssertionError("a non-owner must not extend")
    except redis_lock.NotAcquired:
        pass
    lock.release()


def check_auto_renewal_keeps_the_lock(r):
    lock = redis_lock.Lock(r, "renewed", expire=2, auto_renewal=True)
    lock.acquire()
    time.sleep(4)  # twice expire: only renewal (its extend script) keeps it
    assert lock.locked() and r.exists("lock:renewed") == 1
    assert 0 < r.pttl("lock:renewed") <= 2000  # renewed to expire, not made longer
    assert r.get("lock:renewed") == (lock.id if isinstance(lock.id, bytes) else lock.id.encode())
    lock.release()
    assert r.exists("lock:renewed") == 0


def check_reset_all(r):
    for name in ("a", "b", "c"):
        redis_lock.Lock(r, name, expire=60).acquire()
    r.set("unrelated", "1")
    # The reset-all script finds its keys with KEYS lock:*, undeclared.
    redis_lock.reset_all(r)
    assert r.keys("lock:*") == []
    assert r.get("unrelated") == b"1"


def hold_then_release(port, held, release_at):
    r = redis.Redis(port=port)
    lock = redis_lock.Lock(r, "signal", expire=30)
    lock.acquire()
    held.set()
    time.sleep(max(0.0, release_at - time.time()))
    lock.release()  # LPUSHes the signal list the waiter BLPOPs on


def check_release_wakes_a_waiter_in_another_process(r):
    port = r.connection_pool.connection_kwargs["port"]
    held = multiprocessing.Event()
    release_at = time.time() + 1.0
    holder = multiprocessing.Process(target=hold_then_release, args=(port, held, release_at))
    holder.start()
    try:
        assert held.wait(5)
        # expire=30: without the signal the waiter's BLPOP would sleep up to 30 s.
        waiter = redis_lock.Lock(r, "signal", expire=30)
        assert waiter.acquire(blocking=True, timeout=10) is True
        woke = time.time() - release_at
        assert -0.05 < woke < 0.5, "woke %.3f s after the release" % woke
        waiter.release()
    finally:
        holder.join(5)


CHECKS = [
    check_acquire_release_and_ownership,
    check_extend,
    check_auto_renewal_keeps_the_lock,
    check_reset_all,
    check_release_wakes_a_waiter_in_another_process,
]


def main():
    logging.basicConfig(level=logging.ERROR)  # not the library's "Failed to acquire" warnings
    with server(binary_arg()) as (port, _):
        r = redis.Redis(port=port)
        return run("python-redis-lock %s" % redis_lock.__version__, CHECKS, r, before=r.flushall)


if __name__ == "__main__":
    sys.exit(main())
