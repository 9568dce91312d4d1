"""redis-cli (Debian's redis-tools) against a server binary: one-shot commands
with their printed replies, a session fed on stdin, an interactive session on a
pseudo-terminal (where redis-cli fetches COMMAND DOCS for its hints), and the
Unix socket.

Usage: python3 tests/clients/redis_cli.py PATH_TO_SERVER_BINARY
"""

import os
import pty
import fcntl
import select
import struct
import subprocess
import termios
import sys
import time

from harness import binary_arg, run, server


def cli(port, *args, stdin=None):
    out = subprocess.run(["redis-cli", "-p", str(port), *args], input=stdin,
                         capture_output=True, text=True, timeout=10)
    return out.stdout


def check_one_shot_commands(port):
    assert cli(port, "set", "a", "1") == "OK\n"
    assert cli(port, "get", "a") == "1\n"
    assert cli(port, "--no-raw", "incr", "a") == "(integer) 2\n"
    assert cli(port, "--no-raw", "get", "nokey") == "(nil)\n"
    cli(port, "set", "s", "text")
    assert cli(port, "--no-raw", "incr", "s") == "(error) ERR value is not an integer or out of range\n"
    assert cli(port, "--no-raw", "nosuch") == (
        "(error) ERR unknown command 'nosuch', with args beginning with: \n")
    cli(port, "rpush", "l", "x", "y")
    assert cli(port, "--no-raw", "lrange", "l", "0", "-1") == '1) "x"\n2) "y"\n'
    assert cli(port, "--no-raw", "set", "e", "1", "ex", "0") == (
        "(error) ERR invalid expire time in 'set' command\n")


def check_session_on_stdin(port):
    session = "PING\nSET x 1\nGET x\nHELLO 3\nCONFIG GET maxclients\nEXPIRE x 100\nTTL x\n"
    out = cli(port, stdin=session).splitlines()
    assert out[:3] == ["PONG", "OK", "1"], out
    # HELLO 3's map, then CONFIG GET's reply as a RESP3 map: key and value on a line.
    assert "proto 3" in out and "role master" in out, out
    assert out[-3:] == ["maxclients 10000", "1", "100"], out


def check_interactive_start_up(port):
    """redis-cli on a terminal: its start-up (COMMAND DOCS for hints) must work
    and typed commands answer as in a real session."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp("redis-cli", ["redis-cli", "-p", str(port)])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    out = b""

    def read_until(done, start=0, timeout=5):
        """Reads the terminal until done(output since `start`) or the timeout."""
        nonlocal out
        deadline = time.monotonic() + timeout
        while not done(out[start:]) and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                # linenoise asks the terminal where the cursor is; answer.
                for _ in range(chunk.count(b"\x1b[6n")):
                    os.write(fd, b"\x1b[1;1R")
                out += chunk
        return done(out[start:])

    prompt = b"127.0.0.1:%d> " % port

    def type_line(line, reply):
        """Types a line once redis-cli shows its prompt, then waits for the reply
        and the next prompt. (Typed before the prompt, the line would be flushed:
        linenoise switches the terminal to raw mode with TCSAFLUSH.)"""
        start = len(out)
        os.write(fd, line + b"\r")
        assert read_until(lambda tail: reply in tail and tail.endswith(prompt), start), out

    try:
        assert read_until(lambda tail: tail.endswith(prompt)), out
        type_line(b"set x 1", b"\r\nOK\r\n")
        type_line(b"get x", b'\r\n"1"\r\n')
        type_line(b"command count", b"\r\n(integer) ")
        os.write(fd, b"quit\r")
        read_until(lambda tail: False, timeout=2)  # until the terminal closes
        deadline = time.monotonic() + 2
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            assert time.monotonic() < deadline, "redis-cli did not exit on quit"
            time.sleep(0.02)
        pid = None
        assert os.waitstatus_to_exitcode(status) == 0, status
    finally:
        if pid is not None:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
    assert b"(error)" not in out, out


def check_unix_socket(port, sock):
    out = subprocess.run(["redis-cli", "-s", sock, "ping"], capture_output=True, text=True,
                         timeout=10).stdout
    assert out == "PONG\n", out


def main():
    with server(binary_arg()) as (port, sock):
        before = lambda: cli(port, "flushall")  # noqa: E731
        status = run("redis-cli", [check_one_shot_commands, check_session_on_stdin,
                                   check_interactive_start_up], port, before=before)
        status |= run("redis-cli unix socket", [check_unix_socket], port, sock)
        return status


if __name__ == "__main__":
    sys.exit(main())
