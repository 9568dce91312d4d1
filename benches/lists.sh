#!/usr/bin/env bash
# The list tests of redis-benchmark, latchkey and redis-server side by side in
# one run:
#   redis-benchmark -P 16 -n N -c 50 -t <test>, for each of lpush, rpush, lpop,
#   rpop, lrange_100, lrange_300, lrange_600 (one test per redis-benchmark run,
#   the pushes before the pops; each LRANGE test first runs the N LPUSHes
#   redis-benchmark needs for it, whose line is left out but whose CPU time
#   counts), then the same unpipelined (-P 1) when MODES="P16 plain";
#   rounds alternate the servers (latchkey first in odd rounds, redis first in
#   even ones), each round starting from FLUSHALL; medians of requests/s and of
#   the server's CPU time per request (user + system from /proc/PID/stat) and the
#   ratios latchkey/redis.
# Every request uses the same key, as redis-benchmark's defaults do.
# A test whose command latchkey does not know yet is reported as skipped.
# Everything listens on 127.0.0.1 and both servers are stopped on exit.
# Usage: [PIN=1] [MODES="P16 plain"] [LATCHKEY=binary] benches/lists.sh [requests] [rounds]
#   (defaults 200000 requests, 3 rounds, target/release/latchkey, built first)
# PIN=1 runs both servers on CPU 1 and redis-benchmark on CPU 0 (taskset).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
ROUNDS=${2:-3}
SERVER_CPU=""; CLIENT_CPU=""
if [ "${PIN:-0}" = 1 ]; then SERVER_CPU="taskset -c 1"; CLIENT_CPU="taskset -c 0"; fi
RANDOM_ARGS=""
MODES=${MODES:-P16}
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
$SERVER_CPU redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null &
RPID=$!; pids+=("$RPID")
$SERVER_CPU "$LATCHKEY" --port "$LPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" --loglevel warning >/dev/null &
LPID=$!; pids+=("$LPID")
for p in "$RPORT" "$LPORT"; do
  for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.05; done
  [ "$(redis-cli -p "$p" ping)" = PONG ] || { echo "server on port $p did not start"; exit 1; }
done

TESTS="lpush rpush lpop rpop lrange_100 lrange_300 lrange_600"
# One command of each test, to find the ones latchkey does not have yet.
probe() { # port test -> the reply
  case $2 in
    lpush) redis-cli -p "$1" lpush probe:l v ;;
    rpush) redis-cli -p "$1" rpush probe:l v ;;
    lpop) redis-cli -p "$1" lpop probe:l ;;
    rpop) redis-cli -p "$1" rpop probe:l ;;
    lrange_*) redis-cli -p "$1" lrange probe:l 0 -1 ;;
  esac 2>&1
}
skipped=""
for t in $TESTS; do
  reply=$(probe "$LPORT" "$t")
  case $reply in
    *"unknown command"*) skipped="$skipped $t"; echo "latchkey skips $t: ${reply%%, with args*}" ;;
  esac
done

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
run_one() { # port pid mode test -> "mode server test rps cpu-ticks"
  local before out
  before=$(ticks "$2")
  local flag=""; [ "$3" = P16 ] && flag="-P 16"
  # shellcheck disable=SC2086
  out=$($CLIENT_CPU redis-benchmark -p "$1" -n "$N" -c 50 $flag $RANDOM_ARGS --csv -t "$4" 2>/dev/null)
  # "LRANGE_100 (first 100 elements)" is reported as lrange_100; the LPUSH an
  # LRANGE test runs first ("... needed to benchmark LRANGE") is left out.
  echo "$out" | tr -d '"' | awk -F, -v cpu="$(($(ticks "$2") - before))" \
    'NR > 1 && $1 !~ /needed/ { split($1, w, " "); print w[1], $2, cpu }'
}
round() { # server port pid
  redis-cli -p "$2" flushall >/dev/null
  for mode in $MODES; do
    for t in $TESTS; do
      [ "$1" = latchkey ] && [[ " $skipped " == *" $t "* ]] && continue
      run_one "$2" "$3" "$mode" "$t" | sed "s/^/$mode $1 /"
    done
  done
}

echo "latchkey ($LATCHKEY) $("$LATCHKEY" -v | sed 's/.*(latchkey \(.*\))/\1/') vs $(redis-server --version | cut -d' ' -f1-3), $(nproc) cores"
echo "redis-benchmark -n $N -c 50 -t <test>, modes: $MODES; $ROUNDS rounds alternating servers, medians"
[ "${PIN:-0}" = 1 ] && echo "pinned: servers on CPU 1, redis-benchmark on CPU 0"
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then
    round latchkey "$LPORT" "$LPID"; round redis "$RPORT" "$RPID"
  else
    round redis "$RPORT" "$RPID"; round latchkey "$LPORT" "$LPID"
  fi
done >"$work/runs.txt"

python3 - "$work/runs.txt" "$N" "$(getconf CLK_TCK)" "$TESTS" "$MODES" <<'PY'
import statistics, sys
runs = {}
n, tick_us, tests = int(sys.argv[2]), 1e6 / int(sys.argv[3]), sys.argv[4].split()
for line in open(sys.argv[1]):
    mode, server, test, rps, ticks = line.split()
    runs.setdefault((mode, test.lower(), server), []).append((float(rps), int(ticks) * tick_us / n))
print("%-6s %-10s %10s %10s %6s %8s %8s %6s" % ("", "", "requests/s", "", "ratio", "CPU us/", "request", "ratio"))
print("%-6s %-8s %10s %10s %6s %8s %8s %6s" % ("mode", "test", "redis", "latchkey", "lk/r", "redis", "latchkey", "lk/r"))
for mode in sys.argv[5].split():
    for test in tests:
        r = runs[(mode, test, "redis")]
        rr, rc = statistics.median(x[0] for x in r), statistics.median(x[1] for x in r)
        l = runs.get((mode, test, "latchkey"))
        if not l:
            print("%-6s %-8s %10.0f %10s %6s %8.2f %8s %6s  (latchkey skipped)" % (mode, test.upper(), rr, "-", "-", rc, "-", "-"))
            continue
        lr, lc = statistics.median(x[0] for x in l), statistics.median(x[1] for x in l)
        print("%-6s %-8s %10.0f %10.0f %6.2f %8.2f %8.2f %6.2f" % (mode, test.upper(), rr, lr, lr / rr, rc, lc, lc / rc if rc else float("nan")))
PY
