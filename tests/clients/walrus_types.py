"""walrus (PyPI) against a server binary: the library's own containers and the
tools built on them, driven as an application uses them, with the stored data
checked both through walrus and as the raw hashes, sets and sorted sets.

  Hash          HSET/HGET/HMGET/HDEL/HEXISTS/HLEN/HKEYS/HVALS/HGETALL/HSCAN,
                HSETNX, HINCRBY, HINCRBYFLOAT
  Set           SADD/SREM/SISMEMBER/SCARD/SMEMBERS/SSCAN/SPOP/SRANDMEMBER,
                SINTER/SUNION/SDIFF and their STORE forms
  ZSet          ZADD/ZSCORE/ZRANK/ZREVRANK/ZCARD/ZRANGE (index, by member,
                WITHSCORES)/ZREVRANGE/ZRANGEBYSCORE/ZREVRANGEBYSCORE/
                ZRANGEBYLEX/ZCOUNT/ZLEXCOUNT/ZINCRBY/ZREM/ZREMRANGEBY*/ZPOPMIN/
                ZPOPMAX/BZPOPMIN/BZPOPMAX/ZINTERSTORE/ZUNIONSTORE/ZSCAN
  List          RPUSH/LPUSH/LPOP/RPOP/BLPOP/BRPOP/LLEN/LRANGE (no indexing)
  Array         walrus's Lua scripts over one hash (HSET/HGET/HDEL/HLEN)
  Autocomplete  one sorted set per prefix, hashes of titles and data,
                ZINTERSTORE for several words, boosts
  Model         walrus's ORM: a hash per row, an all-rows set, a set per
                value of an absolute index, a sorted set per scalar index;
                queries by SINTERSTORE/SUNIONSTORE/SDIFFSTORE, ZINTERSTORE
                and its zset_score_filter script (ZRANGEBYSCORE + SADD)
  Counter       INCRBY/DECRBY on a string

Left out because they need commands outside hashes, sets, sorted sets, geo,
strings, lists (push/pop/range/len), keys and scripting: the rate limiters
(RateLimit and RateLimitLua use LINDEX and LTRIM once the limit is reached),
List indexing, assignment, deletion and insert (LINDEX, LSET, LREM, LTRIM,
LINSERT), Lock (its release script runs LTRIM), Model queries with order_by
(SORT), streams, HyperLogLog, BitField, BloomFilter, Graph and full-text search.

Usage: python3 tests/clients/walrus_types.py PATH_TO_SERVER_BINARY
Runs every check in RESP2 and RESP3; prints "walrus ...: N passed, M failed".
"""

import sys
import threading
import time
from importlib.metadata import version

import walrus
from redis.exceptions import ResponseError
from walrus import Database, Model
from walrus import IntegerField, SetField, TextField, ZSetField

from harness import binary_arg, run, server

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


def encoding(db, key):
    e = db.object("encoding", key)
    return e.decode() if isinstance(e, bytes) else e


def version_at_least(db, major, minor):
    have = tuple(int(x) for x in str(db.info("server")["redis_version"]).split(".")[:2])
    return have >= (major, minor)


def pairs(reply):
    """(member, score) pairs: redis-py gives tuples in RESP2, lists in RESP3."""
    return [tuple(p) for p in reply]


def check_hash(db):
    h = db.Hash("user:1")
    h["name"] = "ada"
    h.update(age=36, city="London")
    assert db.type("user:1") == b"hash" and encoding(db, "user:1") == "listpack"
    assert h["name"] == b"ada" and h.get("nope") is None and h.get("nope", "x") == "x"
    assert h["name", "city", "nope"] == [b"ada", b"London", None]  # HMGET
    assert len(h) == 3 and "age" in h and "nope" not in h
    assert sorted(h.keys()) == [b"age", b"city", b"name"]
    assert sorted(h.values()) == [b"36", b"London", b"ada"]
    assert h.as_dict() == {b"name": b"ada", b"age": b"36", b"city": b"London"}
    assert h.as_dict(decode=True) == {"name": "ada", "age": "36", "city": "London"}
    assert dict(h.items(lazy=True)) == h.as_dict()  # HSCAN
    assert sorted(h.search("c*")) == [(b"city", b"London")]  # HSCAN MATCH
    assert h.setnx("name", "bob") is False and h.setnx("email", "a@b") is True
    assert h.incr("age") == 37 and h.incr("age", -7) == 30
    assert h.incr_float("score", 1.5) == 1.5 and h.incr_float("score", 0.25) == 1.75
    assert db.hget("user:1", "score") == b"1.75"
    try:
        h.incr("name")
        raise AssertionError("HINCRBY on a non-integer must fail")
    except ResponseError as e:
        assert str(e) == "hash value is not an integer", str(e)
    del h["email"]
    assert "email" not in h and len(h) == 4
    copy = walrus.Hash.from_dict(db, "user:2", {"a": "1", "b": "2"})
    assert copy.as_dict(decode=True) == {"a": "1", "b": "2"}
    # Past 512 fields the hash is a hashtable; every field still comes back.
    big = db.Hash("big")
    big.update({"f%d" % i: i for i in range(600)})
    assert encoding(db, "big") == "hashtable" and len(big) == 600
    assert dict(big) == {b"f%d" % i: b"%d" % i for i in range(600)}
    h.clear()
    assert db.exists("user:1") == 0 and len(h) == 0


