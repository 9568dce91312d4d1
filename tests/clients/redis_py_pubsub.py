"""redis-py's pub/sub (PyPI `redis`, pinned in requirements.txt) against a server
binary: the threaded listener (`PubSub.run_in_thread`) and asyncio pub/sub, in
RESP2 and RESP3, as applications use them.

Run by test.sh: python3 tests/clients/redis_py_pubsub.py PATH_TO_LATCHKEY
It passes against redis-server too: python3 tests/clients/redis_py_pubsub.py redis-server
"""

import asyncio
import queue
import sys
import threading
import time

import redis
import redis.asyncio

from harness import binary_arg, run, server


def wait_for(predicate, seconds=5):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def check_threaded_listener(r):
    got = queue.Queue()
    p = r.pubsub()
    p.subscribe(**{"jobs": lambda m: got.put(("jobs", m["data"]))})
    p.psubscribe(**{"ev.*": lambda m: got.put((m["pattern"], m["channel"], m["data"]))})
    worker = p.run_in_thread(sleep_time=0.01, daemon=True)
    try:
        assert wait_for(lambda: r.pubsub_numsub("jobs") == [(b"jobs", 1)])
        assert r.pubsub_numpat() == 1
        assert r.pubsub_channels() == [b"jobs"]
        for i in range(200):
            assert r.publish("jobs", str(i)) == 1
        assert r.publish("ev.start", "go") == 1
        received = [got.get(timeout=5) for _ in range(201)]
        assert received[:200] == [("jobs", str(i).encode()) for i in range(200)], received[:5]
        assert received[200] == (b"ev.*", b"ev.start", b"go")
    finally:
        worker.stop()
        worker.join(timeout=5)
        p.close()
    # The listener's connection is gone: the server forgets its subscriptions.
    assert wait_for(lambda: r.pubsub_numsub("jobs") == [(b"jobs", 0)])
    assert r.pubsub_numpat() == 0


def check_get_message_and_unsubscribe(r):
    p = r.pubsub()
    p.subscribe("a", "b")
    assert p.get_message(timeout=1)["type"] == "subscribe"
    second = p.get_message(timeout=1)
    assert second == {"type": "subscribe", "pattern": None, "channel": b"b", "data": 2}, second
    r.publish("b", "hello")
    m = p.get_message(timeout=1)
    assert m == {"type": "message", "pattern": None, "channel": b"b", "data": b"hello"}, m
    p.ping()
    pong = p.get_message(timeout=1)
    assert pong is not None and pong["type"] == "pong", pong
    p.unsubscribe("a")
    m = p.get_message(timeout=1)
    assert m == {"type": "unsubscribe", "pattern": None, "channel": b"a", "data": 1}, m
    p.ssubscribe("s")
    assert p.get_message(timeout=1)["type"] == "ssubscribe"
    assert r.spublish("s", "shard") == 1
    m = p.get_sharded_message(timeout=1)
    assert m is not None and m["type"] == "smessage" and m["data"] == b"shard", m
    assert r.pubsub_shardchannels() == [b"s"]
    assert r.pubsub_shardnumsub("s") == [(b"s", 1)]
    p.close()


def check_publish_in_transaction(r):
    p = r.pubsub(ignore_subscribe_messages=True)
    p.subscribe("t")
    p.get_message(timeout=1)
    with r.pipeline() as tx:
        tx.publish("t", "1").publish("t", "2")
        assert tx.execute() == [1, 1]
    assert r.eval("redis.call('publish', 't', '3'); return redis.call('publish', 't', '4')", 0) == 1
    data = []
    while len(data) < 4:
        m = p.get_message(timeout=2)
        assert m is not None, data
        data.append(m["data"])
    assert data == [b"1", b"2", b"3", b"4"], data
    p.close()


def check_asyncio(port, protocol):
    async def main():
        r = redis.asyncio.Redis(port=port, protocol=protocol)
        p = r.pubsub()
        await p.subscribe("news")
        await p.psubscribe("n*")
        got = []

        async def reader():
            while len(got) < 20:
                m = await p.get_message(ignore_subscribe_messages=True, timeout=1)
                if m is not None:
                    got.append((m["type"], m["data"]))

        task = asyncio.create_task(reader())
        for i in range(10):
            assert await r.publish("news", str(i)) == 2
        await asyncio.wait_for(task, 5)
        assert [d for t, d in got if t == "message"] == [str(i).encode() for i in range(10)]
        assert [d for t, d in got if t == "pmessage"] == [str(i).encode() for i in range(10)]
        await p.unsubscribe()
        await p.punsubscribe()
        await p.aclose()
        await r.aclose()

    asyncio.run(main())


def main():
    binary = binary_arg()
    status = 0
    with server(binary) as (port, _sock):
        for protocol in (2, 3):
            r = redis.Redis(port=port, protocol=protocol)
            name = "redis-py %s pubsub RESP%d" % (redis.__version__, protocol)
            status |= run(name, [check_threaded_listener, check_get_message_and_unsubscribe,
                                 check_publish_in_transaction], r, before=r.flushall)
            status |= run(name + " asyncio", [check_asyncio], port, protocol)
            r.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
