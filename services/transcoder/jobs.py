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
- The first rung: published while it encodes (`transcode_rung(progressive=True)`): one job for a source
  of one first-rung chunk (`ladder.FIRST_RUNG_CHUNK_SECONDS`, 60 s) or less. Of a longer source that job
  encodes the first chunk only (the video is playable a few seconds after the upload); the other chunks
  of the first rung are chunk jobs enqueued right after it (ahead of the other rungs), each appended to
  the rung's growing playlist as soon as every chunk before it is in, by whichever job completes that
  (`append_ready`, under a Redis lock: any worker on any host), with the packets of the whole-source
  audio of their time (one AAC encoder: no gap, overlap or priming at a chunk boundary; of a long source
  the first minutes' chunks take the same packets from an encode of those minutes only, queued before
  them: `FIRST_AUDIO_CHUNKS`). The playlist ends (`#EXT-X-ENDLIST`) with the last chunk.
- The rest of a source of one first-rung chunk or less: one job running one ffmpeg that decodes the
  source once (a split filter graph): least CPU.
- The rest of a longer source: one job per chunk (`ladder.chunks`: 60 s, or 32 s of a source over 10
  minutes, so many hosts share it evenly) that any worker on any host can take (`transcode_chunk`: the
  chunk decoded once, a split filter graph encoding it for every rung of the rest), the audio once per
  audio bit rate for the whole source (`encode_audio`), and per rung a join job that depends on them
  (`join_rung`): a stream copy into one continuous HLS rung. Chunks and audio travel through the storage
  (`hls/<id>/.chunks/`), never a shared disk. A killed worker loses one chunk.
"""
from __future__ import annotations

import contextlib
import logging
import math
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
# The rest of the ladder's video yields the cores to first rungs (its own video's and others'): what a viewer
# waits for. Never the audio: every join and the first rung's appended chunks wait for it.
REST_NICENESS = 10
AUDIO_TIMEOUT_FACTOR = 0.5
# The growing first rung appends each chunk with the whole-source audio's packets of its time. Of a long
# source that audio takes minutes (AAC at 16-40x realtime on a busy core: 1.5-4 minutes for an hour), and
# with one worker a viewer would reach the end of the first chunk before it. So the chunks of the first
# FIRST_AUDIO_CHUNKS first-rung chunk lengths take theirs from an encode of that much of the source only
# (the same packets: `ffmpeg.audio_command(seconds=...)`), queued right after the first chunk; the whole
# audio comes after their chunk jobs, well before a viewer gets past them.
FIRST_AUDIO_CHUNKS = 5
PREFETCH_TIMEOUT_SECONDS = 600
JOIN_TIMEOUT_FACTOR = 0.2
# Appending the chunks of the growing first rung: one appender at a time per rung (any host). The lock
# expires if its holder dies; a job waiting longer than that raises and is retried.
APPEND_LOCK_SECONDS = 120
APPEND_LOCK_WAIT_SECONDS = 300


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


def chunk_job_id(video_id: int, index: int, rung: str | None = None) -> str:
    """Chunk `index` of every chunked rung of the rest (`video-<id>-chunk-<n>`), or of the growing first
    rung `rung` alone (`video-<id>-<rung>-chunk-<n>`)."""
    return f"video-{video_id}-{rung}-chunk-{index}" if rung else f"video-{video_id}-chunk-{index}"


def audio_job_id(video_id: int, audio_kbps: int, seconds: float | None = None) -> str:
    """The whole-source audio's job (`video-<id>-audio-<kbps>k`), or that of its first `seconds`."""
    first = f"-first-{seconds:g}s" if seconds is not None else ""
    return f"video-{video_id}-audio-{audio_kbps}k{first}"


