"""redis-py's server-administration API against a latchkey binary, as an
application or an operator's tool drives it: FUNCTION (load, replace, FCALL,
FCALL_RO, list, dump and restore, delete, flush, stats), MONITOR through
`r.monitor()`, CLIENT PAUSE WRITE and ALL against pipelines, transactions and a
pub/sub subscriber of another client, and SLOWLOG.

Run by test.sh: python3 tests/clients/redis_py_admin.py PATH_TO_LATCHKEY
Each check runs in RESP2 and RESP3. The expected values were taken from Debian's
redis-server 7.0 (python3 tests/clients/redis_py_admin.py /usr/bin/redis-server
passes too), among them: a WRITE pause holds PUBLISH (it may replicate) but not a
subscriber's PING or SUBSCRIBE, and FCALL of a writing function but not of a
`no-writes` one; an ALL pause holds every client's commands, CLIENT UNPAUSE
included, until it runs out; MONITOR shows a script's calls as `[db lua]` after
the EVAL or FCALL and leaves admin commands (CONFIG) out; SLOWLOG cuts an
argument at 128 bytes and a command at 32 arguments.
"""

import sys
import threading
import time

import redis
from redis.exceptions import ResponseError

from harness import binary_arg, run, server

LIBRARY = """#!lua name=kv
redis.register_function('kv_set', function(keys, args)
  return redis.call('SET', keys[1], args[1])
end)
redis.register_function{function_name='kv_get', callback=function(keys, args)
  return redis.call('GET', keys[1])
end, flags={'no-writes'}, description='reads a key'}
"""

# The same library, its kv_get now returning the length of the value.
LIBRARY_V2 = LIBRARY.replace("return redis.call('GET', keys[1])",
                             "return redis.call('STRLEN', keys[1])")

OTHER_LIBRARY = """#!lua name=other
redis.register_function('other_ping', function() return 'pong' end)
"""


def error_of(call):
    try:
        call()
    except ResponseError as e:
        return str(e)
    raise AssertionError("expected an error reply")


def as_dict(entry):
    """FUNCTION LIST's library entry as a dict with str keys, in either protocol
    (redis-py gives RESP2's flat list and RESP3's map as they come)."""
    if isinstance(entry, dict):
        items = entry.items()
    else:
        items = zip(entry[0::2], entry[1::2])
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in items}


def functions_of(library):
    return {as_dict(f)["name"]: as_dict(f) for f in as_dict(library)["functions"]}


def check_function_load_call_and_replace(r, port, protocol):
    assert r.function_load(LIBRARY) == b"kv"
    assert error_of(lambda: r.function_load(LIBRARY)) == "Library 'kv' already exists"
    assert r.fcall("kv_set", 1, "fk", "hello") == b"OK"
    assert r.fcall("kv_get", 1, "fk") == b"hello"
    assert r.fcall_ro("kv_get", 1, "fk") == b"hello"
    err = error_of(lambda: r.fcall_ro("kv_set", 1, "fk", "x"))
    assert err == "Can not execute a script with write flag using *_ro command.", err
    assert error_of(lambda: r.fcall("nope", 0)) == "Function not found"
    assert r.function_load(LIBRARY_V2, replace=True) == b"kv"
    assert r.fcall_ro("kv_get", 1, "fk") == 5
    # A library whose function name is taken by another library is refused whole.
    clash = "#!lua name=clash\nredis.register_function('kv_set', function() return 1 end)"
    err = error_of(lambda: r.function_load(clash))
    assert err == "Function kv_set already exists", err
    assert [as_dict(lib)["library_name"] for lib in r.function_list()] == [b"kv"]


def check_function_list_pattern_and_code(r, port, protocol):
    r.function_load(LIBRARY)
    r.function_load(OTHER_LIBRARY)
    everything = r.function_list()
    assert sorted(as_dict(lib)["library_name"] for lib in everything) == [b"kv", b"other"]
    only = r.function_list(library="k*")
    assert len(only) == 1, only
    kv = as_dict(only[0])
    assert kv["library_name"] == b"kv" and kv["engine"] == b"LUA", kv
    assert "library_code" not in kv, kv
    functions = functions_of(only[0])
    assert sorted(functions) == [b"kv_get", b"kv_set"], functions
    assert functions[b"kv_get"]["description"] == b"reads a key"
    assert functions[b"kv_get"]["flags"] in ([b"no-writes"], {b"no-writes"}), functions
    assert functions[b"kv_set"]["description"] is None
    assert functions[b"kv_set"]["flags"] in ([], set()), functions
    coded = as_dict(r.function_list(library="kv", withcode=True)[0])
    assert coded["library_code"] == LIBRARY.encode(), coded["library_code"]
    assert r.function_list(library="nothing*") == []


