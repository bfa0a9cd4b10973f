"""Media layout under `hls/<id>/` in the media storage, rung publishing and the master playlist.

A rung is encoded into a scratch directory on the transcoder's own disk and published through the
storage interface: on local disk the directory is renamed into place, in S3 its segments go up first and
its playlist last. Either way a rung's playlist exists only when the rung is complete: existence =
published (the gateway relies on it). `master.m3u8` is rebuilt from what the storage holds and put last;
two workers finishing rungs at once converge (each re-reads the rungs after writing and writes again
when it missed one).
"""
from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from videoflix_shared.storage import Storage

from .ffmpeg import PLAYLIST
from .ladder import BY_NAME
from .probe import OutputMedia, probe_output

HLS_DIR = "hls"
MASTER = "master.m3u8"
THUMBNAIL = "thumbnail.jpg"
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


def video_prefix(video_id: int) -> str:
    return f"{HLS_DIR}/{video_id}"


def rung_prefix(video_id: int, rung: str) -> str:
    return f"{video_prefix(video_id)}/{rung}"


def is_published(storage: Storage, video_id: int, rung: str) -> bool:
    return storage.exists(f"{rung_prefix(video_id, rung)}/{PLAYLIST}")


@contextlib.contextmanager
def staging_dir(scratch: Path, rung: str) -> Iterator[Path]:
    """A fresh directory in the job's scratch space to encode one rung into; gone afterwards."""
    staged = Path(tempfile.mkdtemp(prefix=f"{rung}-", dir=scratch))
    try:
        yield staged
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def publish_rung(storage: Storage, staged: Path, video_id: int, rung: str) -> bool:
    """Publish a complete rung (segments, then playlist); False if that rung was already published."""
    return storage.publish_directory(staged, rung_prefix(video_id, rung))


def playlist_segments(playlist: str) -> list[tuple[float, str]]:
    """(duration, uri) of every segment of a media playlist's text."""
    segments, duration = [], None
    for line in playlist.splitlines():
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


def measure_rung(storage: Storage, video_id: int, rung: str, scratch: Path) -> PublishedRung:
    """Bandwidths from the stored segment sizes and durations, size and codecs from the first segment
    (fetched into `scratch` for ffprobe)."""
    prefix = rung_prefix(video_id, rung)
    segments = playlist_segments((storage.get(f"{prefix}/{PLAYLIST}") or b"").decode())
    if not segments:
        raise ValueError(f"{prefix}/{PLAYLIST} lists no segments")
    sizes = {item.key: item.size for item in storage.list(f"{prefix}/")}
    bits = [sizes.get(f"{prefix}/{uri}", 0) * 8 for _, uri in segments]
    peak = max(size / max(duration, 0.001) for size, (duration, _) in zip(bits, segments))
    average = sum(bits) / max(sum(duration for duration, _ in segments), 0.001)
    with storage.local_copy(f"{prefix}/{segments[0][1]}", scratch) as first:
        media = probe_output(first)
    return PublishedRung(rung, media.width, media.height, math.ceil(peak), math.ceil(average), codecs(media))


def published_rung_names(storage: Storage, video_id: int) -> list[str]:
    prefix = f"{video_prefix(video_id)}/"
    names = {item.key[len(prefix):].split("/", 1)[0] for item in storage.list(prefix)
             if item.key.endswith(f"/{PLAYLIST}")}
    return sorted(name for name in names if name in BY_NAME)


def master_playlist(rungs: list[PublishedRung]) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for rung in rungs:
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={rung.bandwidth},AVERAGE-BANDWIDTH={rung.average_bandwidth},"
            f'RESOLUTION={rung.width}x{rung.height},CODECS="{rung.codecs}"'
        )
        lines.append(f"{rung.name}/{PLAYLIST}")
    return "\n".join(lines) + "\n"


def update_master(storage: Storage, video_id: int, scratch: Path) -> list[PublishedRung]:
    """Rewrite master.m3u8 to list every published rung (put after the rungs); returns them.

    No lock spans workers on several hosts: after writing, the rungs are listed again, and a rung
    published meanwhile (another worker's master may have been overwritten by ours) means writing again.
    """
    names = published_rung_names(storage, video_id)
    while True:
        rungs = sorted((measure_rung(storage, video_id, name, scratch) for name in names),
                       key=lambda rung: rung.height)
        storage.put_bytes(f"{video_prefix(video_id)}/{MASTER}", master_playlist(rungs).encode())
        again = published_rung_names(storage, video_id)
        if again == names:
            return rungs
        names = again
