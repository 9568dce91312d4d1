"""redis-py (PyPI `redis`) over TLS (`ssl=True`) against a server binary.

Run by test.sh: python3 tests/clients/redis_py_tls.py PATH_TO_SERVER_BINARY
Makes a CA and certificates with openssl, starts the server with a plain port
and a tls-port side by side (client certificates required, Redis's default),
and prints "redis-py tls: N passed, M failed". Every expectation is Redis's
behaviour: the same script passes against redis-server.
"""

import sys
import tempfile

import redis

from harness import binary_arg, free_port, run, server
from tls_certs import make, server_flags


def tls_client(paths, port, with_cert=True, **extra):
    kwargs = dict(host="localhost", port=port, ssl=True, ssl_ca_certs=paths["ca.crt"],
                  socket_timeout=5, **extra)
    if with_cert:
        kwargs.update(ssl_certfile=paths["client.crt"], ssl_keyfile=paths["client.key"])
    return redis.Redis(**kwargs)


def check_commands_over_tls(paths, port, plain):
    r = tls_client(paths, port)
    assert r.ping() is True
    assert r.set("tls:k", "v" * 100_000) is True
    assert r.get("tls:k") == b"v" * 100_000
    p = r.pipeline()
    for i in range(1000):
        p.incr("tls:n")
    assert p.execute()[-1] == 1000
    # The plain port serves the same data.
    assert redis.Redis(port=plain).get("tls:n") == b"1000"


def check_resp3_over_tls(paths, port, _plain):
    r = tls_client(paths, port, protocol=3)
    assert r.hset("tls:h", mapping={"a": "1"}) == 1
    assert r.hgetall("tls:h") == {b"a": b"1"}


def check_client_without_certificate_is_refused(paths, port, _plain):
    r = tls_client(paths, port, with_cert=False)
    try:
        r.ping()
    except redis.exceptions.ConnectionError:
        return
    raise AssertionError("a client without a certificate was served")


def check_optional_client_certificates(paths, port, plain):
    admin = redis.Redis(port=plain)
    assert admin.config_set("tls-auth-clients", "optional") is True
    try:
        assert tls_client(paths, port, with_cert=False).ping() is True
        assert tls_client(paths, port).ping() is True
    finally:
        admin.config_set("tls-auth-clients", "yes")


def main():
    binary = binary_arg()
    paths = make(tempfile.mkdtemp())
    tls_port = free_port()
    with server(binary, *server_flags(paths, tls_port)) as (plain, _sock):
        checks = [check_commands_over_tls, check_resp3_over_tls,
                  check_client_without_certificate_is_refused,
                  check_optional_client_certificates]
        return run("redis-py tls", checks, paths, tls_port, plain)


if __name__ == "__main__":
    sys.exit(main())
