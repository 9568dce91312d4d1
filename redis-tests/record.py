#!/usr/bin/env python3
"""Records the expected replies of redis-tests/*.txt from a real redis-server.

    python3 redis-tests/record.py [--check] [--port N] [FILE ...]

Without --port it starts its own redis-server on a free loopback port (and stops
it at exit). Each file runs on one fresh connection after FLUSHALL and the
other resets that make the server look fresh (SCRIPT FLUSH, FUNCTION FLUSH,
SLOWLOG RESET, LATENCY RESET, CONFIG RESETSTAT); every `>` command's reply is
rendered as redis-tests/FORMAT.md describes and written back under the command.
`>?` commands run but record nothing. With --check nothing is written: it exits
1 and prints the differences if the recorded replies no longer match what this
redis-server answers. Standard library only.

command_info.txt is not written by hand: its commands are `COMMAND INFO <name>`
for every command the server lists (RESP3), each container's subcommands sorted
by name (Redis lists them in its hash table's order, which changes from run to
run), so recording it again follows a new server's command set. It is not
replayed by tests/redis_compat.rs; tests/command_info.rs compares it with
latchkey's table. command_docs.txt is generated the same way from `COMMAND
DOCS <name>`; latchkey serves the argument lists in it.
"""

import argparse
import difflib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def split_args(line):
    """Splits a command line the way redis-cli / sdssplitargs does."""
    args, i, n = [], 0, len(line)
    while True:
        while i < n and line[i].isspace():
            i += 1
        if i >= n:
            return args
        cur, in_dq, in_sq = bytearray(), False, False
        while True:
            if in_dq:
                if i >= n:
                    raise ValueError("unbalanced quotes: " + line)
                c = line[i]
                if c == "\\" and i + 3 < n and line[i + 1] == "x" and all(
                    ch in "0123456789abcdefABCDEF" for ch in line[i + 2:i + 4]
                ):
                    cur.append(int(line[i + 2:i + 4], 16))
                    i += 4
                    continue
                if c == "\\" and i + 1 < n:
                    esc = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "a": "\a"}
                    cur += esc.get(line[i + 1], line[i + 1]).encode()
                    i += 2
                    continue
                if c == '"':
                    if i + 1 < n and not line[i + 1].isspace():
                        raise ValueError("closing quote must be followed by a space: " + line)
                    i += 1
                    break
                cur += c.encode()
                i += 1
            elif in_sq:
                if i >= n:
                    raise ValueError("unbalanced quotes: " + line)
                c = line[i]
                if c == "\\" and i + 1 < n and line[i + 1] == "'":
                    cur += b"'"
                    i += 2
                    continue
                if c == "'":
                    if i + 1 < n and not line[i + 1].isspace():
                        raise ValueError("closing quote must be followed by a space: " + line)
                    i += 1
                    break
                cur += c.encode()
                i += 1
            else:
                if i >= n or line[i].isspace():
                    break
                if line[i] == '"':
                    in_dq = True
                elif line[i] == "'":
                    in_sq = True
                else:
                    cur += line[i].encode()
                i += 1
        args.append(bytes(cur))


