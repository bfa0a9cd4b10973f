"""ffprobe: what a source contains (before anything is transcoded), and what a written rung contains.

An upload is accepted only when ffprobe, allowed to detect nothing but `ffmpeg.SOURCE_DEMUXERS`, finds a
video stream within `SourceLimits`, and the frames the file really holds (packets counted while
demuxing) fit the duration it declares: 3 frames spread over a declared 10 hours are refused here,
before any job costs anything.
"""
from __future__ import annotations

import datetime
import json
import subprocess
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from videoflix_shared import Settings

from .ffmpeg import SEGMENT_DEMUXER, SOURCE_DEMUXERS, input_url, last_line, probe_command
from .process import ResourceLimits, die_with_parent

DEFAULT_FPS = 30.0
MAX_DECLARED_FPS = 240.0  # a declared rate above this is noise (a time base), not a frame rate
PROBE_TIMEOUT_SECONDS = 120
PROBE_CPU_SECONDS = PROBE_TIMEOUT_SECONDS
# Fewer frames than this per declared second: the duration is made of timestamp gaps, not of video.
MIN_FRAMES_PER_SECOND = 0.5
NOT_ACCEPTED = ("This kind of file is not accepted: upload a video file (MP4, MOV, MKV, WebM, AVI, "
                "MPEG-TS, FLV, Ogg or MPEG).")


class UnusableMedia(Exception):
    """The file cannot be transcoded; the message is shown to the uploader."""


@dataclass(frozen=True)
class SourceLimits:
    """The largest source accepted (Settings MAX_SOURCE_*)."""

    max_seconds: float
    max_pixels: int
    max_fps: float
    max_frames: int

    @classmethod
    def from_settings(cls, settings: Settings) -> "SourceLimits":
        return cls(settings.max_source_seconds, settings.max_source_pixels, settings.max_source_fps,
                   settings.max_source_frames)


@dataclass(frozen=True)
class SourceMedia:
    duration: float
    width: int  # as displayed (rotation applied)
    height: int
    fps: float
    has_audio: bool
    demuxer: str  # forced with -f on every later read of the file
    frames: int  # video packets counted in the file


@dataclass(frozen=True)
class OutputMedia:
    width: int
    height: int
    video_codec: str
    video_profile: str
    video_level: int
    audio_codec: str | None


def ffprobe(path: Path, limits: ResourceLimits, demuxer: str | None = None) -> dict:
    """ffprobe's JSON for a file (detected among SOURCE_DEMUXERS, or read with `demuxer`);
    UnusableMedia when it cannot read it at all."""
    limits = replace(limits, cpu_seconds=min(limits.cpu_seconds, PROBE_CPU_SECONDS))

    def prepare_child() -> None:
        die_with_parent()
        limits.apply()

    try:
        result = subprocess.run(probe_command(path, demuxer), capture_output=True, text=True,
                                timeout=PROBE_TIMEOUT_SECONDS, preexec_fn=prepare_child)
    except subprocess.TimeoutExpired:
        raise UnusableMedia("The file could not be read: inspecting it took too long.") from None
    if result.returncode != 0:
        if "Format not on whitelist" in result.stderr:
            raise UnusableMedia(NOT_ACCEPTED)
        detail = last_line(result.stderr).replace(f"{input_url(path)}: ", "")
        raise UnusableMedia(f"The file is not a video that can be read ({detail}).")
    return json.loads(result.stdout or "{}")


def accepted_demuxer(info: dict) -> str:
    """The demuxer to force on the file: the first name of ffprobe's `format_name` (`mov,mp4,...` ->
    `mov`), which must be one of SOURCE_DEMUXERS."""
    demuxer = str(info.get("format", {}).get("format_name", "")).split(",")[0]
    if demuxer not in SOURCE_DEMUXERS:
        raise UnusableMedia(NOT_ACCEPTED)
    return demuxer


