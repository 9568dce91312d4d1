"""Shared by the client-library checks in tests/clients/: start a server binary on a
free loopback port, run named checks, print "NAME: N passed, M failed".

Every check script takes the server binary as its argument, so the same checks
run against latchkey (as test.sh does) and against redis-server (to confirm that
an expectation is Redis's behaviour): python3 tests/clients/X.py redis-server
"""

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import traceback


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def is_latchkey(binary):
    return "redis-server" not in os.path.basename(binary)


@contextlib.contextmanager
def server(binary, *extra):
    """Runs `binary` on a free port (and a Unix socket) until the block ends;
    yields (port, socket_path)."""
    port = free_port()
    tmp = tempfile.mkdtemp()
    sock = os.path.join(tmp, "server.sock")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--unixsocket", sock,
            "--save", "", "--appendonly", "no", "--dir", tmp, "--loglevel", "warning", *extra]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("server did not start: %s" % " ".join(args))
                time.sleep(0.02)
        yield port, sock
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def run(name, checks, *args, before=None):
    """Runs each check(*args), calling before() first if given; prints a summary;
    returns the exit status."""
    passed = failed = 0
    for check in checks:
        try:
            if before:
                before()
            check(*args)
            passed += 1
        except Exception:
            failed += 1
            print("FAILED %s: %s" % (name, check.__name__))
            traceback.print_exc()
    print("%s: %d passed, %d failed" % (name, passed, failed))
    return 1 if failed else 0


def binary_arg():
    if len(sys.argv) != 2:
        sys.exit("usage: %s PATH_TO_SERVER_BINARY" % sys.argv[0])
    return sys.argv[1]
