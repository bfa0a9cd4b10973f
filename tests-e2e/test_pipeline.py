"""The video pipeline end to end through the gateway: upload, transcode to the HLS ladder, stream.

Real auth, catalog, transcoder workers (rq on Redis, ffmpeg), streamer and nginx of the test stack.
The only look behind the gateway: the original kept on disk after a failure, the hidden staging
directories, and the worker processes killed in the last test.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import STACK, STACK_ENV, STORAGE, generate_clip

FORM = {"title": "Pipeline clip", "description": "testsrc2 and a sine tone", "category": "Testing"}
TIMEOUT = 150
RUNG_HEIGHTS = {"360p": 360, "480p": 480, "720p": 720, "1080p": 1080}
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pipeline-clips")


def upload(client, path: Path, **form) -> dict:
    with open(path, "rb") as handle:
        response = client.post("video/upload/", data={**FORM, **form}, files={"file": (path.name, handle)},
                               timeout=120)
    assert response.status_code == 201, response.text
    return response.json()


def wait_for(client, video_id: int, done, timeout: float = TIMEOUT) -> dict:
    """Poll the video's detail until `done(detail)`; fails at once if the video fails."""
    deadline = time.monotonic() + timeout
    while True:
        detail = client.get(f"video/{video_id}/").json()
        if done(detail):
            return detail
        assert detail["status"] != "failed" and not detail.get("renditions_failed"), detail
        assert time.monotonic() < deadline, f"video {video_id} timed out: {detail}"
        time.sleep(0.5)


def complete(detail: dict) -> bool:
    return detail["status"] == "ready" and not detail["renditions_pending"]


def ready_rungs(detail: dict) -> list[str]:
    return [rendition["rung"] for rendition in detail["renditions"]]


def master_entries(text: str) -> dict[str, dict[str, str]]:
    """Master playlist: rung playlist URI -> its EXT-X-STREAM-INF attributes."""
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    entries = {}
    for line, uri in zip(lines, lines[1:]):
        if line.startswith("#EXT-X-STREAM-INF:"):
            pairs = re.findall(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1])
            entries[uri] = {name: value.strip('"') for name, value in pairs}
    return entries


def segment_list(text: str) -> list[tuple[float, str]]:
    assert text.startswith("#EXTM3U") and "#EXT-X-PLAYLIST-TYPE:VOD" in text
    assert text.rstrip().endswith("#EXT-X-ENDLIST")
    lines = text.splitlines()
    return [(float(line[8:].split(",")[0]), uri) for line, uri in zip(lines, lines[1:])
            if line.startswith("#EXTINF:")]


def ffprobe_streams(path: Path) -> dict[str, dict]:
    result = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", str(path)],
                            capture_output=True, text=True, check=True)
    return {stream["codec_type"]: stream for stream in json.loads(result.stdout)["streams"]}


def fetch(client, path: str, content_type: str) -> bytes:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code, response.text[:200])
    assert response.headers["Content-Type"].startswith(content_type), (path, response.headers)
    return response.content


def check_rung(client, tmp_path: Path, video_id: int, rung: str) -> tuple[list[float], dict[str, dict]]:
    """Fetch a rung's playlist and every segment through the gateway; durations and first segment's streams."""
    segments = segment_list(fetch(client, f"video/{video_id}/{rung}/index.m3u8", PLAYLIST_TYPE).decode())
    assert segments and [uri for _, uri in segments] == [f"segment_{i:03d}.ts" for i in range(len(segments))]
    for index, (_, uri) in enumerate(segments):
        data = fetch(client, f"video/{video_id}/{rung}/{uri}" + ("/" if index else ""), "video/MP2T")
        if index == 0:
            first = tmp_path / f"{video_id}-{rung}-{uri}"
            first.write_bytes(data)
    return [duration for duration, _ in segments], ffprobe_streams(first)


