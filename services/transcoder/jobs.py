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

How the ladder is cut into jobs (docs/performance.md has the measurements):
- The first rung: one job, published while it encodes (`transcode_rung(progressive=True)`).
- The rest of a source of one chunk (`ladder.CHUNK_SECONDS`) or less: one job running one ffmpeg that
  decodes the source once (a split filter graph): least CPU.
- The rest of a longer source: chunk x rung jobs any worker on any host can take (`transcode_chunk`), the
  audio once per audio bit rate for the whole source (`encode_audio`), and per rung a join job that
  depends on them (`join_rung`): a stream copy into one continuous HLS rung. Chunks and audio travel
  through the storage (`hls/<id>/.chunks/`), never a shared disk. A killed worker loses one chunk.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
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
from .originals import OriginalsCache
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
# Segments of the first rung out before the video counts as playable: a player starting then has this
# many segment durations of picture ahead while the encoder (several times realtime) keeps ahead of it.
FIRST_PLAYABLE_SEGMENTS = 2
# The rest of the ladder yields the cores to first rungs (its own video's and others'): what a viewer waits for.
REST_NICENESS = 10
AUDIO_TIMEOUT_FACTOR = 0.5
PREFETCH_TIMEOUT_SECONDS = 600
JOIN_TIMEOUT_FACTOR = 0.2


def _context() -> tuple[Settings, CatalogClient, Storage]:
    settings = Settings.from_env()
    return settings, CatalogClient.from_settings(settings), storage_from_settings(settings)


def originals(settings: Settings, storage: Storage) -> OriginalsCache:
    """Where jobs read the original from: in place on local disk, else this host's cache (originals.py)."""
    return OriginalsCache.from_settings(settings, storage)


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
    OriginalsCache(None, root, 0).expire()
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
        OriginalsCache(storage, Settings.from_env().transcoder_scratch_dir, 0).evict_video(video_id)


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
            if storage.local_path(source) is None:
                enqueue_prefetch(Queue(QUEUE, connection=Redis.from_url(settings.redis_url)), video_id, source)
            started = time.monotonic()
            with originals(settings, storage).local_copy(source, scratch) as local:
                fetched = time.monotonic()
                media = probe.probe_source(local, probe.SourceLimits.from_settings(settings),
                                           ResourceLimits.from_settings(settings))
                probed = time.monotonic()
        except probe.UnusableMedia as error:
            log.info("unusable upload", extra={"fields": {"video_id": video_id, "reason": str(error)}})
            catalog.report_failed(video_id, str(error))
            return
        rungs = ladder.choose_rungs(media.height)
        catalog.report_probe(video_id, round(media.duration, 3), media.width, media.height, media.has_audio,
                             [rung.name for rung in rungs])
        enqueue_ladder(Queue(QUEUE, connection=Redis.from_url(settings.redis_url)), video_id, source, media, rungs,
                       settings.transcode_job_timeout_seconds, storage=storage)
        log.info("video prepared", extra={"fields": {
            "video_id": video_id, "fetch_s": round(fetched - started, 3), "probe_s": round(probed - fetched, 3),
            "report_and_enqueue_s": round(time.monotonic() - probed, 3)}})


def prefetch_job_id(video_id: int) -> str:
    return f"video-{video_id}-prefetch"


def enqueue_prefetch(queue: Queue, video_id: int, source: str) -> Job:
    """`prefetch_original` at the front of the queue: best effort (no retry, a failure reports nothing)."""
    return queue.enqueue(prefetch_original, args=(video_id, source), job_id=prefetch_job_id(video_id), at_front=True,
                         job_timeout=PREFETCH_TIMEOUT_SECONDS, on_stopped=Callback(remove_stopped_job_files))


def prefetch_original(video_id: int, source_path: str) -> None:
    """Download an original into this host's cache while `prepare_video` probes it on another host (only
    bytes on a disk: nothing reads them before the probe has accepted them). The first rung then starts
    at once on either host, instead of after a second download of the whole file."""
    settings, catalog, storage = _context()
    with stop_if_video_gone(catalog, storage, video_id), job_scratch(settings) as scratch, \
            originals(settings, storage).local_copy(source_path, scratch):
        pass


def rung_job_id(video_id: int, rung: str) -> str:
    return f"video-{video_id}-{rung}"


def rest_job_id(video_id: int) -> str:
    return f"video-{video_id}-rest"


def chunk_job_id(video_id: int, rung: str, index: int) -> str:
    return f"video-{video_id}-{rung}-chunk-{index}"


def audio_job_id(video_id: int, audio_kbps: int) -> str:
    return f"video-{video_id}-audio-{audio_kbps}k"


