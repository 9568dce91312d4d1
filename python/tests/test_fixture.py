"""The latchkey pytest plugin's own tests. No conftest: the fixtures come from
the plugin (entry point pytest11 of the installed wheel, or -p
latchkey.pytest_plugin)."""

import asyncio
import datetime
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def as_dict(reply):
    """LOCK.INFO's reply as a dict: a map in RESP3 (redis-py 8's default), name,
    value, ... in RESP2."""
    if reply is None or isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2]))


def lock_info(r, key):
    return as_dict(r.execute_command("LOCK.INFO", key))


def no_retry(server):
    return server.new_client(retry=Retry(NoBackoff(), 0))


def test_a_ttl_runs_out_when_the_clock_is_advanced(latchkey):
    r = latchkey.client
    latchkey.pause_time()
    r.set("session", "abc", ex=60)
    time.sleep(0.05)
    assert r.pttl("session") == 60_000, "a paused clock does not move"
    latchkey.advance_time(59_999)
    assert r.get("session") == "abc"
    latchkey.advance_time(datetime.timedelta(milliseconds=1))
    assert r.get("session") is None


def test_a_lock_lease_ends_when_the_clock_is_advanced(latchkey):
    r = latchkey.client
    latchkey.pause_time()
    token = r.execute_command("LOCK.ACQUIRE", "job", "worker-1", 5_000)
    assert token > 0
    latchkey.advance_time(4_999)
    assert r.execute_command("LOCK.VALIDATE", "job", token) == 1
    assert r.execute_command("LOCK.ACQUIRE", "job", "worker-2", 5_000) is None
    latchkey.advance_time(1)
    assert r.execute_command("LOCK.VALIDATE", "job", token) == 0
    assert r.execute_command("LOCK.EXTEND", "job", "worker-1", 5_000) == 0
    assert r.execute_command("LOCK.ACQUIRE", "job", "worker-2", 5_000) > token


