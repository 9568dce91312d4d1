#!/usr/bin/env bash
# Side-by-side comparison with redis-server on this machine, in one run:
#   - redis-benchmark -t set,get -n 200000 -c 50, then the same with -P 16:
#     requests/s and p50 latency of each server and the latchkey/redis ratio;
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
  $SERVER_CPU ./target/release/latchkey --port "$LPORT" --bind 127.0.0.1 --loglevel warning ${LATCHKEY_ARGS:-} >/dev/null &
  LPID=$!; pids+=("$LPID")
  for p in "$RPORT" "$LPORT"; do
    for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.05; done
  done
}
stop_servers() { kill "$RPID" "$LPID"; wait "$RPID" "$LPID" 2>/dev/null || true; }

# One redis-benchmark run: a "test rps p50" line per test (SET, GET, and EVALSHA of
# the compare-and-delete lock release script).
RELEASE='if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("del",KEYS[1]) else return 0 end'
bench() {
  $CLIENT_CPU redis-benchmark -p "$1" -t set,get -n "$N" -c 50 $2 --csv 2>/dev/null |
    tr -d '"' | awk -F, 'NR > 1 { print $1, $2, $5 }'
  local sha
  sha=$(redis-cli -p "$1" script load "$RELEASE")
  $CLIENT_CPU redis-benchmark -p "$1" -n "$N" -c 50 $2 --csv evalsha "$sha" 1 key token 2>/dev/null |
    tr -d '"' | awk -F, 'NR > 1 { print "EVALSHA", $2, $5 }'
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
    bench "$RPORT" "$flag" | sed "s/^/$mode redis /" >> "$work/runs.txt"
    bench "$LPORT" "$flag" | sed "s/^/$mode latchkey /" >> "$work/runs.txt"
  done
done
stop_servers
python3 - "$work/runs.txt" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    mode, server, test, rps, p50 = line.split()
    runs.setdefault((mode, test, server), []).append((float(rps), float(p50)))
print("%-6s %-7s %12s %12s %7s %10s %10s" % ("mode", "test", "redis rps", "latchkey rps", "ratio", "redis p50", "lk p50"))
for mode in ("plain", "P16"):
    for test in ("SET", "GET", "EVALSHA"):
        r, l = runs[(mode, test, "redis")], runs[(mode, test, "latchkey")]
        rr, lr = statistics.median(x[0] for x in r), statistics.median(x[0] for x in l)
        rp, lp = statistics.median(x[1] for x in r), statistics.median(x[1] for x in l)
        print("%-6s %-7s %12.0f %12.0f %7.2f %7.3f ms %7.3f ms" % (mode, test, rr, lr, lr / rr, rp, lp))
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