def join_job_id(video_id: int, rung: str) -> str:
    return f"video-{video_id}-{rung}-join"


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
                   rungs: list[ladder.Rendition], max_timeout: int | None = None,
                   storage: Storage | None = None) -> list[Job]:
    """The first rung (published while it encodes), then the thumbnail (cheap, so the video is listed with
    its picture), then the rest: one split job for a source of one chunk, else chunk x rung jobs, the
    audio and one join job per rung (module docstring). `source` is the original's storage key.

    Every job's timeout grows with the duration but never beyond `max_timeout` (default: the setting)."""
    max_timeout = max_timeout or Settings.from_env().transcode_job_timeout_seconds
    source_kwargs = {"source_path": source, "source_height": media.height, "duration": media.duration,
                     "fps": media.fps, "has_audio": media.has_audio, "demuxer": media.demuxer}

    def bounded(seconds: float) -> int:
        return int(min(seconds, max_timeout))

    def rung_job(rendition: ladder.Rendition, progressive: bool = False) -> Job | None:
        return _enqueue_once(
            queue, rung_job_id(video_id, rendition.name), transcode_rung,
            args=(video_id, rendition.name), kwargs=source_kwargs | {"progressive": progressive},
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

    jobs = [rung_job(rungs[0], progressive=True), thumbnail_job()]
    chunks = ladder.chunks(media.duration)
    if len(chunks) == 1 and rungs[1:]:
        jobs.append(rest_job(rungs[1:]))
    elif rungs[1:]:
        publish.mark_chunks_pending(storage or storage_from_settings(Settings.from_env()), video_id,
                                    [rendition.name for rendition in rungs[1:]])
        jobs += enqueue_chunked(queue, video_id, media, rungs[1:], chunks, source_kwargs, bounded)
    return [job for job in jobs if job is not None]


def enqueue_chunked(queue: Queue, video_id: int, media: probe.SourceMedia, renditions: list[ladder.Rendition],
                    chunks: list[tuple[float, float | None]], source_kwargs: dict, bounded) -> list[Job | None]:
    """Chunk x rung jobs (chunk by chunk, so every rung advances), the audio once per audio bit rate, then
    per rung a join job deferred until its chunks and its audio are done."""
    jobs = []
    for index, (start, seconds) in enumerate(chunks):
        length = seconds if seconds is not None else media.duration - start
        for rendition in renditions:
            jobs.append(_enqueue_once(
                queue, chunk_job_id(video_id, rendition.name, index), transcode_chunk,
                args=(video_id, rendition.name, index, start, seconds), kwargs=source_kwargs,
                job_timeout=bounded(BASE_TIMEOUT_SECONDS + rendition.timeout_factor * length)))
    audio_rates = sorted({rendition.audio_kbps for rendition in renditions}) if media.has_audio else []
    for audio_kbps in audio_rates:
        users = [rendition.name for rendition in renditions if rendition.audio_kbps == audio_kbps]
        jobs.append(_enqueue_once(
            queue, audio_job_id(video_id, audio_kbps), encode_audio, args=(video_id, audio_kbps, users),
            kwargs={"source_path": source_kwargs["source_path"], "source_height": media.height,
                    "demuxer": media.demuxer},
            job_timeout=bounded(BASE_TIMEOUT_SECONDS + AUDIO_TIMEOUT_FACTOR * media.duration)))
    for rendition in renditions:
        needs = [chunk_job_id(video_id, rendition.name, index) for index in range(len(chunks))]
        needs += [audio_job_id(video_id, rendition.audio_kbps)] if media.has_audio else []
        jobs.append(_enqueue_once(
            queue, join_job_id(video_id, rendition.name), join_rung, args=(video_id, rendition.name, len(chunks)),
            kwargs={"source_height": media.height, "has_audio": media.has_audio}, depends_on=needs,
            job_timeout=bounded(BASE_TIMEOUT_SECONDS + JOIN_TIMEOUT_FACTOR * media.duration)))
    return jobs


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
                   fps: float, has_audio: bool, demuxer: str, progressive: bool = False) -> None:
    """Encode one rung in the scratch directory, publish it, rewrite master.m3u8, report the rendition.

    `progressive` (the first rung): published while it encodes (`encode_growing`); otherwise published
    whole when ffmpeg is done. A rung that is already published is not encoded again: the job only makes
    sure the master lists it and the catalog knows it (a retry after a crash between publishing and
    reporting converges).
    """
    settings, catalog, storage = _context()
    with stop_if_video_gone(catalog, storage, video_id), job_scratch(settings) as scratch:
        catalog.video(video_id)
        if not publish.is_published(storage, video_id, rung):
            rendition = ladder.rendition_for(rung, source_height)
            on_seconds = progress_reporter(catalog, video_id, [rung], duration)
            limits = ResourceLimits.from_settings(settings)
            with metrics.encoding([rung], duration), originals(settings, storage).local_copy(source_path, scratch) as source, \
                    publish.staging_dir(scratch, rung) as staged:
                command = ffmpeg.rung_command(source, rendition, fps, has_audio, demuxer=demuxer,
                                              progressive=progressive)
                if progressive:
                    encode_growing(catalog, storage, video_id, rung, command, staged, scratch, limits, on_seconds)
                else:
                    ffmpeg.run(command, limits, cwd=staged, on_seconds=on_seconds)
                    publish.publish_rung(storage, staged, video_id, rung)
                metrics.count_segments(rung, staged)
        published = report_renditions(catalog, storage, video_id, [rung], scratch)
        release_original_if_ladder_done(settings, storage, video_id, source_height, published)


