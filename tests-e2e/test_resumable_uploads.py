"""Resumable (tus) uploads through the gateway: a 200 MiB upload cut halfway and resumed, another user's
resume refused, and tus-js-client (the web app's client) resuming in a second session."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import ROOT, STACK, STACK_ENV, STORAGE, generate_clip, login, register_and_activate
from test_videos import wait_until_ready

# Pass copies: ApiClient adds X-CSRFToken to the headers dict it is given.
TUS = {"Tus-Resumable": "1.0.0"}
BIG = 200 * 1024 * 1024
CUT_AFTER = BIG // 2


def metadata(filename: str) -> str:
    fields = {"filename": filename, "title": "Resumable", "description": "Sent twice", "category": "Testing"}
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in fields.items())


def create(client, size: int, filename: str = "big.bin") -> str:
    """The new upload's absolute URL (Location is relative to the gateway)."""
    response = client.post("uploads/", headers={**TUS, "Upload-Length": str(size),
                                                "Upload-Metadata": metadata(filename)})
    assert response.status_code == 201, response.text
    assert response.headers["Location"].startswith("/api/uploads/")
    return client.base.removesuffix("/api/") + response.headers["Location"]


def offset_of(client, url: str) -> int:
    response = client.head(url, headers={**TUS})
    assert response.status_code == 200, response.status_code
    return int(response.headers["Upload-Offset"])