def first_audio_seconds(duration: float) -> float | None:
    """How much of a source's audio the growing first rung gets first, on its own (FIRST_AUDIO_CHUNKS):
    None for a source that is not much longer (its whole audio is quick)."""
    chunks = ladder.first_rung_chunks(duration)
    return chunks[FIRST_AUDIO_CHUNKS][0] if len(chunks) > FIRST_AUDIO_CHUNKS else None


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
    its picture), then the rest: one split job for a source of one chunk, else one job per chunk (every
    rung of the rest), the audio and one join job per rung (module docstring). `source` is the original's
    storage key.

    Every job's timeout grows with the duration but never beyond `max_timeout` (default: the setting)."""
    max_timeout = max_timeout or Settings.from_env().transcode_job_timeout_seconds
    source_kwargs = {"source_path": source, "source_height": media.height, "duration": media.duration,
                     "fps": media.fps, "has_audio": media.has_audio, "demuxer": media.demuxer}

    def bounded(seconds: float) -> int:
        return int(min(seconds, max_timeout))

    first_chunks = ladder.first_rung_chunks(media.duration)
    growing = len(first_chunks) > 1  # the first rung: its first chunk progressive, the others chunk jobs

    def first_rung_job(rendition: ladder.Rendition) -> Job | None:
        head = {"head_seconds": first_chunks[0][1]} if growing else {}
        return _enqueue_once(
            queue, rung_job_id(video_id, rendition.name), transcode_rung,
            args=(video_id, rendition.name), kwargs=source_kwargs | {"progressive": True} | head,
            job_timeout=bounded(BASE_TIMEOUT_SECONDS + rendition.timeout_factor * (first_chunks[0][1] if growing
                                                                                   else media.duration)),
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

    jobs = [first_rung_job(rungs[0]), thumbnail_job()]
    if growing:
        publish.mark_chunks_pending(storage or storage_from_settings(Settings.from_env()), video_id,
                                    [rendition.name for rendition in rungs])
        first_audio = [rungs[0].audio_kbps]
        early = first_audio_seconds(media.duration) if media.has_audio else None
        if early is not None:  # a long source: the first minutes' audio, their chunks, then the whole audio
            jobs += enqueue_audio(queue, video_id, media, rungs, first_audio, source_kwargs, bounded,
                                  growing=rungs[0].name, seconds=early)
            jobs += enqueue_chunk_jobs(queue, video_id, media, [rungs[0]], first_chunks[1:FIRST_AUDIO_CHUNKS],
                                       source_kwargs, bounded, growing=True, first_index=1)
        jobs += enqueue_audio(queue, video_id, media, rungs, first_audio, source_kwargs, bounded,
                              growing=rungs[0].name)
        later = FIRST_AUDIO_CHUNKS if early is not None else 1
        jobs += enqueue_chunk_jobs(queue, video_id, media, [rungs[0]], first_chunks[later:], source_kwargs, bounded,
                                   growing=True, first_index=later)
    if not growing and rungs[1:]:
        jobs.append(rest_job(rungs[1:]))
    elif rungs[1:]:
        jobs += enqueue_chunked(queue, video_id, media, rungs[1:], ladder.chunks(media.duration), source_kwargs,
                                bounded)
    return [job for job in jobs if job is not None]


def enqueue_chunk_jobs(queue: Queue, video_id: int, media: probe.SourceMedia, renditions: list[ladder.Rendition],
                       chunks: list[tuple[float, float | None]], source_kwargs: dict, bounded,
                       growing: bool = False, first_index: int = 0) -> list[Job | None]:
    """One job per chunk, in order, each encoding the chunk for every rung of `renditions` (one decode).
    `growing`: chunks of the first rung (`renditions` is that rung alone), each appended to its playlist
    once the chunks before it are in (which takes little: a stream copy)."""
    jobs = []
    extra = {"growing": True} if growing else {}
    appending = JOIN_TIMEOUT_FACTOR * media.duration if growing else 0
    factor = sum(rendition.timeout_factor for rendition in renditions)
    for index, (start, seconds) in enumerate(chunks, start=first_index):
        length = seconds if seconds is not None else media.duration - start
        jobs.append(_enqueue_once(
            queue, chunk_job_id(video_id, index, renditions[0].name if growing else None), transcode_chunk,
            args=(video_id, [rendition.name for rendition in renditions], index, start, seconds),
            kwargs=source_kwargs | extra, job_timeout=bounded(BASE_TIMEOUT_SECONDS + factor * length + appending)))
    return jobs


def enqueue_audio(queue: Queue, video_id: int, media: probe.SourceMedia, renditions: list[ladder.Rendition],
                  rates: list[int], source_kwargs: dict, bounded, growing: str | None = None,
                  seconds: float | None = None) -> list[Job | None]:
    """The whole-source audio once per bit rate in `rates`, for every rung of `renditions` at that rate;
    `growing`: the growing first rung uses it too (its chunks waiting for it are appended when it is in).
    `seconds`: the audio of the source's first `seconds` only, for the growing first rung alone."""
    jobs = []
    for audio_kbps in rates if media.has_audio else []:
        users = [rendition.name for rendition in renditions if rendition.audio_kbps == audio_kbps]
        users = [growing] if seconds is not None else users
        extra = {"growing": growing, "duration": media.duration} if growing else {}
        extra |= {"seconds": seconds} if seconds is not None else {}
        length = seconds if seconds is not None else media.duration
        jobs.append(_enqueue_once(
            queue, audio_job_id(video_id, audio_kbps, seconds), encode_audio, args=(video_id, audio_kbps, users),
            kwargs={"source_path": source_kwargs["source_path"], "source_height": media.height,
                    "demuxer": media.demuxer} | extra,
            job_timeout=bounded(BASE_TIMEOUT_SECONDS + AUDIO_TIMEOUT_FACTOR * length)))
    return jobs


def enqueue_chunked(queue: Queue, video_id: int, media: probe.SourceMedia, renditions: list[ladder.Rendition],
                    chunks: list[tuple[float, float | None]], source_kwargs: dict, bounded) -> list[Job | None]:
    """The audio once per audio bit rate (the growing first rung's rate is enqueued before, with it; the
    audio is short work and every join needs it, so it comes first: no join waits for it at the end), one
    job per chunk for every rung of `renditions` (chunk by chunk, so every rung advances), then per rung a
    join job deferred until every chunk job and its audio are done."""
    jobs = enqueue_audio(queue, video_id, media, renditions,
                         sorted({rendition.audio_kbps for rendition in renditions}), source_kwargs, bounded)
    jobs += enqueue_chunk_jobs(queue, video_id, media, renditions, chunks, source_kwargs, bounded)
    for rendition in renditions:
        needs = [chunk_job_id(video_id, index) for index in range(len(chunks))]
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
                   fps: float, has_audio: bool, demuxer: str, progressive: bool = False,
                   head_seconds: float | None = None) -> None:
    """Encode one rung in the scratch directory, publish it, rewrite master.m3u8, report the rendition.

    `progressive` (the first rung): published while it encodes (`encode_growing`); otherwise published
    whole when ffmpeg is done. `head_seconds`: only the first chunk (of that length) of the progressive
    rung; its playlist stays EVENT for the other chunks, appended after it (`append_ready`). A rung (or
    first chunk) that is already published is not encoded again: the job only makes sure the master lists
    it and the catalog knows it (a retry after a crash between publishing and reporting converges).
    """
    settings, catalog, storage = _context()
    with stop_if_video_gone(catalog, storage, video_id), job_scratch(settings) as scratch:
        catalog.video(video_id)
        published = publish.is_published(storage, video_id, rung)
        head_done = head_seconds is not None and not published and \
            publish.growing_state(storage, video_id, rung).chunks > 0
        if not published and not head_done:
            rendition = ladder.rendition_for(rung, source_height)
            length = head_seconds if head_seconds is not None else duration
            on_seconds = progress_reporter(catalog, video_id, [rung], duration)
            limits = ResourceLimits.from_settings(settings)
            with metrics.encoding([rung], length), originals(settings, storage).local_copy(source_path, scratch) as source, \
                    publish.staging_dir(scratch, rung) as staged:
                command = ffmpeg.rung_command(source, rendition, fps, has_audio, demuxer=demuxer,
                                              progressive=progressive, head_seconds=head_seconds)
                if progressive:
                    encode_growing(catalog, storage, video_id, rung, command, staged, scratch, limits, on_seconds,
                                   finish=head_seconds is None)
                else:
                    ffmpeg.run(command, limits, cwd=staged, on_seconds=on_seconds)
                    publish.publish_rung(storage, staged, video_id, rung)
                metrics.count_segments(rung, staged)
            if head_seconds is not None:
                publish.save_growing_state(storage, video_id, rung, publish.GrowingState(chunks=1))
        listed = report_renditions(catalog, storage, video_id, [rung], scratch)
        if head_seconds is not None and not published:
            append_ready(settings, catalog, storage, video_id, rung, source_height, duration, has_audio, scratch)
        else:
            release_original_if_ladder_done(settings, storage, video_id, source_height, listed)


