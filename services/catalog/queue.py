"""The rq side of the catalog: enqueue a video's transcoding, see which videos have live jobs, and stop
the jobs of a deleted video."""
from __future__ import annotations

import contextlib
import logging

import sqlalchemy as sa
from flask import current_app
from redis import Redis
from redis.exceptions import RedisError
from rq import Callback, Queue, Retry
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus

from .models import QUEUED, UPLOADED, Video, db

log = logging.getLogger(__name__)

QUEUE_NAME = "transcode"
JOBS_MODULE = "services.transcoder.jobs."
PREPARE_JOB = JOBS_MODULE + "prepare_video"
# The transcoder's rq on_failure callback: reports the video failed once no retry is left.
FAILURE_CALLBACK = JOBS_MODULE + "report_final_failure"
# Probing and planning the ladder is quick; the rung jobs it enqueues carry their own timeouts.
PREPARE_TIMEOUT_SECONDS = 600
PREPARE_RETRIES = 3
# Seconds before each retry (the transcoder workers run rq's scheduler): a catalog restart of a few
# seconds does not burn every retry.
PREPARE_RETRY_INTERVALS = [15, 60, 180]
ATTEMPTS_TTL = 7 * 24 * 3600


def connect(url: str) -> Redis:
    # Short timeouts: an upload must not hang when Redis is down, it is enqueued later.
    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


def redis() -> Redis:
    return current_app.extensions["redis"]


def prepare_job_id(video_id: int) -> str:
    return f"prepare-video-{video_id}"


def enqueue_video(video: Video) -> bool:
    """Enqueue a committed video's transcoding and mark it `queued`; False when Redis is down."""
    if not enqueue_prepare(video.id, video.original_path):
        return False
    # Only from `uploaded`: a fast worker may already have moved the video on.
    db.session.execute(
        sa.update(Video).where(Video.id == video.id, Video.status == UPLOADED).values(status=QUEUED)
    )
    db.session.commit()
    return True


def enqueue_prepare(video_id: int, source_path: str) -> bool:
    """Enqueue `prepare_video(video_id, source_path=...)`; False when Redis is unreachable."""
    queue = Queue(QUEUE_NAME, connection=redis())
    try:
        queue.enqueue(
            PREPARE_JOB, video_id, source_path=source_path,
            job_id=prepare_job_id(video_id), job_timeout=PREPARE_TIMEOUT_SECONDS,
            retry=Retry(max=PREPARE_RETRIES, interval=PREPARE_RETRY_INTERVALS),
            on_failure=Callback(FAILURE_CALLBACK),
            description=f"prepare video {video_id}",
        )
    except RedisError as error:
        log.warning("could not enqueue video %s: %s", video_id, error)
        return False
    return True


def attempts_key(video_id: int) -> str:
    return f"videoflix:reconcile-attempts:{video_id}"


def reenqueue_attempts(video_id: int) -> int:
    """How many times the reconciler has enqueued this video again (kept for ATTEMPTS_TTL after the last)."""
    return int(redis().get(attempts_key(video_id)) or 0)


def count_reenqueue(video_id: int) -> None:
    with redis().pipeline() as pipeline:
        pipeline.incr(attempts_key(video_id)).expire(attempts_key(video_id), ATTEMPTS_TTL).execute()


def live_jobs() -> list[Job]:
    """Transcoder jobs queued, running, deferred or scheduled for retry.

    Every transcoder job takes the video id as its first argument.
    """
    queue = Queue(QUEUE_NAME, connection=redis())
    job_ids = set(queue.get_job_ids())
    for registry in (queue.started_job_registry, queue.deferred_job_registry, queue.scheduled_job_registry):
        job_ids.update(registry.get_job_ids())
    return [job for job in Job.fetch_many(sorted(job_ids), connection=redis())
            if job and job.func_name.startswith(JOBS_MODULE) and job.args]


def videos_with_live_jobs() -> set[int]:
    return {int(job.args[0]) for job in live_jobs()}


def stop_video_jobs(video_id: int) -> None:
    """A deleted video's jobs: running ones are stopped at once (their worker kills the work horse and its
    ffmpeg; the job's on_stopped callback removes what it wrote), waiting ones are deleted.

    Best effort: with Redis down, each job still stops at its start when the catalog answers 404.
    """
    try:
        for job in live_jobs():
            if int(job.args[0]) != video_id:
                continue
            if job.get_status(refresh=False) == JobStatus.STARTED:
                with contextlib.suppress(InvalidJobOperation, NoSuchJobError):
                    send_stop_job_command(redis(), job.id)
            else:
                job.delete()
    except RedisError as error:
        log.warning("could not stop the jobs of video %s: %s", video_id, error)
