"""Entry point: `python -m services.transcoder.worker` runs one rq worker on queue `transcode`.

Scaling = starting more of them (`TRANSCODER_WORKERS`). On SIGTERM (or SIGINT) the worker finishes its
current job, then exits (rq's warm shutdown); a second SIGTERM kills the job, which is retried later.

Dying workers: a killed work horse is noticed by its worker, which fails the job, and rq retries it.
A killed worker takes its work horse and ffmpeg with it (PR_SET_PDEATHSIG), and its job stays in rq's
StartedJobRegistry. rq only reclaims such a job once its heartbeat expires; we do not wait for that:
at start and every few seconds while idle, each worker checks the workers named on started jobs and
hands the jobs of dead ones to rq's abandoned-job handling (retry, or failed when no retry is left).
"""
from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
from pathlib import Path

from redis import Redis, WatchError
from rq import Queue, Worker
from rq.job import Job
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.scheduler import RQScheduler

from videoflix_shared import Settings
from videoflix_shared.logs import configure_logging

from .jobs import QUEUE, notify_failure, remove_dead_scratch
from .originals import OriginalsCache
from .process import die_with_parent

WORKER_TTL = 20  # idle workers block on the queue for WORKER_TTL - 15 s, then run maintenance if due
MAINTENANCE_INTERVAL = 5
JOB_MONITORING_INTERVAL = 10

log = logging.getLogger(__name__)


def process_alive(pid: int) -> bool:
    """Whether a local process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in {"Z", "X"}


def worker_is_dead(name: str, me: Worker) -> bool:
    """A worker is dead when its Redis key expired, or it ran on this host and its process is gone
    (or its pid is now ours: a restarted container)."""
    if name == me.name:
        return False
    other = Worker.find_by_key(Worker.redis_worker_namespace_prefix + name, connection=me.connection)
    if other is None:
        return True
    if other.hostname != me.hostname:
        return False  # another machine: its heartbeat expiry decides
    return other.pid == me.pid or not process_alive(other.pid)


def expire_abandoned_jobs(me: Worker) -> list[str]:
    """Give the started jobs of dead workers an expiry in the past, so rq's registry cleanup treats them
    as abandoned now. Watches the job so a job just taken over by a live worker is left alone."""
    expired = []
    for queue in me.queues:
        registry = queue.started_job_registry
        for raw_id in me.connection.zrange(registry.key, 0, -1):
            job_id = raw_id.decode()
            with me.connection.pipeline() as pipeline:
                try:
                    pipeline.watch(Job.key_for(job_id))
                    worker_name = pipeline.hget(Job.key_for(job_id), "worker_name")
                    if not worker_name or not worker_is_dead(worker_name.decode(), me):
                        continue
                    pipeline.multi()
                    pipeline.zadd(registry.key, {job_id: 1}, xx=True)
                    pipeline.execute()
                except WatchError:
                    continue
            expired.append(job_id)
            log.warning("requeueing the job of a dead worker", extra={"fields": {"job_id": job_id}})
    return expired


def release_scheduler_lock_of_dead_worker(me: Worker) -> bool:
    """rq's scheduler lock names the pid of the worker that took it and lasts a minute past its last
    heartbeat: a worker killed while holding it would hold up every delayed retry that long. When that
    worker ran on this host and its process is gone, free the lock now (our maintenance takes it next)."""
    released = False
    workers = {(worker.hostname, worker.pid) for worker in Worker.all(connection=me.connection)}
    for queue in me.queues:
        key = RQScheduler.get_locking_key(queue.name)
        holder = me.connection.get(key)
        if holder is None or not holder.isdigit():
            continue
        pid = int(holder)
        if pid != me.pid and (me.hostname, pid) in workers and not process_alive(pid):
            released |= bool(me.connection.delete(key))
            log.warning("released the scheduler lock of a dead worker", extra={"fields": {"pid": pid}})
    return released


def on_work_horse_killed(job: Job, retpid, ret_val, rusage) -> None:
    """The work horse died (kill -9, OOM): rq fails the job next and retries it if it can."""
    if not job.retries_left:
        notify_failure(job, None)


class OrphanFreeScheduler(RQScheduler):
    """rq's scheduler (it enqueues the retries delayed by their backoff), in a child process that dies with
    the worker that started it: a killed worker leaves no scheduler behind."""

    def start(self):
        self.parent_pid = os.getpid()
        return super().start()

    def work(self):
        die_with_parent(self.parent_pid)
        super().work()


class TranscodeWorker(Worker):
    def main_work_horse(self, job: Job, queue: Queue):
        die_with_parent(self.pid)
        super().main_work_horse(job, queue)

    def _start_scheduler(self, burst: bool = False, logging_level: str = "INFO",
                         date_format: str = DEFAULT_LOGGING_DATE_FORMAT, log_format: str = DEFAULT_LOGGING_FORMAT):
        """rq's own, with the OrphanFreeScheduler: the worker holding the scheduler lock runs it."""
        self.scheduler = OrphanFreeScheduler(self.queues, connection=self.connection, logging_level=logging_level,
                                             date_format=date_format, log_format=log_format,
                                             serializer=self.serializer)
        self.scheduler.acquire_locks()
        if self.scheduler.acquired_locks:
            if burst:
                self.scheduler.enqueue_scheduled_jobs()
                self.scheduler.release_locks()
            else:
                self.scheduler.start()

    def clean_registries(self):
        release_scheduler_lock_of_dead_worker(self)
        expire_abandoned_jobs(self)
        super().clean_registries()


class QuietMaintenance(logging.Filter):
    """rq logs every registry cleaning at INFO; ours run every few seconds."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Cleaning registries")


def build_worker(settings: Settings) -> TranscodeWorker:
    connection = Redis.from_url(settings.redis_url)
    return TranscodeWorker(
        [Queue(QUEUE, connection=connection)], connection=connection, default_worker_ttl=WORKER_TTL,
        maintenance_interval=MAINTENANCE_INTERVAL, job_monitoring_interval=JOB_MONITORING_INTERVAL,
        work_horse_killed_handler=on_work_horse_killed,
    )


def main() -> int:
    settings = Settings.from_env()
    configure_logging("transcoder", settings.log_level)
    # `kill -USR1 <pid>`: every thread's stack on stderr, for a worker that seems stuck (its work horse
    # and scheduler, forked from it, do the same).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    logging.getLogger("rq.worker").addFilter(QuietMaintenance())
    for stale in remove_dead_scratch(settings.transcoder_scratch_dir):  # of jobs that died with a worker
        log.info("stale scratch directory removed", extra={"fields": {"path": str(stale)}})
    for key in OriginalsCache(None, settings.transcoder_scratch_dir, 0).expire():
        log.info("idle original dropped from the cache", extra={"fields": {"key": key}})
    worker = build_worker(settings)
    log.info("transcoder worker starting",
             extra={"fields": {"worker": worker.name, "pid": os.getpid()}})
    # The scheduler (one per Redis, whichever worker holds its lock) enqueues the retries rq delays.
    worker.work(logging_level=settings.log_level, with_scheduler=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