def test_a_waiter_is_granted_when_the_holders_lease_is_advanced_past(latchkey):
    r = latchkey.client
    latchkey.pause_time()
    first = r.execute_command("LOCK.ACQUIRE", "job", "worker-1", 30_000)
    got = {}

    def waiter():
        w = latchkey.new_client()
        got["token"] = w.execute_command("LOCK.ACQUIRE", "job", "worker-2", 30_000, "WAIT", 0)

    t = threading.Thread(target=waiter, daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    while lock_info(r, "job")["waiters"] != 1:
        assert time.monotonic() < deadline, "the waiter never queued"
        time.sleep(0.01)
    latchkey.advance_time(datetime.timedelta(seconds=30))
    t.join(5)
    assert not t.is_alive()
    assert got["token"] > first
    assert r.execute_command("LOCK.VALIDATE", "job", got["token"]) == 1


def test_an_injected_error_is_a_response_error(latchkey):
    r = latchkey.client
    r.set("k", "v")
    latchkey.fail_next("GET", 2, "ERR disk on fire")
    for _ in range(2):
        with pytest.raises(redis.exceptions.ResponseError, match="disk on fire"):
            r.get("k")
    assert r.get("k") == "v", "the fault was for two GETs"


def test_an_injected_error_prefix_maps_to_redis_pys_exception(latchkey):
    r = latchkey.client
    latchkey.fail_next("SET", 1, "READONLY You can't write against a read only replica.")
    with pytest.raises(redis.exceptions.ReadOnlyError):
        r.set("k", "v")
    latchkey.fail_next("*", 1, "NOSCRIPT No matching script.")
    with pytest.raises(redis.exceptions.NoScriptError):
        r.evalsha("0" * 40, 0)
    assert r.set("k", "v")


def test_the_fixtures_own_commands_leave_a_fault_for_the_test(latchkey):
    latchkey.fail_next("*", 1, "ERR for the client")
    latchkey.advance_time(1)
    latchkey.pause_time()
    assert latchkey.faults() == [["*", 1, "error", "ERR for the client"]]
    with pytest.raises(redis.exceptions.ResponseError, match="for the client"):
        latchkey.client.ping()


def test_faults_are_listed_and_cleared(latchkey):
    latchkey.fail_next("*", 3, "ERR nope")
    latchkey.delay_next("GET", 2, datetime.timedelta(milliseconds=50))
    latchkey.close_next("HGETALL")
    assert latchkey.faults() == [["*", 3, "error", "ERR nope"], ["get", 2, "delay", 50],
                                 ["hgetall", 1, "close", None]]
    latchkey.clear_faults()
    assert latchkey.faults() == []
    assert latchkey.client.ping()


def test_a_delayed_reply(latchkey):
    r = latchkey.client
    latchkey.delay_next("PING", 1, 200)
    started = time.monotonic()
    assert r.ping()
    assert time.monotonic() - started >= 0.19


def test_redis_py_reconnects_after_its_connection_is_dropped(latchkey):
    r = latchkey.client
    r.set("k", "v")
    latchkey.drop_clients()
    assert r.get("k") == "v", "redis-py's retry reconnects"
    latchkey.close_next("GET", 1)
    assert r.get("k") == "v", "closed without a reply: retried on a new connection"
    strict = no_retry(latchkey)
    strict.ping()
    latchkey.close_next("GET", 1)
    with pytest.raises(redis.exceptions.ConnectionError):
        strict.get("k")
    assert strict.get("k") == "v", "the next command connects again"


def test_refused_connections(latchkey):
    latchkey.refuse_connections(60_000)
    with pytest.raises(redis.exceptions.ConnectionError):
        no_retry(latchkey).ping()
    latchkey.clear_faults()
    assert no_retry(latchkey).ping()


def test_reset_1_leaves_a_mess(latchkey_session):
    s = latchkey_session
    s.client.set("leftover", "1")
    s.client.execute_command("LOCK.ACQUIRE", "held", "me", 60_000)
    s.pause_time()
    s.fail_next("*", 1000, "ERR left behind")


def test_reset_2_the_next_test_starts_clean(latchkey):
    assert latchkey.faults() == []
    r = latchkey.client
    assert r.dbsize() == 0
    before = r.time()
    time.sleep(0.02)
    assert r.time() > before, "the clock runs again"


def test_the_async_client(latchkey):
    async def main():
        async with latchkey.async_client() as r:
            await r.set("k", "v")
            assert await r.get("k") == "v"
            latchkey.pause_time()
            first = await r.execute_command("LOCK.ACQUIRE", "job", "a", 1_000)
            async with latchkey.async_client() as w:
                waiter = asyncio.ensure_future(
                    w.execute_command("LOCK.ACQUIRE", "job", "b", 1_000, "WAIT", 0))
                for _ in range(500):
                    info = as_dict(await r.execute_command("LOCK.INFO", "job"))
                    if info["waiters"] == 1:
                        break
                    await asyncio.sleep(0.01)
                latchkey.advance_time(1_000)
                second = await asyncio.wait_for(waiter, 5)
            assert second > first
            latchkey.fail_next("GET", 1, "ERR async boom")
            with pytest.raises(redis.exceptions.ResponseError, match="async boom"):
                await r.get("k")

    asyncio.run(main())


def test_a_fresh_server_per_test(latchkey_fresh, latchkey_session):
    assert latchkey_fresh.port != latchkey_session.port
    assert latchkey_fresh.client.dbsize() == 0
    assert latchkey_fresh.url == "redis://127.0.0.1:%d" % latchkey_fresh.port


def child_env():
    """For a child Python: this latchkey package importable, the plugin loaded
    by -p alone."""
    import latchkey

    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [os.path.dirname(os.path.dirname(latchkey.__file__)),
                      env.get("PYTHONPATH")]))
    return env


def run_python(code, cwd):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd,
                          env=child_env(), capture_output=True, text=True, timeout=60)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie not yet reaped by its parent counts as gone.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_the_context_manager_outside_pytest(tmp_path):
    out = run_python("""
        import latchkey
        with latchkey.Server(paused_time=True) as s:
            s.client.set("k", "v", px=10)
            s.advance_time(10)
            assert s.client.get("k") is None
            print(s.pid)
        """, tmp_path)
    assert out.returncode == 0, out.stderr
    assert not pid_alive(int(out.stdout))


