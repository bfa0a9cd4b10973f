"""S3 failing under a MEDIA_STORAGE=s3 stack: killed during an upload, a transcode and playback; wrong
credentials; a 5xx or a full bucket. Each ends in a clear JSON error or a retry: never a 500, never a
lost original, never a half rung served.

The stack runs its own SeaweedFS (scripts/stack.py, program `seaweedfs` on S3_PORT). For the 5xx and
full-bucket cases that SeaweedFS moves to other ports (same data, same keys) and a small proxy takes
S3_PORT: it forwards every request unchanged (SigV4 signs the Host header, which it keeps), or answers
like a failing S3 with the status it is told (503 SlowDown, 507 / 500...).
"""
from __future__ import annotations

import http.client
import importlib.util
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from bench.harness import make_clip, register_and_login, upload, video, wait_for_ladder, wait_until
from shared.tests.seaweedfs import SeaweedFS

# The S3 pipeline (storage interface, catalog and transcoders on S3, the stack's SeaweedFS) lands with
# the s3 branch; until it is merged these tests have nothing to run against.
pytest.importorskip("videoflix_shared.storage")


def _transcoder_kill_module():
    """test_transcoder_kill.py's playlist watcher (tests-faults/ is no package: loaded by its path)."""
    spec = importlib.util.spec_from_file_location("s3_faults_transcoder_kill",
                                                  Path(__file__).with_name("test_transcoder_kill.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_kill = _transcoder_kill_module()
PlaylistWatcher, running_ffmpeg = _kill.PlaylistWatcher, _kill.running_ffmpeg

LADDER_TIMEOUT = 300
S3_ERRORS = {500: "InternalError", 503: "SlowDown", 507: "InsufficientStorage"}


class FaultyS3(ThreadingHTTPServer):
    """On S3_PORT: passes requests to the real S3 at `upstream`, or, while `failing` holds a status,
    answers every one of them with that status and an S3 error document."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, upstream: int):
        self.upstream, self.failing, self.seen = upstream, None, []
        super().__init__(("127.0.0.1", port), FaultyS3Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class FaultyS3Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_any(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = self.server.failing
        self.server.seen.append((self.command, self.path.split("?")[0], status))
        if status:
            document = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{S3_ERRORS.get(status, "Error")}'
                        f"</Code><Message>injected</Message></Error>").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)
            return
        connection = http.client.HTTPConnection("127.0.0.1", self.server.upstream, timeout=60)
        headers = {name: value for name, value in self.headers.items() if name.lower() != "connection"}
        connection.request(self.command, self.path, body=body, headers=headers)
        answer = connection.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        connection.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any

    def log_message(self, *args):
        pass


def start_s3(stack) -> None:
    """Start the stack's SeaweedFS and wait until its S3 API takes requests again."""
    stack.start("seaweedfs")
    client = services_client(stack)

    def answers():
        try:
            return client.head_bucket(Bucket=stack.env.get("S3_BUCKET") or "videoflix") or True
        except Exception:  # still starting (or refusing keys a test changed: then the test waits itself)
            return False

    wait_until(answers, 60, interval=0.2, what="SeaweedFS back")


def anonymous_status(stack) -> int | None:
    try:
        return requests.get(stack.env["S3_ENDPOINT_URL"] + "/", timeout=2).status_code
    except requests.RequestException:
        return None


@pytest.fixture(scope="module")
def s3_stack(make_stack):
    return make_stack(MEDIA_STORAGE="s3")


@pytest.fixture(scope="module")
def session(s3_stack):
    return register_and_login(s3_stack)


@pytest.fixture
def seaweedfs_back(s3_stack):
    """Whatever a test did to S3, the stack's own SeaweedFS is running again after it."""
    yield
    start_s3(s3_stack)


@pytest.fixture
def faulty_s3(s3_stack, tmp_path):
    """The stack's SeaweedFS moved to other ports behind a FaultyS3 on S3_PORT; put back after the test."""
    s3_stack.stop("seaweedfs")
    weed_dir = s3_stack.var_dir / "seaweedfs"
    moved = SeaweedFS(tmp_path, data=weed_dir / "data", identities=weed_dir / "s3.json").start()
    proxy = FaultyS3(int(s3_stack.env["S3_PORT"]), moved.port)
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        moved.stop()
        start_s3(s3_stack)


def assert_json_error(response: requests.Response, statuses: tuple[int, ...]) -> None:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json"), response.headers["Content-Type"]
    assert response.json()["detail"]


def ready_video(session, stack) -> tuple[int, dict]:
    video_id = upload(session, make_clip(6, 640, 360), "s3 faults")["id"]
    return video_id, wait_for_ladder(session, video_id, LADDER_TIMEOUT)


def segment_urls(session, stack, video_id) -> list[str]:
    base = f"{stack.api_url}video/{video_id}/"
    rung = session.get(f"{base}master.m3u8").text.splitlines()[-1].split("/")[0]
    names = [line for line in session.get(f"{base}{rung}/index.m3u8").text.splitlines()
             if line and not line.startswith("#")]
    return [f"{base}{rung}/{name}" for name in names]


# --- playback -----------------------------------------------------------------------------------------------

def test_s3_killed_during_playback(s3_stack, session, seaweedfs_back):
    video_id, _ = ready_video(session, s3_stack)
    played, never_played = segment_urls(session, s3_stack, video_id)[:2]
    assert session.get(played).status_code == 200  # in the gateway's cache from now on
    s3_stack.stop("seaweedfs")
    cached = session.get(played)
    assert cached.status_code == 200 and cached.content
    assert_json_error(session.get(never_played), (502, 503, 504))
    assert_json_error(session.get(f"{s3_stack.api_url}video/{video_id}/thumbnail.jpg"), (502, 503, 504))
    start_s3(s3_stack)
    wait_until(lambda: session.get(never_played).status_code == 200, 30, what="playback after S3 is back")


# --- uploads ------------------------------------------------------------------------------------------------

def upload_status(session, stack, path) -> requests.Response:
    with open(path, "rb") as handle:
        return session.post(f"{stack.api_url}video/upload/", data={"title": "s3 faults", "description": "generated",
                                                                  "category": "faults"},
                            files={"file": (path.name, handle, "video/mp4")}, timeout=120)


def services_client(stack):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=stack.env["S3_ENDPOINT_URL"], region_name=stack.env.get("S3_REGION"),
                        aws_access_key_id=stack.env["S3_ACCESS_KEY_ID"],
                        aws_secret_access_key=stack.env["S3_SECRET_ACCESS_KEY"],
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


class KillS3MidUpload(threading.Thread):
    """Stops the stack's SeaweedFS as soon as a multipart upload is under way in the bucket."""

    def __init__(self, stack):
        super().__init__(daemon=True)
        self.stack, self.client, self.killed = stack, services_client(stack), False

    def run(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.client.list_multipart_uploads(Bucket=self.stack.env.get("S3_BUCKET") or "videoflix").get("Uploads"):
                self.stack.stop("seaweedfs")
                self.killed = True
                return
            time.sleep(0.02)


def test_s3_killed_during_an_upload_is_a_json_error_and_no_video(s3_stack, session, seaweedfs_back, tmp_path):
    """A 48 MiB upload streaming part by part into the bucket when S3 dies: a JSON 503, no video row."""
    big = tmp_path / "big.mp4"
    big.write_bytes(make_clip(6, 640, 360).read_bytes() + b"\0" * (48 * 1024**2))
    mine = f"{s3_stack.api_url}video/mine/"
    before = session.get(mine).json()
    killer = KillS3MidUpload(s3_stack)
    killer.start()
    response = upload_status(session, s3_stack, big)
    killer.join()
    assert killer.killed, "S3 was never seen taking the upload"
    assert_json_error(response, (502, 503, 504))
    assert session.get(mine).json() == before, "a failed upload left a video behind"
    assert_json_error(upload_status(session, s3_stack, big), (502, 503, 504))  # S3 still down
    start_s3(s3_stack)
    clip = make_clip(6, 640, 360)
    created = wait_until(lambda: (r := upload_status(session, s3_stack, clip)).status_code == 201 and r, 60,
                         what="an upload once S3 is back")
    assert wait_for_ladder(session, created.json()["id"], LADDER_TIMEOUT)["status"] == "ready"


# --- transcoding --------------------------------------------------------------------------------------------

def test_s3_killed_during_a_transcode_never_serves_a_half_rung(s3_stack, session, seaweedfs_back):
    video_id = upload(session, make_clip(20, 1280, 720), "s3 dies mid-ladder")["id"]
    watcher = PlaylistWatcher(session, f"{s3_stack.api_url}video/{video_id}/")
    wait_until(lambda: running_ffmpeg(s3_stack), 90, interval=0.1, what="a transcoder running ffmpeg")
    time.sleep(2)
    s3_stack.stop("seaweedfs")
    time.sleep(8)  # jobs fail to fetch or to upload now; their retries back off
    start_s3(s3_stack)
    watcher.start()
    try:
        detail = wait_until(lambda: (d := video(session, video_id))["status"] in ("ready", "failed")
                            and not d.get("renditions_pending") and d, LADDER_TIMEOUT, interval=1,
                            what="the ladder to settle")
        if detail["status"] == "failed":  # retries used up: the original is kept, a retry finishes it
            retry = session.post(f"{s3_stack.api_url}video/{video_id}/retry/")
            assert retry.status_code in (200, 202), retry.text
            detail = wait_for_ladder(session, video_id, LADDER_TIMEOUT)
    finally:
        watcher.finished.set()
        watcher.join(timeout=30)
    assert detail["status"] == "ready"
    assert not [p for p in watcher.problems if "answered 5" not in p], "\n".join(watcher.problems[:5])


# --- S3 refusing us -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [503, 507, 500])
def test_s3_errors_are_json_errors_never_500(s3_stack, session, faulty_s3, status):
    video_id, _ = ready_video(session, s3_stack)
    never_played = segment_urls(session, s3_stack, video_id)[-1]
    mine = session.get(f"{s3_stack.api_url}video/mine/").json()
    faulty_s3.failing = status
    try:
        assert_json_error(upload_status(session, s3_stack, make_clip(4, 640, 360)), (502, 503, 507))
        assert session.get(f"{s3_stack.api_url}video/mine/").json() == mine, "a refused upload left a video"
        assert_json_error(session.get(f"{s3_stack.api_url}video/{video_id}/thumbnail.jpg"), (502, 503))
        assert_json_error(session.get(never_played), (502, 503))
    finally:
        faulty_s3.failing = None
    assert any(seen[2] == status for seen in faulty_s3.seen), "S3 was never asked"
    assert session.get(never_played).status_code == 200  # and the original is still there to play
    assert session.get(f"{s3_stack.api_url}video/{video_id}/").json()["status"] == "ready"


def test_a_delete_refused_by_s3_keeps_the_video_or_succeeds(s3_stack, session, faulty_s3):
    video_id, _ = ready_video(session, s3_stack)
    faulty_s3.failing = 503
    try:
        deleted = session.delete(f"{s3_stack.api_url}video/{video_id}/")
    finally:
        faulty_s3.failing = None
    assert deleted.status_code != 500
    if deleted.status_code == 204:
        assert session.get(f"{s3_stack.api_url}video/{video_id}/").status_code == 404
    else:
        assert_json_error(deleted, (502, 503))
        assert session.get(f"{s3_stack.api_url}video/{video_id}/").status_code == 200, \
            "the delete answered an error, yet the video is gone"


def test_wrong_s3_credentials_are_json_errors(s3_stack, session, seaweedfs_back):
    """SeaweedFS restarted with other secrets for both keys: the services' and the gateway's are wrong."""
    video_id, _ = ready_video(session, s3_stack)
    identities_file = s3_stack.var_dir / "seaweedfs" / "s3.json"
    original = identities_file.read_text()
    identities = json.loads(original)
    for identity in identities["identities"]:
        identity["credentials"][0]["secretKey"] = "not-" + identity["credentials"][0]["secretKey"]
    s3_stack.stop("seaweedfs")
    identities_file.write_text(json.dumps(identities))
    try:
        s3_stack.start("seaweedfs")
        wait_until(lambda: anonymous_status(s3_stack) == 403, 60, interval=0.2, what="SeaweedFS with other keys")
        assert_json_error(upload_status(session, s3_stack, make_clip(4, 640, 360)), (502, 503))
        assert_json_error(session.get(f"{s3_stack.api_url}video/{video_id}/thumbnail.jpg"), (502,))
    finally:
        s3_stack.stop("seaweedfs")
        identities_file.write_text(original)
    start_s3(s3_stack)
    wait_until(lambda: session.get(f"{s3_stack.api_url}video/{video_id}/thumbnail.jpg").status_code == 200, 30,
               what="playback with the right keys again")
