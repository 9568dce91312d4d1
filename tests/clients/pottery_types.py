"""pottery (PyPI) against a server binary: the library's own Redis-backed
containers, driven as an application uses them, with their data checked both
through the library and as the raw hashes, sets, lists and strings it stores.

  RedisDict     HSET (mapping, in MULTI after WATCH/EXISTS), HGET, HDEL, HLEN,
                HEXISTS, HSCAN, HGETALL; listpack and hashtable sizes
  RedisSet      SADD, SREM, SISMEMBER, SMISMEMBER, SCARD, SSCAN, SPOP,
                SINTER/SUNION/SDIFF between two RedisSets; intset and hashtable
  RedisCounter  a hash of counts: update/subtract in WATCH/MULTI, HGETALL
  RedisList     RPUSH, LLEN, LRANGE in MULTI, LPOP/RPOP in WATCH/MULTI
  RedisDeque    LPUSH/RPUSH after WATCH+LLEN, pops from both ends
  NextID        its Lua script (GET, SET) and GET: increasing ids from two
                generators on one key, and from threads
  redis_cache   a hash of results with HMGET/HSET and EXPIRE
  Redlock       SET NX PX and its release/extend/acquired scripts

List indexing, assignment, insert and sort, a RedisDeque with maxlen,
BloomFilter and HyperLogLog are driven in pottery_more.py.

Usage: python3 tests/clients/pottery_types.py PATH_TO_SERVER_BINARY
Runs every check in RESP2 and RESP3; prints "pottery ...: N passed, M failed".
"""

import collections
import logging
import sys
import threading
import warnings
from importlib.metadata import version

import pottery
import redis
from pottery import (NextID, RedisCounter, RedisDeque, RedisDict, RedisList, RedisSet,
                     Redlock, redis_cache)
from redis.exceptions import ResponseError

from harness import binary_arg, run, server

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


def encoding(r, key):
    e = r.object("encoding", key)
    return e.decode() if isinstance(e, bytes) else e


def version_at_least(r, major, minor):
    have = tuple(int(x) for x in str(r.info("server")["redis_version"]).split(".")[:2])
    return have >= (major, minor)


def check_dict(r):
    d = RedisDict({"name": "ada", "age": 36, "langs": ["en", "fr"]}, redis=r, key="user:1")
    assert r.type("user:1") == b"hash"
    # pottery stores JSON: the field "name" is the string "\"name\"".
    assert r.hget("user:1", '"name"') == b'"ada"'
    assert r.hget("user:1", '"langs"') == b'["en", "fr"]'
    assert d["name"] == "ada" and d["age"] == 36 and d["langs"] == ["en", "fr"]
    assert len(d) == 3 and "age" in d and "nope" not in d
    d["age"] = 37
    d[7] = {"nested": True}
    assert d["age"] == 37 and d[7] == {"nested": True}
    assert r.hlen("user:1") == 4
    del d["langs"]
    try:
        del d["langs"]
        raise AssertionError("deleting a missing field must raise KeyError")
    except KeyError:
        pass
    try:
        d["langs"]
        raise AssertionError("a missing field must raise KeyError")
    except KeyError:
        pass
    assert sorted(map(str, d)) == ["7", "age", "name"]  # HSCAN
    assert d.to_dict() == {"name": "ada", "age": 37, 7: {"nested": True}}  # HGETALL
    d.update({"a": 1}, b=2)
    assert d.get("b") == 2 and d.get("zz", "dflt") == "dflt"
    assert len(d) == 5
    # A second object on the same key sees the same data.
    again = RedisDict(redis=r, key="user:1")
    assert again == d and again.to_dict() == d.to_dict()
    # Passing initial data for a key that exists is refused (EXISTS in WATCH).
    try:
        RedisDict({"x": 1}, redis=r, key="user:1")
        raise AssertionError("populating an existing key must fail")
    except pottery.KeyExistsError:
        pass
    d.clear()  # UNLINK
    assert r.exists("user:1") == 0 and len(d) == 0


def check_dict_sizes_and_encodings(r):
    small = RedisDict({i: "v%d" % i for i in range(100)}, redis=r, key="small")
    assert encoding(r, "small") == "listpack"
    big = RedisDict({i: "v%d" % i for i in range(1000)}, redis=r, key="big")
    assert encoding(r, "big") == "hashtable"
    assert len(big) == 1000 and big[999] == "v999"
    seen = dict(big.items())  # HSCAN through a hashtable: every field once
    assert seen == {i: "v%d" % i for i in range(1000)}
    # One long value turns a small hash into a hashtable.
    small["long"] = "x" * 100
    assert encoding(r, "small") == "hashtable"
    assert small["long"] == "x" * 100 and len(small) == 101
    for i in range(100):
        del small[i]
    assert small.to_dict() == {"long": "x" * 100}


