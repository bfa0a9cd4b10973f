"""The rq jobs: prepare a video (probe + enqueue its ladder), transcode rungs, make the thumbnail.

The catalog enqueues `prepare_video` on queue `transcode`; everything else is enqueued from here with
deterministic job ids (`video-<id>-<rung>`, `video-<id>-rest`, `video-<id>-thumbnail`), so a repeated
prepare does not duplicate work. Every job first asks the catalog whether the video still exists and
stops quietly if not.

Media goes through the storage interface (videoflix_shared.storage: MEDIA_DIR or an S3 bucket): each job
fetches the original into its own scratch directory under TRANSCODER_SCRATCH_DIR (ffmpeg reads local
files only), encodes there, and publishes through the storage; the scratch directory is removed after
the job, and those of dead work horses at the next job or worker start. A transcoder host needs no disk
shared with anything.

`TRANSCODE_MODE` (read by the worker that runs `prepare_video`) chooses how the ladder is cut into jobs:
- `split` (default): the first rung alone, then every other rung in one job running one ffmpeg that
  decodes the source once (a split filter graph). Least CPU: fastest whole ladder on a few cores.
- `rungs`: one job per rung. Scales across many workers on several machines.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

from redis import Redis
from rq import Callback, Queue, Retry
from rq.job import Job, JobStatus
from rq.timeouts import JobTimeoutException

from videoflix_shared import Settings
from videoflix_shared.storage import Storage, storage_from_settings

from . import ffmpeg, ladder, metrics, probe, publish
from .catalog_client import CatalogClient, VideoGone
from .process import ResourceLimits
from .progress import Throttle, percent_done

log = logging.getLogger(__name__)

QUEUE = "transcode"
RETRIES = 3
# Seconds before each retry (rq's scheduler, run by every worker, enqueues them again): a catalog or
# Redis restart of a few seconds does not burn every retry at once.
RETRY_INTERVALS = [15, 60, 180]
BASE_TIMEOUT_SECONDS = 120
THUMBNAIL_TIMEOUT_SECONDS = 180
THUMBNAIL_POSITION = 0.15  # a representative frame: past intros and black openings, well before the end
PENDING = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
MODES = ("split", "rungs")
# The split job yields the cores to first rungs (its own video's and others'): what a viewer waits for.
SPLIT_NICENESS = 10
DEFAULT_MODE = "split"


def transcode_mode() -> str:
    """`TRANSCODE_MODE` from the environment; an unknown value is a configuration error."""
    mode = os.environ.get("TRANSCODE_MODE", "").strip() or DEFAULT_MODE
    if mode not in MODES:
        raise ValueError(f"TRANSCODE_MODE must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def _context() -> tuple[Settings, CatalogClient, Storage]:
    settings = Settings.from_env()
    return settings, CatalogClient.from_settings(settings), storage_from_settings(settings)


SCRATCH_PREFIX = "job-"


def remove_dead_scratch(scratch_root: Path) -> list[Path]:
    """Scratch directories of work horses that are gone (killed, crashed, the host restarted)."""
    from .worker import process_alive

    removed = []
    for path in Path(scratch_root).glob(f"{SCRATCH_PREFIX}*") if Path(scratch_root).is_dir() else ():
        pid = path.name[len(SCRATCH_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or not process_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def job_scratch(settings: Settings) -> Iterator[Path]:
    """This job's own directory on the local disk (`job-<pid>-<random>`), removed afterwards."""
    root = settings.transcoder_scratch_dir
    root.mkdir(parents=True, exist_ok=True)
    remove_dead_scratch(root)
    directory = root / f"{SCRATCH_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    directory.mkdir()
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def is_gone(catalog: CatalogClient, video_id: int) -> bool:
    try:
        catalog.video(video_id)
    except VideoGone:
        return True
    except Exception:  # cannot tell: let the original error stand
        return False
    return False


@contextlib.contextmanager
def stop_if_video_gone(catalog: CatalogClient, storage: Storage, video_id: int) -> Iterator[None]:
    """A video deleted meanwhile (catalog 404): drop whatever was written for it and end the job.

    Any other error is checked too: deleting a video removes its files while a job works on it.
    """
    try:
        yield
    except Exception as error:
        if not isinstance(error, VideoGone) and not is_gone(catalog, video_id):
            raise
        log.info("video gone, job dropped", extra={"fields": {"video_id": video_id}})
        storage.delete_prefix(f"{publish.video_prefix(video_id)}/")


