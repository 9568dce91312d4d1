#!/usr/bin/env bash
# The one test command (README; .ci/run calls it). Installs redis-server and
# redis-tools from Debian's packages if missing, checks that the recorded
# compatibility cases still match a real redis-server, then runs every test.
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
cargo test --doc --all-features
