#!/usr/bin/env bash
# LMOVE hand-off between two lists with 50 clients, latchkey and redis-server
# side by side in one run: both lists start with 100 elements in `a`; 25
# clients run `LMOVE a b LEFT RIGHT` while 25 others run `LMOVE b a LEFT RIGHT`
# (two redis-benchmark processes at once, unpipelined), so elements keep moving
# between the lists and either may run dry for a moment (LMOVE then answers
# nil). Then the same with BLMOVE ... 1, where a client finding its source empty
# blocks until the other side hands it an element. Rounds alternate which server
# goes first; prints the median requests/s (both processes' requests over their
# wall time), the server's CPU time per request (user + system from
# /proc/PID/stat) and the ratios latchkey/redis.
# Everything listens on 127.0.0.1 and both servers are stopped on exit.
# Usage: [LATCHKEY=binary] benches/lmove.sh [requests] [rounds]
#   (defaults 200000 requests in all, 3 rounds, target/release/latchkey, built first)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
ROUNDS=${2:-3}
for tool in redis-server redis-benchmark redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install redis-server redis-tools)"; exit 1; }
done
LATCHKEY=${LATCHKEY:-./target/release/latchkey}
[ "$LATCHKEY" = ./target/release/latchkey ] && cargo build --release --quiet
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

RPORT=$(free_port); LPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null &
RPID=$!; pids+=("$RPID")
"$LATCHKEY" --port "$LPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" --loglevel warning >/dev/null &
LPID=$!; pids+=("$LPID")
for p in "$RPORT" "$LPORT"; do
  for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.05; done
  [ "$(redis-cli -p "$p" ping)" = PONG ] || { echo "server on port $p did not start"; exit 1; }
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HALF=$((N / 2))

run() { # port pid mode -> "req/s cpu_us_per_req"
  local port=$1 pid=$2 mode=$3
  redis-cli -p "$port" flushall >/dev/null
  redis-cli -p "$port" rpush a $(seq 100) >/dev/null
  local there back
  if [ "$mode" = lmove ]; then
    there=(LMOVE a b LEFT RIGHT); back=(LMOVE b a LEFT RIGHT)
  else
    there=(BLMOVE a b LEFT RIGHT 1); back=(BLMOVE b a LEFT RIGHT 1)
  fi
  local c0 t0 t1 c1
  c0=$(cpu_ticks "$pid"); t0=$(date +%s.%N)
  redis-benchmark -p "$port" -c 25 -n "$HALF" -q "${there[@]}" >/dev/null &
  local b1=$!
  redis-benchmark -p "$port" -c 25 -n "$HALF" -q "${back[@]}" >/dev/null &
  local b2=$!
  wait "$b1" "$b2"
  t1=$(date +%s.%N); c1=$(cpu_ticks "$pid")
  local moved
  moved=$(( $(redis-cli -p "$port" llen a) + $(redis-cli -p "$port" llen b) ))
  [ "$moved" = 100 ] || { echo "port $port: $moved elements left of 100"; exit 1; }
  python3 -c "import os; t=$t1-$t0; hz=os.sysconf('SC_CLK_TCK'); print('%.0f %.2f' % ($HALF*2/t, ($c1-$c0)/hz*1e6/($HALF*2)))"
}

median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

for mode in lmove blmove; do
  lr=(); lc=(); rr=(); rc=()
  for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order="l r"; else order="r l"; fi
    for who in $order; do
      if [ "$who" = l ]; then read -r q c < <(run "$LPORT" "$LPID" "$mode"); lr+=("$q"); lc+=("$c")
      else read -r q c < <(run "$RPORT" "$RPID" "$mode"); rr+=("$q"); rc+=("$c"); fi
    done
  done
  L=$(median "${lr[@]}"); R=$(median "${rr[@]}"); LC=$(median "${lc[@]}"); RC=$(median "${rc[@]}")
  python3 -c "print('%-7s latchkey %8.0f req/s %6.2f us/req | redis %8.0f req/s %6.2f us/req | ratio %.2f, cpu %.2f' % ('$mode', $L, $LC, $R, $RC, $L/$R, $LC/$RC))"
done