def check_set(db):
    s = db.Set("s")
    assert s.add("a", "b", "c") == 3 and s.add("a") == 0
    assert db.type("s") == b"set"
    assert "a" in s and "z" not in s and len(s) == 3
    assert s.members() == {b"a", b"b", b"c"} and set(s) == {b"a", b"b", b"c"}
    assert s.random() in {b"a", b"b", b"c"}
    assert set(s.random(2)) <= {b"a", b"b", b"c"} and len(s.random(2)) == 2
    assert len(s.random(-5)) == 5  # negative count: repeats allowed
    t = db.Set("t")
    t.add("b", "c", "d")
    assert s & t == {b"b", b"c"} and s | t == {b"a", b"b", b"c", b"d"}
    assert s - t == {b"a"} and t - s == {b"d"}
    inter = s.interstore("inter", t)
    assert isinstance(inter, walrus.Set) and inter.members() == {b"b", b"c"}
    assert s.unionstore("union", t).members() == {b"a", b"b", b"c", b"d"}
    assert s.diffstore("diff", t).members() == {b"a"}
    assert s.remove("a") == 1 and s.remove("zz") == 0
    popped = s.pop()
    assert popped in {b"b", b"c"} and len(s) == 1
    s -= t  # SDIFFSTORE into itself
    assert len(s) == 0 and db.exists("s") == 0
    ints = db.Set("ints")
    ints.add(*range(10))
    assert encoding(db, "ints") == "intset"
    ints.add("x")
    assert encoding(db, "ints") == ("listpack" if version_at_least(db, 7, 2) else "hashtable")
    ints.add(*range(1000))
    assert encoding(db, "ints") == "hashtable" and len(ints) == 1001
    assert sorted(ints.search("99*")) == [b"99", b"990", b"991", b"992", b"993", b"994",
                                          b"995", b"996", b"997", b"998", b"999"]
    assert walrus.Set.from_set(db, "fs", {"x", "y"}).as_set(decode=True) == {"x", "y"}


