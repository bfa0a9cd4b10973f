"""Playlists, segments and thumbnails: path validation, X-Accel-Redirect, standalone file serving."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .conftest import PLAYLIST, SEGMENT, mint_token

ACCEL = {"X-Sendfile-Type": "X-Accel-Redirect"}
PUBLISHED = [
    # (url, file under hls/, content type, cache)
    ("/api/video/7/master.m3u8", "7/master.m3u8", "application/vnd.apple.mpegurl", "private, max-age=5"),
    ("/api/video/7/480p/index.m3u8", "7/480p/index.m3u8", "application/vnd.apple.mpegurl", "private, max-age=5"),
    ("/api/video/7/480p/segment_000.ts", "7/480p/segment_000.ts", "video/MP2T",
     "private, max-age=31536000, immutable"),
    ("/api/video/7/thumbnail.jpg", "7/thumbnail.jpg", "image/jpeg", "private, max-age=300"),
]


@pytest.mark.parametrize("url, relative, content_type, cache", PUBLISHED)
@pytest.mark.parametrize("slash", ["", "/"])
def test_behind_the_gateway_nginx_sends_the_file(client, url, relative, content_type, cache, slash):
    response = client.get(url + slash, headers=ACCEL)
    assert response.status_code == 200
    assert response.headers["X-Accel-Redirect"] == f"/_media/hls/{relative}"
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Cache-Control"] == cache
    assert response.data == b""


@pytest.mark.parametrize("url, relative, content_type, cache", PUBLISHED)
@pytest.mark.parametrize("slash", ["", "/"])
def test_alone_it_sends_the_file_itself(client, media_dir, url, relative, content_type, cache, slash):
    response = client.get(url + slash)
    assert response.status_code == 200
    assert "X-Accel-Redirect" not in response.headers
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Cache-Control"] == cache
    assert response.data == (media_dir / "hls" / relative).read_bytes()


def test_segments_support_byte_ranges_and_revalidation(client):
    response = client.get("/api/video/7/480p/segment_000.ts", headers={"Range": "bytes=100-199"})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes 100-199/{len(SEGMENT)}"
    assert response.data == SEGMENT[100:200]
    etag = client.get("/api/video/7/480p/index.m3u8").headers["ETag"]
    assert client.get("/api/video/7/480p/index.m3u8", headers={"If-None-Match": etag}).status_code == 304


def test_playlist_body_is_served_unchanged(client):
    assert client.get("/api/video/7/480p/index.m3u8").data.decode() == PLAYLIST


@pytest.mark.parametrize("url", [
    "/api/video/8/master.m3u8",                      # unknown video
    "/api/video/7/720p/index.m3u8",                  # rung still being written (.tmp-720p-...)
    "/api/video/7/1080p/segment_000.ts",             # rung never produced
    "/api/video/7/480p/segment_001.ts",              # no such segment
    "/api/video/9/thumbnail.jpg",
])
def test_unpublished_files_are_404_json(client, url):
    for headers in ({}, ACCEL):
        response = client.get(url, headers=headers)
        assert response.status_code == 404
        assert response.json == {"detail": "Not found."}
        assert "X-Accel-Redirect" not in response.headers


@pytest.mark.parametrize("url", [
    "/api/video/07/480p/segment_000.ts",             # leading zero: another spelling of the id
    "/api/video/-7/480p/index.m3u8",
    "/api/video/\u0667/480p/index.m3u8",             # Arabic-Indic seven
    "/api/video/7/480P/index.m3u8",
    "/api/video/7/480p /index.m3u8",
    "/api/video/7/.tmp-720p-abc/index.m3u8",
    "/api/video/7/480p/segment_00.ts",
    "/api/video/7/480p/segment_0000000.ts",
    "/api/video/7/480p/segment_000.ts.bak",
    "/api/video/7/480p/segment_000.ts%00",
    "/api/video/7/480p/segment_000.ts%0a",
    "/api/video/7/480p/SEGMENT_000.TS",
    "/api/video/7/480p/index.m3u8.tmp",
    "/api/video/7/480p/..%2f..%2f..%2fsecret.txt",
    "/api/video/7/..%2f..%2foriginals%2f7%2fclip.mp4",
    "/api/video/7/480p/%2e%2e/%2e%2e/%2e%2e/secret.txt",
    "/api/video/..%2f..%2fsecret.txt/480p/index.m3u8",
    "/api/video/7/%2e%2e/480p/segment_000.ts",
    "/api/video/7/480p/%252e%252e%252fsecret.txt",
    "/api/video/7/480p/segment_000.ts/extra",
    "/api/video/7/480p//segment_000.ts",
    "/api/video/7/original/clip.mp4",
])
def test_path_parts_are_strictly_validated(client, media_dir, url):
    response = client.get(url, headers=ACCEL)
    assert response.status_code == 404, url
    assert response.is_json
    assert "X-Accel-Redirect" not in response.headers


def test_percent_encoded_parts_are_validated_after_decoding(client):
    response = client.get("/api/video/%37/480p/segment%5F000.ts", headers=ACCEL)
    assert response.headers["X-Accel-Redirect"] == "/_media/hls/7/480p/segment_000.ts"


def hand_made_token(algorithm: str, secret: str) -> str:
    """What PyJWT refuses to make: a token signed with HMAC over the public key, or unsigned."""
    def encode(data) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=")

    now = int(time.time())
    signing_input = encode({"alg": algorithm, "typ": "JWT"}) + b"." + encode(
        {"sub": "1", "type": "access", "jti": "j", "iat": now, "nbf": now, "exp": now + 300, "csrf": "x"})
    signature = b""
    if algorithm == "HS256":
        digest = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
        signature = base64.urlsafe_b64encode(digest).rstrip(b"=")
    return (signing_input + b"." + signature).decode()


def test_every_route_needs_a_valid_access_token(app, private_key, keys_dir):
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    public_key = (keys_dir / "jwt_public.pem").read_text()
    forged = {
        "none": None,
        "garbage": "not.a.token",
        "expired": mint_token(private_key, lifetime=timedelta(seconds=-10)),
        "refresh token": mint_token(private_key, token_type="refresh"),
        "other key": mint_token(other_key),
        "HS256 with the public key as secret": hand_made_token("HS256", public_key),
        "alg none": hand_made_token("none", ""),
    }
    for name, token in forged.items():
        client = app.test_client()
        if token:
            client.set_cookie("access_token", token)
        for url, *_ in PUBLISHED:
            response = client.get(url, headers=ACCEL)
            assert response.status_code == 401, (name, url)
            assert "detail" in response.json


def test_health_checks_the_media_directory(app, media_dir):
    assert app.test_client().get("/healthz").json == {"status": "ok", "checks": {"media": "ok"}}


@pytest.mark.parametrize("headers", [ACCEL, {}])
def test_a_growing_playlist_is_never_reused_unchecked(client, media_dir, headers):
    """The first rung's EVENT playlist gains segments while it encodes: no-cache until it is finished."""
    playlist = media_dir / "hls" / "7" / "480p" / "index.m3u8"
    playlist.write_text("#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:2.0,\nsegment_000.ts\n")
    assert client.get("/api/video/7/480p/index.m3u8", headers=headers).headers["Cache-Control"] == "no-cache"
    playlist.write_text(PLAYLIST)
    assert client.get("/api/video/7/480p/index.m3u8", headers=headers).headers["Cache-Control"] == \
        "private, max-age=5"
