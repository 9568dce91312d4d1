#!/usr/bin/env bash
# RSS of redis-server and latchkey, side by side, after the same 100,000
# `SADD set:N <M random integers 0..1000>` (M = members per set, default 5):
# Redis keeps such sets as intsets; latchkey keeps them sorted at the narrowest
# width too, inline in the set when they take at most 14 bytes.
# Usage: benches/set_memory.sh [members-per-set] [sets]   (defaults 5, 100000)
# Both servers listen on Unix sockets in a temporary directory and are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
PER=${1:-5}
N=${2:-100000}
command -v redis-server >/dev/null || { echo "missing redis-server"; exit 1; }
cargo build --release --quiet
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
redis-server --port 0 --unixsocket "$work/redis.sock" --save "" --appendonly no >/dev/null &
pids+=($!); rpid=$!
target/release/latchkey --port 0 --save "" --unixsocket "$work/latchkey.sock" >/dev/null 2>&1 &
pids+=($!); lpid=$!
for _ in $(seq 50); do [ -S "$work/redis.sock" ] && [ -S "$work/latchkey.sock" ] && break; sleep 0.1; done
python3 - "$work" "$rpid" "$lpid" "$N" "$PER" <<'PY'
import random, socket, sys, threading, time
work, rpid, lpid, n, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])

def load(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    def drain():
        got = 0
        while got < n:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got += chunk.count(b"\r\n")
    reader = threading.Thread(target=drain)
    reader.start()
    rnd = random.Random(1)
    buf = bytearray()
    for i in range(n):
        args = [b"SADD", b"set:%d" % i] + [b"%d" % rnd.randint(0, 1000) for _ in range(per)]
        buf += b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        if len(buf) > 1 << 16:
            s.sendall(buf)
            buf = bytearray()
    s.sendall(buf)
    reader.join(timeout=120)
    s.close()

for name, pid, sock in (("redis-server", rpid, "redis.sock"), ("latchkey", lpid, "latchkey.sock")):
    before = rss_kb(pid)
    load(f"{work}/{sock}")
    time.sleep(0.5)
    after = rss_kb(pid)
    print(f"{name:13} RSS {after:7} kB  (empty {before} kB, growth {after - before} kB) for {n} sets of {per}")
PY