def original_key(storage: Storage, video_id: int, source_path: str | None) -> str:
    """The uploaded original's storage key: the one the catalog sent, or the one object under
    `originals/<id>/`."""
    if source_path and not source_path.startswith("/") and storage.exists(source_path):
        return source_path
    stored = storage.list(f"originals/{video_id}/")
    if len(stored) != 1:
        raise probe.UnusableMedia("The uploaded file is missing.")
    return stored[0].key


def retry() -> Retry:
    return Retry(max=RETRIES, interval=RETRY_INTERVALS)


def prepare_video(video_id: int, source_path: str | None = None) -> None:
    """Probe the original, report it, and enqueue one job per rung (first choice first) and the thumbnail.

    Unusable input (not an accepted container, no video stream, corrupt, beyond the MAX_SOURCE_* limits,
    a declared duration the file does not hold) is reported as failed; the original stays.
    """
    settings, catalog, storage = _context()
    with stop_if_video_gone(catalog, storage, video_id), job_scratch(settings) as scratch:
        catalog.video(video_id)
        try:
            source = original_key(storage, video_id, source_path)
            with storage.local_copy(source, scratch) as local:
                media = probe.probe_source(local, probe.SourceLimits.from_settings(settings),
                                           ResourceLimits.from_settings(settings))
        except probe.UnusableMedia as error:
            log.info("unusable upload", extra={"fields": {"video_id": video_id, "reason": str(error)}})
            catalog.report_failed(video_id, str(error))
            return
        rungs = ladder.choose_rungs(media.height)
        catalog.report_probe(video_id, round(media.duration, 3), media.width, media.height, media.has_audio,
                             [rung.name for rung in rungs])
        enqueue_ladder(Queue(QUEUE, connection=Redis.from_url(settings.redis_url)), video_id, source, media, rungs,
                       transcode_mode(), settings.transcode_job_timeout_seconds)


def rung_job_id(video_id: int, rung: str) -> str:
    return f"video-{video_id}-{rung}"


def rest_job_id(video_id: int) -> str:
    return f"video-{video_id}-rest"


def thumbnail_job_id(video_id: int) -> str:
    return f"video-{video_id}-thumbnail"


def _enqueue_once(queue: Queue, job_id: str, function, **options) -> Job | None:
    """Enqueue unless a job with this id is already waiting or running."""
    existing = Job.fetch(job_id, connection=queue.connection) if Job.exists(job_id, queue.connection) else None
    if existing is not None and existing.get_status(refresh=False) in PENDING:
        return None
    return queue.enqueue(function, job_id=job_id, retry=retry(), on_failure=Callback(report_final_failure),
                         on_stopped=Callback(remove_stopped_job_files), **options)


def enqueue_ladder(queue: Queue, video_id: int, source: str, media: probe.SourceMedia,
                   rungs: list[ladder.Rendition], mode: str = DEFAULT_MODE,
                   max_timeout: int | None = None) -> list[Job]:
    """The first rung, then the thumbnail (cheap, so the video is listed with its picture), then the rest:
    one job per rung from small to large (`rungs`), or one job for all of them (`split`). `source` is
    the original's storage key.

    Every job's timeout grows with the duration but never beyond `max_timeout` (default: the setting)."""
    max_timeout = max_timeout or Settings.from_env().transcode_job_timeout_seconds
    source_kwargs = {"source_path": source, "source_height": media.height, "duration": media.duration,
                     "fps": media.fps, "has_audio": media.has_audio, "demuxer": media.demuxer}

    def bounded(seconds: float) -> int:
        return int(min(seconds, max_timeout))

    def rung_job(rendition: ladder.Rendition) -> Job | None:
        return _enqueue_once(
            queue, rung_job_id(video_id, rendition.name), transcode_rung,
            args=(video_id, rendition.name), kwargs=source_kwargs,
            job_timeout=bounded(BASE_TIMEOUT_SECONDS + rendition.timeout_factor * media.duration),
        )

    def rest_job(renditions: list[ladder.Rendition]) -> Job | None:
        factor = sum(rendition.timeout_factor for rendition in renditions)
        return _enqueue_once(
            queue, rest_job_id(video_id), transcode_split,
            args=(video_id, [rendition.name for rendition in renditions]), kwargs=source_kwargs,
            job_timeout=bounded(BASE_TIMEOUT_SECONDS + factor * media.duration),
        )

    def thumbnail_job() -> Job | None:
        return _enqueue_once(
            queue, thumbnail_job_id(video_id), make_thumbnail, args=(video_id,),
            kwargs={"source_path": source, "duration": media.duration, "demuxer": media.demuxer},
            job_timeout=bounded(THUMBNAIL_TIMEOUT_SECONDS),
        )

    jobs = [rung_job(rungs[0]), thumbnail_job()]
    if mode == "rungs":
        jobs += [rung_job(rendition) for rendition in rungs[1:]]
    elif rungs[1:]:
        jobs.append(rest_job(rungs[1:]))
    return [job for job in jobs if job is not None]


