"""The gateway with MEDIA_STORAGE=s3: media out of a private bucket of a real SeaweedFS.

deploy/nginx.conf rendered in s3 mode runs in front of the same fake auth and catalog as the local-mode
tests (gateway/tests/test_gateway_config.py) and signs its GETs with the read-only key (gateway/s3.js).
"""
from __future__ import annotations

import re
import subprocess
import time

import pytest
import requests
from botocore.exceptions import ClientError

from shared.tests.seaweedfs import BUCKET, SeaweedFS
from gateway.tests.test_gateway_config import RENDER, Gateway, nginx_test, render, workdir  # noqa: F401 (a fixture)

SEGMENT = bytes(range(256)) * 4096  # 1 MiB, every byte position distinct modulo 256
PLAYLIST = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:4.0,\nsegment_000.ts\n"
THUMBNAIL = b"\xff\xd8\xff\xe0 a JPEG, as far as anyone here can tell \xff\xd9"
MEDIA = {  # path under /api/video/ -> (object key, bytes)
    "5/480p/segment_000.ts": ("hls/5/480p/segment_000.ts", SEGMENT),
    "5/480p/index.m3u8": ("hls/5/480p/index.m3u8", PLAYLIST.encode()),
    "5/master.m3u8": ("hls/5/master.m3u8", b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n480p/index.m3u8\n"),
    "5/thumbnail.jpg": ("hls/5/thumbnail.jpg", THUMBNAIL),
}
SERVICE_UNAVAILABLE = {"detail": "Service unavailable. Please try again later."}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    directory = tmp_path_factory.mktemp("seaweedfs")
    with SeaweedFS(directory) as server:
        for key, body in MEDIA.values():
            server.put(key, body)
        yield server


@pytest.fixture
def gateway(workdir, s3):
    if s3.process.poll() is not None:  # a test stopped it: the next one gets it back, same data
        s3.start()
    running = Gateway(workdir, **s3.gateway_environment())
    running.media.mkdir()
    yield running
    running.stop()


def get(gateway, path, **kwargs):
    return requests.get(f"{gateway.url}/api/video/{path}", cookies={"access_token": gateway.token()}, timeout=20,
                        **kwargs)


def assert_json_error(response, status, body):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == body


# --- rendering ---------------------------------------------------------------------------------------------

def test_s3_mode_renders_a_valid_config_without_the_local_media_routes(workdir, s3):
    config = render(workdir / "gateway", KEYS_DIR=str(workdir / "keys"), **s3.gateway_environment()).read_text()
    assert nginx_test(workdir / "gateway").returncode == 0
    assert "location /_media/" not in config and "/_media_denied" in config
    assert not re.findall(r"\$\{[A-Z_]+\}|^#</?(s3|local)>$", config, re.MULTILINE)
    assert s3.gateway[1] not in config  # the secret stays in nginx's environment
    local = render(workdir / "local", KEYS_DIR=str(workdir / "keys")).read_text()
    assert "location /_media/" in local and "/_media_denied" not in local
    assert "proxy_cache media" not in local and "GATEWAY_S3" not in local and "s3.js" not in local


def test_https_endpoints_are_verified(workdir):
    config = render(workdir, MEDIA_STORAGE="s3", S3_ENDPOINT_URL="https://s3.eu-central-1.amazonaws.com",
                    S3_REGION="eu-central-1").read_text()
    assert "server s3.eu-central-1.amazonaws.com:443;" in config
    assert "proxy_pass https://s3/videoflix$uri?$s3_query;" in config
    assert "proxy_ssl_verify on;" in config and "proxy_ssl_name s3.eu-central-1.amazonaws.com;" in config


@pytest.mark.parametrize("environment", [{"MEDIA_STORAGE": "disk"}, {"MEDIA_STORAGE": "s3", "S3_ENDPOINT_URL": "ftp://x"},
                                         {"MEDIA_STORAGE": "s3", "S3_BUCKET": "a;b"}])
def test_bad_storage_settings_fail_the_render(workdir, environment):
    result = subprocess.run([str(RENDER), str(workdir)], env={"PATH": "/usr/bin:/bin", **environment},
                            capture_output=True, text=True)
    assert result.returncode != 0 and "render.sh:" in result.stderr


# --- playback ----------------------------------------------------------------------------------------------

def test_media_comes_out_of_the_bucket_with_the_local_headers(gateway):
    expected_types = {"ts": "video/MP2T", "m3u8": "application/vnd.apple.mpegurl", "jpg": "image/jpeg"}
    expected_cache = {"ts": "private, max-age=31536000, immutable", "m3u8": "private, max-age=5",
                      "jpg": "private, max-age=300"}
    for path, (_, body) in MEDIA.items():
        response = get(gateway, path)
        assert response.status_code == 200, (path, response.text)
        assert response.content == body
        kind = path.rsplit(".", 1)[1]
        assert response.headers["Content-Type"] == expected_types[kind]
        assert response.headers["Cache-Control"] == expected_cache[kind]
        assert response.headers["ETag"] and response.headers["Last-Modified"]
        assert response.headers["Accept-Ranges"] == "bytes"
        assert response.headers["X-Content-Type-Options"] == "nosniff"  # the gateway's own headers stay
        # Nothing of S3's own: no x-amz-*, no server name, no SeaweedFS extras, one Vary.
        leaked = [name for name in response.headers if name.lower().startswith(("x-amz", "seaweed"))]
        assert not leaked, leaked
        assert response.headers.get("Server", "nginx") == "nginx"
        assert response.headers["Vary"] == "Origin"


def test_a_growing_playlist_is_never_reused_unchecked(gateway, s3):
    """The transcoder stores a growing rung's playlist with `Cache-Control: no-cache` (as the streamer
    answers on local disk); once finished it is stored without, and may be reused a few seconds."""
    key = "hls/5/720p/index.m3u8"
    s3.client().put_object(Bucket=BUCKET, Key=key, Body=PLAYLIST.encode(), CacheControl="no-cache")
    try:
        for _ in range(2):  # from S3, then out of the gateway's cache: the same
            response = get(gateway, "5/720p/index.m3u8")
            assert response.status_code == 200 and response.headers["Cache-Control"] == "no-cache"
        s3.client().put_object(Bucket=BUCKET, Key=key, Body=PLAYLIST.encode() + b"#EXT-X-ENDLIST\n")
        time.sleep(2.5)  # the gateway keeps playlists 1 s (nginx counts whole seconds)
        response = get(gateway, "5/720p/index.m3u8")
        assert response.text.endswith("#EXT-X-ENDLIST\n")
        assert response.headers["Cache-Control"] == "private, max-age=5"
    finally:
        s3.client().delete_object(Bucket=BUCKET, Key=key)


def test_headers_match_local_mode(gateway, workdir):
    """The same media from local disk (the streamer's X-Accel-Redirect) and from S3: the same headers."""
    (workdir / "local").mkdir()
    local = Gateway(workdir / "local")
    for key, body in MEDIA.values():
        (local.media / key).parent.mkdir(parents=True, exist_ok=True)
        (local.media / key).write_bytes(body)
    try:
        for path in ("5/480p/segment_000.ts", "5/master.m3u8"):  # the echo streamer knows master.m3u8
            from_s3 = get(gateway, path)
            from_disk = requests.get(f"{local.url}/api/video/{path}", cookies={"access_token": local.token()})
            assert from_disk.status_code == from_s3.status_code == 200
            assert from_disk.content == from_s3.content
            for name in ("Content-Type", "Cache-Control", "Accept-Ranges", "Vary", "Content-Security-Policy"):
                assert from_s3.headers.get(name) == from_disk.headers.get(name), name
            for name in ("ETag", "Last-Modified"):
                assert from_s3.headers.get(name) and from_disk.headers.get(name), name
            ignored = {"date", "etag", "last-modified", "x-request-id", "x-cache-status", "connection"}
            assert {n.lower() for n in from_s3.headers} - ignored == {n.lower() for n in from_disk.headers} - ignored
    finally:
        local.stop()


def test_a_range_is_206_with_those_bytes(gateway):
    for attempt in ("miss", "hit"):
        response = get(gateway, "5/480p/segment_000.ts", headers={"Range": "bytes=1000-1999"})
        assert response.status_code == 206, (attempt, response.text)
        assert response.content == SEGMENT[1000:2000]
        assert response.headers["Content-Range"] == f"bytes 1000-1999/{len(SEGMENT)}"
    response = get(gateway, "5/480p/segment_000.ts", headers={"Range": f"bytes={len(SEGMENT)}-"})
    assert_json_error(response, 416, {"detail": "Requested range not satisfiable."})


def test_the_second_fetch_is_a_cache_hit(gateway):
    first = get(gateway, "5/480p/segment_000.ts")
    second = get(gateway, "5/480p/segment_000.ts")
    assert (first.headers["X-Cache-Status"], second.headers["X-Cache-Status"]) == ("MISS", "HIT")
    assert second.content == SEGMENT
    cached = [path for path in (gateway.prefix / "cache" / "media").rglob("*") if path.is_file()]
    assert len(cached) == 1 and SEGMENT[:4096] in cached[0].read_bytes()


def test_playlists_are_cached_for_a_second_only(gateway, s3):
    """A rung still encoding is an EVENT playlist that grows: viewers see the new segment within 2 s."""
    assert get(gateway, "5/480p/index.m3u8").text == PLAYLIST
    assert get(gateway, "5/480p/index.m3u8").headers["X-Cache-Status"] == "HIT"
    grown = PLAYLIST + "#EXTINF:4.0,\nsegment_001.ts\n"
    s3.put("hls/5/480p/index.m3u8", grown.encode())
    try:
        # nginx counts validity in whole seconds of its clock: 1 s is over within 2 s.
        deadline = time.monotonic() + 2.5
        while (served := get(gateway, "5/480p/index.m3u8").text) != grown and time.monotonic() < deadline:
            time.sleep(0.1)
        assert served == grown
    finally:
        s3.put("hls/5/480p/index.m3u8", PLAYLIST.encode())


def test_a_missing_object_is_the_json_404(gateway):
    for path in ("5/480p/segment_999.ts", "5/720p/index.m3u8"):
        assert_json_error(get(gateway, path), 404, {"detail": "Not found."})


def test_a_hidden_video_is_404_before_s3_is_asked(gateway, s3):
    s3.put("hls/6/480p/segment_000.ts", b"not for you")
    for path in ("6/480p/segment_000.ts", "6/master.m3u8"):
        assert_json_error(get(gateway, path), 404, {"detail": "Not found."})
    response = requests.get(f"{gateway.url}/api/video/5/480p/segment_000.ts")
    assert_json_error(response, 401, {"detail": "Authentication credentials were not provided or are invalid."})


def test_only_get_and_head(gateway):
    assert requests.head(f"{gateway.url}/api/video/5/480p/segment_000.ts",
                         cookies={"access_token": gateway.token()}).status_code == 200
    response = requests.post(f"{gateway.url}/api/video/5/480p/segment_000.ts", cookies={"access_token": gateway.token()})
    assert_json_error(response, 405, {"detail": "Method not allowed."})


def test_the_client_request_never_reaches_s3(gateway):
    """No cookie (the access token) and no client header goes to the bucket: S3 sees only the signed GET."""
    response = get(gateway, "5/thumbnail.jpg", headers={"X-Amz-Date": "19700101T000000Z",
                                                        "Authorization": "AWS4-HMAC-SHA256 forged"})
    assert response.status_code == 200 and response.content == THUMBNAIL


# --- the bucket is private ---------------------------------------------------------------------------------

def test_the_read_only_key_cannot_write_or_delete(s3):
    client = s3.client(s3.gateway)
    assert client.get_object(Bucket=BUCKET, Key="hls/5/thumbnail.jpg")["Body"].read() == THUMBNAIL
    for attempt in (lambda: client.put_object(Bucket=BUCKET, Key="hls/5/thumbnail.jpg", Body=b"defaced"),
                    lambda: client.delete_object(Bucket=BUCKET, Key="hls/5/thumbnail.jpg"),
                    lambda: client.create_bucket(Bucket="another")):
        with pytest.raises(ClientError) as refused:
            attempt()
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert s3.client().get_object(Bucket=BUCKET, Key="hls/5/thumbnail.jpg")["Body"].read() == THUMBNAIL


def test_anonymous_access_to_the_bucket_is_refused(s3):
    for url in (f"{s3.url}/{BUCKET}/hls/5/thumbnail.jpg", f"{s3.url}/{BUCKET}/", f"{s3.url}/"):
        response = requests.get(url, timeout=10)
        assert response.status_code == 403, (url, response.status_code)
        assert THUMBNAIL not in response.content
    assert requests.put(f"{s3.url}/{BUCKET}/x", data=b"y", timeout=10).status_code == 403


# --- S3 failing ----------------------------------------------------------------------------------------------

def test_a_wrong_gateway_secret_is_a_json_502(workdir, s3):
    gateway = Gateway(workdir, **s3.gateway_environment(secret="not-the-secret"))
    try:
        for path in ("5/480p/segment_000.ts", "5/master.m3u8"):
            response = get(gateway, path)
            assert_json_error(response, 502, SERVICE_UNAVAILABLE)
            assert "<" not in response.text and "AccessDenied" not in response.text
    finally:
        gateway.stop()


def test_a_gateway_without_its_key_is_a_json_502(workdir, s3):
    environment = s3.gateway_environment()
    del environment["GATEWAY_S3_SECRET_ACCESS_KEY"]
    gateway = Gateway(workdir, **environment)
    try:
        assert_json_error(get(gateway, "5/thumbnail.jpg"), 502, SERVICE_UNAVAILABLE)
    finally:
        gateway.stop()
    _, errors = gateway.process.communicate()
    assert b"GATEWAY_S3_SECRET_ACCESS_KEY" in errors


def test_s3_down_is_a_json_502_and_cached_segments_still_play(gateway, s3):
    assert get(gateway, "5/480p/segment_000.ts").content == SEGMENT  # now cached
    assert get(gateway, "5/480p/index.m3u8").text == PLAYLIST
    s3.stop()
    response = get(gateway, "5/480p/segment_000.ts")
    assert response.status_code == 200 and response.content == SEGMENT
    assert response.headers["X-Cache-Status"] == "HIT"
    time.sleep(2.1)  # the playlist's second is over: the last copy is served while S3 is away
    response = get(gateway, "5/480p/index.m3u8")
    assert response.status_code == 200 and response.text == PLAYLIST
    assert response.headers["X-Cache-Status"] == "STALE"
    for path in ("5/thumbnail.jpg", "5/480p/segment_001.ts"):  # never fetched: nothing to fall back on
        response = get(gateway, path)
        assert_json_error(response, 502, SERVICE_UNAVAILABLE)