def check_dict_wrong_type(r):
    r.set("plain", "string")
    d = RedisDict(redis=r, key="plain")
    for action in (lambda: d["x"], lambda: d.__setitem__("x", 1), lambda: len(d)):
        try:
            action()
            raise AssertionError("a hash command on a string must fail")
        except ResponseError as e:
            assert str(e) == WRONGTYPE, str(e)
    assert r.get("plain") == b"string"


def check_set(r):
    s = RedisSet({1, 2, 3}, redis=r, key="s")
    assert r.type("s") == b"set" and encoding(r, "s") == "intset"
    assert r.smembers("s") == {b"1", b"2", b"3"}
    assert 2 in s and 9 not in s and len(s) == 3
    s.add("word")
    # Small sets of strings are listpacks since Redis 7.2, hashtables before.
    assert encoding(r, "s") == ("listpack" if version_at_least(r, 7, 2) else "hashtable")
    assert list(s.contains_many(1, 9, "word")) == [True, False, True]  # SMISMEMBER
    s.discard(9)  # not there: no error
    s.discard(1)
    try:
        s.remove(1)
        raise AssertionError("removing a missing member must raise KeyError")
    except KeyError:
        pass
    assert s.to_set() == {2, 3, "word"} and set(s) == {2, 3, "word"}  # SMEMBERS, SSCAN
    t = RedisSet({3, "word", "other"}, redis=r, key="t")
    # Two RedisSets on one server: pottery asks the server (SINTER, SUNION, SDIFF).
    assert s.intersection(t) == {3, "word"}
    assert s.union(t) == {2, 3, "word", "other"}
    assert s.difference(t) == {2}
    assert t.difference(s) == {"other"}
    assert not s.isdisjoint(t) and s.isdisjoint({100})
    assert RedisSet({2, 3}, redis=r, key="u").issubset(s)
    assert s.issuperset({2, "word"})
    s.update({10, 11}, [12])
    s.difference_update({10}, {11, 12})
    assert s.to_set() == {2, 3, "word"}
    popped = {s.pop() for _ in range(3)}
    assert popped == {2, 3, "word"} and len(s) == 0
    assert r.exists("s") == 0, "SPOP of the last member removes the key"
    try:
        s.pop()
        raise AssertionError("pop from an empty set must raise KeyError")
    except KeyError:
        pass


def check_big_set(r):
    s = RedisSet(range(1000), redis=r, key="ints")
    assert encoding(r, "ints") == "hashtable"  # more than 512 integers
    assert len(s) == 1000 and set(s) == set(range(1000))
    s2 = RedisSet(("m%d" % i for i in range(200)), redis=r, key="strs")
    assert encoding(r, "strs") == "hashtable"  # more than 128 strings
    assert s.intersection(s2) == set()
    assert len(s.union(s2)) == 1200
    assert list(s.contains_many(*range(995, 1005))) == [True] * 5 + [False] * 5


def check_counter(r):
    c = RedisCounter("abracadabra", redis=r, key="letters")
    assert r.type("letters") == b"hash"
    assert c["a"] == 5 and c["b"] == 2 and c["z"] == 0
    assert c.most_common(1) == [("a", 5)] and sorted(c.most_common(3)[1:]) == [("b", 2), ("r", 2)]
    assert c.to_counter() == collections.Counter("abracadabra")
    c.update({"a": 2, "z": 1})
    c.subtract({"b": 2})
    assert c["a"] == 7 and c["z"] == 1 and c["b"] == 0
    assert sorted(c.elements()) == sorted("aaaaaaa" + "c" + "d" + "rr" + "z")
    c["c"] += 10
    assert r.hget("letters", '"c"') == b"11"
    del c["z"]
    del c["never"]  # a missing key is not an error for a Counter
    assert "z" not in c
    assert c + collections.Counter(a=1) == collections.Counter(a=8, c=11, d=1, r=2)
    c -= collections.Counter(a=7)
    assert c["a"] == 0


