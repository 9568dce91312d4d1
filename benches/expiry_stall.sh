#!/usr/bin/env bash
# Worst stall other clients see while a mass of keys expires, latchkey beside
# redis-server in one run on this machine.
#
#   keys:   1,000,000 `SET key:N v PXAT D` sharing one deadline D (both servers);
#   leases: 1,000,000 locks whose leases end together: latchkey's
#           `LOCK.ACQUIRE lock:N owner TTL` (one EVAL: a script sees one time, so
#           every lease ends together) against Redis's `SET lock:N owner NX PXAT D`
#           (one EVAL too; PXAT because redis-server 7.0 reads the clock for each
#           SET PX inside a script, which would spread the deadlines); on latchkey
#           one more lock ending with them has a waiter blocked in
#           `LOCK.ACQUIRE ... WAIT`, and its hand-off delay is reported.
#
# While they expire, a probe on its own connection sends PING after PING (Unix
# socket, one in flight) from 300 ms before D until DBSIZE reaches 0 (at most 20 s)
# and reports, for the pings sent after D: count, p50, p99, p99.9 and max round
# trip, and when the keys were all reclaimed. Both servers listen on Unix sockets
# in a temporary directory and are stopped on exit.
#
# Usage: benches/expiry_stall.sh [keys] [rounds]   (defaults 1000000, 1)
#        LATCHKEY=path/to/latchkey skips the build (e.g. to measure another build);
#        KINDS=keys or KINDS=leases runs one of the two.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
ROUNDS=${2:-1}
for tool in redis-server redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install redis-server redis-tools)"; exit 1; }
done
if [ -z "${LATCHKEY:-}" ]; then
  cargo build --release --quiet --bin latchkey
  LATCHKEY=./target/release/latchkey
fi
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

start() { # name command...; sets PID
  local sock="$work/$1.sock"
  shift
  "$@" --port 0 --unixsocket "$sock" --save '' --appendonly no --dir "$work" --busy-reply-threshold 60000 >/dev/null 2>&1 &
  PID=$!
  pids+=("$PID")
  for _ in $(seq 200); do redis-cli -s "$sock" ping >/dev/null 2>&1 && break; sleep 0.05; done
}

