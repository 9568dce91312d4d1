#!/usr/bin/env bash
# Requests/s and server CPU time per request of the unpipelined loads of
# benches/pairs.py, latchkey and redis-server side by side in alternating rounds:
#   lock  latchkey LOCK.ACQUIRE + LOCK.RELEASE against Redis's SET NX PX + EVALSHA
#         compare-and-delete (each connection on its own key: uncontended)
#   ping  PING on both
# The servers run on CPU 1 and the load on CPU 0 (taskset), so they never share a
# core. The load generator is Python and saturates its core first, so requests/s
# are bounded by it for both servers; CPU per request (user + system from
# /proc/PID/stat) is the server's own cost, and voluntary context switches per
# request show how often it went to sleep. Medians of the rounds are printed.
# Usage: benches/pairs_cpu.sh [rounds-per-run] [runs] [conns]  (defaults 20000, 5, 1)
# Listens on Unix sockets only; every server started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
RUNS=${2:-5}
CONNS=${3:-1}
for tool in redis-server python3 taskset; do
  command -v "$tool" >/dev/null || { echo "missing $tool"; exit 1; }
done
cargo build --release --quiet
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
taskset -c 1 target/release/latchkey --port 0 --save '' --unixsocket "$work/lk.sock" >/dev/null 2>&1 &
pids+=($!); lk=$!
taskset -c 1 redis-server --port 0 --unixsocket "$work/rd.sock" --save '' --appendonly no >/dev/null 2>&1 &
pids+=($!); rd=$!
for s in lk rd; do
  for _ in $(seq 100); do [ -S "$work/$s.sock" ] && break; sleep 0.05; done
done
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
switches() { cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt_switches/ {s += $2} END {print s}'; }
hz=$(getconf CLK_TCK)
run() { # pid sock mode -> "requests/s cpu-us-per-request sleeps-per-request"
  local before after start end sent sw0 sw1
  before=$(cpu_ticks "$1"); sw0=$(switches "$1"); start=$(date +%s.%N)
  sent=$(taskset -c 0 python3 benches/pairs.py "$2" "$3" "$N" "$CONNS")
  end=$(date +%s.%N); after=$(cpu_ticks "$1"); sw1=$(switches "$1")
  python3 -c "s=$sent; print(s/($end-$start), ($after-$before)/$hz*1e6/s, ($sw1-$sw0)/s)"
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for load in ping lock; do
  rd_mode=$load; [ "$load" = lock ] && rd_mode=redislock
  : >"$work/lk.$load"; : >"$work/rd.$load"
  for _ in $(seq "$RUNS"); do
    run "$lk" "$work/lk.sock" "$load" >>"$work/lk.$load"
    run "$rd" "$work/rd.sock" "$rd_mode" >>"$work/rd.$load"
  done
  lk_rps=$(cut -d' ' -f1 "$work/lk.$load" | median); rd_rps=$(cut -d' ' -f1 "$work/rd.$load" | median)
  lk_cpu=$(cut -d' ' -f2 "$work/lk.$load" | median); rd_cpu=$(cut -d' ' -f2 "$work/rd.$load" | median)
  lk_sw=$(cut -d' ' -f3 "$work/lk.$load" | median); rd_sw=$(cut -d' ' -f3 "$work/rd.$load" | median)
  python3 -c "print(f'$load (conns=$CONNS): requests/s latchkey {$lk_rps:,.0f} redis {$rd_rps:,.0f} ({$lk_rps/$rd_rps:.2f}x); CPU per request latchkey {$lk_cpu:.2f} us redis {$rd_cpu:.2f} us ({$lk_cpu/$rd_cpu:.2f}x); sleeps per request latchkey {$lk_sw:.2f} redis {$rd_sw:.2f}')"
done
