"""Media layout under MEDIA_DIR/hls/<id>/, atomic rung publishing and the master playlist.

A rung is written into a hidden `.tmp-<rung>-<random>/` sibling and renamed to `<rung>/` when ffmpeg is
done, so a rung directory exists only when it is complete: existence = published (the gateway relies on
it). `master.m3u8` is rebuilt from what is on disk, under an flock on `.lock`, and replaced atomically.
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

from .ffmpeg import PLAYLIST
from .ladder import BY_NAME
from .probe import OutputMedia, probe_output

HLS_DIR = "hls"
MASTER = "master.m3u8"
THUMBNAIL = "thumbnail.jpg"
LOCK = ".lock"
TMP_PREFIX = ".tmp-"
# avc1.PPCCLL: profile_idc and constraint flags as x264 writes them, per ffprobe profile name.
AVC_PROFILES = {"Constrained Baseline": "42c0", "Main": "4d40", "High": "6400"}
AAC_LC = "mp4a.40.2"


@dataclass(frozen=True)
class PublishedRung:
    name: str
    width: int
    height: int
    bandwidth: int  # peak segment bit rate, bits/s (container overhead included, as HLS wants)
    average_bandwidth: int
    codecs: str


def video_dir(media_dir: Path, video_id: int) -> Path:
    return Path(media_dir) / HLS_DIR / str(video_id)


def is_published(directory: Path, rung: str) -> bool:
    return (directory / rung / PLAYLIST).is_file()


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
    segments, duration = [], None
    for line in playlist.read_text().splitlines():
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
    rung_dirs = [path for path in directory.iterdir() if path.name in BY_NAME and
                 is_published(directory, path.name)] if directory.is_dir() else []
    return sorted((measure_rung(path) for path in rung_dirs), key=lambda rung: rung.height)


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
    """Rewrite master.m3u8 to list every published rung; returns them."""
    with video_lock(directory):
        rungs = published_rungs(directory)
        write_atomically(directory / MASTER, master_playlist(rungs).encode())
    return rungs
