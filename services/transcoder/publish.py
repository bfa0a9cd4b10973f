"""Media layout under `hls/<id>/` in the media storage, rung publishing and the master playlist.

A rung is encoded into a scratch directory on the transcoder's own disk and published through the
storage interface: on local disk the directory is renamed into place, in S3 its segments go up first and
its playlist last. Either way a rung's playlist exists only when the rung is complete: existence =
published (the gateway relies on it).

The first rung instead grows in place (`GrowingRung`): each segment is put once whole, then the rung's
playlist is rewritten (an EVENT playlist without `#EXT-X-ENDLIST`); it is complete once the playlist ends
with `#EXT-X-ENDLIST`. Every object is written whole or not at all, so whatever the gateway serves is whole.
Of a source longer than one chunk only the first chunk grows that way; the others are encoded as chunk
jobs and appended to the same playlist strictly in order (`append_chunk`), their segments numbered from
the chunk's first segment; `.chunks/<rung>/growing.json` says how many chunks the playlist holds.

Chunked rungs (jobs.py) keep their chunk files under `hls/<id>/.chunks/` until they are joined; the gateway
never routes that prefix (only rung playlists, segments, the master and the thumbnail are routable).

`master.m3u8` is rebuilt from what the storage holds (complete rungs measured, growing ones estimated) and
put last; two workers finishing rungs at once converge (each re-reads the rungs after writing and writes
again when it missed a change).
"""
from __future__ import annotations

import contextlib
import json
import math
import subprocess
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from videoflix_shared.storage import Storage

from .ffmpeg import MPEGTS_DELAY_SECONDS, MPEGTS_HZ, PLAYLIST, SEGMENT_SECONDS, first_packet_command
from .ladder import BY_NAME, small_source_rendition
from .probe import OutputMedia, probe_output

HLS_DIR = "hls"
MASTER = "master.m3u8"
THUMBNAIL = "thumbnail.jpg"
# Chunk jobs' outputs until their rungs are joined: <rung>/chunk_0000.ts, audio_128k.ts.
CHUNKS = ".chunks"
# Put into `.chunks/<rung>/` when the chunk jobs are enqueued: the audio stays while any rung waits for it.
CHUNKS_PENDING = "pending"
# avc1.PPCCLL: profile_idc and constraint flags as x264 writes them, per ffprobe profile name.
AVC_PROFILES = {"Constrained Baseline": "42c0", "Main": "4d40", "High": "6400"}
AAC_LC = "mp4a.40.2"
ENDLIST = "#EXT-X-ENDLIST"
# A growing playlist gains a segment every few seconds: players must ask again every time (in S3 the
# object carries it and the gateway passes it on; on local disk the streamer reads the playlist).
GROWING_CACHE_CONTROL = "no-cache"
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


def video_prefix(video_id: int) -> str:
    return f"{HLS_DIR}/{video_id}"


def rung_prefix(video_id: int, rung: str) -> str:
    return f"{video_prefix(video_id)}/{rung}"


def rung_playlist(storage: Storage, video_id: int, rung: str) -> str | None:
    data = storage.get(f"{rung_prefix(video_id, rung)}/{PLAYLIST}")
    return None if data is None else data.decode()


def is_published(storage: Storage, video_id: int, rung: str) -> bool:
    """Complete: its playlist exists and is finished (a growing rung's is not yet)."""
    text = rung_playlist(storage, video_id, rung)
    return text is not None and is_finished(text)


def is_growing(storage: Storage, video_id: int, rung: str) -> bool:
    """Playable but still being encoded: an unfinished playlist listing at least one segment."""
    text = rung_playlist(storage, video_id, rung)
    return text is not None and not is_finished(text) and bool(playlist_segments(text))


def is_finished(playlist_text: str) -> bool:
    return playlist_text.rstrip().endswith(ENDLIST)


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


def chunks_prefix(video_id: int) -> str:
    return f"{video_prefix(video_id)}/{CHUNKS}"


def chunk_key(video_id: int, rung: str, index: int) -> str:
    return f"{chunks_prefix(video_id)}/{rung}/chunk_{index:04d}.ts"


def audio_key(video_id: int, audio_kbps: int, seconds: float | None = None) -> str:
    """The whole-source audio at `audio_kbps`, or (`seconds`) that of the source's first `seconds`."""
    first = f"_first_{seconds:g}s" if seconds is not None else ""
    return f"{chunks_prefix(video_id)}/audio_{audio_kbps}k{first}.ts"


def mark_chunks_pending(storage: Storage, video_id: int, rungs: list[str]) -> None:
    """Before any chunk job runs: every chunked rung has an object under `.chunks/<rung>/`, so the audio
    is kept until the last of them is joined (`remove_chunks`)."""
    for rung in rungs:
        storage.put_bytes(f"{chunks_prefix(video_id)}/{rung}/{CHUNKS_PENDING}", b"")


