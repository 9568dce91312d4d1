#!/usr/bin/env bash
# User-space instructions from exec to ready, counted by callgrind: each binary
# runs with the Python fixture's flags (--port auto --ready-file ...), and the
# counters are dumped (callgrind_control -d) as soon as its ready file
# appears; the server is then killed. The figure is the main thread's, the
# path to ready (it writes the ready file), with the dynamic loader; the other
# threads' instructions by then (the runtime's worker, quanta's clock
# calibration, which spins far longer under valgrind than natively) are
# printed beside it.
# Usage: benches/startup_callgrind.sh [RUNS] [BINARY...]
#   RUNS     spawns of each binary (default 3); the median is printed
#   BINARY   latchkey binaries to compare (default ./target/release/latchkey)
# Example, a build against an earlier one:
#   benches/startup_callgrind.sh 3 /tmp/latchkey-before ./target/release/latchkey
# Listens on 127.0.0.1 only; every server it starts is killed before it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
shift || true
BINS=("$@")
[ ${#BINS[@]} -eq 0 ] && BINS=(./target/release/latchkey)
for tool in valgrind callgrind_control; do
  command -v "$tool" >/dev/null || { echo "missing $tool"; exit 1; }
done
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

once() { # binary -> instructions to ready
  rm -rf "$work/run" && mkdir "$work/run"
  valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$work/run/cg.out" \
    "$1" --port auto --bind 127.0.0.1 --ready-file "$work/run/ready" \
    --enable-debug-command local --save '' --appendonly no --dir "$work/run" \
    --loglevel warning >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 600); do [ -s "$work/run/ready" ] && break; sleep 0.05; done
  [ -s "$work/run/ready" ] || { echo "$1 did not get ready" >&2; exit 1; }
  callgrind_control -d "$pid" >/dev/null 2>&1
  for _ in $(seq 100); do ls "$work"/run/cg.out.* >/dev/null 2>&1 && break; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
  # Thread 1 (the main thread) and the rest, as "main other".
  awk '/^thread:/ { t = $2 } /^summary:/ { if (t == 1) m += $2; else o += $2 }
       END { print m, o }' "$work"/run/cg.out.*
}

for bin in "${BINS[@]}"; do
  mains=()
  others=()
  for _ in $(seq "$RUNS"); do
    # In this shell, not a subshell: a failing run's `exit` reaches the trap
    # that stops its server.
    once "$bin" >"$work/result"
    read -r main other <"$work/result"
    mains+=("$main")
    others+=("$other")
  done
  median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }
  echo "$bin: $(median "${mains[@]}") instructions to ready on the main thread" \
    "(median of $RUNS: ${mains[*]}); other threads meanwhile $(median "${others[@]}")"
done
