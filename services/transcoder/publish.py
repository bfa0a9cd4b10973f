"""Media layout under MEDIA_DIR/hls/<id>/, atomic rung publishing and the master playlist.

A rung is written into a hidden `.tmp-<rung>-<random>/` sibling and renamed to `<rung>/` when ffmpeg is
done. The first rung instead grows in place (`GrowingRung`): each segment is published once whole, then
its playlist is rewritten (an EVENT playlist without `#EXT-X-ENDLIST`); it is complete once the playlist
ends with `#EXT-X-ENDLIST`. Every file is written whole or not at all, so whatever the gateway serves is
whole. `master.m3u8` is rebuilt from what is published, under an flock on `.lock`, and replaced atomically.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .ffmpeg import PLAYLIST, SEGMENT_SECONDS
from .ladder import BY_NAME, small_source_rendition
from .probe import OutputMedia, probe_output

HLS_DIR = "hls"
MASTER = "master.m3u8"
THUMBNAIL = "thumbnail.jpg"
LOCK = ".lock"
TMP_PREFIX = ".tmp-"
CHUNKS = ".chunks"  # chunk jobs' outputs until their rungs are joined: <rung>/chunk_0000.ts, audio_128k.ts
# avc1.PPCCLL: profile_idc and constraint flags as x264 writes them, per ffprobe profile name.
AVC_PROFILES = {"Constrained Baseline": "42c0", "Main": "4d40", "High": "6400"}
AAC_LC = "mp4a.40.2"
ENDLIST = "#EXT-X-ENDLIST"
# MPEG-TS and PES headers on top of the encoders' bit rates: a growing rung's BANDWIDTH until measured.
TS_OVERHEAD = 1.1


@dataclass(frozen=True)
class PublishedRung:
    name: str
    width: int
    height: int
    bandwidth: int  # peak segment bit rate, bits/s (container overhead included, as HLS wants)
    average_bandwidth: int
    codecs: str
    complete: bool = True  # False: still growing, bandwidths estimated from the rung's settings


def video_dir(media_dir: Path, video_id: int) -> Path:
    return Path(media_dir) / HLS_DIR / str(video_id)


def is_published(directory: Path, rung: str) -> bool:
    """Complete: its playlist exists and is finished (a growing rung's is not yet)."""
    playlist = directory / rung / PLAYLIST
    return playlist.is_file() and is_finished(playlist.read_text())


def is_growing(directory: Path, rung: str) -> bool:
    """Playable but still being encoded: an unfinished playlist listing at least one segment."""
    playlist = directory / rung / PLAYLIST
    return playlist.is_file() and not is_finished(text := playlist.read_text()) and bool(parse_segments(text))


def is_finished(playlist_text: str) -> bool:
    return playlist_text.rstrip().endswith(ENDLIST)


@contextlib.contextmanager
def staging_dir(directory: Path, rung: str) -> Iterator[Path]:
    """A fresh hidden directory to write one rung into; gone afterwards unless it was published.

    Leftovers of earlier attempts at this rung (a killed worker) are removed first: a rung has one job,
    and rq runs a retry only after the previous attempt is over.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(f"{TMP_PREFIX}{rung}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staged = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{rung}-", dir=directory))
    try:
        yield staged
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def publish_rung(staged: Path, directory: Path, rung: str) -> bool:
    """Rename a complete rung into place; False if that rung was already published."""
    staged.chmod(0o755)  # mkdtemp makes it private; the gateway's nginx must read it
    try:
        os.rename(staged, directory / rung)
    except OSError as error:
        if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return False
        raise
    return True


def chunk_dir(directory: Path, rung: str) -> Path:
    return directory / CHUNKS / rung


def chunk_path(directory: Path, rung: str, index: int) -> Path:
    return chunk_dir(directory, rung) / f"chunk_{index:04d}.ts"


def audio_path(directory: Path, audio_kbps: int) -> Path:
    return directory / CHUNKS / f"audio_{audio_kbps}k.ts"


@contextlib.contextmanager
def whole_file(target: Path) -> Iterator[Path]:
    """A temporary name beside `target` to write to; renamed to `target` when the block succeeds, so
    `target` exists only whole (a killed job leaves at most a temporary file its retry overwrites)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f"{TMP_PREFIX}{target.name}")
    try:
        yield staged
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)


def chunk_list(directory: Path, rung: str, count: int) -> Path:
    """The concat demuxer's list of a rung's chunks (names relative to it), in order; every one must exist."""
    folder = chunk_dir(directory, rung)
    names = [chunk_path(directory, rung, index).name for index in range(count)]
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"chunks missing for {rung}: {', '.join(missing)}")
    listing = folder / "chunks.txt"
    write_atomically(listing, "".join(f"file '{name}'\n" for name in names).encode())
    return listing


def remove_chunks(directory: Path, rung: str) -> None:
    """A joined rung's chunks go; the audio files too once no rung waits for them (no chunk folder left)."""
    with video_lock(directory):
        shutil.rmtree(chunk_dir(directory, rung), ignore_errors=True)
        chunks = directory / CHUNKS
        if chunks.is_dir() and not any(path.is_dir() for path in chunks.iterdir()):
            shutil.rmtree(chunks, ignore_errors=True)