def test_1080p_clip_with_audio_plays_every_rung(logged_in_client, clips, tmp_path, gateway_url):
    client = logged_in_client
    video = upload(client, generate_clip(clips / "full-hd.mp4", 1920, 1080, 6), title="Full HD pipeline")
    assert video["status"] in {"uploaded", "queued", "processing", "ready"}

    first_ready = wait_for(client, video["id"], lambda detail: detail["status"] == "ready")
    assert first_ready["renditions"] and first_ready["master_playlist_url"]
    detail = wait_for(client, video["id"], complete)
    assert ready_rungs(detail) == ["360p", "480p", "720p", "1080p"]
    assert (detail["width"], detail["height"], detail["has_audio"]) == (1920, 1080, True)
    assert detail["duration"] == pytest.approx(6, abs=0.2) and detail["progress"] == 100
    assert detail["renditions_failed"] == [] and detail["failure_reason"] is None

    master = fetch(client, f"video/{video['id']}/master.m3u8", PLAYLIST_TYPE).decode()
    entries = master_entries(master)
    assert list(entries) == [f"{rung}/index.m3u8" for rung in RUNG_HEIGHTS]
    durations = {}
    for rung, height in RUNG_HEIGHTS.items():
        attributes = entries[f"{rung}/index.m3u8"]
        width = {360: 640, 480: 854, 720: 1280, 1080: 1920}[height]
        assert attributes["RESOLUTION"] == f"{width}x{height}"
        assert attributes["CODECS"].startswith("avc1.") and attributes["CODECS"].endswith(",mp4a.40.2")
        assert int(attributes["AVERAGE-BANDWIDTH"]) <= int(attributes["BANDWIDTH"])
        durations[rung], streams = check_rung(client, tmp_path, video["id"], rung)
        assert (streams["video"]["codec_name"], streams["video"]["height"]) == ("h264", height)
        assert streams["video"]["width"] == width
        assert streams["audio"]["codec_name"] == "aac"
    # The same GOP in every rung: segments cut at the same instants, so players can switch rungs.
    assert len(set(map(tuple, durations.values()))) == 1 and sum(durations["480p"]) == pytest.approx(6, abs=0.2)

    assert detail["thumbnail_url"] == f"{gateway_url}/api/video/{video['id']}/thumbnail.jpg"
    thumbnail = fetch(client, f"video/{video['id']}/thumbnail.jpg", "image/jpeg")
    assert thumbnail[:3] == b"\xff\xd8\xff"
    listed = {item["id"]: item for item in client.get("video/").json()}
    assert listed[video["id"]]["title"] == "Full HD pipeline"
    assert listed[video["id"]]["thumbnail_url"] == detail["thumbnail_url"]


def test_240p_source_gets_no_upscaled_rung(logged_in_client, clips, tmp_path):
    client = logged_in_client
    video = upload(client, generate_clip(clips / "small.mp4", 426, 240, 3))
    detail = wait_for(client, video["id"], complete)
    # One rung, under the lowest rung's name (every part of the stack knows the four names), at 240 lines.
    assert [(r["rung"], r["width"], r["height"]) for r in detail["renditions"]] == [("360p", 426, 240)]
    entries = master_entries(fetch(client, f"video/{video['id']}/master.m3u8", PLAYLIST_TYPE).decode())
    assert list(entries) == ["360p/index.m3u8"] and entries["360p/index.m3u8"]["RESOLUTION"] == "426x240"
    _, streams = check_rung(client, tmp_path, video["id"], "360p")
    assert streams["video"]["height"] == 240
    for rung in ("480p", "720p", "1080p"):
        assert client.get(f"video/{video['id']}/{rung}/index.m3u8").status_code == 404


def test_clip_without_audio_plays(logged_in_client, clips, tmp_path):
    client = logged_in_client
    video = upload(client, generate_clip(clips / "silent.mp4", 640, 360, 3, audio=False))
    detail = wait_for(client, video["id"], complete)
    assert ready_rungs(detail) == ["360p"] and detail["has_audio"] is False
    entries = master_entries(fetch(client, f"video/{video['id']}/master.m3u8", PLAYLIST_TYPE).decode())
    assert "mp4a" not in entries["360p/index.m3u8"]["CODECS"]
    _, streams = check_rung(client, tmp_path, video["id"], "360p")
    assert list(streams) == ["video"] and streams["video"]["height"] == 360


