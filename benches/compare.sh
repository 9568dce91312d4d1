#!/usr/bin/env bash
# Side-by-side comparison with redis-server on this machine, in one run:
#   - redis-benchmark -t set,get -n 200000 -c 50, then the same with -P 16:
#     requests/s and p50 latency of each server and the latchkey/redis ratio;
#   - the server's CPU time (user + system, from /proc) per request in each run:
#     without pipelining one redis-benchmark process saturates its own core before
#     either server does, so requests/s there measure the load generator as much
#     as the server, and CPU per request is the steadier figure;
#   - RSS of each server after 1,000,000 `SET key:N <16-byte value>`.
# Everything listens on 127.0.0.1 and both servers are stopped on exit.
# Usage: [LATCHKEY_ARGS="--io-threads 2"] [PIN=1] benches/compare.sh [requests] [rounds]   (defaults 200000, 5)
# PIN=1 runs both servers on CPU 1 and redis-benchmark on CPU 0 (taskset), so on a
# 2-core machine the load generator and the server under test never share a core.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
SERVER_CPU=""; CLIENT_CPU=""
if [ "${PIN:-0}" = 1 ]; then SERVER_CPU="taskset -c 1"; CLIENT_CPU="taskset -c 0"; fi
ROUNDS=${2:-5}
for tool in redis-server redis-benchmark redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install redis-server redis-tools)"; exit 1; }
done
cargo build --release --quiet
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

start_servers() {
  RPORT=$(free_port); LPORT=$(free_port)
  $SERVER_CPU redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null &
  RPID=$!; pids+=("$RPID")
  $SERVER_CPU ./target/release/latchkey --port "$LPORT" --bind 127.0.0.1 --save '' --dir "$work" --loglevel warning ${LATCHKEY_ARGS:-} >/dev/null &
  LPID=$!; pids+=("$LPID")
  for p in "$RPORT" "$LPORT"; do
    for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.05; done
  done
}
stop_servers() { kill "$RPID" "$LPID"; wait "$RPID" "$LPID" 2>/dev/null || true; }

# One redis-benchmark run per test (SET, GET, and EVALSHA of the compare-and-delete
# lock release script): a "test rps p50 cpu-ticks" line each, the ticks being the
# server's user + system time during the run (clock ticks, from /proc/PID/stat).
RELEASE='if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("del",KEYS[1]) else return 0 end'
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
run_one() { # port pid name flags redis-benchmark-args...
  local port=$1 pid=$2 name=$3 flags=$4 before out
  shift 4
  before=$(ticks "$pid")
  out=$($CLIENT_CPU redis-benchmark -p "$port" -n "$N" -c 50 $flags --csv "$@" 2>/dev/null)
  echo "$out" | tr -d '"' | awk -F, -v name="$name" -v cpu="$(($(ticks "$pid") - before))" \
    'NR > 1 { print name, $2, $5, cpu }'
}
bench() { # port pid flags
  local sha
  run_one "$1" "$2" SET "$3" -t set
  run_one "$1" "$2" GET "$3" -t get
  sha=$(redis-cli -p "$1" script load "$RELEASE")
  run_one "$1" "$2" EVALSHA "$3" evalsha "$sha" 1 key token
}

echo "latchkey $(./target/release/latchkey -v | sed 's/.*(latchkey \(.*\))/\1/') vs $(redis-server --version | cut -d' ' -f1-3), $(nproc) cores"
echo "redis-benchmark -t set,get -n $N -c 50 [-P 16] and evalsha <release script> 1 key token, $ROUNDS rounds alternating servers, medians"
[ "${PIN:-0}" = 1 ] && echo "pinned: servers on CPU 1, redis-benchmark on CPU 0"
echo
start_servers
for round in $(seq "$ROUNDS"); do
  for mode in plain P16; do
    flag=""; [ "$mode" = P16 ] && flag="-P 16"
    # One server at a time: the two benchmarks must not compete for the cores.
    bench "$RPORT" "$RPID" "$flag" | sed "s/^/$mode redis /" >> "$work/runs.txt"
    bench "$LPORT" "$LPID" "$flag" | sed "s/^/$mode latchkey /" >> "$work/runs.txt"
  done
done
stop_servers
python3 - "$work/runs.txt" "$N" "$(getconf CLK_TCK)" <<'PY'
import statistics, sys
runs = {}
n, tick_us = int(sys.argv[2]), 1e6 / int(sys.argv[3])
for line in open(sys.argv[1]):
    mode, server, test, rps, p50, ticks = line.split()
    runs.setdefault((mode, test, server), []).append((float(rps), float(p50), int(ticks) * tick_us / n))
# Medians, and the best round's requests/s: interference from the host only ever
# slows a round down, so the best rounds are the least disturbed.
print("%-6s %-7s %9s %9s %6s %6s %9s %9s %7s %7s %6s" % ("", "", "requests/s", "", "ratio", "best",
      "p50 ms", "", "CPU us/", "request", "ratio"))
print("%-6s %-7s %9s %9s %6s %6s %9s %9s %7s %7s %6s" % ("mode", "test", "redis", "latchkey", "lk/r", "lk/r",
      "redis", "latchkey", "redis", "lk", "lk/r"))
for mode in ("plain", "P16"):
    for test in ("SET", "GET", "EVALSHA"):
        r, l = runs[(mode, test, "redis")], runs[(mode, test, "latchkey")]
        rr, lr, rp, lp, rc, lc = (statistics.median(x[i] for x in s) for i in range(3) for s in (r, l))
        best = max(x[0] for x in l) / max(x[0] for x in r)
        print("%-6s %-7s %9.0f %9.0f %6.2f %6.2f %9.3f %9.3f %7.2f %7.2f %6.2f" % (mode, test, rr, lr, lr / rr, best, rp, lp, rc, lc, lc / rc))
PY

echo
python3 - "$work/1m.resp" <<'PY'
import sys
with open(sys.argv[1], "wb") as out:
    value = b"v" * 16
    for i in range(1_000_000):
        key = b"key:%d" % i
        out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$16\r\n%s\r\n" % (len(key), key, value))
PY
start_servers
rss() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }
for p in "$RPORT" "$LPORT"; do redis-cli -p "$p" --pipe < "$work/1m.resp" >/dev/null; done
r=$(rss "$RPID"); l=$(rss "$LPID")
printf 'RSS after 1,000,000 SET key:N <16 bytes>: redis %d KiB (dbsize %s), latchkey %d KiB (dbsize %s), ratio %.2f\n' \
  "$r" "$(redis-cli -p "$RPORT" dbsize)" "$l" "$(redis-cli -p "$LPORT" dbsize)" "$(echo "$l / $r" | bc -l)"
stop_servers
