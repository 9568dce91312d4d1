#!/usr/bin/env bash
# User-space instructions per request of SET and GET (one unpipelined
# connection, SET key v then GET key per round), for one or more latchkey
# binaries side by side: callgrind over a whole run of the server minus a run
# that served no requests, so start-up and shutdown cancel out. Used to check
# what a change to the request path costs (e.g. a build of the previous
# commit against this one). TRACKER=1 keeps one more connection open during
# the load with CLIENT TRACKING on (default mode, having read another key), so
# the writes pay for client-side caching's hook being active. Listens on
# 127.0.0.1 only; every process started is stopped before the script ends.
# Usage: [TRACKER=1] benches/get_set_cost.sh [rounds] BINARY...   (rounds default 5000)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=5000
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then ROUNDS=$1; shift; fi
[ $# -gt 0 ] || { echo "usage: $0 [rounds] BINARY..."; exit 1; }
for tool in redis-cli python3 valgrind; do
  command -v "$tool" >/dev/null || { echo "missing $tool"; exit 1; }
done
work=$(mktemp -d)
pid=""
tracker=""
cleanup() {
  [ -n "$tracker" ] && kill "$tracker" 2>/dev/null
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
hold_tracker() { # port: a tracking connection, open until killed
  python3 - "$1" <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"HELLO 3\r\nCLIENT TRACKING on\r\nGET other\r\n")
time.sleep(3600)
PY
  tracker=$!
  sleep 0.5
}
run() { # binary rounds -> total instructions
  local port; port=$(free_port)
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$1" --port "$port" --bind 127.0.0.1 --loglevel warning >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 400); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  [ "${TRACKER:-0}" = 1 ] && hold_tracker "$port"
  [ "$2" -gt 0 ] && python3 benches/pairs.py "$port" getset "$2" >/dev/null
  if [ -n "$tracker" ]; then kill "$tracker"; wait "$tracker" 2>/dev/null || true; tracker=""; fi
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || kill "$pid"
  wait "$pid" 2>/dev/null || true; pid=""
  awk '/^summary:/ { print $2 }' "$work/cg.out"
}
echo "instructions per request (SET + GET pairs, $ROUNDS rounds, one connection${TRACKER:+, tracker=$TRACKER})"
for bin in "$@"; do
  idle=$(run "$bin" 0); busy=$(run "$bin" "$ROUNDS")
  printf '%-50s %8d\n' "$bin" $(((busy - idle) / (2 * ROUNDS)))
done
