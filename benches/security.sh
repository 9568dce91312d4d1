#!/usr/bin/env bash
# What ACL checks and TLS cost, latchkey beside redis-server in one run, same
# options for both:
#   - acl: redis-benchmark -t set,get as an ACL user limited to `~key:*
#     +@string +@connection` (so every command is checked against its rules;
#     the default user, allowed everything, skips the check in both servers);
#   - tls: redis-benchmark --tls -t set,get over tls-port, certificates made
#     here with openssl (tls-auth-clients no);
# each without pipelining and with -P 16, rounds alternating the servers.
# Reports requests/s and the server's CPU time per request (user + system
# from /proc/PID/stat: the steadier figure on 2 cores, where one
# redis-benchmark process can saturate its own core first), medians, and the
# ratios latchkey/redis. Everything listens on 127.0.0.1; both servers are
# stopped on exit.
# Usage: [PIN=1] benches/security.sh [requests] [rounds]   (defaults 200000, 3;
# the -P 16 runs send 8 times the requests)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
ROUNDS=${2:-3}
SERVER_CPU=""; CLIENT_CPU=""
if [ "${PIN:-0}" = 1 ]; then SERVER_CPU="taskset -c 1"; CLIENT_CPU="taskset -c 0"; fi
for tool in redis-server redis-benchmark redis-cli python3 openssl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install redis-server redis-tools openssl)"; exit 1; }
done
cargo build --release --quiet
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# A CA and a server certificate for 127.0.0.1.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-ca \
  -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
  -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > "$work/san.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
  -CAcreateserial -days 2 -extfile "$work/san.ext" -out "$work/server.crt" 2>/dev/null

RPORT=$(free_port); LPORT=$(free_port); RTLS=$(free_port); LTLS=$(free_port)
common=(--bind 127.0.0.1 --save '' --dir "$work" --tls-cert-file "$work/server.crt"
  --tls-key-file "$work/server.key" --tls-ca-cert-file "$work/ca.crt" --tls-auth-clients no)
$SERVER_CPU redis-server --port "$RPORT" --tls-port "$RTLS" --appendonly no "${common[@]}" >/dev/null &
RPID=$!; pids+=("$RPID")
$SERVER_CPU ./target/release/latchkey --port "$LPORT" --tls-port "$LTLS" --loglevel warning "${common[@]}" >/dev/null &
LPID=$!; pids+=("$LPID")
for p in "$RPORT" "$LPORT"; do
  for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.05; done
  redis-cli -p "$p" ACL SETUSER bench on '>benchpw' '~key:*' +@string +@connection >/dev/null
done

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
run_one() { # label pid requests redis-benchmark-args...
  local label=$1 pid=$2 n=$3 before out
  shift 3
  before=$(ticks "$pid")
  out=$($CLIENT_CPU redis-benchmark -n "$n" -c 50 --csv "$@" 2>/dev/null)
  echo "$out" | tr -d '"' | awk -F, -v label="$label" -v n="$n" -v cpu="$(($(ticks "$pid") - before))" \
    'NR > 1 { print label, $1, $2, cpu, n }'
}

echo "latchkey $(./target/release/latchkey -v | sed 's/.*(latchkey \(.*\))/\1/') vs $(redis-server --version | cut -d' ' -f1-3), $(nproc) cores"
echo "redis-benchmark -t set,get -n $N (-P 16: $((N * 8))) -c 50 [-P 16]: as ACL user 'bench' (~key:* +@string +@connection), and over TLS; $ROUNDS rounds alternating servers, medians"
[ "${PIN:-0}" = 1 ] && echo "pinned: servers on CPU 1, redis-benchmark on CPU 0"
echo
for round in $(seq "$ROUNDS"); do
  for pipe in 1 16; do
    # Pipelined runs get 8 times the requests: at -P 16 the default count
    # takes a fifth of a second, about 20 clock ticks of server CPU, too few
    # for a steady CPU figure.
    n=$N
    [ "$pipe" = 16 ] && n=$((N * 8))
    for server in redis latchkey; do
      if [ $server = redis ]; then port=$RPORT; tls=$RTLS; pid=$RPID; else port=$LPORT; tls=$LTLS; pid=$LPID; fi
      # One test per run: the CPU ticks belong to it alone.
      for t in set get; do
        run_one "acl P$pipe $server" "$pid" "$n" -p "$port" -P "$pipe" --user bench -a benchpw -t $t
        run_one "tls P$pipe $server" "$pid" "$n" -p "$tls" -P "$pipe" --tls --cacert "$work/ca.crt" -t $t
      done
    done
  done
done > "$work/runs.txt"
python3 - "$work/runs.txt" "$(getconf CLK_TCK)" <<'PY'
import statistics, sys
runs = {}
tick_us = 1e6 / int(sys.argv[2])
for line in open(sys.argv[1]):
    mode, pipe, server, test, rps, ticks, n = line.split()
    runs.setdefault((mode, pipe, test, server), []).append((float(rps), int(ticks) * tick_us / int(n)))
print("%-4s %-4s %-4s %10s %10s %6s %8s %8s %6s" % ("", "", "", "requests/s", "", "ratio", "CPU us/", "request", "ratio"))
print("%-4s %-4s %-4s %10s %10s %6s %8s %8s %6s" % ("mode", "pipe", "test", "redis", "latchkey", "lk/r", "redis", "lk", "lk/r"))
for mode in ("acl", "tls"):
    for pipe in ("P1", "P16"):
        for test in ("SET", "GET"):
            r, l = runs[(mode, pipe, test, "redis")], runs[(mode, pipe, test, "latchkey")]
            rr, lr = (statistics.median(x[0] for x in s) for s in (r, l))
            rc, lc = (statistics.median(x[1] for x in s) for s in (r, l))
            print("%-4s %-4s %-4s %10.0f %10.0f %6.2f %8.2f %8.2f %6.2f" % (mode, pipe, test, rr, lr, lr / rr, rc, lc, lc / rc))
PY
