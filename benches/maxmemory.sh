#!/usr/bin/env bash
# SET under eviction, latchkey and redis-server side by side in one run, same
# options: `maxmemory` (default 64mb) with `allkeys-lru`, then twice the limit
# written by 50 clients (redis-benchmark SET, random keys over a keyspace
# large enough never to repeat much, values of 100 bytes). Reports requests/s,
# the server's CPU time per request (user + system from /proc/PID/stat), the
# keys evicted, and the largest resident size seen (sampled every 100 ms) as
# a share of the limit, for each server; ratios latchkey/redis.
# Everything listens on 127.0.0.1 and both servers are stopped on exit.
# Usage: [LATCHKEY=binary] benches/maxmemory.sh [maxmemory-mb] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-64}
ROUNDS=${2:-3}
for tool in redis-server redis-benchmark redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install redis-server redis-tools)"; exit 1; }
done
LATCHKEY=${LATCHKEY:-./target/release/latchkey}
[ "$LATCHKEY" = ./target/release/latchkey ] && cargo build --release --quiet
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
# Twice the limit in 100-byte values (about 170 bytes a key with its name and
# overhead in either server).
N=$(( MB * 1024 * 1024 * 2 / 170 ))

run() { # binary-kind -> "req/s cpu_us_per_req evicted maxrss/limit"
  local kind=$1 port pid
  port=$(free_port)
  if [ "$kind" = redis ]; then
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --maxmemory "${MB}mb" --maxmemory-policy allkeys-lru >/dev/null &
  else
    "$LATCHKEY" --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --maxmemory "${MB}mb" --maxmemory-policy allkeys-lru --loglevel warning >/dev/null &
  fi
  pid=$!; pids+=("$pid")
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  local peak=0 c0 t0 t1 c1
  ( while kill -0 "$pid" 2>/dev/null; do rss_kb "$pid"; sleep 0.1; done ) > "/tmp/mm-rss-$pid" &
  local sampler=$!
  c0=$(cpu_ticks "$pid"); t0=$(date +%s.%N)
  redis-benchmark -p "$port" -c 50 -n "$N" -r 100000000 -d 100 -q -t set >/dev/null
  t1=$(date +%s.%N); c1=$(cpu_ticks "$pid")
  local evicted
  evicted=$(redis-cli -p "$port" info stats | awk -F: '/^evicted_keys/ {print $2}' | tr -d '\r')
  kill "$pid"; wait "$pid" 2>/dev/null || true
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  peak=$(sort -n "/tmp/mm-rss-$pid" | tail -1); rm -f "/tmp/mm-rss-$pid"
  python3 -c "import os; t=$t1-$t0; hz=os.sysconf('SC_CLK_TCK'); print('%.0f %.2f %s %.2f' % ($N/t, ($c1-$c0)/hz*1e6/$N, '$evicted', $peak/($MB*1024.0)))"
}

lr=(); lc=(); lm=(); rr=(); rc=(); rm=()
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="l r"; else order="r l"; fi
  for who in $order; do
    if [ "$who" = l ]; then read -r q c e m < <(run latchkey); lr+=("$q"); lc+=("$c"); lm+=("$m"); le=$e
    else read -r q c e m < <(run redis); rr+=("$q"); rc+=("$c"); rm+=("$m"); re=$e; fi
  done
done
L=$(median "${lr[@]}"); R=$(median "${rr[@]}"); LC=$(median "${lc[@]}"); RC=$(median "${rc[@]}")
LM=$(python3 -c "print(max(float(x) for x in '${lm[*]}'.split()))"); RM=$(python3 -c "print(max(float(x) for x in '${rm[*]}'.split()))")
python3 -c "print('SET, allkeys-lru, ${MB} MB, $N keys: latchkey %8.0f req/s %6.2f us/req, %s evicted, max RSS %.2fx the limit | redis %8.0f req/s %6.2f us/req, %s evicted, max RSS %.2fx | ratio %.2f, cpu %.2f' % ($L, $LC, '$le', $LM, $R, $RC, '$re', $RM, $L/$R, $LC/$RC))"
