#!/usr/bin/env bash
# The one test command: installs redis-server/redis-tools if missing (for the
# differential checks), then runs every test.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
  fi
fi
cargo test --all-targets --all-features
cargo test --doc --all-features