def encode_growing(catalog: CatalogClient, storage: Storage, video_id: int, rung: str, command: list[str],
                   staged: Path, scratch: Path, limits: ResourceLimits, on_seconds, finish: bool = True) -> None:
    """Run ffmpeg into `staged` and publish each whole segment as it lands (`publish.GrowingRung`); once
    FIRST_PLAYABLE_SEGMENTS are out, list the rung in master.m3u8 and tell the catalog it is growing
    (the video is playable from then on). The rung's playlist is finished when ffmpeg is (`finish`), or
    stays EVENT for the chunks appended after it."""
    growing = publish.GrowingRung(storage, staged, video_id, rung)
    announced = False

    def publish_and_report(seconds: float) -> None:
        nonlocal announced
        on_seconds(seconds)
        if growing.sync() >= FIRST_PLAYABLE_SEGMENTS and not announced:
            report_renditions(catalog, storage, video_id, [rung], scratch)
            announced = True

    ffmpeg.run(command, limits, cwd=staged, on_seconds=publish_and_report)
    if finish:
        growing.finish()
    else:
        growing.sync()


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


def transcode_chunk(video_id: int, rungs: list[str], index: int, start: float, seconds: float | None,
                    source_path: str, source_height: int, duration: float, fps: float, has_audio: bool, demuxer: str,
                    growing: bool = False) -> None:
    """Encode the video of one chunk of the source for every rung of `rungs` with one ffmpeg (one decode,
    a split filter graph) in the scratch directory, and put each as `.chunks/<rung>/chunk_NNNN.ts` (whole
    or not at all, once ffmpeg has written every one). Rungs already joined and chunks already stored are
    not encoded again. Reports each rung's progress as the share of its chunks stored (never backwards:
    chunks only get added).

    `growing`: a chunk of the growing first rung (`rungs` is that rung alone): then every chunk that is
    ready is appended to its playlist, in order (`append_ready`), which reports the progress."""
    settings, catalog, storage = _context()
    with stop_if_video_gone(catalog, storage, video_id), job_scratch(settings) as scratch:
        catalog.video(video_id)
        # Joined already (a repeated prepare): nothing to do for that rung.
        pending = [rung for rung in rungs if not publish.is_published(storage, video_id, rung)]
        missing = [rung for rung in pending if not storage.exists(publish.chunk_key(video_id, rung, index))]
        if missing:
            length = seconds if seconds is not None else duration - start
            outputs = [(ladder.rendition_for(rung, source_height),
                        scratch / rung / Path(publish.chunk_key(video_id, rung, index)).name) for rung in missing]
            for _, staged in outputs:
                staged.parent.mkdir()
            with metrics.encoding(missing, length), \
                    originals(settings, storage).local_copy(source_path, scratch) as source:
                ffmpeg.run(ffmpeg.chunk_command(source, outputs, fps, start, seconds, demuxer=demuxer, growing=growing),
                           ResourceLimits.from_settings(settings), niceness=0 if growing else REST_NICENESS)
            for rendition, staged in outputs:
                storage.put_file(publish.chunk_key(video_id, rendition.name, index), staged)
        if growing:
            for rung in pending:
                append_ready(settings, catalog, storage, video_id, rung, source_height, duration, has_audio, scratch)
            return
        chunks = ladder.chunks(duration)
        for rung in pending:
            stored = publish.stored_chunks(storage, video_id, rung)
            done = sum((length if length is not None else duration - begin)
                       for number, (begin, length) in enumerate(chunks)
                       if publish.chunk_key(video_id, rung, number) in stored)
            catalog.report_progress(video_id, rung, percent_done(done, duration))


