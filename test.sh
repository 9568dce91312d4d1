#!/usr/bin/env bash
# The one test command (README; .ci/run calls it). Installs redis-server and
# redis-tools from Debian's packages if missing, checks that the recorded
# compatibility cases still match a real redis-server, runs every Rust test, then
# drives latchkey with real clients: redis-cli, redis-py, python-redis-lock,
# ioredis with node-redlock (pinned in tests/clients/).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server redis-tools >/dev/null
fi
echo "== redis-tests recordings against $(redis-server --version | cut -d' ' -f1-3)"
python3 redis-tests/record.py --check
echo "== cargo test"
cargo test --all-targets --all-features
echo "== every command with extreme arguments, release build"
cargo test --release --all-features --test all_commands
echo "== client libraries"
if [ ! -x target/clients-venv/bin/python ]; then
  python3 -m venv target/clients-venv
fi
target/clients-venv/bin/pip install -q --disable-pip-version-check --no-cache-dir -r tests/clients/requirements.txt
for check in redis_cli redis_py python_redis_lock native_lock; do
  target/clients-venv/bin/python "tests/clients/$check.py" target/debug/latchkey
done
if ! command -v npm >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
fi
npm ci --prefix tests/clients/node --cache target/npm-cache --no-audit --no-fund --loglevel=error
node tests/clients/node/redlock.mjs target/debug/latchkey
echo "== doc tests"
cargo test --doc --all-features
