"""The metrics endpoint read by Prometheus's own Python parser
(prometheus_client.parser): every family parses, has its type, and the lock
histograms and gauges move under a lock contention load (a few redis-py
clients, a few hundred acquires) and settle when it stops.

python3 tests/clients/metrics_prom.py target/debug/latchkey
"""

import threading
import urllib.request

import redis
from prometheus_client.parser import text_string_to_metric_families

import harness

CLIENTS = 4
ROUNDS = 60


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        assert r.status == 200, r.status
        ctype = r.headers.get("Content-Type")
        assert ctype.startswith("text/plain; version=0.0.4"), ctype
        text = r.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(families, family, name=None, **labels):
    for s in families[family].samples:
        if s.name == (name or family) and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError("no sample %s %s %s" % (family, name, labels))


def load(port):
    errors = []

    def worker(n):
        try:
            r = redis.Redis(port=port)
            owner = "w%d" % n
            for _ in range(ROUNDS):
                token = r.execute_command("LOCK.ACQUIRE", "hot", owner, 10000, "WAIT", 5000)
                assert isinstance(token, int), token
                assert r.execute_command("LOCK.RELEASE", "hot", owner) == 1
        except Exception as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(CLIENTS)]
    return threads, errors


def check_families_parse_with_their_types(binary, metrics_port):
    families = scrape(metrics_port)
    want = {
        "latchkey_uptime_seconds": "gauge",
        "latchkey_connected_clients": "gauge",
        "latchkey_blocked_clients": "gauge",
        "latchkey_commands_processed": "counter",
        "latchkey_command_calls": "counter",
        "latchkey_command_duration_seconds": "counter",
        "latchkey_db_keys": "gauge",
        "latchkey_db_expiring_keys": "gauge",
        "latchkey_memory_used_bytes": "gauge",
        "latchkey_evicted_keys": "counter",
        "latchkey_keyspace_hits": "counter",
        "latchkey_keyspace_misses": "counter",
        "latchkey_net_input_bytes": "counter",
        "latchkey_net_output_bytes": "counter",
        "latchkey_expired_keys": "counter",
        "latchkey_lock_acquisitions": "counter",
        "latchkey_lock_wait_seconds": "histogram",
        "latchkey_lock_hold_seconds": "histogram",
        "latchkey_locks": "gauge",
        "latchkey_lock_holders": "gauge",
        "latchkey_lock_waiters": "gauge",
        "latchkey_lock_lease_expiries": "counter",
        "latchkey_lock_session_releases": "counter",
        "latchkey_lock_extends": "counter",
        "latchkey_lock_releases_refused": "counter",
        "latchkey_lock_fencing_token_high_water": "gauge",
    }
    for name, kind in want.items():
        assert name in families, "%s missing from %s" % (name, sorted(families))
        assert families[name].type == kind, (name, families[name].type)
        assert families[name].documentation, name


def check_histograms_move_under_load_and_gauges_settle(binary, metrics_port):
    threads, errors = load(harness_port[0])
    for t in threads:
        t.start()
    seen_waiters = 0
    while any(t.is_alive() for t in threads):
        during = scrape(metrics_port)
        seen_waiters = max(seen_waiters, sample(during, "latchkey_lock_waiters"))
    for t in threads:
        t.join(60)
    assert not errors, errors
    after = scrape(metrics_port)
    total = CLIENTS * ROUNDS
    count = sample(after, "latchkey_lock_wait_seconds", "latchkey_lock_wait_seconds_count")
    assert count == total, count
    buckets = [s for s in after["latchkey_lock_wait_seconds"].samples
               if s.name.endswith("_bucket")]
    values = [s.value for s in buckets]
    assert values == sorted(values), "cumulative buckets"
    assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == total
    hold = sample(after, "latchkey_lock_hold_seconds", "latchkey_lock_hold_seconds_count")
    assert hold == total, hold
    immediate = sample(after, "latchkey_lock_acquisitions",
                       "latchkey_lock_acquisitions_total", outcome="immediate")
    waited = sample(after, "latchkey_lock_acquisitions",
                    "latchkey_lock_acquisitions_total", outcome="after_wait")
    assert immediate + waited == total, (immediate, waited)
    for gauge in ("latchkey_lock_holders", "latchkey_lock_waiters", "latchkey_blocked_clients"):
        assert sample(after, gauge) == 0, gauge
    calls = sample(after, "latchkey_command_calls", "latchkey_command_calls_total",
                   cmd="lock.acquire")
    assert calls >= total, calls


harness_port = [0]


def main():
    binary = harness.binary_arg()
    metrics_port = harness.free_port()
    with harness.server(binary, "--metrics-port", str(metrics_port)) as (port, _):
        harness_port[0] = port
        return harness.run(
            "metrics_prom",
            [check_families_parse_with_their_types,
             check_histograms_move_under_load_and_gauges_settle],
            binary, metrics_port)


if __name__ == "__main__":
    raise SystemExit(main())