def encode_audio(video_id: int, audio_kbps: int, rungs: list[str], source_path: str, source_height: int,
                 demuxer: str, growing: str | None = None, duration: float | None = None,
                 seconds: float | None = None) -> None:
    """The audio of the whole source at `audio_kbps`, once, for the chunked rungs `rungs` to join;
    `growing`: the growing first rung uses it too: its chunks that waited for it are appended.
    `seconds`: the audio of the source's first `seconds` only, for the growing first rung's first chunks
    (not encoded if the whole audio is there already)."""
    settings, catalog, storage = _context()
    with stop_if_video_gone(catalog, storage, video_id), job_scratch(settings) as scratch:
        catalog.video(video_id)
        key = publish.audio_key(video_id, audio_kbps, seconds)
        needed = not storage.exists(key) and not all(publish.is_published(storage, video_id, rung) for rung in rungs)
        if needed and seconds is not None:
            needed = not storage.exists(publish.audio_key(video_id, audio_kbps))
        if needed:
            rendition = ladder.rendition_for(rungs[0], source_height)
            staged = scratch / Path(key).name
            with originals(settings, storage).local_copy(source_path, scratch) as source:
                ffmpeg.run(ffmpeg.audio_command(source, rendition, staged, demuxer=demuxer, seconds=seconds),
                           ResourceLimits.from_settings(settings))
            storage.put_file(key, staged)
        if growing and not publish.is_published(storage, video_id, growing):
            append_ready(settings, catalog, storage, video_id, growing, source_height, duration, True, scratch)