def encode(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Reader:
    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        """Reads one reply as (kind, value)."""
        line = self.line()
        t, rest = line[:1], line[1:]
        if t in (b"+", b"-", b":", b",", b"(", b"#", b"_"):
            return (t.decode(), rest)
        if t in (b"$", b"="):
            n = int(rest)
            if n < 0:
                return ("nil", None)
            return (t.decode(), self.exact(n))
        if t in (b"*", b"~", b">"):
            n = int(rest)
            if n < 0:
                return ("nil-array", None)
            return (t.decode(), [self.reply() for _ in range(n)])
        if t == b"%":
            n = int(rest)
            return ("%", [self.reply() for _ in range(2 * n)])
        if t == b"|":
            n = int(rest)
            for _ in range(2 * n):
                self.reply()
            return self.reply()
        raise ValueError("unexpected reply line %r" % line)


def escape(b):
    out = []
    for c in b:
        if c == 0x5C:
            out.append("\\\\")
        elif c == 0x22:
            out.append('\\"')
        elif c == 0x0A:
            out.append("\\n")
        elif c == 0x0D:
            out.append("\\r")
        elif c == 0x09:
            out.append("\\t")
        elif 0x20 <= c <= 0x7E:
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    return "".join(out)


def render(reply, indent=0):
    """Renders a reply as the lines FORMAT.md describes."""
    kind, v = reply
    pad = " " * indent
    if kind in ("+", "-", ":", ",", "(", "#"):
        return [pad + kind + v.decode("utf-8", "replace")]
    if kind == "_":
        return [pad + "_"]
    if kind == "nil":
        return [pad + "(nil)"]
    if kind == "nil-array":
        return [pad + "(nil-array)"]
    if kind == "$":
        return [pad + '"' + escape(v) + '"']
    if kind == "=":
        return [pad + "=" + escape(v)]
    if kind in ("*", "~", ">", "%"):
        n = len(v) // 2 if kind == "%" else len(v)
        lines = [pad + kind + str(n)]
        for item in v:
            lines += render(item, indent + 2)
        return lines
    raise ValueError(kind)


def parse_case_file(text):
    """Yields ("cmd", line, check) for commands and ("keep", line) for the rest,
    dropping recorded reply lines."""
    items, in_reply = [], False
    for line in text.splitlines():
        if line.startswith(">? "):
            items.append(("cmd", line, False))
            in_reply = False
        elif line.startswith("> "):
            items.append(("cmd", line, True))
            in_reply = True
        elif line.strip() == "" or line.startswith("# ") or line.rstrip() == "#":
            items.append(("keep", line))
            in_reply = False
        elif not in_reply:
            raise ValueError("reply line without a command: %r" % line)
    return items


def record_file(path, port):
    with open(path) as f:
        items = parse_case_file(f.read())
    sock = socket.create_connection(("127.0.0.1", port))
    reader = Reader(sock)
    # As close to a fresh server as one shared server gets (latchkey replays
    # each file on a new server): no keys, scripts or libraries, no slow-log
    # or latency events, and no per-command statistics, whose latency
    # histograms would otherwise add up over the files (4 MB after them all,
    # enough to change MEMORY DOCTOR's verdict on an "empty" instance).
    for reset in ([b"FLUSHALL"], [b"SCRIPT", b"FLUSH"], [b"FUNCTION", b"FLUSH"],
                  [b"SLOWLOG", b"RESET"], [b"LATENCY", b"RESET"], [b"CONFIG", b"RESETSTAT"]):
        sock.sendall(encode(reset))
        reader.reply()
    out = []
    for item in items:
        if item[0] == "keep":
            out.append(item[1])
            continue
        _, line, check = item
        out.append(line)
        args = split_args(line[3:] if line.startswith(">? ") else line[2:])
        sock.sendall(encode(args))
        reply = reader.reply()
        if check:
            out += render(reply)
    sock.close()
    return "\n".join(out) + "\n"


COMMAND_INFO = "command_info.txt"

COMMAND_INFO_HEADER = """\
# COMMAND INFO of every command of the recording redis-server, in RESP3 (RESP2
# is the same with maps and sets as flat arrays). Generated whole by record.py:
# a container's subcommands are sorted by name, as Redis lists them in a
# changing order. tests/command_info.rs checks latchkey's rows against it.
"""


def sort_subcommands(entry):
    """A COMMAND INFO entry with its subcommands (10th field, recursively) sorted
    by name."""
    kind, fields = entry
    if kind != "*" or len(fields) != 10:
        return entry
    sub_kind, subs = fields[9]
    if sub_kind == "*":
        subs = sorted((sort_subcommands(s) for s in subs), key=lambda s: s[1][0][1])
    return (kind, fields[:9] + [(sub_kind, subs)])


def record_each_command(port, header, subcommand, normalize):
    """A whole generated file: `COMMAND <subcommand> <name>` for every command
    the server lists (RESP3), each reply passed through `normalize`."""
    sock = socket.create_connection(("127.0.0.1", port))
    reader = Reader(sock)

    def ask(*args):
        sock.sendall(encode(list(args)))
        return reader.reply()

    out = [header, ">? HELLO 3"]
    ask(b"HELLO", b"3")
    names = sorted(v for _, v in ask(b"COMMAND", b"LIST")[1] if b"|" not in v)
    for name in names:
        out.append("> COMMAND %s %s" % (subcommand.decode(), name.decode()))
        out += render(normalize(ask(b"COMMAND", subcommand, name)))
    sock.close()
    return "\n".join(out) + "\n"


def record_command_info(port):
    """The whole of command_info.txt as this server answers it."""
    return record_each_command(
        port, COMMAND_INFO_HEADER, b"INFO", lambda r: (r[0], [sort_subcommands(e) for e in r[1]])
    )


COMMAND_DOCS = "command_docs.txt"

COMMAND_DOCS_HEADER = """\
# COMMAND DOCS of every command of the recording redis-server, in RESP3.
# Generated whole by record.py: a container's subcommands are sorted by name,
# as Redis lists them in a changing order. latchkey answers COMMAND DOCS from
# this recording for the commands it shares with Redis (src/commands/command.rs
# reads it), and tests/command_info.rs compares the two.
"""


def sort_doc_subcommands(entry):
    """A COMMAND DOCS entry (a map) with its `subcommands` map sorted by name,
    recursively."""
    kind, fields = entry
    if kind != "%":
        return entry
    out = []
    for i in range(0, len(fields), 2):
        key, value = fields[i], fields[i + 1]
        if key[1] == b"subcommands" and value[0] == "%":
            pairs = [(value[1][j], sort_doc_subcommands(value[1][j + 1])) for j in range(0, len(value[1]), 2)]
            pairs.sort(key=lambda p: p[0][1])
            value = ("%", [x for p in pairs for x in p])
        out += [key, value]
    return (kind, out)


def record_command_docs(port):
    """The whole of command_docs.txt as this server answers it."""

    def normalize(reply):
        kind, entries = reply
        out = []
        for i in range(0, len(entries), 2):
            out += [entries[i], sort_doc_subcommands(entries[i + 1])]
        return (kind, out)

    return record_each_command(port, COMMAND_DOCS_HEADER, b"DOCS", normalize)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_redis():
    exe = shutil.which("redis-server")
    if not exe:
        sys.exit("record.py: redis-server is not installed")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="latchkey-record-")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("record.py: redis-server did not start")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare, write nothing, exit 1 on a difference")
    ap.add_argument("--port", type=int, help="use a redis-server already listening on this port")
    ap.add_argument("files", nargs="*")
    opts = ap.parse_args()
    files = opts.files or sorted(glob.glob(os.path.join(HERE, "*.txt")))
    proc, port = (None, opts.port) if opts.port else start_redis()
    try:
        version = ""
        try:
            out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
            version = out.split()[2] if out else ""
        except OSError:
            pass
        failed = False
        for path in files:
            if os.path.basename(path) == COMMAND_INFO:
                recorded = record_command_info(port)
            elif os.path.basename(path) == COMMAND_DOCS:
                recorded = record_command_docs(port)
            else:
                recorded = record_file(path, port)
            current = ""
            if os.path.exists(path):
                with open(path) as f:
                    current = f.read()
            if opts.check:
                if recorded != current:
                    failed = True
                    sys.stdout.writelines(
                        difflib.unified_diff(current.splitlines(True), recorded.splitlines(True), path, "redis-server " + version)
                    )
                else:
                    print("ok  %s matches redis-server %s" % (os.path.relpath(path), version))
            elif recorded != current:
                with open(path, "w") as f:
                    f.write(recorded)
                print("recorded %s" % os.path.relpath(path))
        if failed:
            sys.exit(1)
    finally:
        if proc:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
