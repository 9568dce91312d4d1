#!/usr/bin/env bash
# Connection memory and stalls, latchkey side by side with redis-server:
#   - one SET of a big value (default 400 MB): the server's peak RSS growth
#     (VmHWM) and the worst PING round trip of another client meanwhile;
#   - RSS per idle connection for N connections (default 10,000) that each ran
#     one PING, and again 5 s after a tenth of them asked for 4 replies of
#     256 KB all at once.
# Both servers listen on 127.0.0.1 and are stopped on exit.
# Usage: benches/connections.sh [set-MB] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-400}
N=${2:-10000}
ulimit -n $((N + 1000))
cargo build --release --quiet
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
run() { # name command...
  local name=$1; shift
  local port; port=$(free_port)
  "$@" --port "$port" --bind 127.0.0.1 --maxclients $((N + 100)) >/dev/null &
  local pid=$!; pids+=("$pid")
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  echo "== $name"
  python3 benches/conn_memory.py bigset "$port" "$pid" "$MB"
  python3 benches/conn_memory.py idle "$port" "$pid" "$N"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
run redis-server redis-server --save '' --appendonly no --dir "$work"
run latchkey ./target/release/latchkey --loglevel warning
