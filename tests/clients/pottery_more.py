"""pottery (PyPI) against a server binary, the part of the library that needs the
rest of Redis's data commands: its own code drives them, as an application
uses it, and the stored values are checked raw as well.

  RedisList     indexing (LINDEX), assignment (LSET), deletion (LSET + LREM),
                insert (LINDEX, LSET, LINSERT), sort (SORT ... STORE)
  RedisDeque    maxlen (LTRIM after each push), rotate, both ends
  BloomFilter   SETBIT, GETBIT, BITCOUNT: membership and size estimate
  HyperLogLog   PFADD, PFCOUNT, PFMERGE (update from other HLLs), membership
                (COPY to a temporary key, PFADD, UNLINK)

Usage: python3 tests/clients/pottery_more.py PATH_TO_SERVER_BINARY
Runs every check in RESP2 and RESP3; prints "pottery ...: N passed, M failed".
"""

import logging
import sys
import warnings
from importlib.metadata import version

import pottery
import redis
from pottery import BloomFilter, HyperLogLog, RedisDeque, RedisList

from harness import binary_arg, run, server


def check_list_indexing(r):
    letters = RedisList(["a", "b", "c", "d"], redis=r, key="letters")
    assert letters[0] == "a" and letters[-1] == "d"
    letters[1] = "B"
    assert list(letters) == ["a", "B", "c", "d"]
    del letters[2]
    assert list(letters) == ["a", "B", "d"]
    letters.insert(1, "x")
    assert list(letters) == ["a", "x", "B", "d"]
    letters.insert(0, "first")
    assert letters[0] == "first" and len(letters) == 5
    try:
        letters[10]
        raise AssertionError("an index past the end is an IndexError")
    except IndexError:
        pass
    try:
        letters[10] = "y"
        raise AssertionError("assigning past the end is an IndexError")
    except IndexError:
        pass
    # pottery stores JSON: the element "x" is the string "\"x\"".
    assert r.lrange("letters", 0, -1) == [b'"first"', b'"a"', b'"x"', b'"B"', b'"d"']


def check_list_sort(r):
    numbers = RedisList([5, 3, 9, 1], redis=r, key="numbers")
    numbers.sort()
    assert list(numbers) == [1, 3, 5, 9]
    numbers.sort(reverse=True)
    assert list(numbers) == [9, 5, 3, 1]
    assert r.type("numbers") == b"list"


def check_deque_maxlen(r):
    d = RedisDeque([1, 2, 3], maxlen=3, redis=r, key="window")
    d.append(4)
    assert list(d) == [2, 3, 4]
    d.appendleft(0)
    assert list(d) == [0, 2, 3]
    d.extend([7, 8])
    assert list(d) == [3, 7, 8]
    assert r.llen("window") == 3
    d.rotate(1)
    assert list(d) == [8, 3, 7]
    d.rotate(-2)
    assert list(d) == [7, 8, 3]
    assert d.pop() == 3 and d.popleft() == 7
    assert list(d) == [8]


def check_bloom(r):
    bloom = BloomFilter(num_elements=1000, false_positives=0.01, redis=r, key="seen")
    words = ["apple", "banana", "cherry", "durian", "elderberry"]
    bloom.update(words)
    for w in words:
        assert w in bloom, w
    misses = sum(1 for i in range(200) if ("nope-%d" % i) in bloom)
    assert misses <= 10, misses  # about 1% false positives
    assert r.type("seen") == b"string"
    # The filter is a bitmap: the bits pottery set are the bits BITCOUNT counts.
    assert r.bitcount("seen") > 0
    assert 4 <= len(bloom) <= 6, len(bloom)


def check_hyperloglog(r):
    fruits = HyperLogLog(["apple", "banana", "cherry"], redis=r, key="fruits")
    assert len(fruits) == 3
    fruits.add("apple")
    assert len(fruits) == 3
    veggies = HyperLogLog(["carrot", "banana"], redis=r, key="veggies")
    fruits.update(veggies)
    assert len(fruits) == 4
    assert "carrot" in fruits and "kiwi" not in fruits
    assert r.exists("fruits") == 1 and r.dbsize() == 2, "the membership test's copy is gone"
    many = HyperLogLog(redis=r, key="many")
    many.update(str(i) for i in range(10_000))
    assert abs(len(many) - 10_000) < 200, len(many)
    assert r.get("many").startswith(b"HYLL")


CHECKS = [
    check_list_indexing,
    check_list_sort,
    check_deque_maxlen,
    check_bloom,
    check_hyperloglog,
]


def main():
    logging.basicConfig(level=logging.CRITICAL)
    warnings.simplefilter("ignore", pottery.InefficientAccessWarning)
    status = 0
    with server(binary_arg()) as (port, _):
        for protocol in (2, 3):
            r = redis.Redis(port=port, protocol=protocol)
            name = "pottery %s redis-py RESP%d (lists, bitmaps, HyperLogLog)" % (
                version("pottery"), protocol)
            status |= run(name, CHECKS, r, before=r.flushall)
            r.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
