"""The rq side of the catalog: enqueue a video's transcoding and see which videos have live jobs."""
from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import current_app
from redis import Redis
from redis.exceptions import RedisError
from rq import Callback, Queue, Retry
from rq.job import Job

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


def connect(url: str) -> Redis:
    # Short timeouts: an upload must not hang when Redis is down, it is enqueued later.
    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


def redis() -> Redis:
    return current_app.extensions["redis"]


def prepare_job_id(video_id: int) -> str:
    return f"prepare-video-{video_id}"


def enqueue_video(video: Video) -> bool:
    """Enqueue a committed video's transcoding and mark it `queued`; False when Redis is down."""
    source_path = str(current_app.config["SETTINGS"].media_dir / video.original_path)
    if not enqueue_prepare(video.id, source_path):
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
            retry=Retry(max=PREPARE_RETRIES), on_failure=Callback(FAILURE_CALLBACK),
            description=f"prepare video {video_id}",
        )
    except RedisError as error:
        log.warning("could not enqueue video %s: %s", video_id, error)
        return False
    return True


def videos_with_live_jobs() -> set[int]:
    """Ids of videos with a transcoder job queued, running, deferred or scheduled for retry.

    Every transcoder job takes the video id as its first argument.
    """
    queue = Queue(QUEUE_NAME, connection=redis())
    job_ids = set(queue.get_job_ids())
    for registry in (queue.started_job_registry, queue.deferred_job_registry, queue.scheduled_job_registry):
        job_ids.update(registry.get_job_ids())
    video_ids = set()
    for job in Job.fetch_many(sorted(job_ids), connection=redis()):
        if job and job.func_name.startswith(JOBS_MODULE) and job.args:
            video_ids.add(int(job.args[0]))
    return video_ids
