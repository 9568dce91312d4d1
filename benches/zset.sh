#!/usr/bin/env bash
# One sorted set of N members (default 1,000,000; scores 0..N-1, members
# "member:<i>"), latchkey side by side with redis-server on 127.0.0.1:
#   - RSS growth of the server for the whole set (bytes per member);
#   - requests/s (redis-benchmark, 50 clients, no pipelining) of ZADD of a
#     random member into it, ZRANGE BYSCORE LIMIT 0 10 from a random score, and
#     ZRANK of a random member.
# Usage: benches/zset.sh [members] [requests]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
R=${2:-200000}
cargo build --release --quiet
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
python3 - "$N" > "$work/fill.resp" <<'PY'
import sys
n = int(sys.argv[1])
out = sys.stdout
batch = 1000
for start in range(0, n, batch):
    parts = ["ZADD", "bz"]
    for i in range(start, min(n, start + batch)):
        parts += [str(i), "member:%d" % i]
    out.write("*%d\r\n" % len(parts))
    for p in parts:
        out.write("$%d\r\n%s\r\n" % (len(p), p))
PY
run() { # name command...
  local name=$1; shift
  local port; port=$(free_port)
  "$@" --port "$port" --bind 127.0.0.1 >/dev/null &
  local pid=$!; pids+=("$pid")
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  local before; before=$(rss_kb "$pid")
  redis-cli -p "$port" --pipe < "$work/fill.resp" >/dev/null
  local after; after=$(rss_kb "$pid")
  echo "== $name: ZCARD $(redis-cli -p "$port" zcard bz), RSS +$(( (after - before) / 1024 )) MB, $(( (after - before) * 1024 / N )) bytes/member"
  redis-benchmark -p "$port" -q -n "$R" -r "$N" ZADD bz __rand_int__ member:__rand_int__ | tr '\r' '\n' | grep 'per second'
  redis-benchmark -p "$port" -q -n "$R" -r "$N" ZRANGE bz __rand_int__ +inf BYSCORE LIMIT 0 10 | tr '\r' '\n' | grep 'per second'
  redis-benchmark -p "$port" -q -n "$R" -r "$N" ZRANK bz member:__rand_int__ | tr '\r' '\n' | grep 'per second'
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
run redis-server redis-server --save '' --appendonly no --dir "$work"
run latchkey ./target/release/latchkey --loglevel warning