def check_zset(db):
    z = db.ZSet("board")
    assert z.add({"alice": 30, "bob": 10, "carol": 20}) == 3
    z["dave"] = 40
    assert db.type("board") == b"zset" and encoding(db, "board") == "listpack"
    assert len(z) == 4 and "bob" in z and "eve" not in z
    assert z.score("carol") == 20.0 and z.score("eve") is None
    assert z.rank("bob") == 0 and z.rank("bob", reverse=True) == 3
    assert z[:2] == [b"bob", b"carol"]
    assert pairs(z[:2, True]) == [(b"bob", 10.0), (b"carol", 20.0)]
    assert z["carol":"dave"] == [b"carol", b"alice"]  # ranges by member: ZRANK, then ZRANGE
    assert tuple(z.range(0, -1, with_scores=True, reverse=True)[0]) == (b"dave", 40.0)
    assert z.range_by_score(15, 35) == [b"carol", b"alice"]
    assert z.range_by_score(15, 100, start=1, num=2) == [b"alice", b"dave"]
    assert z.range_by_score(15, 100, reverse=True) == [b"dave", b"alice", b"carol"]
    assert z.count(10, 20) == 2 and z.count("(10", "+inf") == 3
    assert pairs(z.iterator(with_scores=True)) == [(b"bob", 10.0), (b"carol", 20.0),
                                                  (b"alice", 30.0), (b"dave", 40.0)]
    assert dict(z.search("*o*")) == {b"bob": 10.0, b"carol": 20.0}  # ZSCAN MATCH
    assert z.incr("bob", 25) == 35.0 and z.rank("bob") == 2
    assert z.remove("nobody") == 0 and z.remove("carol") == 1
    assert pairs(z.popmin()) == [(b"alice", 30.0)] and pairs(z.popmax()) == [(b"dave", 40.0)]
    assert pairs(z.as_items()) == [(b"bob", 35.0)]
    # Same scores: ties ordered by member; lexicographic ranges.
    lex = db.ZSet("lex")
    lex.add({m: 0 for m in "abcdefg"})
    assert lex.range_by_lex("[b", "(e") == [b"b", b"c", b"d"]
    assert lex.range_by_lex("[f", "+", reverse=True) == [b"g", b"f"]
    assert lex.lex_count("-", "+") == 7
    assert lex.remove_by_lex("[a", "[b") == 2
    assert lex.remove_by_rank(0) == 1 and lex[:] == [b"d", b"e", b"f", b"g"]
    assert lex.remove_by_score(0, 0) == 4 and db.exists("lex") == 0
    a, b = db.ZSet("za"), db.ZSet("zb")
    a.add({"x": 1, "y": 2})
    b.add({"y": 10, "z": 20})
    assert pairs(a.interstore("zi", b).as_items()) == [(b"y", 12.0)]
    assert pairs(a.unionstore("zu", b, aggregate="MAX").as_items()) == [(b"x", 1.0), (b"y", 10.0),
                                                                 (b"z", 20.0)]
    del a["x"]
    assert pairs(a.as_items()) == [(b"y", 2.0)]
    assert pairs(walrus.ZSet.from_dict(db, "zd", {"p": 2.5, "q": -1}).as_items()) == [(b"q", -1.0),
                                                                             (b"p", 2.5)]
    # Past 128 members the sorted set is a skiplist; ranks and ranges hold.
    big = db.ZSet("big")
    big.add({"m%04d" % i: i * 0.5 for i in range(1000)})
    assert encoding(db, "big") == "skiplist" and len(big) == 1000
    assert big.rank("m0500") == 500 and big.range_by_score(10, 11) == [b"m0020", b"m0021",
                                                                     b"m0022"]
    assert big.remove_by_score("(100", "+inf") == 799 and len(big) == 201


def check_blocking_zset_pop(db):
    z = db.ZSet("jobs")
    assert z.bpopmin(timeout=0.1) is None  # nothing arrives: BZPOPMIN times out
    got = []
    waiter = threading.Thread(target=lambda: got.append(db.ZSet("jobs").bpopmax(timeout=5)))
    waiter.start()
    time.sleep(0.2)
    z.add({"low": 1, "high": 9})
    waiter.join(10)
    assert pairs(got) == [(b"high", 9.0)], got
    assert pairs(z.as_items()) == [(b"low", 1.0)]
    assert tuple(z.bpopmin(timeout=1)) == (b"low", 1.0)


def check_list(db):
    lst = db.List("q")
    lst.extend(["b", "c"])
    lst.append("d")
    lst.prepend("a")
    assert db.type("q") == b"list" and len(lst) == 4
    assert list(lst) == [b"a", b"b", b"c", b"d"]  # LRANGE 0 -1
    assert lst[1:3] == [b"b", b"c"] and lst.as_list(decode=True) == ["a", "b", "c", "d"]
    assert lst.popleft() == b"a" and lst.popright() == b"d"
    assert lst.bpopleft(timeout=1) == b"b" and lst.bpopright(timeout=1) == b"c"
    assert lst.bpopleft(timeout=0.1) is None and db.exists("q") == 0


def check_array(db):
    arr = db.Array("arr")
    arr.append("a")
    arr.extend(["b", "c", "d"])
    assert db.type("arr") == b"hash" and len(arr) == 4
    assert arr[0] == b"a" and arr[3] == b"d" and arr[-1] == b"d" and arr[9] is None
    arr[1] = "B"
    assert arr.as_list(decode=True) == ["a", "B", "c", "d"]
    assert "c" in arr and "z" not in arr
    assert arr.pop() == b"d" and arr.pop(0) == b"a"
    assert arr.as_list(decode=True) == ["B", "c"] and len(arr) == 2
    del arr[0]
    assert arr.as_list(decode=True) == ["c"]