def progress_reporter(catalog: CatalogClient, video_id: int, rungs: list[str], duration: float):
    """Reports the progress of one ffmpeg for every rung it encodes."""
    throttle = Throttle()

    def report(seconds: float) -> None:
        percent = percent_done(seconds, duration)
        if throttle.allows(percent):
            for rung in rungs:
                catalog.report_progress(video_id, rung, percent)

    return report


def transcode_rung(video_id: int, rung: str, source_path: str, source_height: int, duration: float,
                   fps: float, has_audio: bool, demuxer: str) -> None:
    """Encode one rung in the scratch directory, publish it, rewrite master.m3u8, report the rendition.

    A rung that is already published is not encoded again: the job only makes sure the master lists it
    and the catalog knows it (a retry after a crash between publishing and reporting converges).
    """
    settings, catalog, storage = _context()
    with stop_if_video_gone(catalog, storage, video_id), job_scratch(settings) as scratch:
        catalog.video(video_id)
        if not publish.is_published(storage, video_id, rung):
            rendition = ladder.rendition_for(rung, source_height)
            with metrics.encoding([rung], duration), storage.local_copy(source_path, scratch) as source, \
                    publish.staging_dir(scratch, rung) as staged:
                command = ffmpeg.rung_command(source, rendition, fps, has_audio, demuxer=demuxer)
                ffmpeg.run(command, ResourceLimits.from_settings(settings), cwd=staged,
                           on_seconds=progress_reporter(catalog, video_id, [rung], duration))
                metrics.count_segments(rung, staged)
                publish.publish_rung(storage, staged, video_id, rung)
        report_renditions(catalog, storage, video_id, [rung], scratch)


def transcode_split(video_id: int, rungs: list[str], source_path: str, source_height: int, duration: float,
                    fps: float, has_audio: bool, demuxer: str) -> None:
    """Encode several rungs with one ffmpeg (one decode, a split filter graph), each into its own hidden
    directory; then publish each, rewrite master.m3u8 and report every rendition.

    Rungs already published (an earlier attempt got that far) are not encoded again, only reported.
    """
    settings, catalog, storage = _context()
    with stop_if_video_gone(catalog, storage, video_id), job_scratch(settings) as scratch:
        catalog.video(video_id)
        missing = [ladder.rendition_for(rung, source_height) for rung in rungs
                   if not publish.is_published(storage, video_id, rung)]
        if missing:
            with metrics.encoding([rendition.name for rendition in missing], duration), \
                    contextlib.ExitStack() as stack:
                source = stack.enter_context(storage.local_copy(source_path, scratch))
                outputs = [(rendition, stack.enter_context(publish.staging_dir(scratch, rendition.name)))
                           for rendition in missing]
                command = ffmpeg.split_command(source, outputs, fps, has_audio, demuxer=demuxer)
                on_seconds = progress_reporter(catalog, video_id, [rendition.name for rendition in missing], duration)
                ffmpeg.run(command, ResourceLimits.from_settings(settings), on_seconds=on_seconds,
                           niceness=SPLIT_NICENESS)
                for rendition, staged in outputs:
                    metrics.count_segments(rendition.name, staged)
                    publish.publish_rung(storage, staged, video_id, rendition.name)
        report_renditions(catalog, storage, video_id, rungs, scratch)