def encode_growing(catalog: CatalogClient, storage: Storage, video_id: int, rung: str, command: list[str],
                   staged: Path, scratch: Path, limits: ResourceLimits, on_seconds) -> None:
    """Run ffmpeg into `staged` and publish each whole segment as it lands (`publish.GrowingRung`); once
    FIRST_PLAYABLE_SEGMENTS are out, list the rung in master.m3u8 and tell the catalog it is growing
    (the video is playable from then on). The rung's playlist is finished when ffmpeg is."""
    growing = publish.GrowingRung(storage, staged, video_id, rung)
    announced = False

    def publish_and_report(seconds: float) -> None:
        nonlocal announced
        on_seconds(seconds)
        if growing.sync() >= FIRST_PLAYABLE_SEGMENTS and not announced:
            report_renditions(catalog, storage, video_id, [rung], scratch)
            announced = True

    ffmpeg.run(command, limits, cwd=staged, on_seconds=publish_and_report)
    growing.finish()


def transcode_split(video_id: int, rungs: list[str], source_path: str, source_height: int, duration: float,
                    fps: float, has_audio: bool, demuxer: str) -> None:
    """Encode several rungs with one ffmpeg (one decode, a split filter graph), each into its own scratch
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
                source = stack.enter_context(originals(settings, storage).local_copy(source_path, scratch))
                outputs = [(rendition, stack.enter_context(publish.staging_dir(scratch, rendition.name)))
                           for rendition in missing]
                command = ffmpeg.split_command(source, outputs, fps, has_audio, demuxer=demuxer)
                on_seconds = progress_reporter(catalog, video_id, [rendition.name for rendition in missing], duration)
                ffmpeg.run(command, ResourceLimits.from_settings(settings), on_seconds=on_seconds,
                           niceness=REST_NICENESS)
                for rendition, staged in outputs:
                    metrics.count_segments(rendition.name, staged)
                    publish.publish_rung(storage, staged, video_id, rendition.name)
        published = report_renditions(catalog, storage, video_id, rungs, scratch)
        release_original_if_ladder_done(settings, storage, video_id, source_height, published)


def transcode_chunk(video_id: int, rung: str, index: int, start: float, seconds: float | None, source_path: str,
                    source_height: int, duration: float, fps: float, has_audio: bool, demuxer: str) -> None:
    """Encode the video of one chunk of the source for one rung in the scratch directory and put it as
    `.chunks/<rung>/chunk_NNNN.ts` (whole or not at all); a chunk already stored is not encoded again.
    Reports the rung's progress as the share of its chunks done (never backwards: chunks only get added)."""
    settings, catalog, storage = _context()
    with stop_if_video_gone(catalog, storage, video_id), job_scratch(settings) as scratch:
        catalog.video(video_id)
        if publish.is_published(storage, video_id, rung):  # joined already (a repeated prepare): nothing to do
            return
        key = publish.chunk_key(video_id, rung, index)
        if not storage.exists(key):
            rendition = ladder.rendition_for(rung, source_height)
            length = seconds if seconds is not None else duration - start
            staged = scratch / Path(key).name
            with metrics.encoding([rung], length), originals(settings, storage).local_copy(source_path, scratch) as source:
                ffmpeg.run(ffmpeg.chunk_command(source, rendition, fps, start, seconds, staged, demuxer=demuxer),
                           ResourceLimits.from_settings(settings), niceness=REST_NICENESS)
            storage.put_file(key, staged)
        stored = publish.stored_chunks(storage, video_id, rung)
        done = sum((length if length is not None else duration - begin)
                   for number, (begin, length) in enumerate(ladder.chunks(duration))
                   if publish.chunk_key(video_id, rung, number) in stored)
        catalog.report_progress(video_id, rung, percent_done(done, duration))


