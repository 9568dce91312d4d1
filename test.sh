#!/usr/bin/env bash
# The one test command (README; .ci/run calls it). Installs redis-server and
# redis-tools from Debian's packages if missing, checks that the recorded
# compatibility cases still match a real redis-server, runs every Rust test, then
# builds the Python test fixture's wheel (python/, maturin) into a fresh venv and
# runs its pytest plugin's tests, then drives latchkey with real clients: redis-cli,
# redis-py (commands, TLS, pub/sub, its client-side cache, and FUNCTION, MONITOR,
# CLIENT PAUSE against pipelines, transactions and a subscriber, and SLOWLOG),
# Prometheus's parser on the metrics endpoint and Prometheus itself scraping it
# (Debian's prometheus package, installed if missing; its service is not started),
# headless Chromium on the status page,
# python-redis-lock,
# pottery and walrus (their hash, set, sorted-set and list classes; pottery's
# list indexing, deque maxlen, Bloom filter and HyperLogLog), the RQ job queue
# (2000 jobs by two worker processes; stop-job and shutdown over pub/sub),
# ioredis with node-redlock and over TLS (pinned in tests/clients/), runs the Node
# test package's own tests (node/, node --test), and fuzzes the script path,
# the ACL rule parser, the request parser, the commands through the dispatcher, the
# options (config file, CONFIG SET/GET) and RESTORE payloads and RDB files (fuzz/:
# stable randomized tests, then 60 s of cargo-fuzz on nightly for the script and 30 s
# for each other target).
set -euo pipefail
cd "$(dirname "$0")"
# openssl makes the TLS client checks' certificates (tests/clients/tls_certs.py).
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null || ! command -v openssl >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server redis-tools openssl >/dev/null
fi
# chromium renders the metrics status page for its screenshot check
# (tests/clients/status_page.py).
if ! command -v chromium >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
# prometheus scrapes the metrics endpoint (tests/clients/metrics_prometheus.py runs
# the binary itself).
if ! command -v prometheus >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # Its Debian service is not wanted: on a host running systemd the package
  # started it (listening on every address), so stop and disable it.
  if [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi
echo "== redis-tests recordings against $(redis-server --version | cut -d' ' -f1-3)"
python3 redis-tests/record.py --check
echo "== cargo test"
cargo test --all-targets --all-features
echo "== every command with extreme arguments, release build"
cargo test --release --all-features --test all_commands
echo "== PFSELFTEST and 10,000,000-element HyperLogLog checks, release build"
cargo test --release --all-features --test hyperloglog -- --include-ignored
echo "== Python test fixture: the wheel (python/, maturin, release), its pytest plugin"
# A fresh venv with the pinned test packages and the wheel built from python/;
# the suite finds its fixtures through the wheel's pytest11 entry point alone.
# The wheel's cargo build reuses target/release's dependencies except tokio and
# the crates on it (the tests' dev-dependencies give tokio more features), so
# those and latchkey compile again; --all-features, as the release tests above
# (the binary is the same: `client` is library code, `test-hooks` debug-only),
# spares recompiling the other crates those features reach.
rm -rf target/pypkg-venv target/pypkg-wheel
python3 -m venv target/pypkg-venv
target/pypkg-venv/bin/pip install -q --disable-pip-version-check --no-cache-dir -r python/requirements-test.txt
wheel_started=$SECONDS
MATURIN_PEP517_ARGS="--all-features" target/pypkg-venv/bin/pip wheel -q --disable-pip-version-check \
  --no-cache-dir --no-deps -w target/pypkg-wheel ./python
echo "   wheel built in $((SECONDS - wheel_started)) s: $(ls target/pypkg-wheel)"
target/pypkg-venv/bin/pip install -q --disable-pip-version-check --no-cache-dir target/pypkg-wheel/latchkey-*.whl
PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 target/pypkg-venv/bin/python -m pytest -q -p no:cacheprovider -p latchkey python/tests
echo "== client libraries"
if [ ! -x target/clients-venv/bin/python ]; then
  python3 -m venv target/clients-venv
fi
target/clients-venv/bin/pip install -q --disable-pip-version-check --no-cache-dir -r tests/clients/requirements.txt
for check in redis_cli redis_py redis_py_admin redis_py_tls redis_py_acl redis_py_pubsub redis_py_cache python_redis_lock native_lock pottery_types pottery_more walrus_types rq_jobs metrics_prom metrics_prometheus status_page; do
  target/clients-venv/bin/python "tests/clients/$check.py" target/debug/latchkey
done
if ! command -v npm >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
fi
npm ci --prefix tests/clients/node --cache target/npm-cache --no-audit --no-fund --loglevel=error
node tests/clients/node/redlock.mjs target/debug/latchkey
node tests/clients/node/tls.mjs target/debug/latchkey
echo "== Node test package (node/): node --test"
npm ci --prefix node --cache target/npm-cache --no-audit --no-fund --loglevel=error
(export LATCHKEY_BIN="$PWD/target/debug/latchkey" && cd node && node --test)
echo "== doc tests"
cargo test --doc --all-features
echo "== fuzzing: every fuzz target's check on random inputs (stable)"
cargo test --manifest-path fuzz/Cargo.toml --target-dir target
echo "== script fuzzing: coverage-guided, 60 s (cargo-fuzz, nightly)"
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal || true
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.2 --locked
  fi
  (cd fuzz && cargo +nightly fuzz run script --features libfuzzer --debug-assertions -- \
    -max_total_time=60 -timeout=20 -rss_limit_mb=4096 -detect_leaks=0 -print_final_stats=1)
  echo "== ACL rule fuzzing: coverage-guided, 30 s (cargo-fuzz, nightly)"
  (cd fuzz && cargo +nightly fuzz run acl_rules --features libfuzzer --debug-assertions -- \
    -max_total_time=30 -timeout=20 -rss_limit_mb=4096 -print_final_stats=1)
  echo "== request parser fuzzing: coverage-guided, 30 s (cargo-fuzz, nightly)"
  (cd fuzz && cargo +nightly fuzz run resp --features libfuzzer --debug-assertions -- \
    -max_total_time=30 -timeout=20 -rss_limit_mb=4096 -print_final_stats=1)
  echo "== command fuzzing: coverage-guided, 30 s (cargo-fuzz, nightly)"
  (cd fuzz && cargo +nightly fuzz run commands --features libfuzzer --debug-assertions -- \
    -max_total_time=30 -timeout=20 -rss_limit_mb=4096 -detect_leaks=0 -print_final_stats=1)
  echo "== option fuzzing: coverage-guided, 30 s (cargo-fuzz, nightly)"
  (cd fuzz && cargo +nightly fuzz run config --features libfuzzer --debug-assertions -- \
    -max_total_time=30 -timeout=20 -rss_limit_mb=4096 -detect_leaks=0 -print_final_stats=1)
  echo "== RESTORE payload and RDB file fuzzing: coverage-guided, 30 s (cargo-fuzz, nightly)"
  (cd fuzz && cargo +nightly fuzz run rdb --features libfuzzer --debug-assertions -- \
    -max_total_time=30 -timeout=20 -rss_limit_mb=4096 -detect_leaks=0 -print_final_stats=1)
else
  echo "== coverage-guided fuzzing: SKIPPED: no nightly toolchain and rustup could not install one"
  echo "   (the stable randomized test above ran the same check)"
fi