def write_atomically(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never a partial one."""
    descriptor, temporary = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def video_lock(directory: Path) -> Iterator[None]:
    """Serialises master playlist updates of one video across worker processes."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def playlist_segments(playlist: Path) -> list[tuple[float, str]]:
    """(duration, uri) of every segment of a media playlist."""
    return parse_segments(playlist.read_text())


def parse_segments(text: str) -> list[tuple[float, str]]:
    segments, duration = [], None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:"):].split(",", 1)[0])
        elif line and not line.startswith("#") and duration is not None:
            segments.append((duration, line))
            duration = None
    return segments


def codecs(media: OutputMedia) -> str:
    if media.video_codec != "h264" or media.video_profile not in AVC_PROFILES:
        raise ValueError(f"unexpected video codec {media.video_codec} {media.video_profile}")
    video = f"avc1.{AVC_PROFILES[media.video_profile]}{media.video_level:02x}"
    return f"{video},{AAC_LC}" if media.audio_codec == "aac" else video


def media_playlist(segments: list[tuple[float, str]], finished: bool) -> str:
    """A rung's playlist: EVENT (players start at 0:00, re-read it for new segments) while it grows,
    VOD with `#EXT-X-ENDLIST` once finished."""
    target = max([SEGMENT_SECONDS, *(math.ceil(duration) for duration, _ in segments)])
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{target}", "#EXT-X-MEDIA-SEQUENCE:0",
             f"#EXT-X-PLAYLIST-TYPE:{'VOD' if finished else 'EVENT'}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if not finished:
        lines.append("#EXT-X-START:TIME-OFFSET=0")
    for duration, uri in segments:
        lines += [f"#EXTINF:{duration:.6f},", uri]
    if finished:
        lines.append(ENDLIST)
    return "\n".join(lines) + "\n"


class GrowingRung:
    """Publishes a rung while ffmpeg writes it into `staged` (an EVENT playlist of whole segments).

    `sync()` publishes every segment ffmpeg's playlist lists that is not published yet, one whole file
    after the other, then rewrites the rung's playlist; `finish()` publishes the rest and the finished
    playlist. The published playlist never shrinks: a retry re-encoding the rung from the start rewrites
    segments already listed (same frames: fixed GOP) without taking them away from players.
    """

    def __init__(self, staged: Path, directory: Path, rung: str):
        self.staged, self.target = staged, directory / rung
        playlist = self.target / PLAYLIST
        self.published = len(playlist_segments(playlist)) if playlist.is_file() else 0
        self.copied = 0

    def sync(self, finished: bool = False) -> int:
        """Publish what ffmpeg has finished; returns the number of segments listed now."""
        playlist = self.staged / PLAYLIST
        text = playlist.read_text() if playlist.is_file() else ""
        segments = parse_segments(text)
        if segments[self.copied:] and not self.target.is_dir():
            self.target.mkdir(mode=0o755, parents=True)
        for _, uri in segments[self.copied:]:
            write_atomically(self.target / uri, (self.staged / uri).read_bytes())
        self.copied = len(segments)
        if finished and not is_finished(text):
            raise ValueError(f"{playlist} is not finished")
        if finished or len(segments) > self.published:
            write_atomically(self.target / PLAYLIST, media_playlist(segments, finished).encode())
            self.published = len(segments)
        return self.published

    def finish(self) -> int:
        return self.sync(finished=True)


def estimated_rung(rung_dir: Path) -> PublishedRung:
    """A growing rung in the master playlist: size and codecs from its first segment, bandwidth from its
    encoder settings (`ladder`'s row, or the small-source rung for a picture lower than that row)."""
    segments = playlist_segments(rung_dir / PLAYLIST)
    media = probe_output(rung_dir / segments[0][1])
    rendition = BY_NAME[rung_dir.name]
    if media.height < rendition.height:
        rendition = small_source_rendition(media.height)
    peak = round((rendition.maxrate_kbps + rendition.audio_kbps) * 1000 * TS_OVERHEAD)
    average = round((rendition.video_kbps + rendition.audio_kbps) * 1000 * TS_OVERHEAD)
    return PublishedRung(rung_dir.name, media.width, media.height, peak, average, codecs(media), complete=False)


def measure_rung(rung_dir: Path) -> PublishedRung:
    """Bandwidths from the segment sizes and durations, size and codecs from the first segment."""
    segments = playlist_segments(rung_dir / PLAYLIST)
    if not segments:
        raise ValueError(f"{rung_dir / PLAYLIST} lists no segments")
    bits = [(rung_dir / uri).stat().st_size * 8 for _, uri in segments]
    peak = max(size / max(duration, 0.001) for size, (duration, _) in zip(bits, segments))
    average = sum(bits) / max(sum(duration for duration, _ in segments), 0.001)
    media = probe_output(rung_dir / segments[0][1])
    return PublishedRung(rung_dir.name, media.width, media.height, math.ceil(peak), math.ceil(average),
                         codecs(media))


def published_rungs(directory: Path) -> list[PublishedRung]:
    """Every complete rung, measured, and every growing one, estimated."""
    rungs = []
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        if path.name in BY_NAME and is_published(directory, path.name):
            rungs.append(measure_rung(path))
        elif path.name in BY_NAME and is_growing(directory, path.name):
            rungs.append(estimated_rung(path))
    return sorted(rungs, key=lambda rung: rung.height)


def master_playlist(rungs: list[PublishedRung]) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for rung in rungs:
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={rung.bandwidth},AVERAGE-BANDWIDTH={rung.average_bandwidth},"
            f'RESOLUTION={rung.width}x{rung.height},CODECS="{rung.codecs}"'
        )
        lines.append(f"{rung.name}/{PLAYLIST}")
    return "\n".join(lines) + "\n"


def update_master(directory: Path) -> list[PublishedRung]:
    """Rewrite master.m3u8 to list every published rung, complete or growing; returns them."""
    with video_lock(directory):
        rungs = published_rungs(directory)
        write_atomically(directory / MASTER, master_playlist(rungs).encode())
    return rungs
