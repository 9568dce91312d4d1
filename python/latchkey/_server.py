"""Spawns a latchkey server on a free loopback port and drives its test controls
(DEBUG ADVANCE-TIME / PAUSE-TIME / RESUME-TIME, DEBUG FAULT, DEBUG RESET)."""

import atexit
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time
import weakref
from importlib import metadata
from pathlib import Path

import redis

_EXE = "latchkey.exe" if sys.platform == "win32" else "latchkey"


class LatchkeyError(RuntimeError):
    """The binary was not found, or the server did not start."""


def _from_wheel():
    """The binary the installed wheel put in the environment's scripts folder
    (maturin's binary bindings), found through the wheel's RECORD."""
    try:
        files = metadata.files("latchkey") or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == _EXE and f.parent.name in ("bin", "Scripts"):
            path = Path(f.locate()).resolve()
            if path.is_file():
                return str(path)
    return None


def _from_checkout():
    """target/release/latchkey, then target/debug/latchkey, of the repository
    this package's source sits in (python/latchkey/ -> ../../)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "Cargo.toml").is_file():
        return None
    for profile in ("release", "debug"):
        path = root / "target" / profile / _EXE
        if path.is_file():
            return str(path)
    return None


_installed = None


def _installed_binary():
    """The wheel's or the checkout's binary, looked up once per process (the
    wheel's RECORD is read and parsed at each lookup) and again only if the
    file has gone."""
    global _installed
    if _installed is None or not os.path.isfile(_installed):
        _installed = _from_wheel() or _from_checkout()
    return _installed


def find_binary(binary=None):
    """The latchkey binary to run, the first of: `binary` (an argument or
    pytest's --latchkey-bin), $LATCHKEY_BIN, the one the installed wheel
    carries, a checkout's target/release/latchkey, target/debug/latchkey."""
    for candidate, origin in (
        (binary, "the binary argument"),
        (os.environ.get("LATCHKEY_BIN"), "LATCHKEY_BIN"),
    ):
        if candidate:
            if not os.path.isfile(candidate):
                raise LatchkeyError("%s names %r, which is not a file" % (origin, candidate))
            return os.path.abspath(candidate)
    found = _installed_binary()
    if found is None:
        raise LatchkeyError(
            "no latchkey binary: set LATCHKEY_BIN, install the wheel (pip install "
            "<repository>/python) or build the repository (cargo build)"
        )
    return found


def _ms(amount):
    """Milliseconds from a number of ms or a timedelta."""
    if isinstance(amount, datetime.timedelta):
        ms = round(amount.total_seconds() * 1000)
    else:
        ms = round(amount)
    if ms < 0:
        raise ValueError("a duration cannot be negative: %r" % (amount,))
    return int(ms)


# Servers killed and not yet reaped: waiting for a killed process's exit (the
# kernel tearing down its memory) took a few tenths of a millisecond of every
# fresh server's test, so each is reaped at the next stop, or at exit.
_killed = []


def _reap():
    """Reaps the killed servers that have exited."""
    _killed[:] = [p for p in _killed if p.poll() is None]


@atexit.register
def _reap_all():
    for p in _killed:
        p.wait()
    _killed.clear()


# Flags that give a server an address of the caller's choosing: the next
# server may ask for the same one, so the old one's exit is waited for.
_FIXED_ADDRESS = ("--port", "--tls-port", "--unixsocket")


def _stop_process(proc, tmp, log, wait=False):
    """Kills the server and removes its folder (the finalizer of a Server left
    running too). SIGKILL: it keeps nothing to save, and a SIGTERM's shutdown
    waits for the server's next cron tick (up to 100 ms, as in Redis). Its
    exit is not waited for (see _killed) unless `wait`: a server on a fixed
    address holds it until it has exited."""
    _reap()
    if proc.poll() is None:
        proc.kill()
        if wait:
            proc.wait()
        else:
            _killed.append(proc)
    log.close()
    shutil.rmtree(tmp, ignore_errors=True)


# A test sends one command at a time, with its own Python in between: the
# server may watch for the next one up to this long before it sleeps, which
# halves a round trip on a virtual machine (`idle-spin-us`, whose default of
# 100 µs suits a server, not a test's pace; a flag in `args` overrides it).
IDLE_SPIN_US = "1000"


class Server:
    """A latchkey server of its own, on a free port of 127.0.0.1, without
    persistence, with DEBUG enabled for loopback clients, watching for the
    next command up to 1 ms before it sleeps (``--idle-spin-us``).

    Use it as a context manager (``with latchkey.Server() as s:``) or call
    start() and stop(). `args` are more redis-server-style flags
    (``Server("--maxmemory", "10mb")``). A server left running is killed when
    the object is collected or the interpreter exits.
    """

    def __init__(self, *args, binary=None, timeout=10.0, decode_responses=True,
                 paused_time=False):
        self.args = [str(a) for a in args]
        self.binary = binary
        self.timeout = timeout
        self.decode_responses = decode_responses
        self.paused_time = paused_time
        self.host = None
        self.port = None
        self.process = None
        self.listeners = []
        self._tmp = None
        self._log_path = None
        self._finalizer = None
        self._client = None
        self._control = None
        self._clients = []

    # -- life cycle -------------------------------------------------------

    def start(self):
        """Spawns the server and waits (at most `timeout` s) for its ready file."""
        if self.process is not None:
            raise LatchkeyError("already started")
        binary = find_binary(self.binary)
        tmp = tempfile.mkdtemp(prefix="latchkey-")
        ready = os.path.join(tmp, "ready")
        self._log_path = os.path.join(tmp, "server.log")
        log = open(self._log_path, "wb")
        argv = [binary, "--port", "auto", "--bind", "127.0.0.1", "--ready-file", ready,
                "--enable-debug-command", "local", "--save", "", "--appendonly", "no",
                "--dir", tmp, "--loglevel", "warning", "--idle-spin-us", IDLE_SPIN_US,
                *self.args]
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, cwd=tmp)
        except OSError as e:
            log.close()
            shutil.rmtree(tmp, ignore_errors=True)
            raise LatchkeyError("cannot run %s: %s" % (binary, e)) from e
        self.process, self._tmp = proc, tmp
        fixed = any(a in _FIXED_ADDRESS for a in self.args)
        self._finalizer = weakref.finalize(self, _stop_process, proc, tmp, log, fixed)
        try:
            self.listeners = self._wait_ready(ready, argv)
        except BaseException:
            self.stop()
            raise
        tcp = next(l for l in self.listeners if l.startswith("tcp "))
        self.host, port = tcp.split(" ", 1)[1].rsplit(":", 1)
        self.port = int(port)
        if self.paused_time:
            self.pause_time()
        return self

    def _wait_ready(self, ready, argv):
        started = time.monotonic()
        deadline = started + self.timeout
        while True:
            try:
                with open(ready) as f:
                    lines = [l.strip() for l in f if l.strip()]
                if any(l.startswith("tcp ") for l in lines):
                    return lines
            except FileNotFoundError:
                pass
            code = self.process.poll()
            if code is not None:
                raise LatchkeyError("latchkey exited with status %s before it was ready: %s\n%s"
                                    % (code, " ".join(argv), self.log()))
            if time.monotonic() > deadline:
                raise LatchkeyError("latchkey was not ready after %s s: %s\n%s"
                                    % (self.timeout, " ".join(argv), self.log()))
            # Every 0.1 ms for the first 100 ms (a start takes a few ms: each
            # poll is a failed open(), and a coarser step is waited out in
            # full), then 5 ms.
            time.sleep(0.0001 if time.monotonic() - started < 0.1 else 0.005)

    def stop(self):
        """Closes the clients made here, ends the server, removes its folder."""
        for c in [self._client, self._control, *self._clients]:
            if c is not None:
                try:
                    c.close()
                except Exception:
                    pass
        self._client = self._control = None
        self._clients = []
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self.process = None

    def restart(self):
        """A new server process (new port) in place of this one."""
        self.stop()
        return self.start()

    @property
    def alive(self):
        return self.process is not None and self.process.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "<latchkey.Server %s>" % (self.url if self.port else "not started")

    def log(self):
        """What the server has written so far (warnings and errors)."""
        try:
            with open(self._log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    # -- connecting -------------------------------------------------------

    @property
    def url(self):
        return "redis://%s:%d" % (self.host, self.port)

    @property
    def pid(self):
        return self.process.pid if self.process else None

    @property
    def client(self):
        """A redis-py client (redis.Redis) of this server, made once; it
        decodes replies to str unless the Server was made with
        decode_responses=False."""
        if self._client is None:
            self._client = self.new_client()
        return self._client

    def new_client(self, **kwargs):
        """Another redis.Redis of this server (closed by stop())."""
        kwargs.setdefault("decode_responses", self.decode_responses)
        c = redis.Redis(host=self.host, port=self.port, **kwargs)
        self._clients.append(c)
        return c

    def async_client(self, **kwargs):
        """A redis.asyncio.Redis of this server; close it in its event loop
        (``async with s.async_client() as r:`` or ``await r.aclose()``)."""
        import redis.asyncio

        kwargs.setdefault("decode_responses", self.decode_responses)
        return redis.asyncio.Redis(host=self.host, port=self.port, **kwargs)

    def _debug(self, *args):
        # A connection of its own: DEBUG FAULT DROP-CLIENTS spares it, and DEBUG
        # is never hit by an injected fault.
        if self._control is None:
            if self.port is None:
                raise LatchkeyError("the server is not started")
            self._control = redis.Redis(host=self.host, port=self.port,
                                        decode_responses=True,
                                        single_connection_client=True)
        return self._control.execute_command("DEBUG", *args)

    # -- the clock --------------------------------------------------------

    def advance_time(self, amount):
        """Moves the server clock forward by `amount` (ms, or a timedelta):
        TTLs, lock leases and lock-delays that fall due end at once."""
        self._debug("ADVANCE-TIME", _ms(amount))

    def pause_time(self):
        """Stops the server clock: only advance_time() moves it."""
        self._debug("PAUSE-TIME")

    def resume_time(self):
        """Lets the clock run again from where it stands."""
        self._debug("RESUME-TIME")

    # -- faults -----------------------------------------------------------

    def fail_next(self, command="*", n=1, error="ERR injected fault"):
        """The next `n` `command`s (a name, or "*" for any command) answer
        `error`, an error line whose first word is its prefix ("ERR",
        "READONLY", "LOADING", ...), instead of running."""
        self._debug("FAULT", "ERROR", command, n, error)

    def delay_next(self, command="*", n=1, delay=100):
        """The next `n` `command`s run, but their replies wait `delay` (ms,
        or a timedelta)."""
        self._debug("FAULT", "DELAY", command, n, _ms(delay))

    def close_next(self, command="*", n=1):
        """The next `n` `command`s close their connection without a reply."""
        self._debug("FAULT", "CLOSE", command, n)

    def drop_clients(self):
        """Closes every client connection (this object's control connection
        aside)."""
        self._debug("FAULT", "DROP-CLIENTS")

    def refuse_connections(self, duration):
        """New connections are closed at once for `duration` (ms, or a
        timedelta); open ones go on."""
        self._debug("FAULT", "REFUSE", _ms(duration))

    def clear_faults(self):
        """Removes every fault rule and a refusal."""
        self._debug("FAULT", "CLEAR")

    def faults(self):
        """The rules set: [command or "*", remaining, "error"|"delay"|"close", argument]."""
        return self._debug("FAULT", "LIST")

    # -- between tests ----------------------------------------------------

    def reset(self):
        """DEBUG RESET: every database flushed, scripts and functions, faults,
        the slow log and latency events cleared, the clock running again
        (an advance is kept: server time never goes back)."""
        self._debug("RESET")
