"""`flask --app services.catalog.app reconcile [--every SECONDS]`: nothing uploaded is ever lost.

Enqueues videos whose upload could not reach Redis, and re-enqueues videos with work left whose rq
jobs are gone (Redis restarted: it keeps nothing on disk). Job ids are deterministic and videos with
live jobs are skipped, so running it any number of times is harmless. A video enqueued again
`--max-attempts` times that still does not finish is given up: its pending rungs (and the video, unless
a rung is playable) are marked failed with the reason.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

import click
import sqlalchemy as sa
from flask.cli import with_appcontext
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from videoflix_shared.storage import StorageUnavailable

from . import queue
from .models import PENDING, PROCESSING, QUEUED, READY, UPLOADED, Rendition, Video, db, utcnow
from .storage import remove_stale_spools
from .tus import remove_expired_uploads

STALE_SPOOL_AGE = timedelta(hours=1)
MAX_ATTEMPTS = 5

log = logging.getLogger(__name__)


def videos_needing_work(quiet_for: timedelta) -> list[Video]:
    """Videos not finished and untouched for `quiet_for` (a fresh upload enqueues itself; a job that
    is just being handed from the queue to a worker is briefly in no registry)."""
    pending_rungs = sa.exists().where(Rendition.video_id == Video.id, Rendition.state == PENDING)
    unfinished = sa.or_(Video.status.in_((UPLOADED, QUEUED, PROCESSING)),
                        sa.and_(Video.status == READY, pending_rungs))
    query = sa.select(Video).where(unfinished, Video.updated_at < utcnow() - quiet_for).order_by(Video.id)
    return list(db.session.scalars(query))


def give_up(video: Video, reason: str) -> None:
    video.mark_failed(reason)
    db.session.commit()
    log.warning("gave up on video %s: %s", video.id, reason, extra={"fields": {"video_id": video.id}})


def reconcile_once(quiet_for: timedelta, max_attempts: int = MAX_ATTEMPTS) -> list[int]:
    """Enqueue every orphaned video, or give it up after `max_attempts`; returns the ids enqueued."""
    candidates = videos_needing_work(quiet_for)
    if not candidates:
        return []
    live = queue.videos_with_live_jobs()
    enqueued = []
    for video in candidates:
        if video.id in live:
            continue
        attempts = queue.reenqueue_attempts(video.id)
        if not video.original_path:  # nothing to transcode from: enqueueing it again cannot help
            give_up(video, "The original file is missing; please upload the video again.")
        elif attempts >= max_attempts:
            give_up(video, f"Processing did not finish after {attempts} restarts; it was given up.")
        elif queue.enqueue_video(video):
            queue.count_reenqueue(video.id)
            enqueued.append(video.id)
    return enqueued


@click.command("reconcile")
@click.option("--every", type=float, default=None, metavar="SECONDS",
              help="Keep running, one pass every SECONDS (default: one pass, then exit).")
@click.option("--quiet-for", type=float, default=30, show_default=True, metavar="SECONDS",
              help="Only touch videos unchanged for this long.")
@click.option("--max-attempts", type=int, default=MAX_ATTEMPTS, show_default=True,
              help="Give a video up (failed, with the reason) once enqueued again this many times.")
@with_appcontext
def reconcile_command(every: float | None, quiet_for: float, max_attempts: int) -> None:
    """Enqueue uploaded videos, re-enqueue videos whose transcoding jobs were lost, and delete
    abandoned upload parts and expired resumable uploads."""
    if every is not None:
        log.info("reconciling every %ss", every)
    while True:
        try:
            enqueued = reconcile_once(timedelta(seconds=quiet_for), max_attempts)
            if enqueued:
                log.info("re-enqueued videos %s", enqueued, extra={"fields": {"video_ids": enqueued}})
            if removed := remove_stale_spools(STALE_SPOOL_AGE):
                log.info("removed %s abandoned upload parts", removed)
            if expired := remove_expired_uploads():
                log.info("removed %s expired resumable uploads", expired)
        except (RedisError, SQLAlchemyError, StorageUnavailable) as error:
            if every is None:
                raise click.ClickException(str(error))
            log.warning("reconcile pass failed, retrying in %ss: %s", every, error)
        finally:
            db.session.remove()
        if every is None:
            return
        time.sleep(every)
