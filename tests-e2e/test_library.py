"""Library management through the gateway: edit, my videos, search, custom thumbnail, retry."""
from __future__ import annotations

import io
import time

from PIL import Image

from conftest import login, register_and_activate

FORM = {"title": "Library e2e", "description": "Text pretending to be a video", "category": "Testing"}


def upload_text(client, title: str) -> int:
    response = client.post("video/upload/", data={**FORM, "title": title},
                           files={"file": ("notes.mp4", b"not a video at all")})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def wait_until_failed(client, video_id: int) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        detail = client.get(f"video/{video_id}/").json()
        if detail["status"] == "failed":
            return detail
        time.sleep(0.5)
    raise AssertionError(f"video {video_id} did not fail: {detail}")


def test_edit_mine_thumbnail_and_retry_through_the_gateway(logged_in_client, make_client, mail):
    client = logged_in_client
    video_id = upload_text(client, "First upload")
    assert client.get("video/mine/").json()[0]["id"] == video_id
    edited = client.patch(f"video/{video_id}/", json={"title": "Wombat diaries"})
    assert edited.status_code == 200 and edited.json()["title"] == "Wombat diaries"
    assert client.patch(f"video/{video_id}/", json={"title": ""}).status_code == 400

    other = make_client()
    login(other, register_and_activate(other, mail))
    assert other.get("video/mine/").json() == []
    assert other.patch(f"video/{video_id}/", json={"title": "stolen"}).status_code == 404

    picture = io.BytesIO()
    Image.new("RGB", (1600, 900), (10, 120, 200)).save(picture, "PNG")
    response = client.post(f"video/{video_id}/thumbnail/", files={"file": ("cover.png", picture.getvalue())})
    assert response.status_code == 200, response.text
    thumbnail = client.get(f"video/{video_id}/thumbnail.jpg")
    assert thumbnail.status_code == 200 and thumbnail.content[:3] == b"\xff\xd8\xff"
    with Image.open(io.BytesIO(thumbnail.content)) as image:
        assert image.size == (1280, 720)
    too_big = client.post(f"video/{video_id}/thumbnail/", files={"file": ("big.png", bytes(12 * 1024 * 1024))})
    assert too_big.status_code == 413

    assert wait_until_failed(client, video_id)["failure_reason"]
    retried = client.post(f"video/{video_id}/retry/")
    assert retried.status_code == 202 and retried.json()["status"] in ("uploaded", "queued")
    assert wait_until_failed(client, video_id)["title"] == "Wombat diaries"


def test_search_through_the_gateway_keeps_the_list_shape(logged_in_client):
    response = logged_in_client.get("video/", params={"q": "wombat -koala", "category": "Testing", "limit": 5})
    assert response.status_code == 200 and isinstance(response.json(), list)
    assert logged_in_client.get("video/", params={"q": " "}).status_code == 400
