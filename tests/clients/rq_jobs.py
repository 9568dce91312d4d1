"""RQ (PyPI `rq`, pinned in requirements.txt), a job queue, against a server binary.

RQ keeps its queues in lists (LMOVE into an intermediate list, BLMOVE when a
worker is not in burst mode), its registries in sorted sets, jobs in hashes
(updated in MULTI/EXEC, some under WATCH), results in streams (XADD; awaiting a
result with `latest_result(timeout=)` is XREAD BLOCK), and sends worker commands
over pub/sub (each worker subscribes to `rq:pubsub:NAME` from a listener thread).

The checks: 2000 jobs are enqueued and run by two `rq worker --burst` processes;
every job runs exactly once, in one of the two, with the right result and none is
lost or failed. Then a forking worker is told over pub/sub to stop a running job
(`send_stop_job_command`) and to shut down (`send_shutdown_command`).

Run by test.sh: python3 tests/clients/rq_jobs.py PATH_TO_LATCHKEY
It passes against redis-server too: python3 tests/clients/rq_jobs.py redis-server
"""

import os
import subprocess
import sys
import time

import redis
import rq
from rq import Queue, get_current_job
from rq.command import send_shutdown_command, send_stop_job_command
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry

from harness import binary_arg, run, server

JOBS = 2000
HERE = os.path.dirname(os.path.abspath(__file__))
RQ_CLI = os.path.join(os.path.dirname(sys.executable), "rq")


# The job functions: the workers import them from this module (`--path` HERE),
# so jobs name them as "rq_jobs.square" (RQ refuses functions of __main__).
def square(i):
    """Records which process ran job `i` (and how often), returns i * i."""
    conn = get_current_job().connection
    with conn.pipeline(transaction=False) as p:
        p.hincrby("rq-test:runs", i, 1)
        p.hincrby("rq-test:by-pid", os.getpid(), 1)
        p.execute()
    return i * i


def sleepy(seconds):
    get_current_job().connection.set("rq-test:sleepy-started", os.getpid())
    time.sleep(seconds)
    return "not stopped"


def wait_for(predicate, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def worker(url, queue, *extra):
    return subprocess.Popen(
        [RQ_CLI, "worker", "--url", url, "--path", HERE, "--logging_level", "WARNING", *extra, queue],
        stdout=subprocess.DEVNULL,
    )


def finish(proc, seconds):
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def check_two_workers_run_every_job_once(r, url):
    q = Queue("squares", connection=r)
    started = time.monotonic()
    jobs = []
    for start in range(0, JOBS, 500):
        batch = [Queue.prepare_data("rq_jobs.square", (i,), result_ttl=600) for i in range(start, start + 500)]
        jobs += q.enqueue_many(batch)
    assert len(q) == JOBS, len(q)
    assert len({j.id for j in jobs}) == JOBS
    # A result is awaited before any worker runs: RQ waits for it with XREAD BLOCK
    # on the job's result stream, which the worker's XADD wakes.
    last = jobs[-1]
    # One worker speaks RESP2, the other RESP3 (its pub/sub listener gets pushes).
    workers = [worker(url + "?protocol=%d" % protocol, "squares", "--burst",
                      "--worker-class", "rq.worker.SimpleWorker")
               for protocol in (2, 3)]
    # redis-py's default 5 s socket timeout would cut the blocked read short.
    waiter = redis.Redis(port=r.connection_pool.connection_kwargs["port"], socket_timeout=None)
    try:
        result = Job.fetch(last.id, connection=waiter).latest_result(timeout=120)
        assert result is not None and result.type == result.Type.SUCCESSFUL, \
            (result, len(q), FinishedJobRegistry(queue=q).count, FailedJobRegistry(queue=q).count)
        assert result.return_value == (JOBS - 1) ** 2, result.return_value
        for w in workers:
            assert finish(w, 20) == 0
    finally:
        waiter.close()
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    elapsed = time.monotonic() - started

    runs = r.hgetall("rq-test:runs")
    assert len(runs) == JOBS, len(runs)
    twice = {k: v for k, v in runs.items() if v != b"1"}
    assert not twice, list(twice.items())[:5]
    by_pid = {int(pid): int(n) for pid, n in r.hgetall("rq-test:by-pid").items()}
    assert len(by_pid) == 2 and sum(by_pid.values()) == JOBS, by_pid
    assert set(by_pid) == {w.pid for w in workers}, (by_pid, [w.pid for w in workers])

    assert len(q) == 0 and q.count == 0
    assert FailedJobRegistry(queue=q).count == 0, FailedJobRegistry(queue=q).get_job_ids()
    assert StartedJobRegistry(queue=q).count == 0
    assert FinishedJobRegistry(queue=q).count == JOBS
    fetched = Job.fetch_many([j.id for j in jobs], connection=r)
    for i, job in enumerate(fetched):
        assert job is not None and job.get_status(refresh=False) == JobStatus.FINISHED, (i, job)
        assert job.return_value() == i * i, (i, job.return_value())
    print("  %d jobs by two workers %s in %.1f s" % (JOBS, sorted(by_pid.values()), elapsed))


def check_stop_job_and_shutdown_over_pubsub(r, url, protocol):
    q = Queue("slow", connection=r)
    name = "rq-test-stopper-%d-resp%d" % (os.getpid(), protocol)
    w = worker(url + "?protocol=%d" % protocol, "slow", "--name", name)
    try:
        channel = "rq:pubsub:" + name
        assert wait_for(lambda: r.pubsub_numsub(channel) == [(channel.encode(), 1)]), \
            r.pubsub_numsub(channel)
        job = q.enqueue("rq_jobs.sleepy", 30)
        assert wait_for(lambda: job.get_status(refresh=True) == JobStatus.STARTED)
        assert wait_for(lambda: r.get("rq-test:sleepy-started") is not None)
        job.refresh()
        assert job.worker_name == name, job.worker_name
        send_stop_job_command(r, job.id)
        assert wait_for(lambda: job.get_status(refresh=True) == JobStatus.STOPPED), job.get_status()
        assert FailedJobRegistry(queue=q).get_job_ids() == [job.id]
        # The worker is idle again (blocked in BLMOVE); a shutdown command ends it.
        send_shutdown_command(r, name)
        assert finish(w, 20) == 0
        assert wait_for(lambda: r.pubsub_numsub(channel) == [(channel.encode(), 0)])
        assert rq.Worker.all(connection=r) == []
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()


def main():
    binary = binary_arg()
    with server(binary) as (port, _sock):
        url = "redis://127.0.0.1:%d" % port
        r = redis.Redis(port=port)
        name = "rq %s (redis-py %s)" % (rq.__version__, redis.__version__)
        status = run(name, [check_two_workers_run_every_job_once], r, url, before=r.flushall)
        for protocol in (2, 3):
            status |= run("%s, worker in RESP%d" % (name, protocol),
                          [check_stop_job_and_shutdown_over_pubsub], r, url, protocol,
                          before=r.flushall)
        r.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