def _video_stream(info: dict) -> dict | None:
    for stream in info.get("streams", []):
        is_cover_art = stream.get("disposition", {}).get("attached_pic") == 1
        if stream.get("codec_type") == "video" and not is_cover_art:
            return stream
    return None


def _has_audio(info: dict) -> bool:
    return any(stream.get("codec_type") == "audio" for stream in info.get("streams", []))


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _fps(stream: dict) -> float:
    for key in ("avg_frame_rate", "r_frame_rate"):
        try:
            rate = float(Fraction(stream.get(key, "0/1")))
        except (ValueError, ZeroDivisionError):
            continue
        if 0 < rate <= MAX_DECLARED_FPS:
            return rate
    return DEFAULT_FPS


def _rotation(stream: dict) -> int:
    for side_data in stream.get("side_data_list", []):
        if "rotation" in side_data:
            return int(_float(side_data["rotation"]))
    return int(_float(stream.get("tags", {}).get("rotate")))


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


def check_limits(duration: float, width: int, height: int, frames: int, limits: SourceLimits) -> None:
    """UnusableMedia, with the reason, for a source too large to transcode or whose declared duration
    the file does not hold."""
    if frames < MIN_FRAMES_PER_SECOND * duration:
        raise UnusableMedia(f"The file declares a duration of {_clock(duration)} but holds only {frames} "
                            f"video frames.")
    if duration > limits.max_seconds:
        raise UnusableMedia(f"The video is too long ({_clock(duration)}; at most {_clock(limits.max_seconds)}).")
    if width * height > limits.max_pixels:
        raise UnusableMedia(f"The picture is too large ({width}x{height}; at most {limits.max_pixels} pixels).")
    if frames > limits.max_fps * duration + 1:
        raise UnusableMedia(f"The frame rate is too high (at most {limits.max_fps:g} frames per second).")
    if frames > limits.max_frames:
        raise UnusableMedia(f"The video has too many frames ({frames}; at most {limits.max_frames}).")


def probe_source(path: Path, limits: SourceLimits | None = None,
                 resources: ResourceLimits | None = None) -> SourceMedia:
    """Duration, displayed size, frame rate, audio presence and demuxer of an upload; UnusableMedia if it
    is no plain video within `limits` (default: from Settings)."""
    settings = Settings.from_env() if limits is None or resources is None else None
    limits = limits or SourceLimits.from_settings(settings)
    resources = resources or ResourceLimits.from_settings(settings)
    info = ffprobe(path, resources)
    demuxer = accepted_demuxer(info)
    video = _video_stream(info)
    if video is None:
        raise UnusableMedia("The file contains no video stream.")
    duration = _float(info.get("format", {}).get("duration")) or _float(video.get("duration"))
    if duration <= 0:
        raise UnusableMedia("The video has no duration (a still image is not a video).")
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if not width or not height:
        raise UnusableMedia("The video stream has no picture size.")
    if abs(_rotation(video)) % 180 == 90:
        width, height = height, width
    fps, frames = _fps(video), int(_float(video.get("nb_read_packets")))
    check_limits(duration, width, height, frames, limits)
    return SourceMedia(duration, width, height, fps, _has_audio(info), demuxer, frames)


def probe_output(path: Path, resources: ResourceLimits | None = None) -> OutputMedia:
    """Size and codecs of a written segment (the truth the master playlist describes)."""
    info = ffprobe(path, resources or ResourceLimits.from_settings(Settings.from_env()), SEGMENT_DEMUXER)
    video = _video_stream(info)
    if video is None:
        raise UnusableMedia(f"{path} contains no video stream.")
    audio = next((s for s in info.get("streams", []) if s.get("codec_type") == "audio"), None)
    return OutputMedia(
        width=int(video["width"]), height=int(video["height"]), video_codec=video.get("codec_name", ""),
        video_profile=video.get("profile", ""), video_level=int(video.get("level") or 0),
        audio_codec=audio.get("codec_name") if audio else None,
    )
