"""ACL users through redis-py: a client that logs in with a username and password
(RESP2 and RESP3, as keyword arguments and in a URL), the exceptions redis-py
raises for WRONGPASS and NOPERM, a user restricted to some keys, and a lock-only
user taking latchkey's native lock.

Usage: python3 tests/clients/redis_py_acl.py PATH_TO_SERVER_BINARY
(against redis-server, which has no LOCK.* commands and no @lock category, the
lock-only check is skipped)
"""

import sys

import redis

from harness import binary_arg, is_latchkey, run, server


def setup(admin):
    admin.flushall()
    for name in admin.acl_users():
        if name != "default":
            admin.acl_deluser(name)
    admin.execute_command("ACL", "SETUSER", "app", "on", ">app-pw", "~app:*", "+@all", "-@dangerous")


def check_login_with_username_and_password(port, protocol):
    r = redis.Redis(port=port, username="app", password="app-pw", protocol=protocol)
    assert r.acl_whoami() in (b"app", "app")
    assert r.set("app:k", "v")
    assert r.get("app:k") == b"v"
    url = redis.Redis.from_url("redis://app:app-pw@127.0.0.1:%d/0?protocol=%d" % (port, protocol))
    assert url.acl_whoami() in (b"app", "app")


def check_wrong_password_raises_authentication_error(port, protocol):
    r = redis.Redis(port=port, username="app", password="nope", protocol=protocol)
    try:
        r.ping()
    except redis.exceptions.AuthenticationError as e:
        assert "invalid username-password pair" in str(e), e
    else:
        raise AssertionError("no AuthenticationError")


def check_noperm_raises_no_permission_error(port, protocol):
    r = redis.Redis(port=port, username="app", password="app-pw", protocol=protocol)
    for call, text in [
        (lambda: r.set("other", "v"), "this user has no permissions to access one of the keys used as arguments"),
        (lambda: r.flushall(), "this user has no permissions to run the 'flushall' command"),
    ]:
        try:
            call()
        except redis.exceptions.NoPermissionError as e:
            assert str(e) == text, e
        else:
            raise AssertionError("no NoPermissionError")
    # In a pipeline transaction the refused command aborts EXEC.
    p = r.pipeline(transaction=True)
    p.set("app:a", 1)
    p.set("other", 1)
    try:
        p.execute()
    except (redis.exceptions.NoPermissionError, redis.exceptions.ExecAbortError):
        pass
    else:
        raise AssertionError("the transaction ran")
    assert r.get("app:a") is None


def check_getuser_as_redis_py_parses_it(port, protocol):
    admin = redis.Redis(port=port, protocol=protocol)
    user = admin.acl_getuser("app")
    assert user["enabled"] is True, user
    assert user["keys"] == ["~app:*"], user
    assert user["categories"] == ["+@all", "-@dangerous"], user
    assert user["commands"] == [] and user["selectors"] == [], user


def check_lock_only_user(binary, port, protocol):
    if not is_latchkey(binary):
        return
    admin = redis.Redis(port=port, protocol=protocol)
    admin.execute_command("ACL", "SETUSER", "locker", "on", ">pw", "~lock:*", "+@lock", "+@connection")
    r = redis.Redis(port=port, username="locker", password="pw", protocol=protocol)
    token = r.execute_command("LOCK.ACQUIRE", "lock:job", "me", 10_000)
    assert isinstance(token, int) and token > 0, token
    assert r.execute_command("LOCK.RELEASE", "lock:job", "me") == 1
    try:
        r.execute_command("LOCK.ACQUIRE", "job", "me", 10_000)
    except redis.exceptions.NoPermissionError:
        pass
    else:
        raise AssertionError("a key outside lock:* was granted")


def main():
    binary = binary_arg()
    status = 0
    with server(binary) as (port, _):
        admin = redis.Redis(port=port)
        for protocol in (2, 3):
            checks = [
                lambda: check_login_with_username_and_password(port, protocol),
                lambda: check_wrong_password_raises_authentication_error(port, protocol),
                lambda: check_noperm_raises_no_permission_error(port, protocol),
                lambda: check_getuser_as_redis_py_parses_it(port, protocol),
                lambda: check_lock_only_user(binary, port, protocol),
            ]
            status |= run(
                "ACL users (redis-py %s, RESP%d)" % (redis.__version__, protocol),
                checks,
                before=lambda: setup(admin),
            )
    return status


if __name__ == "__main__":
    sys.exit(main())