def check_function_dump_restore_delete_flush(r, port, protocol):
    r.function_load(LIBRARY)
    payload = r.function_dump()
    assert isinstance(payload, bytes) and len(payload) > 10
    assert r.function_flush() is True
    assert r.function_list() == []
    assert r.function_restore(payload) is True
    assert r.fcall("kv_set", 1, "rk", "v") == b"OK"
    # APPEND (the default) refuses a library that exists; REPLACE and FLUSH do not.
    err = error_of(lambda: r.function_restore(payload))
    assert err == "Library kv already exists", err
    assert r.function_restore(payload, "REPLACE") is True
    r.function_load(OTHER_LIBRARY)
    assert r.function_restore(payload, "FLUSH") is True
    assert [as_dict(lib)["library_name"] for lib in r.function_list()] == [b"kv"]
    err = error_of(lambda: r.function_restore(b"not a payload"))
    assert err == "DUMP payload version or checksum are wrong", err
    assert r.function_delete("kv") is True
    assert error_of(lambda: r.function_delete("kv")) == "Library not found"
    r.function_load(LIBRARY)
    assert r.function_flush("ASYNC") is True
    assert r.function_list() == []
    assert error_of(lambda: r.fcall("kv_get", 1, "rk")) == "Function not found"


def check_function_stats(r, port, protocol):
    r.function_load(LIBRARY)
    r.function_load(OTHER_LIBRARY)
    stats = as_dict(r.function_stats())
    assert stats["running_script"] is None, stats
    engines = as_dict(stats["engines"])
    lua = as_dict(engines["LUA"])
    assert lua == {"libraries_count": 2, "functions_count": 3}, lua


def monitor_entries(port, protocol, work, last):
    """Runs work() while a redis-py monitor reads; returns the parsed entries up
    to and including the one whose command is `last`."""
    watcher = redis.Redis(port=port, protocol=protocol, socket_timeout=10)
    seen = []
    try:
        with watcher.monitor() as m:
            work()
            for _ in range(100):
                entry = m.next_command()
                seen.append(entry)
                if entry["command"] == last:
                    return seen
    finally:
        watcher.close()
    raise AssertionError("no %r among %r" % (last, seen))


def check_monitor_shows_commands_with_db_and_client(r, port, protocol, sock):
    other = redis.Redis(port=port, protocol=protocol, db=3)
    local = redis.Redis(unix_socket_path=sock, protocol=protocol)
    try:
        other.ping()  # connected (HELLO, SELECT) before the monitor starts
        local.ping()
        addr = other.client_info()["addr"]
        host, client_port = addr.rsplit(":", 1)
        before = time.time()

        def work():
            other.set("mk", 'a "quoted" value')
            other.config_get("maxmemory")  # an admin command: not shown
            other.eval("redis.call('incr', KEYS[1]) return 1", 1, "counter")
            local.get("mk")
            other.echo("done")

        seen = monitor_entries(port, protocol, work, "ECHO done")
    finally:
        other.close()
        local.close()
    got = [(e["db"], e["client_type"], e["client_address"], e["client_port"], e["command"])
           for e in seen]
    want = [
        (3, "tcp", host, client_port, 'SET mk a "quoted" value'),
        (3, "tcp", host, client_port, "EVAL redis.call('incr', KEYS[1]) return 1 1 counter"),
        (3, "lua", "lua", "", "incr counter"),
        (0, "unix", "unix", sock, "GET mk"),
        (3, "tcp", host, client_port, "ECHO done"),
    ]
    assert got == want, got
    after = time.time()
    for e in seen:
        assert before - 1 <= e["time"] <= after + 1, (before, e, after)


def check_monitor_shows_function_calls(r, port, protocol, sock):
    r.function_load(LIBRARY)

    def work():
        r.fcall("kv_set", 1, "fk", "v")
        r.fcall_ro("kv_get", 1, "fk")
        r.echo("done")

    seen = monitor_entries(port, protocol, work, "ECHO done")
    got = [(e["db"], e["client_type"], e["command"]) for e in seen]
    want = [
        (0, "tcp", "FCALL kv_set 1 fk v"),
        (0, "lua", "SET fk v"),
        (0, "tcp", "FCALL_RO kv_get 1 fk"),
        (0, "lua", "GET fk"),
        (0, "tcp", "ECHO done"),
    ]
    assert got == want, got


class Background:
    """Runs call() on a thread; .done() says whether it has returned."""

    def __init__(self, call):
        self.result = self.error = None
        self.finished = threading.Event()

        def body():
            try:
                self.result = call()
            except Exception as e:  # re-raised by wait()
                self.error = e
            finally:
                self.finished.set()

        self.started = time.monotonic()
        self.thread = threading.Thread(target=body, daemon=True)
        self.thread.start()

    def done(self):
        return self.finished.is_set()

    def wait(self):
        assert self.finished.wait(10), "still waiting after 10 s"
        self.thread.join(1)
        if self.error:
            raise self.error
        return self.result, time.monotonic() - self.started