def stored_chunks(storage: Storage, video_id: int, rung: str) -> set[str]:
    """Keys of the chunk files of a rung that are stored."""
    return {item.key for item in storage.list(f"{chunks_prefix(video_id)}/{rung}/") if item.key.endswith(".ts")}


def fetch_chunks(storage: Storage, video_id: int, rung: str, count: int, folder: Path) -> Path:
    """Download a rung's chunks into `folder` and write the concat demuxer's list of them (names relative
    to it, in order); every one must be stored."""
    keys = [chunk_key(video_id, rung, index) for index in range(count)]
    missing = sorted(set(keys) - stored_chunks(storage, video_id, rung))
    if missing:
        raise FileNotFoundError(f"chunks missing for {rung}: {', '.join(missing)}")
    folder.mkdir(parents=True, exist_ok=True)
    for key in keys:
        storage.download(key, folder / Path(key).name)
    listing = folder / "chunks.txt"
    listing.write_text("".join(f"file '{Path(key).name}'\n" for key in keys))
    return listing


@dataclass(frozen=True)
class GrowingState:
    """How far a growing rung's playlist is: `chunks` chunks in it (the first one complete included), and
    `shift_ticks`, how much later than the raw timestamps its first chunk's muxer wrote them (None until
    measured)."""
    chunks: int = 0
    shift_ticks: int | None = None


def growing_state_key(video_id: int, rung: str) -> str:
    return f"{chunks_prefix(video_id)}/{rung}/growing.json"


def growing_state(storage: Storage, video_id: int, rung: str) -> GrowingState:
    data = storage.get(growing_state_key(video_id, rung))
    return GrowingState(**json.loads(data)) if data else GrowingState()


def save_growing_state(storage: Storage, video_id: int, rung: str, state: GrowingState) -> None:
    storage.put_bytes(growing_state_key(video_id, rung),
                      json.dumps({"chunks": state.chunks, "shift_ticks": state.shift_ticks}).encode())


def first_packet_ticks(path: Path, kind: str) -> int:
    """The pts (90 kHz) of the first `kind` ("a" or "v") packet of our own MPEG-TS file."""
    result = subprocess.run(first_packet_command(path, kind), capture_output=True, text=True, check=True,
                            timeout=60)
    return int(result.stdout.split()[0].strip(","))


def timestamp_shift(first_segment: Path, audio: Path | None) -> int:
    """Ticks the first chunk's HLS muxer moved its timestamps by (it makes them non-negative: the first
    B-frame's decoding time or the audio priming): its first audio packet against the same packet in the
    whole-source audio (`audio`, written with raw timestamps); without audio, its first frame against the
    muxer's delay (the first frame is at time 0)."""
    if audio is not None:
        return first_packet_ticks(first_segment, "a") - first_packet_ticks(audio, "a")
    return first_packet_ticks(first_segment, "v") - round(MPEGTS_DELAY_SECONDS * MPEGTS_HZ)


def segment_number(uri: str) -> int:
    return int(uri.rsplit("_", 1)[1].split(".", 1)[0])


def append_chunk(storage: Storage, staged: Path, video_id: int, rung: str, first_segment: int,
                 finished: bool) -> int:
    """Put a chunk's segments (`ffmpeg.append_command` wrote them into `staged`), then the rung's playlist
    with them after every segment of the chunks before (`finished`: the last chunk, VOD + ENDLIST).
    Segments numbered from `first_segment` on that a crashed earlier attempt listed are replaced by the same
    ones. Returns the number of segments listed."""
    prefix = rung_prefix(video_id, rung)
    added = playlist_segments((staged / PLAYLIST).read_text())
    for _, uri in added:
        storage.put_file(f"{prefix}/{uri}", staged / uri)
    before = [(duration, uri) for duration, uri in playlist_segments(rung_playlist(storage, video_id, rung) or "")
              if segment_number(uri) < first_segment]
    segments = before + added
    storage.put_bytes(f"{prefix}/{PLAYLIST}", media_playlist(segments, finished).encode(),
                      cache_control=None if finished else GROWING_CACHE_CONTROL)
    return len(segments)


def remove_chunks(storage: Storage, video_id: int, rung: str) -> None:
    """A joined rung's chunks go; the audio files too once no rung waits for them (nothing left under
    `.chunks/<rung>/` of any rung). Each join deletes its own chunks before it looks, so the last one
    to finish always sees the others gone."""
    prefix = f"{chunks_prefix(video_id)}/"
    storage.delete_prefix(f"{prefix}{rung}/")
    if not any("/" in item.key[len(prefix):] for item in storage.list(prefix)):
        storage.delete_prefix(prefix)