def check_list(r):
    lst = RedisList([1, "two", {"three": 3}], redis=r, key="lst")
    assert r.type("lst") == b"list"
    assert r.lrange("lst", 0, -1) == [b"1", b'"two"', b'{"three": 3}']
    lst.append(4)
    lst.extend([5, 6])
    assert len(lst) == 6
    assert lst[1:3] == ["two", {"three": 3}]  # LRANGE in MULTI
    assert lst[::2] == [1, {"three": 3}, 5]
    assert lst.to_list() == [1, "two", {"three": 3}, 4, 5, 6]
    assert lst == [1, "two", {"three": 3}, 4, 5, 6]
    assert lst.pop() == 6  # RPOP
    assert lst.pop(0) == 1  # LPOP
    assert lst.pop(-1) == 5
    assert lst.to_list() == ["two", {"three": 3}, 4]  # (iterating would use LINDEX)
    assert RedisList(redis=r, key="lst") == lst
    while len(lst):
        lst.pop()
    assert r.exists("lst") == 0
    try:
        lst.pop()
        raise AssertionError("pop from an empty list must raise IndexError")
    except IndexError:
        pass


def check_deque(r):
    d = RedisDeque("bcd", redis=r, key="dq")
    d.append("e")
    d.appendleft("a")
    d.extend("fg")
    d.extendleft("yz")  # z then y go in front: z y a b ...
    assert r.lrange("dq", 0, -1) == [b'"%s"' % c.encode() for c in "zyabcdefg"]
    assert len(d) == 9 and bool(d)
    assert d.popleft() == "z" and d.pop() == "g"
    assert repr(d) == "RedisDeque(['y', 'a', 'b', 'c', 'd', 'e', 'f'])"
    while d:
        d.popleft()
    assert not d and r.exists("dq") == 0


def check_next_id(r):
    ids_1 = NextID(key="tweets", masters={r})
    ids_2 = NextID(key="tweets", masters={r})
    assert [next(ids_1), next(ids_2), next(ids_1)] == [1, 2, 3]
    assert r.get("nextid:tweets") == b"3"
    # The script never moves the id backwards.
    r.set("nextid:tweets", 100)
    assert next(ids_2) == 101
    ids_1.reset()
    assert r.exists("nextid:tweets") == 0
    assert next(ids_1) == 1
    # Threads on one key: every id handed out is distinct.
    got, lock = [], threading.Lock()

    def take():
        # Under contention a generator gives up after num_tries attempts
        # (QuorumNotAchieved, by design); the thread then asks again.
        gen = NextID(key="threads", masters={r})
        taken = attempts = 0
        while taken < 50 and attempts < 1000:
            attempts += 1
            try:
                value = next(gen)
            except pottery.QuorumNotAchieved:
                continue
            taken += 1
            with lock:
                got.append(value)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(got) == 200 and len(set(got)) == 200, (len(got), len(set(got)))
    assert int(r.get("nextid:threads")) == max(got)


def check_redis_cache(r):
    calls = []

    @redis_cache(redis=r, key="expensive", timeout=60)
    def expensive(n):
        calls.append(n)
        return {"square": n * n}

    assert expensive(3) == {"square": 9} and expensive(3) == {"square": 9}
    assert expensive(4) == {"square": 16}
    assert calls == [3, 4]
    assert r.type("expensive") == b"hash" and r.hlen("expensive") == 2
    assert 55 <= r.ttl("expensive") <= 60
    info = expensive.cache_info()
    assert (info.hits, info.misses, info.currsize) == (1, 2, 2), info
    expensive.cache_clear()
    assert r.exists("expensive") == 0
    assert expensive(3) == {"square": 9} and calls == [3, 4, 3]


def check_redlock(r):
    lock = Redlock(key="printer", masters={r}, auto_release_time=5)
    assert lock.acquire(blocking=False) is True
    assert 4000 <= r.pttl("redlock:printer") <= 5000
    other = Redlock(key="printer", masters={r}, auto_release_time=5)
    assert other.acquire(blocking=False) is False
    assert lock.locked() > 0 and other.locked() == 0  # the acquired script
    lock.extend()  # the extend script
    lock.release()  # the release script
    assert r.exists("redlock:printer") == 0
    with other:
        assert r.exists("redlock:printer") == 1
    assert r.exists("redlock:printer") == 0


CHECKS = [
    check_dict,
    check_dict_sizes_and_encodings,
    check_dict_wrong_type,
    check_set,
    check_big_set,
    check_counter,
    check_list,
    check_deque,
    check_next_id,
    check_redis_cache,
    check_redlock,
]


def main():
    logging.basicConfig(level=logging.CRITICAL)  # not pottery's "tmp key" and quorum logs
    warnings.simplefilter("ignore", pottery.InefficientAccessWarning)
    status = 0
    with server(binary_arg()) as (port, _):
        for protocol in (2, 3):
            r = redis.Redis(port=port, protocol=protocol)
            name = "pottery %s redis-py RESP%d" % (version("pottery"), protocol)
            status |= run(name, CHECKS, r, before=r.flushall)
            r.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