HELD = 0.4  # how long a paused client's commands are watched for not finishing


def until_postponed(port, n):
    """Waits (at most 5 s) until the server counts `n` blocked clients: those
    a pause postponed count there, in Redis as in latchkey. Not for an ALL
    pause, which would hold INFO too."""
    w = redis.Redis(port=port)
    try:
        deadline = time.monotonic() + 5
        while w.info("clients")["blocked_clients"] != n:
            assert time.monotonic() < deadline, "never saw %d postponed clients" % n
            time.sleep(0.02)
    finally:
        w.close()


def check_write_pause_holds_a_pipeline_until_unpause(r, port, protocol):
    other = redis.Redis(port=port, protocol=protocol)
    reader = redis.Redis(port=port, protocol=protocol)
    try:
        r.set("p", "old")
        assert r.client_pause(10000, all=False) is True

        def pipeline():
            p = other.pipeline(transaction=False)
            p.get("p").set("p", "new").incr("n").get("p")
            return p.execute()

        pending = Background(pipeline)
        until_postponed(port, 1)
        time.sleep(HELD)
        assert not pending.done(), "a write waits out a WRITE pause"
        # Reads of other clients go on.
        assert reader.get("p") == b"old"
        assert reader.exists("p") == 1
        assert r.client_unpause() == b"OK"
        result, took = pending.wait()
        assert result == [b"old", True, 1, b"new"], result
        assert took >= HELD, took
    finally:
        r.client_unpause()
        other.close()
        reader.close()


def check_write_pause_holds_a_transaction_until_unpause(r, port, protocol):
    other = redis.Redis(port=port, protocol=protocol)
    reader = redis.Redis(port=port, protocol=protocol)
    try:
        assert r.client_pause(10000, all=False) is True

        def transaction():
            with other.pipeline() as p:  # MULTI ... EXEC
                p.set("t", "1").incr("t").get("t")
                return p.execute()

        pending = Background(transaction)
        until_postponed(port, 1)
        assert not pending.done(), "EXEC of writes waits out a WRITE pause"
        assert reader.get("t") is None
        # A read-only transaction is not held.
        with reader.pipeline() as p:
            p.get("t").exists("t")
            assert p.execute() == [None, 0]
        assert r.client_unpause() == b"OK"
        result, _ = pending.wait()
        assert result == [True, 2, b"2"], result
    finally:
        r.client_unpause()
        other.close()
        reader.close()


def check_write_pause_holds_writing_functions_only(r, port, protocol):
    r.function_load(LIBRARY)
    r.fcall("kv_set", 1, "fk", "old")
    other = redis.Redis(port=port, protocol=protocol)
    reader = redis.Redis(port=port, protocol=protocol)
    try:
        assert r.client_pause(10000, all=False) is True
        pending = Background(lambda: other.fcall("kv_set", 1, "fk", "new"))
        until_postponed(port, 1)
        assert not pending.done(), "FCALL of a function that may write waits"
        # A no-writes function runs, by FCALL_RO or by FCALL.
        assert reader.fcall_ro("kv_get", 1, "fk") == b"old"
        assert reader.fcall("kv_get", 1, "fk") == b"old"
        assert r.client_unpause() == b"OK"
        result, _ = pending.wait()
        assert result == b"OK", result
        assert reader.fcall_ro("kv_get", 1, "fk") == b"new"
    finally:
        r.client_unpause()
        other.close()
        reader.close()


def check_all_pause_holds_everyone_until_it_runs_out(r, port, protocol):
    other = redis.Redis(port=port, protocol=protocol)
    third = redis.Redis(port=port, protocol=protocol)
    try:
        r.set("a", "1")
        other.ping()
        third.ping()
        assert r.client_pause(1200, all=True) is True
        paused_at = time.monotonic()
        pipe = Background(
            lambda: other.pipeline(transaction=False).get("a").set("b", "2").get("b").execute())

        def transaction():
            with third.pipeline() as p:  # MULTI ... EXEC
                p.incr("n").get("a")
                return p.execute()

        txn = Background(transaction)
        # Redis 7.0 exempts nothing from an ALL pause, CLIENT UNPAUSE included:
        # it waits for the pause to run out like the rest.
        unpause = Background(r.client_unpause)
        time.sleep(HELD)
        assert not pipe.done() and not txn.done() and not unpause.done(), \
            "an ALL pause holds reads, transactions and CLIENT UNPAUSE"
        assert pipe.wait()[0] == [b"1", True, b"2"]
        assert txn.wait()[0] == [1, b"1"]
        assert unpause.wait()[0] == b"OK"
        assert time.monotonic() - paused_at >= 1.0
        # Over: nothing waits.
        assert other.get("b") == b"2"
    finally:
        other.close()
        third.close()


