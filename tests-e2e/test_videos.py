"""Uploading, listing, inspecting and deleting videos through the gateway (catalog + streamer)."""
from __future__ import annotations

import random
import time
import uuid
from pathlib import Path

import pytest

from conftest import catalog_video, generate_clip, login, register_and_activate

FORM = {"title": "E2E clip", "description": "A generated test clip", "category": "Testing"}
READY_TIMEOUT = 180


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    """A 2-second 320x240 H.264/AAC clip."""
    return generate_clip(tmp_path_factory.mktemp("clips") / "tiny clip.mp4", 320, 240, 2)


def upload(client, clip: Path, **overrides):
    with open(clip, "rb") as handle:
        return client.post("video/upload/", data={**FORM, **overrides}, files={"file": (clip.name, handle)})


def multipart(file_size: int) -> tuple[bytes, str]:
    """A complete upload body whose file part has `file_size` bytes."""
    boundary = uuid.uuid4().hex
    fields = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
                      for name, value in FORM.items())
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'.encode()
    return fields + head + bytes(file_size) + f"\r\n--{boundary}--\r\n".encode(), boundary


def wait_for_status(client, video_id: int, wanted: str) -> dict:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        detail = client.get(f"video/{video_id}/").json()
        if detail["status"] == wanted:
            return detail
        assert detail["status"] not in {"ready", "failed"}, detail
        time.sleep(0.5)
    raise AssertionError(f"video {video_id} not {wanted} after {READY_TIMEOUT}s: {detail}")


def wait_until_ready(client, video_id: int) -> dict:
    return wait_for_status(client, video_id, "ready")


def listed_ids(client) -> list[int]:
    response = client.get("video/")
    assert response.status_code == 200
    return [item["id"] for item in response.json()]


@pytest.fixture
def other_client(make_client, mail):
    other = make_client()
    login(other, register_and_activate(other, mail))
    return other


def test_upload_needs_login(client, clip):
    response = upload(client, clip)
    assert response.status_code == 401
    assert "detail" in response.json()


def test_upload_needs_the_csrf_header(logged_in_client, clip):
    with open(clip, "rb") as handle:
        response = logged_in_client.post("video/upload/", data=FORM, files={"file": (clip.name, handle)},
                                         csrf=False)
    assert response.status_code == 403
    assert response.json() == {"detail": "CSRF token missing or incorrect."}


def test_missing_fields_are_400_field_errors(logged_in_client, clip):
    response = logged_in_client.post("video/upload/", data={"title": "only a title"})
    assert response.status_code == 400
    assert set(response.json()) == {"file", "description", "category"}
    response = upload(logged_in_client, clip, category="")
    assert response.status_code == 400
    assert list(response.json()) == ["category"]


def test_control_characters_in_an_upload_are_400_not_500(logged_in_client, clip):
    for field in ("title", "description", "category"):
        response = upload(logged_in_client, clip, **{field: "a\x00b"})
        assert response.status_code == 400, (field, response.text)
        assert response.json() == {field: ["Control characters are not allowed."]}