def check_autocomplete(db):
    ac = db.autocomplete(namespace="ac")
    ac.store("p1", "red apple pie", {"id": 1})
    ac.store("p2", "apple crumble", {"id": 2})
    ac.store("p3", "cherry pie", {"id": 3})
    assert [r["id"] for r in ac.search("app")] == [2, 1]  # by where the word sits
    assert [r["id"] for r in ac.search("pie")] == [3, 1]
    assert [r["id"] for r in ac.search("apple pie")] == [1]  # ZINTERSTORE of both words
    assert list(ac.search("xyz")) == []
    assert ac.exists("p2") and not ac.exists("p9")
    ac.boost_object("p1", multiplier=10)
    assert [r["id"] for r in ac.search("app")] == [1, 2]
    ac.remove("p1")
    assert [r["id"] for r in ac.search("app")] == [2]
    assert db.zcard("ac:s:apple") == 1 and db.type("ac:s:apple") == b"zset"
    ac.flush()
    assert db.keys("ac:*") == []


class User(Model):
    __namespace__ = "app"
    username = TextField(primary_key=True)
    team = TextField(index=True)
    age = IntegerField(index=True)
    tags = SetField()
    scores = ZSetField()


def check_model(db):
    User.__database__ = db
    rows = [("ada", "core", 36), ("bob", "core", 25), ("cy", "web", 41), ("di", "web", 19)]
    for name, team, age in rows:
        User.create(username=name, team=team, age=age)
    assert User.count() == 4
    ada = User.load("ada")
    assert (ada.team, ada.age) == ("core", 36)
    assert db.type("app|user:id.ada") == b"hash" and db.hget("app|user:id.ada", "age") == b"36"
    assert db.smembers("app|user:team.absolute.core") == {b"app|user:id.ada", b"app|user:id.bob"}
    assert db.zscore("app|user:age.continuous", "app|user:id.cy") == 41.0

    def names(q):
        return sorted(u.username for u in q)

    assert names(User.query(User.team == "core")) == ["ada", "bob"]
    assert names(User.query(User.team != "core")) == ["cy", "di"]
    assert names(User.query(User.age > 30)) == ["ada", "cy"]
    assert names(User.query(User.age.between(20, 40))) == ["ada", "bob"]
    assert names(User.query((User.team == "web") & (User.age < 30))) == ["di"]
    assert names(User.query((User.team == "core") | (User.age >= 41))) == ["ada", "bob", "cy"]
    assert User.get(User.age == 25).username == "bob"
    ada.age = 37
    ada.save()
    assert names(User.query(User.age == 37)) == ["ada"] and names(User.query(User.age == 36)) == []
    ada.tags.add("admin", "ops")
    ada.scores.add({"q1": 9.5})
    assert User.load("ada").tags.members() == {b"admin", b"ops"}
    assert pairs(User.load("ada").scores.as_items()) == [(b"q1", 9.5)]
    User.load("bob").delete()
    assert User.count() == 3 and names(User.query(User.team == "core")) == ["ada"]
    User.query_delete(User.team == "web")
    assert names(User.all()) == ["ada"]


def check_counter_and_wrong_type(db):
    c = db.counter("visits")
    assert c.incr() == 1 and c.incr(10) == 11 and c.decr(2) == 9 and c.value() == 9
    db.set("plain", "string")
    for action in (lambda: db.Hash("plain")["f"], lambda: db.Set("plain").add("x"),
                   lambda: db.ZSet("plain").add({"x": 1}), lambda: len(db.ZSet("plain"))):
        try:
            action()
            raise AssertionError("a type command on a string must fail")
        except ResponseError as e:
            assert str(e) == WRONGTYPE, str(e)
    try:
        db.ZSet("z").add({"x": "not a number"})
        raise AssertionError("a non-numeric score must fail")
    except ResponseError as e:
        assert str(e) == "value is not a valid float", str(e)


CHECKS = [
    check_hash,
    check_set,
    check_zset,
    check_blocking_zset_pop,
    check_list,
    check_array,
    check_autocomplete,
    check_model,
    check_counter_and_wrong_type,
]


def main():
    status = 0
    with server(binary_arg()) as (port, _):
        for protocol in (2, 3):
            db = Database(port=port, protocol=protocol)
            name = "walrus %s redis-py RESP%d" % (version("walrus"), protocol)
            status |= run(name, CHECKS, db, before=db.flushall)
            db.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