def test_text_file_renamed_mp4_fails_with_a_reason_and_is_kept(logged_in_client, clips, stack_env):
    client = logged_in_client
    fake = clips / "notes.mp4"
    fake.write_text("Shopping list: milk, eggs, a camera.\n")
    video = upload(client, fake)
    deadline = time.monotonic() + 60
    while (detail := client.get(f"video/{video['id']}/").json())["status"] != "failed":
        assert detail["status"] in {"uploaded", "queued", "processing"}, detail
        assert time.monotonic() < deadline, detail
        time.sleep(0.3)
    assert detail["failure_reason"].startswith("The file is not a video that can be read")
    assert detail["renditions"] == [] and detail["master_playlist_url"] is None
    originals = STORAGE.list(f"originals/{video['id']}/")
    assert [STORAGE.get(item.key) for item in originals] == [fake.read_bytes()]  # a failed video keeps its original
    assert video["id"] not in [item["id"] for item in client.get("video/").json()]
    assert client.get(f"video/{video['id']}/master.m3u8").status_code == 404


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def rung_encoder(video_id: int) -> int | None:
    """pid of an ffmpeg encoding an HLS rung of this video (of this stack: others may run beside it)."""
    # MEDIA_DIR/originals/<id>/..., or (S3) the job's copy in VAR_DIR/scratch/job-.../originals/<id>/...
    stack, original = STACK_ENV["VAR_DIR"].encode(), f"/originals/{video_id}/".encode()
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"ffmpeg") and b"-hls_time" in argv and \
                any(stack in arg and original in arg for arg in argv):
            return int(entry.name)
    return None


def owning_worker(pid: int, workers: dict[int, str]) -> str:
    """The stack process (the worker supervisord started) above `pid`."""
    while pid > 1:
        if pid in workers:
            return workers[pid]
        pid = parent_pid(pid)
    raise AssertionError("the encoder belongs to no transcoder worker of this stack")


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in {"Z", "X"}
    except OSError:
        return False


@pytest.fixture(scope="module")
def long_clip(clips) -> Path:
    """20 s of 854x480: its rungs take long enough to catch ffmpeg at work."""
    return generate_clip(clips / "long.mp4", 854, 480, 20)


def wait_for_encoder(client, video_id: int) -> int:
    deadline = time.monotonic() + 60
    while (encoder := rung_encoder(video_id)) is None:
        assert time.monotonic() < deadline, client.get(f"video/{video_id}/").json()
        time.sleep(0.02)
    return encoder


def test_video_deleted_mid_transcode_stops_its_jobs_and_leaves_no_files(logged_in_client, long_clip, stack_env):
    client = logged_in_client
    video = upload(client, long_clip, title="Deleted while transcoding")
    encoder = wait_for_encoder(client, video["id"])
    assert client.delete(f"video/{video['id']}/").status_code == 204
    # At once: the catalog stops the running job (rq's stop-job command kills its work horse and ffmpeg),
    # not at ffmpeg's next failed segment write.
    deadline = time.monotonic() + 5
    while alive(encoder):
        assert time.monotonic() < deadline, "ffmpeg kept encoding a deleted video"
        time.sleep(0.05)
    deadline = time.monotonic() + 20
    quiet_since = None
    while quiet_since is None or time.monotonic() - quiet_since < 3:
        stored = STORAGE.list(f"hls/{video['id']}/")
        assert time.monotonic() < deadline, f"still working on a deleted video: {stored}"
        busy = alive(encoder) or rung_encoder(video["id"]) is not None or stored
        quiet_since = None if busy else (quiet_since or time.monotonic())
        time.sleep(0.1)
    assert client.get(f"video/{video['id']}/").status_code == 404


def test_worker_killed_mid_transcode_still_ends_ready(logged_in_client, long_clip, stack_env):
    client = logged_in_client
    names = [process.name for process in STACK.processes(stack_env) if process.name.startswith("transcoder-")]
    workers = {pid: name for name in names if (pid := STACK.running_pid(stack_env, name))}
    assert len(workers) >= 2, "needs a second worker to take the job over"
    video = upload(client, long_clip, title="Killed worker")
    encoder = wait_for_encoder(client, video["id"])
    victim = owning_worker(encoder, workers)
    victim_pid = next(pid for pid, name in workers.items() if name == victim)
    try:
        os.killpg(victim_pid, signal.SIGKILL)  # the worker's group; its horse and ffmpeg die with it
        deadline = time.monotonic() + 5
        while alive(encoder):
            assert time.monotonic() < deadline, "ffmpeg outlived its killed worker"
            time.sleep(0.05)

        detail = wait_for(client, video["id"], complete)
        assert ready_rungs(detail) == ["360p", "480p"]
        assert [item.key for item in STORAGE.list(f"hls/{video['id']}/") if "/.tmp-" in item.key] == []
        for rung in ("360p", "480p"):
            assert client.get(f"video/{video['id']}/{rung}/index.m3u8").status_code == 200
    finally:  # supervisord restarts it by itself; make sure before the next test
        STACK.start(stack_env, next(p for p in STACK.processes(stack_env) if p.name == victim))