def test_oversize_upload_is_413(logged_in_client, stack_env, media_storage):
    limit = int(stack_env["MAX_UPLOAD_BYTES"])
    before = {item.key for item in media_storage.list("originals/")}
    for file_size in (limit + 1, limit + 2 * 1024 * 1024):  # refused by the catalog, then by the gateway
        body, boundary = multipart(file_size)
        response = logged_in_client.post("video/upload/", data=body, timeout=120,
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert response.status_code == 413, file_size
        assert response.json() == {"detail": "Request body too large."}
    # The catalog streamed the first one to an original's key until the limit: dropped (aborted) there.
    assert {item.key for item in media_storage.list("originals/")} == before


def test_upload_shows_progress_then_plays_and_is_listed(logged_in_client, other_client, clip, stack_env,
                                                        gateway_url, media_storage):
    client = logged_in_client
    response = upload(client, clip)
    assert response.status_code == 201, response.text
    video = response.json()
    video_id = video["id"]
    assert video["status"] in {"queued", "processing"}
    assert (video["title"], video["category"], video["progress"]) == ("E2E clip", "Testing", 0)
    assert media_storage.get(f"originals/{video_id}/tiny_clip.mp4") == clip.read_bytes()

    detail = client.get(f"video/{video_id}/").json()
    if detail["status"] != "ready":
        assert video_id not in listed_ids(client)
        assert other_client.get(f"video/{video_id}/").status_code == 404

    detail = wait_until_ready(client, video_id)
    assert detail["renditions"], detail
    assert detail["master_playlist_url"] == f"{stack_env['PUBLIC_BASE_URL']}/api/video/{video_id}/master.m3u8"
    listed = [item for item in client.get("video/").json() if item["id"] == video_id]
    assert listed == [{
        "id": video_id, "created_at": detail["created_at"], "title": "E2E clip",
        "description": "A generated test clip",
        "thumbnail_url": f"{stack_env['PUBLIC_BASE_URL']}/api/video/{video_id}/thumbnail.jpg",
        "category": "Testing",
    }]
    assert other_client.get(f"video/{video_id}/").status_code == 200

    master = other_client.get(f"video/{video_id}/master.m3u8")
    assert master.status_code == 200
    assert master.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    for rendition in detail["renditions"]:
        playlist = other_client.get(f"video/{video_id}/{rendition['rung']}/index.m3u8/")
        assert playlist.status_code == 200 and "segment_000.ts" in playlist.text
    rung = detail["renditions"][0]["rung"]
    for sneaky in (f"video/{video_id}/%2e%2e/{video_id}/master.m3u8", f"video/{video_id}/{rung}/..%2Findex.m3u8",
                   f"video/{video_id}/{rung}/index.m3u8%00", f"video/0{video_id}/master.m3u8"):
        response = other_client.get(sneaky)
        assert response.status_code in (400, 404), sneaky
        assert "detail" in response.json()


def test_a_video_that_never_gets_ready_is_never_listed(logged_in_client, other_client, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("This is a text file, not a video.\n" * 50)
    response = upload(logged_in_client, fake)
    assert response.status_code == 201, response.text
    video_id = response.json()["id"]
    detail = wait_for_status(logged_in_client, video_id, "failed")
    assert detail["failure_reason"]
    assert detail["renditions"] == [] and detail["master_playlist_url"] is None
    assert video_id not in listed_ids(logged_in_client)
    assert other_client.get(f"video/{video_id}/").status_code == 404


def test_only_owner_deletes_and_files_go_with_the_video(logged_in_client, other_client, clip, media_storage):
    client = logged_in_client
    video_id = upload(client, clip).json()["id"]
    wait_until_ready(client, video_id)
    assert media_storage.list(f"originals/{video_id}/") and media_storage.list(f"hls/{video_id}/")

    assert other_client.delete(f"video/{video_id}/").status_code == 403
    assert client.delete(f"video/{video_id}/", csrf=False).status_code == 403
    assert client.get(f"video/{video_id}/").status_code == 200

    assert client.delete(f"video/{video_id}/").status_code == 204
    assert client.get(f"video/{video_id}/").status_code == 404
    assert video_id not in listed_ids(client)
    assert client.get(f"video/{video_id}/master.m3u8").status_code == 404
    assert media_storage.list(f"originals/{video_id}/") == [] and media_storage.list(f"hls/{video_id}/") == []


MEDIA_PATHS = ["", "master.m3u8", "480p/index.m3u8", "480p/segment_000.ts", "480p/segment_000.ts/", "thumbnail.jpg"]


@pytest.fixture
def published_media(media_storage):
    """publish(status) -> the id of a catalog video of user 7000001 in `status`, with every media file stored."""
    created = []

    def publish(status: str) -> int:
        video_id = random.randint(10**9, 2**31 - 1)
        catalog_video(video_id, owner_id=7000001, status=status)
        for key, data in {"480p/segment_000.ts": b"\x47" * 188, "480p/index.m3u8": b"#EXTM3U\n",
                          "master.m3u8": b"#EXTM3U\n", "thumbnail.jpg": b"\xff\xd8\xff\xe0 a private picture"}.items():
            media_storage.put_bytes(f"hls/{video_id}/{key}", data)
        created.append(video_id)
        return video_id

    yield publish
    for video_id in created:
        media_storage.delete_prefix(f"hls/{video_id}/")


@pytest.mark.parametrize("status", ["uploaded", "queued", "processing", "failed"])
def test_a_video_not_ready_is_only_its_owners_and_admins(make_client, mint, published_media, status):
    video_id = published_media(status)
    viewers = {"owner": mint(sub="7000001"), "admin": mint(sub="7000002", is_admin=True),
               "other user": mint(sub="7000003")}
    for path in MEDIA_PATHS:
        for name, token in viewers.items():
            viewer = make_client()
            viewer.cookies.set("access_token", token)
            response = viewer.get(f"video/{video_id}/{path}")
            expected = 404 if name == "other user" else 200
            assert response.status_code == expected, (name, path, response.status_code, response.text[:100])
            if expected == 404:
                assert response.json()["detail"] and b"private picture" not in response.content


def test_media_left_behind_by_a_deleted_video_is_404(make_client, mint, published_media, stack_env):
    video_id = published_media("ready")
    viewer = make_client()
    viewer.cookies.set("access_token", mint(sub="7000003"))
    assert viewer.get(f"video/{video_id}/480p/segment_000.ts").status_code == 200
    import psycopg2
    with psycopg2.connect(stack_env["CATALOG_DATABASE_URL"]) as connection, connection.cursor() as cursor:
        cursor.execute("DELETE FROM videos WHERE id = %s", (video_id,))
    connection.close()
    stranger = make_client()
    stranger.cookies.set("access_token", mint(sub="7000004"))
    for path in MEDIA_PATHS:
        assert stranger.get(f"video/{video_id}/{path}").status_code == 404, path
