"""Hostile uploads end to end through the gateway: files that make a permissive ffmpeg read another
user's original or a URL, and resource bombs. Each ends `failed` with a reason, having taken nothing
from anywhere else (no duration, size, thumbnail or rung), and none holds up another user's upload.

The only look behind the gateway: the victim's original on disk (its absolute path is what an attacker
names) and the hidden staging directories.
"""
from __future__ import annotations

import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import STORAGE, ApiClient, generate_clip, login, new_source_address, register_and_activate

FORM = {"title": "Hostile", "description": "not what it seems", "category": "Testing"}
NOT_ACCEPTED = "This kind of file is not accepted"
FAIL_WITHIN = 90  # generous for a loaded machine: refusing a file costs one ffprobe


def upload(client, name: str, content: bytes) -> dict:
    response = client.post("video/upload/", data=FORM, files={"file": (name, content)}, timeout=120)
    assert response.status_code == 201, response.text
    return response.json()


def wait_until_failed(client, video_id: int) -> dict:
    deadline = time.monotonic() + FAIL_WITHIN
    while (detail := client.get(f"video/{video_id}/").json())["status"] != "failed":
        assert detail["status"] in {"uploaded", "queued", "processing"}, detail
        assert time.monotonic() < deadline, detail
        time.sleep(0.3)
    return detail


def assert_nothing_taken(client, detail: dict, stack_env) -> None:  # noqa: ARG001 - stack_env kept for callers
    """A failed upload carries nothing read from a file: no facts, no picture, no rung, no output."""
    assert (detail["duration"], detail["width"], detail["height"], detail["has_audio"]) == (None, None, None, None)
    assert detail["renditions"] == [] and detail["renditions_pending"] == []
    assert detail["thumbnail_url"] is None and detail["master_playlist_url"] is None
    assert client.get(f"video/{detail['id']}/thumbnail.jpg").status_code == 404
    stored = STORAGE.list(f"hls/{detail['id']}/")
    assert stored == [], stored


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile-clips")


@pytest.fixture(scope="module")
def victim_original(make_module_client, mail, clips, stack_env) -> Path:
    """Another user's private upload: the absolute path of its original on the shared media volume."""
    victim = make_module_client()
    login(victim, register_and_activate(victim, mail))
    clip = generate_clip(clips / "victim.mp4", 320, 240, 3)
    video = upload(victim, "victim.mp4", clip.read_bytes())
    original = Path(stack_env["MEDIA_DIR"]) / "originals" / str(video["id"]) / "victim.mp4"
    if stack_env.get("MEDIA_STORAGE") == "s3":
        pytest.skip("MEDIA_STORAGE=s3: no original is on any disk a hostile upload could point a transcoder at")
    assert original.is_file()
    return original


@pytest.fixture(scope="module")
def make_module_client(api_url):
    """Clients that live as long as this module's fixtures (conftest's make_client is per test)."""
    sessions = []

    def factory():
        sessions.append(ApiClient(api_url, new_source_address()))
        return sessions[-1]

    yield factory
    for session in sessions:
        session.close()


class RecordingServer(ThreadingHTTPServer):
    """An HTTP server on loopback that records every request (none may come)."""

    def __init__(self):
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.paths.append(self.path)
                self.send_response(404)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/private.mp4"


@pytest.fixture
def http_server():
    server = RecordingServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def hls_playlist(target: str) -> str:
    return f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{target}\n#EXT-X-ENDLIST\n"


HOSTILE = {
    # The live hole: the failed video carried the victim's duration, size and a thumbnail of it.
    "hls playlist naming another user's original": lambda victim, url: hls_playlist(str(victim)),
    "hls playlist naming a file: URL": lambda victim, url: hls_playlist(f"file:{victim}"),
    "hls playlist naming an http: URL": lambda victim, url: hls_playlist(url),
    "concat list of another user's original": lambda victim, url: f"ffconcat version 1.0\nfile '{victim}'\n",
    "concat list of an http: URL": lambda victim, url: f"ffconcat version 1.0\nfile '{url}'\n",
    "subtitle file": lambda victim, url: "1\n00:00:00,000 --> 00:00:05,000\nNot a video\n",
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_upload_that_opens_other_files_or_urls_fails_having_read_nothing(logged_in_client, victim_original,
                                                                         http_server, stack_env, kind):
    client = logged_in_client
    content = HOSTILE[kind](victim_original, http_server.url).encode()
    detail = wait_until_failed(client, upload(client, "holiday.mp4", content)["id"])
    assert detail["failure_reason"].startswith(NOT_ACCEPTED), detail
    assert_nothing_taken(client, detail, stack_env)
    assert http_server.paths == []


def test_image_sequence_pattern_fails_having_read_nothing(logged_in_client, clips, stack_env):
    client = logged_in_client
    picture = clips / "frame.png"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240",
                    "-frames:v", "1", str(picture)], check=True)
    detail = wait_until_failed(client, upload(client, "frame%03d.png", picture.read_bytes())["id"])
    assert detail["failure_reason"].startswith(NOT_ACCEPTED), detail
    assert_nothing_taken(client, detail, stack_env)


def frames_far_apart(path: Path, frames: int, gap_seconds: int) -> Path:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=1",
                    "-frames:v", str(frames), "-vf", f"setpts=N*{gap_seconds}/TB", "-fps_mode", "passthrough",
                    "-c:v", "libx264", "-preset", "ultrafast", str(path)], check=True)
    return path


def huge_picture(path: Path) -> Path:
    """One 16000x16000 one-bit PNG frame in Matroska: tens of KB on disk, hundreds of MB to decode."""
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=black:s=16000x16000:r=1:d=1",
                    "-frames:v", "1", "-c:v", "png", "-pix_fmt", "monob", str(path)], check=True)
    return path


def test_resource_bombs_fail_fast_with_a_reason_and_do_not_block_another_upload(
        logged_in_client, make_module_client, mail, clips, stack_env):
    attacker = logged_in_client
    ten_hours = frames_far_apart(clips / "ten-hours.mp4", 3, 5 * 3600)
    assert ten_hours.stat().st_size < 10_000
    picture = huge_picture(clips / "picture.mkv")
    bombs = [upload(attacker, "ten-hours.mp4", ten_hours.read_bytes()),
             upload(attacker, "picture.mkv", picture.read_bytes())]
    someone = make_module_client()
    login(someone, register_and_activate(someone, mail))
    honest = upload(someone, "honest.mp4", generate_clip(clips / "honest.mp4", 640, 360, 2).read_bytes())

    ten_hours_detail, picture_detail = (wait_until_failed(attacker, bomb["id"]) for bomb in bombs)
    assert ten_hours_detail["failure_reason"].startswith("The file declares a duration of 10:00:0")
    assert ten_hours_detail["failure_reason"].endswith("but holds only 3 video frames.")
    assert picture_detail["failure_reason"].startswith("The picture is too large (16000x16000; ")
    for detail in (ten_hours_detail, picture_detail):
        assert_nothing_taken(attacker, detail, stack_env)

    deadline = time.monotonic() + 150
    while (detail := someone.get(f"video/{honest['id']}/").json())["status"] != "ready":
        assert detail["status"] != "failed", detail
        assert time.monotonic() < deadline, detail
        time.sleep(0.5)
    assert [rendition["rung"] for rendition in detail["renditions"]] == ["360p"]
