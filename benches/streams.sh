#!/usr/bin/env bash
# Streams, latchkey and redis-server side by side in one run:
#   xadd    redis-benchmark -P 16 -c 50: XADD s * f v (pipelined 16 deep)
#   xrange  redis-benchmark -c 50: XRANGE s - + COUNT 10 on a stream of 1,000
#           entries
#   groups  benches/stream_groups.rs: 10 consumers loop on XREADGROUP ... COUNT
#           10 BLOCK 100 STREAMS s > and XACK what they got, while 2 producers
#           XADD, until every entry is acknowledged (unpipelined)
# Rounds alternate which server goes first; prints the median requests/s, the
# server's CPU time per request (user + system from /proc/PID/stat) and the
# ratios latchkey/redis. Everything listens on 127.0.0.1 and both servers are
# stopped on exit.
# Usage: [LATCHKEY=binary] [MODES="xadd xrange groups"] [ENTRIES=n] [DRIVER=binary]
#        benches/streams.sh [requests] [rounds]
#   (defaults 200000 requests for xadd and xrange, 50000 entries for groups,
#   3 rounds, target/release/latchkey, built first)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
ROUNDS=${2:-3}
ENTRIES=${ENTRIES:-50000}
for tool in redis-server redis-benchmark redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install redis-server redis-tools)"; exit 1; }
done
LATCHKEY=${LATCHKEY:-./target/release/latchkey}
[ "$LATCHKEY" = ./target/release/latchkey ] && cargo build --release --quiet
MODES=${MODES:-xadd xrange groups}
DRIVER=${DRIVER:-}
if [[ " $MODES " == *" groups "* && -z "$DRIVER" ]]; then
  cargo bench --bench stream_groups --no-run --quiet 2>/dev/null
  DRIVER=$(ls -t target/release/deps/stream_groups-* | grep -v '\.d$' | head -1)
fi
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

run() { # port pid mode -> "req/s cpu_us_per_req"
  local port=$1 pid=$2 mode=$3
  redis-cli -p "$port" flushall >/dev/null
  local c0 t0 t1 c1 reqs
  if [ "$mode" = xrange ]; then
    for i in $(seq 1000); do echo "XADD s * f v$i"; done | redis-cli -p "$port" >/dev/null
  fi
  c0=$(cpu_ticks "$pid"); t0=$(date +%s.%N)
  case $mode in
    xadd) redis-benchmark -p "$port" -c 50 -n "$N" -P 16 -q XADD s '*' f v >/dev/null; reqs=$N ;;
    xrange) redis-benchmark -p "$port" -c 50 -n "$N" -q XRANGE s - + COUNT 10 >/dev/null; reqs=$N ;;
    groups) read -r reqs _ < <("$DRIVER" "$port" "$ENTRIES" 10 2) ;;
  esac
  t1=$(date +%s.%N); c1=$(cpu_ticks "$pid")
  if [ "$mode" = xadd ]; then
    [ "$(redis-cli -p "$port" xlen s)" = "$N" ] || { echo "port $port: XLEN is not $N"; exit 1; }
  fi
  python3 -c "import os; t=$t1-$t0; hz=os.sysconf('SC_CLK_TCK'); print('%.0f %.2f' % ($reqs/t, ($c1-$c0)/hz*1e6/$reqs))"
}

median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

for mode in $MODES; do
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