def encode_audio(video_id: int, audio_kbps: int, rungs: list[str], source_path: str, source_height: int,
                 demuxer: str) -> None:
    """The audio of the whole source at `audio_kbps`, once, for the chunked rungs `rungs` to join."""
    settings, catalog, storage = _context()
    with stop_if_video_gone(catalog, storage, video_id), job_scratch(settings) as scratch:
        catalog.video(video_id)
        key = publish.audio_key(video_id, audio_kbps)
        if not storage.exists(key) and not all(publish.is_published(storage, video_id, rung) for rung in rungs):
            rendition = ladder.rendition_for(rungs[0], source_height)
            staged = scratch / Path(key).name
            with originals(settings, storage).local_copy(source_path, scratch) as source:
                ffmpeg.run(ffmpeg.audio_command(source, rendition, staged, demuxer=demuxer),
                           ResourceLimits.from_settings(settings), niceness=REST_NICENESS)
            storage.put_file(key, staged)


def join_rung(video_id: int, rung: str, chunk_count: int, source_height: int, has_audio: bool) -> None:
    """Fetch a rung's chunks and the whole-source audio into the scratch directory, join them (stream
    copy, no re-encode) into one HLS rung, publish it, rewrite master.m3u8 and report it; then drop its
    chunks."""
    settings, catalog, storage = _context()
    with stop_if_video_gone(catalog, storage, video_id), job_scratch(settings) as scratch:
        catalog.video(video_id)
        if not publish.is_published(storage, video_id, rung):
            rendition = ladder.rendition_for(rung, source_height)
            listing = publish.fetch_chunks(storage, video_id, rung, chunk_count, scratch / "chunks")
            audio = None
            if has_audio:
                audio = scratch / "audio.ts"
                storage.download(publish.audio_key(video_id, rendition.audio_kbps), audio)
            with publish.staging_dir(scratch, rung) as staged:
                ffmpeg.run(ffmpeg.join_command(listing, audio, staged), ResourceLimits.from_settings(settings))
                metrics.count_segments(rung, staged)
                publish.publish_rung(storage, staged, video_id, rung)
        published = report_renditions(catalog, storage, video_id, [rung], scratch)
        publish.remove_chunks(storage, video_id, rung)
        release_original_if_ladder_done(settings, storage, video_id, source_height, published)


def report_renditions(catalog: CatalogClient, storage: Storage, video_id: int, rungs: list[str],
                      scratch: Path) -> dict[str, publish.PublishedRung]:
    """Make master.m3u8 list every published rung (complete or growing), then tell the catalog about `rungs`;
    returns the rungs the master lists, by name."""
    published = {entry.name: entry for entry in publish.update_master(storage, video_id, scratch)}
    for rung in rungs:
        entry = published[rung]
        catalog.report_rendition(video_id, rung, entry.width, entry.height, entry.bandwidth,
                                 growing=not entry.complete)
        log.info("rung growing" if not entry.complete else "rung published",
                 extra={"fields": {"video_id": video_id, "rung": rung}})
    return published


def release_original_if_ladder_done(settings: Settings, storage: Storage, video_id: int, source_height: int,
                                    published: dict[str, publish.PublishedRung]) -> None:
    """Every rung of the ladder complete: this host's cached original is needed no more (other hosts drop
    theirs when idle, originals.IDLE_SECONDS)."""
    if all(rung.name in published and published[rung.name].complete for rung in ladder.choose_rungs(source_height)):
        originals(settings, storage).evict_video(video_id)


def make_thumbnail(video_id: int, source_path: str, duration: float, demuxer: str) -> None:
    """A JPEG of a representative frame at `hls/<id>/thumbnail.jpg`, replaced whole."""
    settings, catalog, storage = _context()
    with stop_if_video_gone(catalog, storage, video_id), job_scratch(settings) as scratch:
        catalog.video(video_id)
        staged = scratch / publish.THUMBNAIL
        with originals(settings, storage).local_copy(source_path, scratch) as source:
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
    if job.func_name.endswith(("transcode_rung", "transcode_chunk", "join_rung")):
        return [job.args[1]]
    if job.func_name.endswith("encode_audio"):
        return list(job.args[2])
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
    if job.func_name.endswith(("make_thumbnail", "prefetch_original")):
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
        originals(settings, storage).evict_video(video_id)


def report_final_failure(job: Job, connection, exc_type, exc_value, traceback) -> None:
    """rq `on_failure` callback: runs on every failure, reports only when no retry is left."""
    if not job.retries_left:
        notify_failure(job, exc_value)
