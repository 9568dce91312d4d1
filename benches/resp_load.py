"""Shared by benches/big_types.py and benches/rss.py: start latchkey and
redis-server side by side on Unix sockets, load data into them fast with
pipelined RESP, and read a process's RSS and CPU time from /proc.

Nothing here listens on a network address; every server started through
`Servers` is stopped when its `with` block ends.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# LATCHKEY=path compares another build; by default the release build, built first.
DEFAULT_LATCHKEY = os.path.join(ROOT, "target", "release", "latchkey")
LATCHKEY = os.environ.get("LATCHKEY", DEFAULT_LATCHKEY)


def build_latchkey():
    if LATCHKEY == DEFAULT_LATCHKEY:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)


def cmd(*args):
    """One command in RESP: arguments are bytes, str or int."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, int):
            a = b"%d" % a
        elif isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    """A client on a Unix socket that sends commands in batches and reads all
    their replies (RESP2: simple, error, integer, bulk and array replies)."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(120)
        self.sock.connect(path)
        self.buf = b""
        self.pos = 0

    def close(self):
        self.sock.close()

    def _line(self):
        while True:
            end = self.buf.find(b"\r\n", self.pos)
            if end >= 0:
                line = self.buf[self.pos:end]
                self.pos = end + 2
                return line
            self._more()

    def _more(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("server closed the connection")
        self.buf = self.buf[self.pos:] + chunk
        self.pos = 0

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b":"):
            return rest
        if kind == b"-":
            return Error(rest.decode(errors="replace"))
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) - self.pos < n + 2:
                self._more()
            data = self.buf[self.pos:self.pos + n]
            self.pos += n + 2
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise ValueError("unexpected reply line %r" % line)

    def call(self, *args):
        self.sock.sendall(cmd(*args))
        return self._reply()

    def pipeline(self, commands, batch=2000):
        """Sends an iterable of encoded commands, `batch` at a time, reading
        every reply; stops after the first batch with an error reply. Returns
        (number of replies, first error or None)."""
        count, pending = 0, []
        for c in commands:
            pending.append(c)
            if len(pending) == batch:
                count, error = self._flush(pending, count)
                if error is not None:
                    return count, error
                pending = []
        if pending:
            return self._flush(pending, count)
        return count, None

    def _flush(self, pending, count):
        # Sent from a second thread while this one reads: a server that stops
        # reading while its replies are not read would otherwise deadlock us.
        sender = threading.Thread(target=self.sock.sendall, args=(b"".join(pending),))
        sender.start()
        first_error = None
        try:
            for _ in pending:
                r = self._reply()
                if isinstance(r, Error) and first_error is None:
                    first_error = r
        finally:
            sender.join()
        return count + len(pending), first_error


class Error(str):
    """An error reply."""

    def short(self):
        """The error without the arguments Redis quotes after it."""
        return self.split(", with args beginning with", 1)[0]


def is_unknown_command(reply):
    return isinstance(reply, Error) and reply.startswith("ERR unknown command")


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise KeyError("VmRSS")


def cpu_seconds(pid):
    """User + system CPU time of a process so far (from /proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Servers:
    """latchkey and redis-server, each on its own Unix socket in a temporary
    directory, until the `with` block ends. `taskset` is an optional CPU list
    both servers are pinned to (for example "1")."""

    NAMES = ("redis", "latchkey")

    def __init__(self, taskset=None):
        self.taskset = taskset
        self.procs = {}
        self.sockets = {}

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="latchkey-bench-")
        try:
            for name, binary in (("redis", "redis-server"), ("latchkey", LATCHKEY)):
                path = os.path.join(self.dir, name + ".sock")
                args = [binary, "--port", "0", "--unixsocket", path, "--save", "",
                        "--appendonly", "no", "--dir", self.dir, "--loglevel", "warning"]
                if self.taskset:
                    args = ["taskset", "-c", self.taskset] + args
                self.procs[name] = subprocess.Popen(args, stdout=subprocess.DEVNULL)
                self.sockets[name] = path
            for name, path in self.sockets.items():
                deadline = time.monotonic() + 10
                while not os.path.exists(path):
                    if time.monotonic() > deadline or self.procs[name].poll() is not None:
                        raise RuntimeError("%s did not start" % name)
                    time.sleep(0.02)
                # latchkey serves while it loads: -LOADING until it is ready.
                c = Conn(path)
                while c.call("PING") != b"PONG":
                    if time.monotonic() > deadline:
                        raise RuntimeError("%s did not get ready" % name)
                    time.sleep(0.02)
                c.close()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def pid(self, name):
        return self.procs[name].pid

    def conn(self, name):
        return Conn(self.sockets[name])

    def __exit__(self, *exc):
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