def check_subscriber_under_write_pause(r, port, protocol):
    subscriber = redis.Redis(port=port, protocol=protocol, socket_timeout=10)
    publisher = redis.Redis(port=port, protocol=protocol)
    p = subscriber.pubsub()
    try:
        p.subscribe("news")
        assert p.get_message(timeout=5)["type"] == "subscribe"
        assert publisher.publish("news", "before") == 1
        m = p.get_message(timeout=5)
        assert (m["type"], m["data"]) == ("message", b"before"), m
        assert r.client_pause(10000, all=False) is True
        # The subscriber goes on: PING and SUBSCRIBE in subscribed mode answer.
        p.ping("hi")
        m = p.get_message(timeout=5)
        assert m["type"] == "pong" and m["data"] == b"hi", m
        p.subscribe("more")
        m = p.get_message(timeout=5)
        assert (m["type"], m["channel"]) == ("subscribe", b"more"), m
        # PUBLISH is held by a WRITE pause (as Redis holds it: it may replicate),
        # so the subscriber hears nothing until the pause ends.
        sent = Background(lambda: publisher.publish("news", "during"))
        until_postponed(port, 1)
        assert not sent.done(), "PUBLISH waits out a WRITE pause"
        assert p.get_message(timeout=0.2) is None
        assert r.client_unpause() == b"OK"
        got, _ = sent.wait()
        assert got == 1, got
        m = p.get_message(timeout=5)
        assert (m["type"], m["data"]) == ("message", b"during"), m
    finally:
        r.client_unpause()
        p.close()
        subscriber.close()
        publisher.close()


def check_slowlog(r, port, protocol):
    old = r.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"]
    other = redis.Redis(port=port, protocol=protocol)
    try:
        other.client_setname("slowpoke")
        addr = other.client_info()["addr"].encode()
        r.config_set("slowlog-log-slower-than", 0)  # log every command
        assert r.slowlog_reset() is True
        other.set("sk", "v" * 200)
        other.hset("sh", mapping={"f": "1"})
        length = r.slowlog_len()
        entries = r.slowlog_get()
        # Newest first. A command is logged once it has run: SLOWLOG RESET is
        # there, SLOWLOG LEN is counted by the next call, not by itself.
        commands = [e["command"] for e in entries]
        assert commands == [
            b"SLOWLOG LEN",
            b"HSET sh f 1",
            # An argument is cut at 128 bytes with a count of the rest.
            b"SET sk " + b"v" * 128 + b"... (72 more bytes)",
            b"SLOWLOG RESET",
        ], commands
        assert length == 3, length
        newest = entries[1]
        assert newest["client_name"] == b"slowpoke", newest
        assert newest["client_address"] == addr, newest
        assert entries[0]["client_name"] == b"", entries[0]
        assert isinstance(newest["duration"], int) and newest["duration"] >= 0
        assert abs(newest["start_time"] - time.time()) < 5, newest
        ids = [e["id"] for e in entries]
        assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4, ids
        last = [e["command"] for e in r.slowlog_get(1)]
        assert last == [b"SLOWLOG GET"], last
        # A long argument list is cut at 32 with a count of the rest.
        other.execute_command("DEL", *["k%d" % i for i in range(40)])
        cut = r.slowlog_get(1)[0]["command"]
        want = " ".join(["DEL"] + ["k%d" % i for i in range(30)]) + " ... (10 more arguments)"
        assert cut == want.encode(), cut
        assert r.slowlog_reset() is True
        assert r.slowlog_len() == 1  # the RESET itself
    finally:
        r.config_set("slowlog-log-slower-than", old)
        other.close()


CHECKS = [
    check_function_load_call_and_replace,
    check_function_list_pattern_and_code,
    check_function_dump_restore_delete_flush,
    check_function_stats,
    check_write_pause_holds_a_pipeline_until_unpause,
    check_write_pause_holds_a_transaction_until_unpause,
    check_write_pause_holds_writing_functions_only,
    check_all_pause_holds_everyone_until_it_runs_out,
    check_subscriber_under_write_pause,
    check_slowlog,
]

MONITOR_CHECKS = [
    check_monitor_shows_commands_with_db_and_client,
    check_monitor_shows_function_calls,
]


def main():
    binary = binary_arg()
    status = 0
    with server(binary) as (port, sock):
        for protocol in (2, 3):
            r = redis.Redis(port=port, protocol=protocol)

            def fresh():
                r.flushall()
                r.function_flush()

            name = "redis-py %s admin RESP%d" % (redis.__version__, protocol)
            status |= run(name, CHECKS, r, port, protocol, before=fresh)
            status |= run(name + " monitor", MONITOR_CHECKS, r, port, protocol, sock, before=fresh)
            r.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