def playlist_segments(text: str) -> list[tuple[float, str]]:
    """(duration, uri) of every segment of a media playlist's text."""
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

    `sync()` puts every segment ffmpeg's playlist lists that is not stored yet, one whole object after the
    other, then rewrites the rung's playlist object; `finish()` puts the rest and the finished playlist.
    The published playlist never shrinks: a retry re-encoding the rung from the start rewrites segments
    already listed (same frames: fixed GOP) without taking them away from players.
    """

    def __init__(self, storage: Storage, staged: Path, video_id: int, rung: str):
        self.storage, self.staged, self.prefix = storage, staged, rung_prefix(video_id, rung)
        self.published = len(playlist_segments(rung_playlist(storage, video_id, rung) or ""))
        self.copied = 0

    def sync(self, finished: bool = False) -> int:
        """Publish what ffmpeg has finished; returns the number of segments listed now."""
        playlist = self.staged / PLAYLIST
        text = playlist.read_text() if playlist.is_file() else ""
        segments = playlist_segments(text)
        for _, uri in segments[self.copied:]:
            self.storage.put_file(f"{self.prefix}/{uri}", self.staged / uri)
        self.copied = len(segments)
        if finished and not is_finished(text):
            raise ValueError(f"{playlist} is not finished")
        if finished or len(segments) > self.published:
            self.storage.put_bytes(f"{self.prefix}/{PLAYLIST}", media_playlist(segments, finished).encode(),
                                   cache_control=None if finished else GROWING_CACHE_CONTROL)
            self.published = len(segments)
        return self.published

    def finish(self) -> int:
        return self.sync(finished=True)


def estimated_rung(storage: Storage, video_id: int, rung: str, segments: list[tuple[float, str]],
                   scratch: Path) -> PublishedRung:
    """A growing rung in the master playlist: size and codecs from its first segment (fetched into
    `scratch`), bandwidth from its encoder settings (`ladder`'s row, or the small-source rung for a
    picture lower than that row)."""
    with storage.local_copy(f"{rung_prefix(video_id, rung)}/{segments[0][1]}", scratch) as first:
        media = probe_output(first)
    rendition = BY_NAME[rung]
    if media.height < rendition.height:
        rendition = small_source_rendition(media.height)
    peak = round((rendition.maxrate_kbps + rendition.audio_kbps) * 1000 * TS_OVERHEAD)
    average = round((rendition.video_kbps + rendition.audio_kbps) * 1000 * TS_OVERHEAD)
    return PublishedRung(rung, media.width, media.height, peak, average, codecs(media), complete=False)


def measure_rung(storage: Storage, video_id: int, rung: str, segments: list[tuple[float, str]],
                 scratch: Path) -> PublishedRung:
    """Bandwidths from the stored segment sizes and durations, size and codecs from the first segment
    (fetched into `scratch` for ffprobe)."""
    prefix = rung_prefix(video_id, rung)
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
    """Rungs with a playlist (complete or growing); never `.chunks`."""
    prefix = f"{video_prefix(video_id)}/"
    names = {item.key[len(prefix):].split("/", 1)[0] for item in storage.list(prefix)
             if item.key.endswith(f"/{PLAYLIST}")}
    return sorted(name for name in names if name in BY_NAME)


def rung_states(storage: Storage, video_id: int) -> dict[str, str]:
    """Every playable rung's playlist text, by rung name (complete ones and growing ones with a segment)."""
    states = {}
    for name in published_rung_names(storage, video_id):
        text = rung_playlist(storage, video_id, name)
        if text is not None and (is_finished(text) or playlist_segments(text)):
            states[name] = text
    return states


def published_rungs(storage: Storage, video_id: int, states: dict[str, str], scratch: Path) -> list[PublishedRung]:
    """Every complete rung, measured, and every growing one, estimated; lowest first."""
    rungs = [(measure_rung if is_finished(text) else estimated_rung)(
        storage, video_id, name, playlist_segments(text), scratch) for name, text in states.items()]
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


def update_master(storage: Storage, video_id: int, scratch: Path) -> list[PublishedRung]:
    """Rewrite master.m3u8 to list every published rung, complete or growing (put after the rungs);
    returns them.

    No lock spans workers on several hosts: after writing, the rungs are read again, and a rung published
    or finished meanwhile (another worker's master may have been overwritten by ours) means writing again.
    """
    def shape(states: dict[str, str]) -> dict[str, bool]:
        return {name: is_finished(text) for name, text in states.items()}

    states = rung_states(storage, video_id)
    while True:
        rungs = published_rungs(storage, video_id, states, scratch)
        storage.put_bytes(f"{video_prefix(video_id)}/{MASTER}", master_playlist(rungs).encode())
        again = rung_states(storage, video_id)
        if shape(again) == shape(states):
            return rungs
        states = again