def test_a_server_that_fails_to_start_shows_its_output():
    import latchkey

    with pytest.raises(latchkey.LatchkeyError, match="(?s)exited with status.*no-such-option"):
        latchkey.Server("--no-such-option", "1").start()


def test_the_fixtures_server_ends_when_a_test_fails(tmp_path):
    (tmp_path / "test_fails.py").write_text(textwrap.dedent("""
        def test_fails(latchkey, latchkey_fresh):
            open("pids", "w").write("%d %d" % (latchkey.pid, latchkey_fresh.pid))
            assert False
        """))
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-p", "latchkey.pytest_plugin", "test_fails.py"], cwd=tmp_path,
                         env=child_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "1 failed" in out.stdout
    for pid in map(int, (tmp_path / "pids").read_text().split()):
        assert not pid_alive(pid)


def test_latchkey_bin_chooses_the_fixtures_binary(tmp_path):
    import latchkey

    (tmp_path / "test_bin.py").write_text(textwrap.dedent("""
        import os

        def test_session(latchkey):
            open("bin", "w").write(os.path.realpath(latchkey.process.args[0]))

        def test_fresh(latchkey_fresh):
            assert os.path.realpath(latchkey_fresh.process.args[0]) == open("bin").read()
        """))
    binary = os.path.realpath(latchkey.find_binary())
    copy = tmp_path / "copied-latchkey"
    shutil.copy(binary, copy)
    run = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "-p", "latchkey.pytest_plugin", "test_bin.py"]
    out = subprocess.run(run + ["--latchkey-bin", str(copy)], cwd=tmp_path, env=child_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "bin").read_text() == str(copy)
    missing = str(tmp_path / "missing")
    out = subprocess.run(run + ["--latchkey-bin", missing], cwd=tmp_path, env=child_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "the binary argument names %r" % missing in out.stdout


def test_the_binary_is_the_installed_wheels():
    import sysconfig

    import latchkey
    from latchkey import _server

    if os.environ.get("LATCHKEY_BIN") or _server._from_wheel() is None:
        pytest.skip("LATCHKEY_BIN set, or latchkey not installed from the wheel")
    found = latchkey.find_binary()
    assert found == os.path.realpath(os.path.join(sysconfig.get_path("scripts"), "latchkey"))
    out = subprocess.run([found, "-v"], capture_output=True, text=True, timeout=30)
    assert "latchkey" in out.stdout


def test_the_installed_binary_is_looked_up_once_until_it_goes(tmp_path, monkeypatch):
    from latchkey import _server

    monkeypatch.delenv("LATCHKEY_BIN", raising=False)
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text("")
    second.write_text("")
    lookups = []

    def from_wheel():
        lookups.append(1)
        return str(first if first.exists() else second)

    monkeypatch.setattr(_server, "_from_wheel", from_wheel)
    monkeypatch.setattr(_server, "_installed", None)
    assert _server.find_binary() == str(first)
    assert _server.find_binary() == str(first)
    assert len(lookups) == 1, "the wheel's RECORD is read once"
    first.unlink()
    assert _server.find_binary() == str(second)
    assert len(lookups) == 2, "looked up again once the file is gone"


def test_a_stopped_server_is_killed_at_once_and_reaped_later():
    import latchkey
    from latchkey import _server

    pids = []
    for _ in range(3):
        s = latchkey.Server().start()
        pids.append(s.pid)
        proc = s.process
        s.stop()
        assert s.pid is None and not s.alive
        assert proc.returncode is None and proc in _server._killed, "not waited for"
    deadline = time.monotonic() + 5
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(pid_alive(p) for p in pids), "killed by stop()"
    # A killed process's leader is a zombie before its other threads are
    # gone; waitpid reports it once they are.
    unreaped = lambda: [p for p in _server._killed if p.pid in pids]
    while unreaped() and time.monotonic() < deadline:
        _server._reap()
        time.sleep(0.01)
    assert not unreaped(), "reaped once exited"


def test_a_server_on_a_fixed_port_is_waited_for_so_the_next_can_bind_it():
    import socket

    import latchkey

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    for _ in range(3):
        s = latchkey.Server("--port", port).start()
        assert s.port == port
        proc = s.process
        s.stop()
        assert proc.returncode is not None, "exited before stop() returned"
