"""redis-py's client-side cache (PyPI `redis`, pinned in requirements.txt)
against a server binary: `Redis(protocol=3, cache_config=CacheConfig())`
turns CLIENT TRACKING on for its connections and keeps read replies; the
server's RESP3 invalidation pushes take them out again.

Each check shows that a repeated read is served from the cache (the server's
`cmdstat_get` call count does not move), and that a write by another client,
a flush, or a key's expiry invalidates it (the next read reaches the server
and sees the new value).

redis-py 8.1 refuses to cache against a server that reports a version below
7.4 (a vendor policy: "to maximize compatibility with all Redis products");
the protocol it uses, CLIENT TRACKING ON and RESP3 invalidation pushes, is
Redis 6's, so the check lowers that floor to 7.0, which both latchkey and the
redis-server 7.0 it is compared with report.

Run by test.sh: python3 tests/clients/redis_py_cache.py PATH_TO_LATCHKEY
It passes against redis-server too: python3 tests/clients/redis_py_cache.py redis-server
"""

import sys
import time

import redis
import redis.connection
from redis.cache import CacheConfig

from harness import binary_arg, run, server


# See the module doc: the version floor, not the protocol, is 7.4.
redis.connection.CacheProxyConnection.MIN_ALLOWED_VERSION = "7.0.0"


def calls(admin, command):
    stats = admin.info("commandstats")
    return stats.get("cmdstat_%s" % command, {}).get("calls", 0)


def eventually(predicate, seconds=5):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def check_cached_get_is_served_locally_and_invalidated_by_another_client(port):
    admin = redis.Redis(port=port)
    cached = redis.Redis(port=port, protocol=3, cache_config=CacheConfig())
    try:
        admin.set("k", "v1")
        assert cached.get("k") == b"v1"
        assert cached.get_cache().size == 1
        assert int(admin.info("clients")["tracking_clients"]) == 1
        before = calls(admin, "get")
        for _ in range(20):
            assert cached.get("k") == b"v1"
        assert calls(admin, "get") == before, "cached reads reached the server"
        # Another client's write: the server pushes an invalidation, the
        # entry goes, and the next read fetches the new value.
        admin.set("k", "v2")
        assert eventually(lambda: cached.get("k") == b"v2")
        assert calls(admin, "get") == before + 1
        assert cached.get("k") == b"v2"
        assert calls(admin, "get") == before + 1
        # Several keys, hashes too.
        admin.hset("h", mapping={"f": "1"})
        assert cached.hget("h", "f") == b"1"
        assert cached.hget("h", "f") == b"1"
        admin.hset("h", "f", "2")
        assert eventually(lambda: cached.hget("h", "f") == b"2")
    finally:
        cached.close()
        admin.close()


def check_flush_and_expiry_empty_the_cache(port):
    admin = redis.Redis(port=port)
    cached = redis.Redis(port=port, protocol=3, cache_config=CacheConfig())
    try:
        admin.set("a", "1")
        admin.set("b", "2", px=200)
        assert cached.get("a") == b"1"
        assert cached.get("b") == b"2"
        assert cached.get_cache().size == 2
        # b's TTL runs out: the server invalidates it.
        time.sleep(0.4)
        assert eventually(lambda: cached.get("b") is None)
        assert cached.get("a") == b"1"
        # A flush sends a null invalidation: everything goes.
        admin.flushall()
        assert eventually(lambda: cached.get("a") is None)
        admin.set("a", "3")
        assert eventually(lambda: cached.get("a") == b"3")
    finally:
        cached.close()
        admin.close()


def main():
    binary = binary_arg()
    with server(binary) as (port, _sock):
        admin = redis.Redis(port=port)
        name = "redis-py %s client-side cache" % redis.__version__
        status = run(name, [check_cached_get_is_served_locally_and_invalidated_by_another_client,
                            check_flush_and_expiry_empty_the_cache], port,
                     before=admin.flushall)
        admin.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
