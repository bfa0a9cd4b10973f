"""The one place where ffmpeg and ffprobe command lines are built, and the runner for them.

Every rung is built from a row of `ladder.RENDITIONS` by `rung_command`. All rungs share the same GOP
(a keyframe every 2 s counted in source frames, no scene-cut keyframes), so their 4-second segments
start on the same frames and a player can switch between rungs at any segment boundary.
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Callable

from . import progress
from .ladder import Rendition
from .process import die_with_parent

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
PLAYLIST = "index.m3u8"
SEGMENT_PATTERN = "segment_%03d.ts"
SEGMENT_SECONDS = 4
KEYFRAME_SECONDS = 2
X264_PRESET = "veryfast"
THUMBNAIL_MAX_HEIGHT = 480
COMMON = [FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"]


class FFmpegError(Exception):
    """ffmpeg exited with an error; `message` is its last line of stderr."""

    def __init__(self, returncode: int, message: str):
        super().__init__(f"ffmpeg exited with {returncode}: {message}")
        self.returncode = returncode
        self.message = message


def probe_command(path: Path) -> list[str]:
    return [FFPROBE, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)]


def gop_frames(fps: float) -> int:
    return max(1, round(fps * KEYFRAME_SECONDS))


def rung_command(source: Path, rendition: Rendition, fps: float, has_audio: bool) -> list[str]:
    """ffmpeg arguments for one HLS rung, written to the current directory (index.m3u8 + segments)."""
    gop = str(gop_frames(fps))
    maps = ["-map", "0:v:0"] + (["-map", "0:a:0"] if has_audio else [])
    video = [
        "-vf", f"scale=-2:{rendition.height}",
        "-c:v", "libx264", "-preset", X264_PRESET, "-profile:v", rendition.profile, "-pix_fmt", "yuv420p",
        "-b:v", f"{rendition.video_kbps}k", "-maxrate", f"{rendition.maxrate_kbps}k",
        "-bufsize", f"{rendition.bufsize_kbps}k",
        "-g", gop, "-keyint_min", gop, "-sc_threshold", "0",
    ]
    audio = ["-c:a", "aac", "-b:a", f"{rendition.audio_kbps}k", "-ac", "2"] if has_audio else []
    hls = [
        "-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_playlist_type", "vod",
        "-hls_flags", "independent_segments", "-hls_segment_filename", SEGMENT_PATTERN, PLAYLIST,
    ]
    return [*COMMON, "-progress", "pipe:1", "-i", str(source), *maps, *video, *audio, *hls]


def thumbnail_command(source: Path, output: Path, at_seconds: float) -> list[str]:
    """One JPEG frame at `at_seconds`, at most THUMBNAIL_MAX_HEIGHT high, aspect kept."""
    return [
        *COMMON, "-ss", f"{at_seconds:.3f}", "-i", str(source), "-map", "0:v:0", "-frames:v", "1",
        "-vf", f"scale=-2:'min(ih,{THUMBNAIL_MAX_HEIGHT})'", "-q:v", "3", "-f", "image2", "-y", str(output),
    ]


def run(args: list[str], cwd: Path | None = None,
        on_seconds: Callable[[float], None] | None = None) -> None:
    """Run ffmpeg; call `on_seconds` with the encoded seconds from `-progress pipe:1` as they come.

    ffmpeg dies with this process (a killed work horse leaves no orphan encoder behind). Raises
    FFmpegError with ffmpeg's last error line when it fails.
    """
    with tempfile.TemporaryFile() as stderr, subprocess.Popen(
        args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True,
        preexec_fn=die_with_parent,
    ) as process:
        try:
            for seconds in progress.encoded_seconds(process.stdout):
                if on_seconds:
                    on_seconds(seconds)
            returncode = process.wait()
        finally:
            if process.poll() is None:
                process.kill()
        if returncode != 0:
            stderr.seek(0)
            raise FFmpegError(returncode, last_line(stderr.read().decode(errors="replace")))


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no error message"