def sha256(path: Path, start: int = 0) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(start)
        while block := handle.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def big_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tus") / "big.bin"
    with open(path, "wb") as handle:
        for _ in range(BIG // (8 * 1024 * 1024)):
            handle.write(os.urandom(8 * 1024 * 1024))
    return path


def send_then_drop(gateway_url: str, url: str, client, path: Path, sent: int) -> None:
    """A PATCH announcing the whole file whose connection dies after `sent` bytes of body."""
    address = urlsplit(gateway_url)
    cookies = "; ".join(f"{cookie.name}={cookie.value}" for cookie in client.cookies)
    head = (f"PATCH {url} HTTP/1.1\r\nHost: {address.netloc}\r\nTus-Resumable: 1.0.0\r\n"
            f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
            f"Content-Length: {BIG}\r\nX-CSRFToken: {client.cookies['csrftoken']}\r\nCookie: {cookies}\r\n\r\n")
    with socket.create_connection((address.hostname, address.port), timeout=60) as connection, \
            open(path, "rb") as handle:
        connection.sendall(head.encode())
        while sent > 0:
            block = handle.read(min(1024 * 1024, sent))
            connection.sendall(block)
            sent -= len(block)


# How much a catalog worker's resident memory may grow while it receives the 200 MiB: far below the
# upload's size, as the body streams to disk (or, on S3, into the bucket) in parts of a few MiB; a
# buffered half alone would add 100 MiB. Growth, not the peak: the one long-lived worker has served the
# whole suite before this test, and freed heap that glibc keeps is not this upload's.
WORKER_RSS_GROWTH_LIMIT = 48 * 1024 * 1024


def catalog_workers(stack_env) -> list[str]:
    master = STACK.running_pid(stack_env, "catalog")
    assert master, "the test stack's catalog is not running"
    return Path(f"/proc/{master}/task/{master}/children").read_text().split()


def reset_catalog_worker_peaks(stack_env) -> dict[str, int]:
    """Start the workers' VmHWM afresh (`5` to clear_refs, Linux >= 4.0) and return their resident memory
    then, in bytes per pid: the peak measured later, less this, is what this upload made them grow by."""
    for pid in catalog_workers(stack_env):
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    return {pid: status_bytes(pid, "VmRSS") for pid in catalog_workers(stack_env)}


def status_bytes(pid: str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


def catalog_worker_growth(stack_env, baseline: dict[str, int]) -> list[int]:
    """Peak RSS since the reset less the RSS at the reset, in bytes, per catalog worker still running."""
    return [status_bytes(pid, "VmHWM") - baseline[pid] for pid in catalog_workers(stack_env) if pid in baseline]


def warm_up(client) -> None:
    """One small resumable upload end to end first, so the worker has loaded everything that path uses
    (boto3's service model on S3: ~40 MiB once per process) before its growth is measured."""
    url = create(client, 1000, "warm.bin")
    response = client.patch(url, data=b"w" * 1000, headers={
        **TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"})
    assert response.status_code == 204, response.text
    assert client.delete(f"video/{int(response.headers['X-Video-Id'])}/").status_code == 204


def wait_for_offset(client, url: str) -> int:
    """The catalog commits what arrived once it sees the connection end."""
    deadline = time.monotonic() + 120
    while (offset := offset_of(client, url)) == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    return offset


def test_a_200_mib_upload_cut_halfway_resumes_with_identical_bytes(logged_in_client, gateway_url, stack_env,
                                                                   big_file, tmp_path_factory):
    client = logged_in_client
    warm_up(client)
    baseline = reset_catalog_worker_peaks(stack_env)
    url = create(client, BIG)
    path = urlsplit(url).path
    send_then_drop(gateway_url, path, client, big_file, CUT_AFTER)
    offset = wait_for_offset(client, url)
    # All that reached the catalog is kept (nginx may still have held a little when the client vanished).
    assert CUT_AFTER - 16 * 1024 * 1024 <= offset <= CUT_AFTER, offset
    with open(big_file, "rb") as handle:
        handle.seek(offset)
        response = client.patch(url, data=handle, timeout=300, headers={
            **TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)})
    assert response.status_code == 204, response.text
    assert response.headers["Upload-Offset"] == str(BIG)
    video_id = int(response.headers["X-Video-Id"])
    detail = client.get(f"video/{video_id}/").json()
    assert detail["title"] == "Resumable" and detail["status"] != "uploaded"
    original = tmp_path_factory.mktemp("stored") / "big.bin"
    STORAGE.download(f"originals/{video_id}/big.bin", original)
    assert original.stat().st_size == BIG
    assert sha256(original) == sha256(big_file)
    growth = catalog_worker_growth(stack_env, baseline)
    assert growth and max(growth) < WORKER_RSS_GROWTH_LIMIT, growth
    assert not (Path(stack_env["MEDIA_DIR"]) / "resumable" / path.strip("/").rsplit("/", 1)[1]).exists()
    assert client.delete(f"video/{video_id}/").status_code == 204


def test_another_user_cannot_resume_an_upload(logged_in_client, make_client, mail):
    url = create(logged_in_client, 1000)
    patch = {**TUS, "Content-Type": "application/offset+octet-stream"}
    assert logged_in_client.patch(url, data=b"a" * 400, headers={**patch, "Upload-Offset": "0"}).status_code == 204
    intruder = make_client()
    login(intruder, register_and_activate(intruder, mail))
    assert intruder.head(url, headers={**TUS}).status_code == 404
    refused = intruder.patch(url, data=b"b" * 600, headers={**patch, "Upload-Offset": "400"})
    assert refused.status_code == 404 and refused.json() == {"detail": "Upload not found."}
    assert intruder.delete(url, headers={**TUS}).status_code == 404
    anonymous = make_client()
    assert anonymous.head(url, headers={**TUS}).status_code == 401
    assert offset_of(logged_in_client, url) == 400
    assert logged_in_client.delete(url, headers={**TUS}).status_code == 204


def test_tus_discovery_and_preflight_at_the_gateway(client):
    response = client.options("uploads/", headers={
        "Origin": "http://127.0.0.1:5500", "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "tus-resumable,upload-offset,content-type,x-csrftoken"})
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    assert response.headers["Tus-Extension"] == "creation,termination,expiration"
    assert "PATCH" in response.headers["Access-Control-Allow-Methods"]
    assert "upload-offset" in response.headers["Access-Control-Allow-Headers"].lower()


def test_tus_js_client_resumes_in_a_second_session_and_the_video_plays(logged_in_client, gateway_url,
                                                                       stack_env, tmp_path):
    clip = generate_clip(tmp_path / "resumed clip.mp4", 320, 240, 4)
    cookies = "; ".join(f"{cookie.name}={cookie.value}" for cookie in logged_in_client.cookies)
    chunk = max(clip.stat().st_size // 3, 1)
    result = subprocess.run(
        ["node", str(ROOT / "tests-e2e" / "js" / "tus_upload.cjs"), f"{gateway_url}/api/uploads/", str(clip),
         cookies, logged_in_client.cookies["csrftoken"], str(chunk)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "NODE_PATH": str(ROOT / "frontend" / "node_modules")})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    first, second = report["first"], report["second"]
    assert first["offsets"] == [chunk] and "videoId" not in first
    assert second["url"] == first["url"]
    # The second session asked where the first stopped and sent only the rest.
    assert second["offsets"][0] == min(2 * chunk, clip.stat().st_size)
    video_id = second["videoId"]
    assert STORAGE.get(f"originals/{video_id}/resumed_clip.mp4") == clip.read_bytes()
    detail = wait_until_ready(logged_in_client, video_id)
    assert detail["title"] == "Resumed with tus-js-client" and detail["renditions"]
