#!/usr/bin/env bash
# User-space instructions per request of one command, latchkey beside
# redis-server, counted by callgrind: each server runs under callgrind, is
# loaded with the setup, then its counters are zeroed (callgrind_control -z),
# N requests of the command are sent, and the counters are dumped; the dump
# divided by N is the command's cost (it includes the benchmark client's
# connection and whatever the server does on its own meanwhile, its timers).
# Counting only that window keeps the figure steady: subtracting a run without
# the requests, as this script did before, left the setup's own variation in
# it (how many commands each read of `--pipe` got), thousands of instructions
# per request on a loaded machine.
# latchkey runs with `--idle-spin-us 0`: a spin is the server waiting for the
# next request, which callgrind would count as instructions of the requests.
# Usage: [LATCHKEY=binary] [LATCHKEY_FLAGS="..."] [MONITOR=1] [BENCH_ARGS=...] benches/callgrind_cmd.sh SETUP N COMMAND...
#   LATCHKEY_FLAGS more flags for latchkey only (e.g. "--enable-debug-command
#          local" for DEBUG RESET, which redis-server then refuses)
#   MONITOR=1 keeps one redis-cli MONITOR attached while the requests run
#   BENCH_ARGS more redis-benchmark options, e.g. "--user bench -a pw" for a
#          user the setup made with ACL SETUSER
#   SETUP  a shell command that prints Redis protocol or inline commands to
#          feed `redis-cli --pipe` (e.g. "python3 -c '...'"), or "" for none
#   N      requests of COMMAND (redis-benchmark, 1 connection, no pipelining)
# Example: the ZRANGE of benches/big_types.py:
#   benches/callgrind_cmd.sh "python3 -c 'for i in range(200000): print(f\"ZADD z {i} m{i}\")'" 2000 ZRANGE z 0 9
# Listens on 127.0.0.1 only; every server it starts is stopped before it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
SETUP=$1
N=$2
shift 2
for tool in redis-server redis-cli redis-benchmark valgrind callgrind_control python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool"; exit 1; }
done
LATCHKEY=${LATCHKEY:-./target/release/latchkey}
[ "$LATCHKEY" = ./target/release/latchkey ] && cargo build --release --quiet
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run() { # server -> instructions per request of the command
  local server=$1
  port=$(free_port)
  local cg=(valgrind --tool=callgrind --callgrind-out-file="$work/cg.out")
  if [ "$server" = redis ]; then
    "${cg[@]}" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null 2>&1 &
  else
    # shellcheck disable=SC2086 # LATCHKEY_FLAGS is words
    "${cg[@]}" "$LATCHKEY" --port "$port" --bind 127.0.0.1 --save '' --dir "$work" --loglevel warning --idle-spin-us 0 ${LATCHKEY_FLAGS:-} >/dev/null 2>&1 &
  fi
  pid=$!
  for _ in $(seq 600); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  if [ -n "$SETUP" ]; then
    bash -c "$SETUP" | redis-cli -p "$port" --pipe >/dev/null
  fi
  local watcher=""
  if [ -n "${MONITOR:-}" ]; then
    # One MONITOR client attached for the window (its feed is part of the cost).
    redis-cli -p "$port" monitor >/dev/null 2>&1 &
    watcher=$!
    sleep 1
  fi
  rm -f "$work"/cg.out*
  callgrind_control -z "$pid" >/dev/null 2>&1
  # shellcheck disable=SC2086 # BENCH_ARGS is options, split on purpose
  redis-benchmark -p "$port" -c 1 -n "$N" -q ${BENCH_ARGS:-} "${cmd[@]}" >/dev/null 2>&1 || true
  callgrind_control -d "$pid" >/dev/null 2>&1
  [ -n "$watcher" ] && kill "$watcher" 2>/dev/null
  local window
  window=$(awk '/^summary:/ { print $2 }' "$work"/cg.out.*)
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""
  echo $((window / N))
}

cmd=("$@")
l=$(run latchkey)
r=$(run redis)
echo "${cmd[*]}: latchkey $l instructions/request, redis-server $r; ratio $(python3 -c "print(round($l/$r, 2))")"