def fetch_first_rung_audio(storage: Storage, video_id: int, audio_kbps: int, duration: float, until: float | None,
                           path: Path) -> float | None:
    """Into `path`, the audio the growing first rung appends a chunk ending at `until` (None: the end)
    with: the whole source's if it is stored, else the first minutes' if that reaches `until`. Returns
    how far the file reaches (math.inf: the end), or None if neither is there yet."""
    if storage.exists(publish.audio_key(video_id, audio_kbps)):
        storage.download(publish.audio_key(video_id, audio_kbps), path)
        return math.inf
    early = first_audio_seconds(duration)
    if early is not None and until is not None and until <= early and \
            storage.exists(publish.audio_key(video_id, audio_kbps, early)):
        storage.download(publish.audio_key(video_id, audio_kbps, early), path)
        return early
    return None


def append_ready(settings: Settings, catalog: CatalogClient, storage: Storage, video_id: int, rung: str,
                 source_height: int, duration: float, has_audio: bool, scratch: Path) -> None:
    """Append to the growing first rung's playlist every chunk that is ready, strictly in order: the next
    one missing (its video, or the whole-source audio) ends the round; whichever job stores it appends it
    then. One appender per rung at a time on any host (a Redis lock, re-armed after each chunk: a dead
    holder's expires). The last chunk finishes the playlist (VOD, #EXT-X-ENDLIST): the rung is reported
    complete and its chunks go."""
    chunks = ladder.first_rung_chunks(duration)
    rendition = ladder.rendition_for(rung, source_height)
    lock = Redis.from_url(settings.redis_url).lock(f"videoflix:transcoder:append:{video_id}:{rung}",
                                                   timeout=APPEND_LOCK_SECONDS,
                                                   blocking_timeout=APPEND_LOCK_WAIT_SECONDS)
    if not lock.acquire():
        raise TimeoutError(f"the appender of {rung} of video {video_id} did not finish in time")
    try:
        state = publish.growing_state(storage, video_id, rung)
        audio = scratch / "audio.ts" if has_audio else None
        audio_reaches = 0.0  # how far the audio file in the scratch directory reaches (source seconds)
        while 0 < state.chunks < len(chunks):
            index = state.chunks
            key = publish.chunk_key(video_id, rung, index)
            if not storage.exists(key):
                break
            start, seconds = chunks[index]
            end = start + seconds if seconds is not None else None
            if audio is not None and audio_reaches < (end if end is not None else math.inf):
                audio_reaches = fetch_first_rung_audio(storage, video_id, rendition.audio_kbps, duration, end, audio)
                if audio_reaches is None:
                    break
            shift = state.shift_ticks
            if shift is None:
                first = publish.playlist_segments(publish.rung_playlist(storage, video_id, rung) or "")[0][1]
                with storage.local_copy(f"{publish.rung_prefix(video_id, rung)}/{first}", scratch) as segment:
                    shift = publish.timestamp_shift(segment, audio)
            last = index == len(chunks) - 1
            with storage.local_copy(key, scratch) as chunk, publish.staging_dir(scratch, rung) as staged:
                ffmpeg.run(ffmpeg.append_command(chunk, audio, staged, start, end, shift / ffmpeg.MPEGTS_HZ,
                                                 round(start / ffmpeg.SEGMENT_SECONDS)),
                           ResourceLimits.from_settings(settings))
                publish.append_chunk(storage, staged, video_id, rung, round(start / ffmpeg.SEGMENT_SECONDS), last)
                metrics.count_segments(rung, staged)
            state = publish.GrowingState(chunks=index + 1, shift_ticks=shift)
            publish.save_growing_state(storage, video_id, rung, state)
            catalog.report_progress(video_id, rung, percent_done(end if end is not None else duration, duration))
            log.info("chunk appended", extra={"fields": {"video_id": video_id, "rung": rung, "chunk": index}})
            lock.reacquire()
    finally:
        with contextlib.suppress(Exception):
            lock.release()
    if state.chunks == len(chunks):
        listed = report_renditions(catalog, storage, video_id, [rung], scratch)
        publish.remove_chunks(storage, video_id, rung)
        release_original_if_ladder_done(settings, storage, video_id, source_height, listed)


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
    if job.func_name.endswith(("transcode_rung", "join_rung")):
        return [job.args[1]]
    if job.func_name.endswith("encode_audio"):
        return list(job.args[2])
    if job.func_name.endswith(("transcode_split", "transcode_chunk")):
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
