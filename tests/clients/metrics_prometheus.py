"""Prometheus itself scraping latchkey's metrics endpoint: starts latchkey with
--metrics-port, puts a lock contention load and a few keys on it, runs the
`prometheus` binary (Debian's package, which test.sh installs; its service is
never started) with a generated config that scrapes the endpoint every second,
and asks Prometheus's HTTP API that the target is up with no scrape error and
that the lock acquisition counter, a wait-time histogram bucket and server
series hold the values the load gives them, then again after more load.

python3 tests/clients/metrics_prometheus.py target/debug/latchkey
Gives up with a failure after DEADLINE seconds. Only the standard library talks
HTTP to Prometheus.
"""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import redis

import harness

DEADLINE = 60  # seconds for the whole check, Prometheus's start-up included
CLIENTS = 3
ROUNDS = 40
KEYS = 7

CONFIG = """global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: latchkey
    static_configs:
      - targets: ['127.0.0.1:%d']
"""


def lock_load(port, rounds):
    """CLIENTS clients taking and releasing one lock `rounds` times each, so some
    of them wait. Returns the number of acquisitions."""
    errors = []

    def worker(n):
        try:
            r = redis.Redis(port=port)
            for _ in range(rounds):
                token = r.execute_command("LOCK.ACQUIRE", "hot", "w%d" % n, 10000, "WAIT", 5000)
                assert isinstance(token, int), token
                assert r.execute_command("LOCK.RELEASE", "hot", "w%d" % n) == 1
            r.close()
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "lock load still running after 30 s"
    assert not errors, errors
    return CLIENTS * rounds


def api(web_port, path, **params):
    url = "http://127.0.0.1:%d/api/v1/%s" % (web_port, path)
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=5) as reply:
        body = json.load(reply)
    assert body["status"] == "success", body
    return body["data"]


def query(web_port, expr):
    """The instant vector of `expr` as {frozenset(labels): float}."""
    data = api(web_port, "query", query=expr)
    assert data["resultType"] == "vector", data
    return {frozenset(s["metric"].items()): float(s["value"][1]) for s in data["result"]}


def scalar(web_port, expr):
    values = list(query(web_port, expr).values())
    return values[0] if len(values) == 1 else None


def wait_for(what, deadline, probe):
    """Calls probe() until it returns a true value or the deadline passes;
    returns that value. Connection refusals (Prometheus starting) count as
    not yet."""
    last = None
    while time.monotonic() < deadline:
        try:
            got = probe()
            if got:
                return got
            last = got
        except (OSError, urllib.error.URLError, AssertionError, KeyError) as e:
            last = e
        time.sleep(0.25)
    raise AssertionError("gave up waiting for %s; last seen: %r" % (what, last))


def check_prometheus_scrapes_the_endpoint(binary, port, metrics_port, prometheus):
    deadline = time.monotonic() + DEADLINE
    r = redis.Redis(port=port)
    for i in range(KEYS):
        r.set("key:%d" % i, i)
    first = lock_load(port, ROUNDS)

    work = tempfile.mkdtemp(prefix="latchkey-prometheus-")
    config = os.path.join(work, "prometheus.yml")
    with open(config, "w") as f:
        f.write(CONFIG % metrics_port)
    web_port = harness.free_port()
    log = open(os.path.join(work, "prometheus.log"), "wb")
    proc = subprocess.Popen(
        [prometheus, "--config.file=" + config,
         "--storage.tsdb.path=" + os.path.join(work, "data"),
         "--web.listen-address=127.0.0.1:%d" % web_port,
         "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        def target_up():
            assert proc.poll() is None, "prometheus exited with %s" % proc.returncode
            targets = api(web_port, "targets")["activeTargets"]
            assert len(targets) == 1, targets
            t = targets[0]
            if t["health"] == "up" and t["lastError"] == "":
                return t
            assert t["lastError"] == "", "scrape error: %s" % t["lastError"]
            return None

        target = wait_for("the latchkey target to be up", deadline, target_up)
        assert target["labels"]["job"] == "latchkey", target
        assert target["scrapeUrl"] == "http://127.0.0.1:%d/metrics" % metrics_port, target

        def first_load_seen():
            if scalar(web_port, 'up{job="latchkey"}') != 1:
                return None
            return scalar(web_port, "sum(latchkey_lock_acquisitions_total)") == first

        wait_for("the first load's acquisitions", deadline, first_load_seen)
        outcomes = query(web_port, "latchkey_lock_acquisitions_total")
        kinds = sorted(dict(labels)["outcome"] for labels in outcomes)
        assert "immediate" in kinds and "after_wait" in kinds, outcomes
        inf = scalar(web_port, 'latchkey_lock_wait_seconds_bucket{le="+Inf"}')
        assert inf == first, inf
        assert scalar(web_port, "latchkey_lock_wait_seconds_count") == first
        buckets = query(web_port, "latchkey_lock_wait_seconds_bucket")
        assert len(buckets) > 2, buckets
        median = scalar(web_port, "histogram_quantile(0.5, latchkey_lock_wait_seconds_bucket)")
        assert median is not None and median == median and median >= 0, median  # not NaN
        assert scalar(web_port, 'latchkey_db_keys{db="0"}') == KEYS, \
            query(web_port, "latchkey_db_keys")
        assert scalar(web_port, "latchkey_lock_holders") == 0
        assert scalar(web_port, "latchkey_connected_clients") >= 1
        assert scalar(web_port, "latchkey_uptime_seconds") >= 0
        calls = scalar(web_port, 'latchkey_command_calls_total{cmd="lock.acquire"}')
        assert calls == first, calls
        samples = scalar(web_port, 'scrape_samples_scraped{job="latchkey"}')
        assert samples and samples > 50, samples

        # More load: later scrapes move the counters on.
        second = lock_load(port, ROUNDS // 2)
        r.delete("key:0")

        def second_load_seen():
            return (scalar(web_port, "sum(latchkey_lock_acquisitions_total)") == first + second
                    and scalar(web_port, 'latchkey_db_keys{db="0"}') == KEYS - 1)

        wait_for("the second load's acquisitions", deadline, second_load_seen)
        total = scalar(web_port, 'latchkey_lock_wait_seconds_bucket{le="+Inf"}')
        assert total == first + second, total
        grown = scalar(web_port, "sum(increase(latchkey_lock_acquisitions_total[1m]))")
        assert grown is not None and grown > 0, grown
        assert scalar(web_port, 'up{job="latchkey"}') == 1
    except BaseException:
        log.flush()
        with open(log.name, "rb") as f:
            print(f.read().decode(errors="replace")[-4000:])
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
        r.close()
        shutil.rmtree(work, ignore_errors=True)


def main():
    binary = harness.binary_arg()
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        raise SystemExit("metrics_prometheus: no prometheus binary (apt-get install prometheus)")
    metrics_port = harness.free_port()
    with harness.server(binary, "--metrics-port", str(metrics_port)) as (port, _):
        return harness.run("metrics_prometheus %s" % prometheus_version(prometheus),
                           [check_prometheus_scrapes_the_endpoint],
                           binary, port, metrics_port, prometheus)


def prometheus_version(prometheus):
    out = subprocess.run([prometheus, "--version"], capture_output=True, text=True, timeout=10)
    first = (out.stdout or out.stderr).splitlines()
    return first[0].split()[2] if first and len(first[0].split()) > 2 else "?"


if __name__ == "__main__":
    raise SystemExit(main())