def report_renditions(catalog: CatalogClient, storage: Storage, video_id: int, rungs: list[str],
                      scratch: Path) -> None:
    """Make master.m3u8 list every published rung, then tell the catalog about `rungs`."""
    published = {entry.name: entry for entry in publish.update_master(storage, video_id, scratch)}
    for rung in rungs:
        entry = published[rung]
        catalog.report_rendition(video_id, rung, entry.width, entry.height, entry.bandwidth)
        log.info("rung published", extra={"fields": {"video_id": video_id, "rung": rung}})


def make_thumbnail(video_id: int, source_path: str, duration: float, demuxer: str) -> None:
    """A JPEG of a representative frame at `hls/<id>/thumbnail.jpg`, replaced whole."""
    settings, catalog, storage = _context()
    with stop_if_video_gone(catalog, storage, video_id), job_scratch(settings) as scratch:
        catalog.video(video_id)
        staged = scratch / publish.THUMBNAIL
        with storage.local_copy(source_path, scratch) as source:
            # A seek past the last frame (a wrong container duration) yields nothing: fall back to the start.
            for position in (duration * THUMBNAIL_POSITION, 0):
                ffmpeg.run(ffmpeg.thumbnail_command(source, staged, position, demuxer=demuxer),
                           ResourceLimits.from_settings(settings))
                if staged.is_file() and staged.stat().st_size:
                    break
            else:
                raise ffmpeg.FFmpegError(0, "no frame could be decoded")
        key = f"{publish.video_prefix(video_id)}/{publish.THUMBNAIL}"
        storage.put_file(key, staged)
        catalog.report_thumbnail(video_id, key)


def job_rungs(job: Job) -> list[str]:
    """The rungs a job encodes (none for prepare and thumbnail jobs)."""
    if job.func_name.endswith("transcode_rung"):
        return [job.args[1]]
    if job.func_name.endswith("transcode_split"):
        return list(job.args[1])
    return []


def failure_reason(job: Job, error: BaseException | None) -> str:
    """What the uploader is told when a job has failed for good."""
    rungs = job_rungs(job)
    what = f"Transcoding to {', '.join(rungs)}" if rungs else "Processing"
    if isinstance(error, ffmpeg.FFmpegError):
        return f"{what} failed: {error.message}"
    if isinstance(error, JobTimeoutException):
        return f"{what} took too long."
    if error is None or type(error).__name__ == "AbandonedJobError":
        return f"{what} was interrupted {RETRIES + 1} times (the worker stopped)."
    return f"{what} failed ({type(error).__name__})."


def notify_failure(job: Job, error: BaseException | None) -> None:
    """Tell the catalog about a job that rq will not retry any more (the thumbnail only gets logged)."""
    video_id, reason = job.args[0], failure_reason(job, error)
    log.error("job failed for good", extra={"fields": {"job_id": job.id, "reason": reason}})
    if job.func_name.endswith("make_thumbnail"):
        return
    try:
        _, catalog, _ = _context()
        for rung in job_rungs(job) or [None]:
            catalog.report_failed(video_id, reason, rung=rung)
    except Exception as report_error:  # the job is already lost; do not hide why in a second traceback
        log.error("could not report the failure",
                  extra={"fields": {"video_id": video_id, "error": repr(report_error)}})


def remove_stopped_job_files(job: Job, connection) -> None:
    """rq `on_stopped` callback (the catalog stops a deleted video's jobs: its work horse and ffmpeg are
    killed at once): remove the dead horse's scratch directory, and the video's media once it is gone."""
    video_id = job.args[0]
    settings, catalog, storage = _context()
    remove_dead_scratch(settings.transcoder_scratch_dir)
    if is_gone(catalog, video_id):
        storage.delete_prefix(f"{publish.video_prefix(video_id)}/")


def report_final_failure(job: Job, connection, exc_type, exc_value, traceback) -> None:
    """rq `on_failure` callback: runs on every failure, reports only when no retry is left."""
    if not job.retries_left:
        notify_failure(job, exc_value)
