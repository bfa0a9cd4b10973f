"""Streamer unit tests: a temporary MEDIA_DIR tree and a freshly generated key pair."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import jwt
import pytest
from videoflix_shared import Settings
from videoflix_shared.keys import generate

from services.streamer.app import create_app

PLAYLIST = "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:2.0,\nsegment_000.ts\n#EXT-X-ENDLIST\n"
SEGMENT = bytes(range(256)) * 64


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys")
    generate(directory)
    return directory


@pytest.fixture
def media_dir(tmp_path):
    """Video 7 published with a 480p rung, a half-written 720p rung in its temporary folder."""
    hls = tmp_path / "media" / "hls" / "7"
    (hls / "480p").mkdir(parents=True)
    (hls / "master.m3u8").write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1200000\n480p/index.m3u8\n")
    (hls / "480p" / "index.m3u8").write_text(PLAYLIST)
    (hls / "480p" / "segment_000.ts").write_bytes(SEGMENT)
    (hls / "thumbnail.jpg").write_bytes(b"\xff\xd8\xff\xe0 jpeg")
    (hls / ".tmp-720p-abc").mkdir()
    (hls / ".tmp-720p-abc" / "index.m3u8").write_text(PLAYLIST)
    (tmp_path / "media" / "originals" / "7").mkdir(parents=True)
    (tmp_path / "media" / "originals" / "7" / "clip.mp4").write_bytes(b"original")
    (tmp_path / "secret.txt").write_text("not media")
    return tmp_path / "media"


@pytest.fixture
def app(keys_dir, media_dir):
    settings = Settings.from_env({"KEYS_DIR": str(keys_dir), "MEDIA_DIR": str(media_dir)})
    return create_app({"TESTING": True, "SETTINGS": settings})


@pytest.fixture
def private_key(keys_dir) -> str:
    return (keys_dir / "jwt_private.pem").read_text()


def mint_token(private_key: str, *, token_type: str = "access", lifetime: timedelta = timedelta(minutes=5),
               algorithm: str = "RS256") -> str:
    now = datetime.now(timezone.utc)
    claims = {"sub": "1", "type": token_type, "jti": uuid.uuid4().hex, "iat": now, "nbf": now,
              "exp": now + lifetime, "csrf": "x", "email": "user1@example.com", "is_admin": False}
    return jwt.encode(claims, private_key, algorithm=algorithm)


@pytest.fixture
def client(app, private_key):
    """A logged-in client (access token cookie)."""
    client = app.test_client()
    client.set_cookie("access_token", mint_token(private_key))
    return client
