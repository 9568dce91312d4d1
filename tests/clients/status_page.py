"""The status page (GET / on the metrics port) as a person sees it: headless
Chromium renders it while a lock contention load runs, and takes a
screenshot (target/status_page.png). Checks that the page Chromium built
has the wait-time chart and the contended lock with its holder and
waiters, that a hostile lock name stays text, and that the screenshot is a
real picture.

Skips, saying so, only where no Chromium is installed (test.sh installs
Debian's `chromium`, so CI runs it).

python3 tests/clients/status_page.py target/debug/latchkey
"""

import os
import shutil
import subprocess
import sys
import threading
import time

import redis

import harness

CLIENTS = 4
HOSTILE = "<img src=x onerror=alert(1)>"


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def run_chromium(browser, *args):
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-dev-shm-usage", "--hide-scrollbars", *args]
    return subprocess.run(cmd, capture_output=True, timeout=60)


class Load:
    """Clients taking turns on one lock, holding it 20 ms each, so a queue
    stands while the page is rendered; plus a held lock with a hostile name
    and a waiter behind it."""

    def __init__(self, port):
        self.port = port
        self.stop = threading.Event()
        self.errors = []
        self.threads = [threading.Thread(target=self.worker, args=(n,)) for n in range(CLIENTS)]

    def worker(self, n):
        try:
            r = redis.Redis(port=self.port)
            owner = "worker-%d" % n
            while not self.stop.is_set():
                r.execute_command("LOCK.ACQUIRE", "orders", owner, 10000, "WAIT", 5000)
                time.sleep(0.02)
                r.execute_command("LOCK.RELEASE", "orders", owner)
        except Exception as e:
            self.errors.append(e)

    def __enter__(self):
        self.holder = redis.Redis(port=self.port)
        self.holder.execute_command("LOCK.ACQUIRE", HOSTILE, "owner<i>", 60000)
        self.hostile_waiter = threading.Thread(
            target=lambda: redis.Redis(port=self.port).execute_command(
                "LOCK.ACQUIRE", HOSTILE, "waiter", 1000, "WAIT", 30000))
        self.hostile_waiter.start()
        for t in self.threads:
            t.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(10)
        # The waiter behind the hostile name is granted and leaves.
        self.holder.execute_command("LOCK.RELEASE", HOSTILE, "owner<i>")
        self.hostile_waiter.join(10)


def check_the_page_renders_the_contention(binary, port, metrics_port, browser):
    url = "http://127.0.0.1:%d/" % metrics_port
    out = os.path.abspath(os.path.join("target", "status_page.png"))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if os.path.exists(out):
        os.remove(out)
    with Load(port) as load:
        dom = run_chromium(browser, "--dump-dom", url)
        shot = run_chromium(browser, "--screenshot=%s" % out, "--window-size=1280,1000", url)
    assert not load.errors, load.errors
    assert dom.returncode == 0, dom.stderr.decode(errors="replace")[-2000:]
    page = dom.stdout.decode()
    assert 'id="wait-histogram"' in page, page[:2000]
    assert page.count('class="bar"') >= 10, "one bar per bucket"
    assert "orders" in page and "worker-" in page, page[:4000]
    assert "Longest waits" in page and "Largest queues" in page
    # The hostile name and owner are text, never elements.
    assert "<img src=x" not in page, "markup injected"
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "owner&lt;i&gt;" in page
    assert shot.returncode == 0, shot.stderr.decode(errors="replace")[-2000:]
    with open(out, "rb") as f:
        png = f.read()
    assert png.startswith(b"\x89PNG\r\n\x1a\n"), "a PNG"
    assert len(png) > 10_000, "a page with content, not a blank one: %d bytes" % len(png)
    print("status_page: screenshot at %s" % out)


def main():
    binary = harness.binary_arg()
    browser = chromium()
    if browser is None:
        print("status_page: SKIPPED: no chromium installed (apt-get install chromium); "
              "test.sh installs it")
        return 0
    metrics_port = harness.free_port()
    with harness.server(binary, "--metrics-port", str(metrics_port)) as (port, _):
        return harness.run("status_page", [check_the_page_renders_the_contention],
                           binary, port, metrics_port, browser)


if __name__ == "__main__":
    sys.exit(main())
