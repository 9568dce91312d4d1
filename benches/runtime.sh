#!/usr/bin/env bash
# Per-request cost of the request path, side by side with redis-server, in
# measures that do not depend on the machine's load:
#   - user-space instructions per request (callgrind, whole run of the server
#     minus a run that served no requests: start-up and shutdown cancel out);
#   - system calls per request (strace -c -f attached to the running server).
# Loads (benches/pairs.py, unpipelined, each connection on its own key):
#   lock  latchkey: LOCK.ACQUIRE key owner 10000 + LOCK.RELEASE key owner
#         redis:    SET key owner NX PX 10000 + EVALSHA <compare-and-delete> 1 key owner
#   ping  PING on both.
# Usage: benches/runtime.sh [rounds] [conns]   (defaults 2000 rounds, 1 connection)
# LATCHKEY_ARGS="--io-threads 2" passes flags to latchkey, which runs with
# `--idle-spin-us 0` (its waits for the next request are not the request's cost). Listens on 127.0.0.1 only;
# every server started here is stopped before the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2000}
CONNS=${2:-1}
for tool in redis-server redis-cli python3 valgrind strace; do
  command -v "$tool" >/dev/null || { echo "missing $tool"; exit 1; }
done
cargo build --release --quiet
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() { # server wrapper... ; sets pid and port
  local server=$1; shift
  port=$(free_port)
  if [ "$server" = redis ]; then
    "$@" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null 2>&1 &
  else
    "$@" ./target/release/latchkey --port "$port" --bind 127.0.0.1 --save '' --dir "$work" --loglevel warning --idle-spin-us 0 ${LATCHKEY_ARGS:-} >/dev/null 2>&1 &
  fi
  pid=$!
  for _ in $(seq 400); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.05; done
  echo "server did not start"; exit 1
}
stop() { redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }
load() { # server mode rounds
  local mode=$2
  [ "$1" = redis ] && [ "$mode" = lock ] && mode=redislock
  python3 benches/pairs.py "$port" "$mode" "$3" "$CONNS"
}

instructions() { # server mode -> instructions per request
  local total=()
  for r in 0 "$ROUNDS"; do
    start "$1" valgrind --tool=callgrind --callgrind-out-file="$work/cg.out"
    [ "$r" -gt 0 ] && load "$1" "$2" "$r" >/dev/null
    stop
    total+=("$(awk '/^summary:/ { print $2 }' "$work/cg.out")")
  done
  local requests=$((ROUNDS * CONNS * $([ "$2" = lock ] && echo 2 || echo 1)))
  echo $(((total[1] - total[0]) / requests))
}

syscalls() { # server mode -> "calls/request top-calls"
  start "$1"
  load "$1" "$2" 10 >/dev/null
  strace -c -f -p "$pid" -o "$work/st.out" 2>/dev/null &
  local tracer=$!
  sleep 0.5
  local n
  n=$(load "$1" "$2" "$ROUNDS")
  kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
  stop
  # strace -c columns: % time, seconds, usecs/call, calls, [errors,] syscall.
  awk -v n="$n" '$NF == "total" { printf "%.3f ", $4 / n }
    /^ *[0-9]/ && $NF != "total" { c[$NF] = $4 }
    END { for (k in c) if (c[k] / n >= 0.005) printf "%s=%.3f ", k, c[k] / n }' "$work/st.out"
  echo
}

echo "per request, $ROUNDS rounds x $CONNS connection(s), unpipelined; lock = one pair (2 requests)"
printf '%-5s %-9s %12s  %s\n' load server instructions "system calls (total, then each >= 0.005)"
for mode in ping lock; do
  for server in redis latchkey; do
    printf '%-5s %-9s %12s  %s\n' "$mode" "$server" "$(instructions "$server" "$mode")" "$(syscalls "$server" "$mode")"
  done
done
