#!/usr/bin/env bash
# User-space instructions per request of SET and GET (one unpipelined
# connection, SET key v then GET key per round), for one or more latchkey
# binaries side by side: callgrind over a whole run of the server minus a run
# that served no requests, so start-up and shutdown cancel out. Used to check
# what a change to the request path costs (e.g. a build of the previous
# commit against this one). Listens on 127.0.0.1 only; every server started
# is stopped before the script ends.
# Usage: benches/get_set_cost.sh [rounds] BINARY...   (rounds default 5000)
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
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
run() { # binary rounds -> total instructions
  local port; port=$(free_port)
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$1" --port "$port" --bind 127.0.0.1 --loglevel warning >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 400); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  [ "$2" -gt 0 ] && python3 benches/pairs.py "$port" getset "$2" >/dev/null
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || kill "$pid"
  wait "$pid" 2>/dev/null || true; pid=""
  awk '/^summary:/ { print $2 }' "$work/cg.out"
}
echo "instructions per request (SET + GET pairs, $ROUNDS rounds, one connection)"
for bin in "$@"; do
  idle=$(run "$bin" 0); busy=$(run "$bin" "$ROUNDS")
  printf '%-50s %8d\n' "$bin" $(((busy - idle) / (2 * ROUNDS)))
done
