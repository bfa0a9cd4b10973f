"""Real media for the transcoder's tests: tiny clips generated with ffmpeg's testsrc2 and sine sources."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from redis import Redis


def generate_clip(path: Path, width: int, height: int, seconds: float, audio: bool = True,
                  rate: int = 25, extra: list[str] | None = None) -> Path:
    inputs = ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={rate}:duration={seconds}"]
    if audio:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    codecs += ["-c:a", "aac", "-shortest"] if audio else []
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *inputs, *codecs, *(extra or []),
                    str(path)], check=True)
    return path


@pytest.fixture(scope="session")
def make_clip():
    return generate_clip


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip_360p(media) -> Path:
    """2 s, 640x360, 25 fps, with audio."""
    return generate_clip(media / "clip-360p.mp4", 640, 360, 2)


@pytest.fixture(scope="session")
def clip_480p_silent(media) -> Path:
    """3 s, 854x480, no audio."""
    return generate_clip(media / "clip-480p-silent.mp4", 854, 480, 3, audio=False)


@pytest.fixture(scope="session")
def text_as_mp4(media) -> Path:
    path = media / "not-a-video.mp4"
    path.write_text("This is a text file, renamed to look like a video.\n")
    return path


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis database of the transcoder's tests alone (flushed by them): db 14 unless overridden."""
    return os.environ.get("TRANSCODER_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")


@pytest.fixture
def redis(redis_url):
    connection = Redis.from_url(redis_url)
    connection.flushdb()
    yield connection
    connection.flushdb()
