#!/usr/bin/env bash
# SET with the append-only file on, latchkey and redis-server side by side in
# one run, same options: 50 clients (redis-benchmark -c 50, unpipelined) doing
# SET under `appendfsync always`, `everysec`, and with no AOF (the baseline
# for what the AOF costs each server). Both servers write their AOF in a
# directory of their own on the same disk (the one `mktemp -d` gives, or
# $AOF_DIR). Rounds alternate which server goes first; prints the median
# requests/s, the server's CPU time per request (user + system from
# /proc/PID/stat), the ratios latchkey/redis, and each server's everysec
# throughput as a share of its no-AOF throughput.
# Everything listens on 127.0.0.1 and both servers are stopped on exit.
# Usage: [LATCHKEY=binary] [AOF_DIR=dir] benches/aof.sh [requests] [rounds]
#   (defaults 100000 requests, 3 rounds; `always` runs a fifth of them)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
ROUNDS=${2:-3}
for tool in redis-server redis-benchmark redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install redis-server redis-tools)"; exit 1; }
done
LATCHKEY=${LATCHKEY:-./target/release/latchkey}
[ "$LATCHKEY" = ./target/release/latchkey ] && cargo build --release --quiet
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d "${AOF_DIR:-${TMPDIR:-/tmp}}/aofbench.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

start() { # policy -> sets RPORT RPID LPORT LPID
  local policy=$1 aof=yes
  [ "$policy" = off ] && { aof=no; policy=everysec; }
  mkdir -p "$work/r-$1" "$work/l-$1"
  RPORT=$(free_port); LPORT=$(free_port)
  redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly "$aof" \
    --appendfsync "$policy" --dir "$work/r-$1" >/dev/null &
  RPID=$!; pids+=("$RPID")
  "$LATCHKEY" --port "$LPORT" --bind 127.0.0.1 --save '' --appendonly "$aof" \
    --appendfsync "$policy" --dir "$work/l-$1" --loglevel warning >/dev/null &
  LPID=$!; pids+=("$LPID")
  for p in "$RPORT" "$LPORT"; do
    for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.05; done
    [ "$(redis-cli -p "$p" ping)" = PONG ] || { echo "server on port $p did not start"; exit 1; }
  done
}

run() { # port pid n -> "req/s cpu_us_per_req"
  local port=$1 pid=$2 n=$3 c0 t0 t1 c1
  c0=$(cpu_ticks "$pid"); t0=$(date +%s.%N)
  redis-benchmark -p "$port" -c 50 -n "$n" -r 100000 -q -t set >/dev/null
  t1=$(date +%s.%N); c1=$(cpu_ticks "$pid")
  python3 -c "import os; t=$t1-$t0; hz=os.sysconf('SC_CLK_TCK'); print('%.0f %.2f' % ($n/t, ($c1-$c0)/hz*1e6/$n))"
}

declare -A LQ RQ
for policy in always everysec off; do
  start "$policy"
  n=$N; [ "$policy" = always ] && n=$((N / 5))
  lr=(); lc=(); rr=(); rc=()
  for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order="l r"; else order="r l"; fi
    for who in $order; do
      if [ "$who" = l ]; then read -r q c < <(run "$LPORT" "$LPID" "$n"); lr+=("$q"); lc+=("$c")
      else read -r q c < <(run "$RPORT" "$RPID" "$n"); rr+=("$q"); rc+=("$c"); fi
    done
  done
  kill "$RPID" "$LPID" 2>/dev/null || true; wait "$RPID" "$LPID" 2>/dev/null || true
  L=$(median "${lr[@]}"); R=$(median "${rr[@]}"); LC=$(median "${lc[@]}"); RC=$(median "${rc[@]}")
  LQ[$policy]=$L; RQ[$policy]=$R
  python3 -c "print('%-8s latchkey %8.0f req/s %6.2f us/req | redis %8.0f req/s %6.2f us/req | ratio %.2f, cpu %.2f' % ('$policy', $L, $LC, $R, $RC, $L/$R, $LC/$RC))"
done
python3 -c "print('everysec as a share of no AOF: latchkey %.2f, redis %.2f' % (${LQ[everysec]}/${LQ[off]}, ${RQ[everysec]}/${RQ[off]}))"
