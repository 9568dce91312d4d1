#!/usr/bin/env bash
# What `metrics-port` costs: latchkey with metrics off and on (scraped once a
# second by a background reader of /metrics, as Prometheus would), beside
# redis-server, in one run, alternating rounds:
#   - SET and GET: redis-benchmark -t set|get -n N -c 50 (all three servers);
#   - a lock pair: benches/pairs.py `lock` (LOCK.ACQUIRE + LOCK.RELEASE per
#     connection on its own key, unpipelined; latchkey off and on), the path
#     that feeds the wait and hold histograms.
# Reports requests/s and the server's CPU time per request (user + system
# from /proc/PID/stat, the steadier figure on 2 cores), medians of the
# rounds, and the on/off ratio. Everything listens on 127.0.0.1; every server
# and the scraper are stopped on exit.
# With CALLGRIND=1 it then counts user-space instructions per request of the
# lock pair under callgrind (steady on a loaded machine), metrics off and on
# (not scraped), and of BASE=binary too if given (a build without metrics).
# Usage: [PIN=1] [CALLGRIND=1 [BASE=binary]] benches/metrics.sh [requests] [rounds] [lock-pairs]
#        (defaults 200000, 3, 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
ROUNDS=${2:-3}
PAIRS=${3:-20000}
SERVER_CPU=""; CLIENT_CPU=""
if [ "${PIN:-0}" = 1 ]; then SERVER_CPU="taskset -c 1"; CLIENT_CPU="taskset -c 0"; fi
for tool in redis-server redis-benchmark redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install redis-server redis-tools)"; exit 1; }
done
cargo build --release --quiet
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

RPORT=$(free_port); OFFPORT=$(free_port); ONPORT=$(free_port); MPORT=$(free_port)
common=(--bind 127.0.0.1 --save '' --appendonly no --dir "$work")
$SERVER_CPU redis-server --port "$RPORT" "${common[@]}" >/dev/null &
RPID=$!; pids+=("$RPID")
$SERVER_CPU ./target/release/latchkey --port "$OFFPORT" --loglevel warning "${common[@]}" >/dev/null &
OFFPID=$!; pids+=("$OFFPID")
$SERVER_CPU ./target/release/latchkey --port "$ONPORT" --metrics-port "$MPORT" --loglevel warning "${common[@]}" >/dev/null &
ONPID=$!; pids+=("$ONPID")
for p in "$RPORT" "$OFFPORT" "$ONPORT"; do
  for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.05; done
done
# The scraper: one GET /metrics a second for the whole run.
python3 - "$MPORT" <<'PY' &
import sys, time, urllib.request
url = "http://127.0.0.1:%s/metrics" % sys.argv[1]
while True:
    try:
        urllib.request.urlopen(url, timeout=5).read()
    except OSError:
        pass
    time.sleep(1)
PY
pids+=($!)

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
bench() { # label pid port test
  local before out
  before=$(ticks "$2")
  out=$($CLIENT_CPU redis-benchmark -p "$3" -n "$N" -c 50 --csv -t "$4" 2>/dev/null)
  echo "$out" | tr -d '"' | awk -F, -v label="$1" -v cpu="$(($(ticks "$2") - before))" \
    'NR > 1 { print label, $1, $2, cpu, '"$N"' }'
}
pairs() { # label pid port
  local before start end sent
  before=$(ticks "$2"); start=$(date +%s.%N)
  sent=$($CLIENT_CPU python3 benches/pairs.py "$3" lock "$PAIRS" 4)
  end=$(date +%s.%N)
  python3 -c "print('$1', 'LOCKPAIR', $sent/($end-$start), $(($(ticks "$2") - before)), $sent)"
}

echo "latchkey $(./target/release/latchkey -v | sed 's/.*(latchkey \(.*\))/\1/') vs $(redis-server --version | cut -d' ' -f1-3), $(nproc) cores"
echo "redis-benchmark -t set|get -n $N -c 50; pairs.py lock $PAIRS rounds x 4 conns; metrics on = --metrics-port, scraped every 1 s; $ROUNDS rounds, medians"
[ "${PIN:-0}" = 1 ] && echo "pinned: servers on CPU 1, load on CPU 0"
echo
for round in $(seq "$ROUNDS"); do
  for t in set get; do
    bench redis "$RPID" "$RPORT" $t
    bench off "$OFFPID" "$OFFPORT" $t
    bench on "$ONPID" "$ONPORT" $t
  done
  pairs off "$OFFPID" "$OFFPORT"
  pairs on "$ONPID" "$ONPORT"
done > "$work/runs.txt"
python3 - "$work/runs.txt" "$(getconf CLK_TCK)" <<'PY'
import statistics, sys
runs = {}
tick_us = 1e6 / int(sys.argv[2])
for line in open(sys.argv[1]):
    server, test, rps, ticks, n = line.split()
    runs.setdefault((test, server), []).append((float(rps), int(ticks) * tick_us / float(n)))
med = lambda xs, i: statistics.median(x[i] for x in xs)
print("%-9s %10s %10s %10s %7s   %8s %8s %8s %7s" % ("", "requests/s", "", "", "", "CPU us/", "request", "", ""))
print("%-9s %10s %10s %10s %7s   %8s %8s %8s %7s" % ("test", "redis", "lk off", "lk on", "on/off", "redis", "lk off", "lk on", "on/off"))
for test in ("SET", "GET", "LOCKPAIR"):
    r = runs.get((test, "redis"))
    off, on = runs[(test, "off")], runs[(test, "on")]
    rr = "%10.0f" % med(r, 0) if r else "%10s" % "-"
    rc = "%8.2f" % med(r, 1) if r else "%8s" % "-"
    print("%-9s %s %10.0f %10.0f %7.3f   %s %8.2f %8.2f %7.3f" % (
        test, rr, med(off, 0), med(on, 0), med(on, 0) / med(off, 0),
        rc, med(off, 1), med(on, 1), med(on, 1) / med(off, 1)))
PY

[ "${CALLGRIND:-0}" = 1 ] || exit 0
command -v valgrind >/dev/null || { echo "CALLGRIND=1: missing valgrind"; exit 1; }
cg_pairs() { # binary [options...] -> instructions per request of 1 connection's lock pairs
  local bin=$1 port cgpid window sent
  shift
  port=$(free_port)
  rm -f "$work"/cg.out*
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$bin" --port "$port" \
    --loglevel warning "$@" "${common[@]}" >/dev/null 2>&1 &
  cgpid=$!; pids+=("$cgpid")
  for _ in $(seq 600); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  python3 benches/pairs.py "$port" lock 200 1 >/dev/null
  rm -f "$work"/cg.out*
  callgrind_control -z "$cgpid" >/dev/null 2>&1
  sent=$(python3 benches/pairs.py "$port" lock 4000 1)
  callgrind_control -d "$cgpid" >/dev/null 2>&1
  window=$(awk '/^summary:/ { print $2 }' "$work"/cg.out.*)
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || kill "$cgpid"
  wait "$cgpid" 2>/dev/null || true
  echo $((window / sent))
}
echo
echo "callgrind, lock pair (pairs.py lock 4000 x 1 conn), instructions per request:"
echo "  metrics off: $(cg_pairs ./target/release/latchkey)"
echo "  metrics on:  $(cg_pairs ./target/release/latchkey --metrics-port "$(free_port)")"
if [ -n "${BASE:-}" ]; then
  echo "  BASE ($BASE): $(cg_pairs "$BASE")"
fi
