"""The HLS ladder: which renditions exist, and which of them a given source gets.

One declarative table; the ffmpeg argument builder (`ffmpeg.py`) turns a row into a command.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

FIRST_CHOICE = "480p"  # the frontend's default player resolution: published first


@dataclass(frozen=True)
class Rendition:
    name: str
    height: int
    video_kbps: int
    maxrate_kbps: int
    bufsize_kbps: int
    audio_kbps: int
    profile: str
    timeout_factor: float  # job timeout = base + factor * source duration (seconds), generous for 2 busy cores


RENDITIONS: tuple[Rendition, ...] = (
    Rendition("360p", 360, 800, 856, 1200, 96, "main", 3),
    Rendition("480p", 480, 1400, 1498, 2100, 128, "main", 4),
    Rendition("720p", 720, 2800, 2996, 4200, 128, "high", 6),
    Rendition("1080p", 1080, 5000, 5350, 7500, 192, "high", 10),
)
BY_NAME = {rendition.name: rendition for rendition in RENDITIONS}


def small_source_rendition(height: int) -> Rendition:
    """The single rung of a source lower than 360p: the lowest rung's name (every part of the stack
    knows exactly the four rung names) at the source's own even height, never upscaled.

    Bitrates scale with the pixel count; the real size is in the master playlist and the catalog.
    """
    lowest = RENDITIONS[0]
    height = max(2, height - height % 2)
    scale = (height / lowest.height) ** 2

    def kbps(value: int) -> int:
        return max(64, round(value * scale))

    return replace(lowest, height=height, video_kbps=kbps(lowest.video_kbps),
                   maxrate_kbps=kbps(lowest.maxrate_kbps), bufsize_kbps=kbps(lowest.bufsize_kbps), audio_kbps=64)


def choose_rungs(source_height: int) -> list[Rendition]:
    """The rungs for a source, in the order their jobs are enqueued.

    Every rung up to the source height (none above it); the frontend's default 480p comes first (or the
    highest allowed rung if the source is lower), then the rest from small to large, so the cheap ones
    land early. A source below 360p gets one rung, `360p`, at its own height.
    """
    allowed = [rendition for rendition in RENDITIONS if rendition.height <= source_height]
    if not allowed:
        return [small_source_rendition(source_height)]
    first = BY_NAME[FIRST_CHOICE] if BY_NAME[FIRST_CHOICE] in allowed else allowed[-1]
    return [first] + [rendition for rendition in allowed if rendition is not first]


# Chunk lengths, each a multiple of the segment length (every chunk ends on a segment boundary).
# The growing first rung: long chunks, so its next chunk is in well before a viewer gets there.
FIRST_RUNG_CHUNK_SECONDS = 60
# The other rungs of a long source: short chunks, so many hosts share it evenly (bench: 60 s chunks
# left 16 hosts idle through a second round of 20 jobs of a 20-minute source).
CHUNK_SECONDS = 32
# Up to this long, the other rungs keep the first rung's 60 s chunks: each chunk costs a decode from
# the keyframe before its start (bench: 32 s chunks of a 3-minute source took 2-4% more CPU), and a
# source this short has few chunks to share either way.
SHORT_CHUNKS_FROM_SECONDS = 600


def chunks(duration: float) -> list[tuple[float, float | None]]:
    """(start, seconds) of each chunk of the other rungs of a source: CHUNK_SECONDS long for a source
    longer than SHORT_CHUNKS_FROM_SECONDS, else FIRST_RUNG_CHUNK_SECONDS."""
    return cut(duration, CHUNK_SECONDS if duration > SHORT_CHUNKS_FROM_SECONDS else FIRST_RUNG_CHUNK_SECONDS)


def first_rung_chunks(duration: float) -> list[tuple[float, float | None]]:
    """(start, seconds) of each FIRST_RUNG_CHUNK_SECONDS chunk of the growing first rung of a source."""
    return cut(duration, FIRST_RUNG_CHUNK_SECONDS)


def cut(duration: float, chunk_seconds: int) -> list[tuple[float, float | None]]:
    """(start, seconds) of each `chunk_seconds` chunk of a source; the last one runs to the end (seconds
    None), so no frame is lost to a container duration slightly shorter than the frames."""
    count = max(1, -(-int(duration * 1000) // (chunk_seconds * 1000)))
    if duration - (count - 1) * chunk_seconds < 1 and count > 1:
        count -= 1  # a last sliver of under a second joins the chunk before it
    return [(index * chunk_seconds, chunk_seconds if index < count - 1 else None) for index in range(count)]


def rendition_for(name: str, source_height: int) -> Rendition:
    """What a rung job encodes: the rung `name` of the ladder `choose_rungs(source_height)`."""
    for rendition in choose_rungs(source_height):
        if rendition.name == name:
            return rendition
    raise ValueError(f"no rung {name!r} for a {source_height}p source")
