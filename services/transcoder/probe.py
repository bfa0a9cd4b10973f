"""ffprobe: what a source contains (before anything is transcoded), and what a written rung contains."""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from .ffmpeg import last_line, probe_command

DEFAULT_FPS = 30.0
MAX_FPS = 240.0
PROBE_TIMEOUT_SECONDS = 120


class UnusableMedia(Exception):
    """The file cannot be transcoded; the message is shown to the uploader."""


@dataclass(frozen=True)
class SourceMedia:
    duration: float
    width: int  # as displayed (rotation applied)
    height: int
    fps: float
    has_audio: bool


@dataclass(frozen=True)
class OutputMedia:
    width: int
    height: int
    video_codec: str
    video_profile: str
    video_level: int
    audio_codec: str | None


def ffprobe(path: Path) -> dict:
    """ffprobe's JSON for a file; UnusableMedia when it cannot read it at all."""
    try:
        result = subprocess.run(probe_command(path), capture_output=True, text=True,
                                timeout=PROBE_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise UnusableMedia("The file could not be read: inspecting it took too long.") from None
    if result.returncode != 0:
        detail = last_line(result.stderr).replace(f"{path}: ", "")
        raise UnusableMedia(f"The file is not a video that can be read ({detail}).")
    return json.loads(result.stdout or "{}")


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
        if 0 < rate <= MAX_FPS:
            return rate
    return DEFAULT_FPS


def _rotation(stream: dict) -> int:
    for side_data in stream.get("side_data_list", []):
        if "rotation" in side_data:
            return int(_float(side_data["rotation"]))
    return int(_float(stream.get("tags", {}).get("rotate")))


def probe_source(path: Path) -> SourceMedia:
    """Duration, displayed size, frame rate and audio presence of an upload; UnusableMedia if it is none."""
    info = ffprobe(path)
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
    return SourceMedia(duration, width, height, _fps(video), _has_audio(info))


def probe_output(path: Path) -> OutputMedia:
    """Size and codecs of a written segment (the truth the master playlist describes)."""
    info = ffprobe(path)
    video = _video_stream(info)
    if video is None:
        raise UnusableMedia(f"{path} contains no video stream.")
    audio = next((s for s in info.get("streams", []) if s.get("codec_type") == "audio"), None)
    return OutputMedia(
        width=int(video["width"]), height=int(video["height"]), video_codec=video.get("codec_name", ""),
        video_profile=video.get("profile", ""), video_level=int(video.get("level") or 0),
        audio_codec=audio.get("codec_name") if audio else None,
    )