probe() { # socket kind(keys|leases) server(redis|latchkey)
  python3 - "$1" "$2" "$3" "$N" <<'EOF'
import socket, subprocess, sys, time

WAITER = """
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"LOCK.ACQUIRE handoff waiter 10000 WAIT 30000\\r\\n")
reply = s.recv(100)
print(time.time() * 1000 if reply.startswith(b":") else "refused")
"""

sock_path, kind, server, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    return s

def command(s, *words):
    out = b"*%d\r\n" % len(words)
    for w in words:
        w = w if isinstance(w, bytes) else str(w).encode()
        out += b"$%d\r\n%s\r\n" % (len(w), w)
    s.sendall(out)
    return read_reply(s)

buf = {}
def read_line(s):
    data = buf.get(s, b"")
    while b"\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError
        data += chunk
    line, rest = data.split(b"\r\n", 1)
    buf[s] = rest
    return line

def read_reply(s):
    line = read_line(s)
    t, body = line[:1], line[1:]
    if t in (b"+", b":"):
        return int(body) if t == b":" else body.decode()
    if t == b"-":
        raise RuntimeError(body.decode())
    if t == b"$":
        size = int(body)
        if size < 0:
            return None
        data = buf.get(s, b"")
        while len(data) < size + 2:
            data += s.recv(65536)
        buf[s] = data[size + 2:]
        return data[:size]
    if t == b"*":
        return [read_reply(s) for _ in range(int(body))]
    raise RuntimeError(line)

c = connect()
ttl = 0
load_start = time.time()
if kind == "keys":
    deadline_ms = int(time.time() * 1000) + 5000 + n // 50
    script = "for i=tonumber(ARGV[1]),tonumber(ARGV[2]) do redis.call('SET','key:'..i,'v','PXAT',ARGV[3]) end return 1"
    step = 100_000
    for lo in range(1, n + 1, step):
        command(c, "EVAL", script, 0, lo, min(lo + step - 1, n), deadline_ms)
else:
    ttl = 5000 + n // 50
    if server == "latchkey":
        # Returns lock:1's fencing token: the script's time in ms, shifted left 10.
        script = "local t = redis.call('LOCK.ACQUIRE','lock:1','owner',ARGV[2]) for i=2,tonumber(ARGV[1]) do redis.call('LOCK.ACQUIRE','lock:'..i,'owner',ARGV[2]) end redis.call('LOCK.ACQUIRE','handoff','owner',ARGV[2]) return t"
        lease_end_ms = (command(c, "EVAL", script, 0, n, ttl) >> 10) + ttl
    else:
        # SET NX with one absolute deadline: Redis's script time is not frozen
        # for PX, and the leases must end together as latchkey's do.
        script = "for i=1,tonumber(ARGV[1]) do redis.call('SET','lock:'..i,'owner','NX','PXAT',ARGV[2]) end return 1"
        command(c, "EVAL", script, 0, n, int(time.time() * 1000) + ttl)
    t0 = time.time()
    first, last = command(c, "PTTL", "lock:1"), command(c, "PTTL", "lock:%d" % n)
    deadline_ms = int(t0 * 1000) + last
    if abs(first - last) > 50:
        print("  (leases do not end together: PTTL %d and %d)" % (first, last))
    if server == "latchkey":
        # A waiter on a lock whose lease ends with the others, in a process of its
        # own (a thread here would wait for the interpreter lock): it prints the
        # wall-clock ms at which its grant arrived.
        waiter = subprocess.Popen([sys.executable, "-c", WAITER, sock_path], stdout=subprocess.PIPE, text=True)
        while command(c, "LOCK.INFO", "handoff")[-1] != 1:
            time.sleep(0.01)
loaded = time.time()
if loaded * 1000 > deadline_ms - 500:
    print("  load took too long (%.1f s): raise the margin" % (loaded - load_start))
    sys.exit(1)
time.sleep(max(0, deadline_ms / 1000 - 0.3 - time.time()))
samples = []
cleared = None
end = deadline_ms / 1000 + 20
i = 0
while time.time() < end:
    t = time.perf_counter()
    assert command(c, "PING") == "PONG"
    took = time.perf_counter() - t
    now = time.time()
    if now * 1000 >= deadline_ms:
        samples.append(took)
    i += 1
    if i % 200 == 0 and now * 1000 >= deadline_ms:
        size = command(c, "DBSIZE")
        if size <= (1 if (server == "latchkey" and kind == "leases") else 0):
            cleared = now * 1000 - deadline_ms
            break
samples.sort()
pct = lambda q: samples[min(len(samples) - 1, int(len(samples) * q))] * 1000
print("  %-8s %-6s pings=%-6d p50=%6.3f ms  p99=%7.3f ms  p99.9=%7.3f ms  max=%7.3f ms  all reclaimed %s"
      % (server, kind, len(samples), pct(0.5), pct(0.99), pct(0.999), samples[-1] * 1000,
         "after %.0f ms" % cleared if cleared is not None else "not within 20 s"))
if server == "latchkey" and kind == "leases":
    try:
        granted_ms = float(waiter.communicate(timeout=30)[0])
        print("  %-8s lease hand-off to a waiter %.1f ms after the lease ended"
              % (server, granted_ms - lease_end_ms))
    except (subprocess.TimeoutExpired, ValueError):
        waiter.kill()
        print("  latchkey waiter not granted within the run")
EOF
}

echo "== $N keys / leases with one deadline; PING round trips after it ($ROUNDS round(s))"
for round in $(seq "$ROUNDS"); do
  for kind in ${KINDS:-keys leases}; do
    for server in redis latchkey; do
      if [ "$server" = redis ]; then
        start redis redis-server
      else
        start latchkey "$LATCHKEY" --loglevel warning
      fi
      probe "$work/$server.sock" "$kind" "$server"
      kill "$PID"; wait "$PID" 2>/dev/null || true
    done
  done
done
