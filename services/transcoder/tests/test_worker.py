"""The worker process: dead workers' jobs are taken over, a killed worker leaves no orphan behind, and
SIGTERM lets the current job finish. Real worker processes on real Redis (db 14, see conftest.py)."""
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from rq import Queue, Retry, Worker
from rq.job import JobStatus

from services.transcoder.jobs import QUEUE
from services.transcoder.worker import process_alive, worker_is_dead

from services.transcoder.tests.conftest import wait_for, wait_for_worker, work_horse


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_process_alive():
    assert process_alive(os.getpid())
    assert not process_alive(dead_pid())
    zombie = subprocess.Popen(["true"])
    wait_for(lambda: Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z")
    assert not process_alive(zombie.pid)
    zombie.wait()


def registered_worker(redis, pid, hostname=None) -> Worker:
    worker = Worker([Queue(QUEUE, connection=redis)], connection=redis)
    worker.pid, worker.hostname = pid, hostname or worker.hostname
    worker.register_birth()
    return worker


def test_worker_is_dead(redis):
    me = registered_worker(redis, os.getpid())
    assert not worker_is_dead(me.name, me)
    assert not worker_is_dead(registered_worker(redis, os.getppid()).name, me)
    assert worker_is_dead(registered_worker(redis, dead_pid()).name, me)
    assert worker_is_dead("never-registered", me)
    assert not worker_is_dead(registered_worker(redis, dead_pid(), hostname="elsewhere").name, me)
    # a restarted container: the new worker got the old one's pid, so the old one is gone
    assert worker_is_dead(me.name, registered_worker(redis, os.getpid()))


def test_killed_worker_takes_its_horse_along_and_a_live_worker_retries_its_job(redis, start_worker):
    queue = Queue(QUEUE, connection=redis)
    first = start_worker()
    # Long enough to outlast a second worker's start-up on a loaded machine: the kill must find it running.
    job = queue.enqueue("time.sleep", 8, job_id="sleepy", retry=Retry(max=1))
    wait_for_worker(lambda: job.get_status(refresh=True) == JobStatus.STARTED, first, redis)
    horse = wait_for(lambda: work_horse(first.pid))
    first_worker_name = job.worker_name
    second = start_worker()
    wait_for(lambda: len(Worker.all(connection=redis)) == 2)
    time.sleep(1)  # the second worker has done its start-up maintenance while the first was alive

    first.kill()
    first.wait()
    wait_for(lambda: not process_alive(horse), timeout=5)  # no orphan keeps working on the job
    wait_for_worker(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, second, redis)
    job.refresh()
    assert job.retries_left == 0
    assert job.worker_name != first_worker_name
    assert second.poll() is None


def test_killed_work_horse_fails_its_job_and_rq_retries_it(redis, start_worker):
    queue = Queue(QUEUE, connection=redis)
    worker = start_worker()
    # Long enough that the work horse is still there to be killed when a loaded machine is slow to look.
    job = queue.enqueue("time.sleep", 4, job_id="horse-killed", retry=Retry(max=1))
    wait_for_worker(lambda: job.get_status(refresh=True) == JobStatus.STARTED, worker, redis)
    os.kill(wait_for(lambda: work_horse(worker.pid), timeout=4), signal.SIGKILL)
    wait_for_worker(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, worker, redis, timeout=30)
    job.refresh()
    assert job.retries_left == 0 and worker.poll() is None


def test_sigterm_lets_the_current_job_finish(redis, start_worker):
    queue = Queue(QUEUE, connection=redis)
    worker = start_worker()
    job = queue.enqueue("time.sleep", 2, job_id="finish-me")
    wait_for_worker(lambda: job.get_status(refresh=True) == JobStatus.STARTED, worker, redis)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    assert job.get_status(refresh=True) == JobStatus.FINISHED


def test_the_worker_runs_delayed_retries(redis, start_worker, tmp_path):
    """rq's scheduler runs in the worker: a retry delayed by a backoff interval does run later."""
    queue = Queue(QUEUE, connection=redis)
    marker = tmp_path / "appears-after-the-first-attempt"
    worker = start_worker()
    job = queue.enqueue("os.remove", str(marker), job_id="fails-once", retry=Retry(max=1, interval=2))
    wait_for_worker(lambda: job.get_status(refresh=True) == JobStatus.SCHEDULED, worker, redis)
    marker.write_text("")
    wait_for_worker(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, worker, redis, timeout=30)
    assert not marker.exists()


def test_a_killed_worker_does_not_hold_up_delayed_retries(redis, start_worker, tmp_path):
    """The worker holding rq's scheduler lock is killed while a retry waits: a live worker frees the lock
    and runs the scheduler, well before the lock's own minute-long expiry."""
    queue = Queue(QUEUE, connection=redis)
    first = start_worker()
    lock = "rq:scheduler-lock:" + QUEUE
    wait_for(lambda: redis.get(lock) == str(first.pid).encode())
    second = start_worker()
    wait_for(lambda: len(Worker.all(connection=redis)) == 2)
    marker = tmp_path / "appears-after-the-first-attempt"
    job = queue.enqueue("os.remove", str(marker), job_id="retried-later", retry=Retry(max=1, interval=5))
    wait_for_worker(lambda: job.get_status(refresh=True) == JobStatus.SCHEDULED, first, redis)
    first.kill()
    first.wait()
    marker.write_text("")
    wait_for_worker(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, second, redis, timeout=40)
    assert redis.get(lock) == str(second.pid).encode()


def test_sigusr1_writes_the_stacks_and_the_worker_goes_on(redis, start_worker, capfd):
    queue = Queue(QUEUE, connection=redis)
    worker = start_worker()
    wait_for(lambda: len(Worker.all(connection=redis)) == 1)
    worker.send_signal(signal.SIGUSR1)
    written = []
    # The main thread's stack, whatever it is doing: registered is not yet idle (start-up maintenance
    # may still run), so the frame to look for is the worker's entry point, always on that stack.
    wait_for(lambda: written.append(capfd.readouterr().err) or re.search(
        r"File \"[^\"]*services/transcoder/worker\.py\", line \d+ in main\n", "".join(written)))
    job = queue.enqueue("time.sleep", 0, job_id="after-the-dump")
    wait_for_worker(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, worker, redis)
