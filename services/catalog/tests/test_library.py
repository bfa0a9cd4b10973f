"""PATCH /api/video/<id>/, GET /api/video/mine/, search on GET /api/video/, custom thumbnail, retry."""
from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

from PIL import Image
from rq import Queue

from services.catalog.models import Video, db

from .conftest import CSRF

EDIT = {"X-CSRFToken": CSRF}


def image_bytes(fmt: str, size=(1920, 1080), color=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, fmt)
    return buffer.getvalue()


# --- PATCH ---------------------------------------------------------------------------------------

def test_owner_edits_title_description_and_category(client, login, make_video):
    video_id = make_video(owner_id=1, status="processing")
    response = login(client, 1).patch(f"/api/video/{video_id}/", headers=EDIT,
                                      json={"title": "  New title ", "category": "Comedy"})
    assert response.status_code == 200
    assert (response.json["title"], response.json["category"]) == ("New title", "Comedy")
    assert response.json["description"] == "Description"
    assert client.get(f"/api/video/{video_id}/").json["title"] == "New title"


def test_admin_edits_anyones_video_others_cannot(client, login, make_video):
    video_id = make_video(owner_id=1)
    response = login(client, 2).patch(f"/api/video/{video_id}/", headers=EDIT, json={"title": "Mine now"})
    assert response.status_code == 403
    assert response.json["detail"] == "Only the owner or an admin can change this video."
    hidden = make_video(owner_id=1, status="queued")
    assert client.patch(f"/api/video/{hidden}/", headers=EDIT, json={"title": "x"}).status_code == 404
    response = login(client, 3, is_admin=True).patch(f"/api/video/{video_id}/", headers=EDIT,
                                                     json={"description": "Moderated"})
    assert response.status_code == 200 and response.json["description"] == "Moderated"


def test_edit_is_validated_like_an_upload(client, login, make_video):
    video_id = make_video(owner_id=1)
    login(client, 1)
    for body, field in (({"title": "   "}, "title"), ({"title": "x" * 201}, "title"),
                        ({"category": ""}, "category"), ({"owner_id": 2}, "owner_id"),
                        ({"title": "a\x00b"}, "title")):
        response = client.patch(f"/api/video/{video_id}/", headers=EDIT, json=body)
        assert response.status_code == 400, body
        assert field in response.json, (body, response.json)
    response = client.patch(f"/api/video/{video_id}/", headers=EDIT, json={})
    assert response.status_code == 400
    assert client.patch(f"/api/video/{video_id}/", headers=EDIT, data="{not json",
                        content_type="application/json").status_code == 400
    assert client.patch(f"/api/video/{video_id}/", json={"title": "no csrf"}).status_code == 403
    assert client.get(f"/api/video/{video_id}/").json["title"] == "Title"


# --- mine --------------------------------------------------------------------------------------

def test_mine_lists_own_videos_in_every_state_newest_first_paged(client, login, make_video):
    now = datetime.now(timezone.utc)
    ids = [make_video(owner_id=1, status=status, created_at=now - timedelta(minutes=n), failure_reason=None)
           for n, status in enumerate(("uploaded", "queued", "processing", "ready", "failed"))]
    make_video(owner_id=2)
    response = login(client, 1).get("/api/video/mine/")
    assert response.status_code == 200
    assert [item["id"] for item in response.json] == ids
    assert [item["status"] for item in response.json] == ["uploaded", "queued", "processing", "ready", "failed"]
    assert [v["id"] for v in client.get("/api/video/mine/?limit=2&offset=3").json] == ids[3:]
    assert client.get("/api/video/mine/?limit=0").status_code == 400
    assert login(client, 3).get("/api/video/mine/").json == []
    client.delete_cookie("access_token")
    assert client.get("/api/video/mine/").status_code == 401


# --- search --------------------------------------------------------------------------------------

def test_search_finds_words_in_title_and_description_best_match_first(client, login, make_video):
    in_both = make_video(title="Ocean waves", description="Waves of the ocean at dawn")
    in_title = make_video(title="Ocean life", description="Fish")
    in_description = make_video(title="Holiday", description="A day by the ocean")
    make_video(title="Mountains", description="Snow")
    make_video(title="Ocean but processing", status="processing")
    login(client, 1)
    found = [v["id"] for v in client.get("/api/video/?q=ocean").json]
    assert found[0] == in_both and set(found) == {in_both, in_title, in_description}
    assert [v["id"] for v in client.get("/api/video/?q=ocean -fish&limit=1").json] == [in_both]
    assert [v["id"] for v in client.get('/api/video/?q="by the ocean"').json] == [in_description]
    assert client.get("/api/video/?q=nothinglikethis").json == []
    # Operators and punctuation typed by a person are words, never a syntax error.
    for query in ("ocean &", "!(", "'':*", "or or", "a|b"):
        assert client.get("/api/video/", query_string={"q": query}).status_code == 200, query
    assert client.get("/api/video/?q=%20").status_code == 400


def test_filter_by_category_and_search_together(client, login, make_video):
    drama = make_video(title="Night", category="Drama")
    comedy = make_video(title="Night", category="Comedy")
    make_video(title="Day", category="Comedy")
    login(client, 1)
    assert [v["id"] for v in client.get("/api/video/?q=night&category=Comedy").json] == [comedy]
    assert {v["id"] for v in client.get("/api/video/?q=night").json} == {drama, comedy}
    assert len(client.get("/api/video/?category=Comedy").json) == 2
    item = client.get("/api/video/?q=night&category=Drama").json[0]
    assert list(item) == ["id", "created_at", "title", "description", "thumbnail_url", "category"]


def test_an_edit_is_found_by_search_at_once(client, login, make_video):
    video_id = make_video(title="Before")
    login(client, 1).patch(f"/api/video/{video_id}/", headers=EDIT, json={"title": "Renamed zeppelin"})
    assert [v["id"] for v in client.get("/api/video/?q=zeppelin").json] == [video_id]
    assert client.get("/api/video/?q=before").json == []


# --- thumbnail -----------------------------------------------------------------------------------

def test_custom_thumbnail_is_reencoded_as_a_bounded_jpeg(client, login, make_video, settings):
    video_id = make_video(owner_id=1)
    png = image_bytes("PNG", size=(2000, 2000))
    response = login(client, 1).post(f"/api/video/{video_id}/thumbnail/", headers=EDIT,
                                     data={"file": (io.BytesIO(png), "cover.png")})
    assert response.status_code == 200, response.json
    assert response.json["thumbnail_url"].endswith(f"/api/video/{video_id}/thumbnail.jpg")
    stored = settings.media_dir / "hls" / str(video_id) / "thumbnail.jpg"
    with Image.open(stored) as image:
        assert image.format == "JPEG" and max(image.size) <= 1280 and image.size == (720, 720)
    jpeg = image_bytes("JPEG", size=(640, 360), color=(0, 0, 255))
    assert client.post(f"/api/video/{video_id}/thumbnail/", headers=EDIT,
                       data={"file": (io.BytesIO(jpeg), "x.jpg")}).status_code == 200
    with Image.open(stored) as image:
        assert image.size == (640, 360) and image.getpixel((10, 10))[2] > 200
    assert list(stored.parent.glob("*.tmp")) == []


def test_thumbnail_refuses_what_is_not_a_plain_image(client, login, make_video, settings):
    video_id = make_video(owner_id=1)
    login(client, 1)
    gif = io.BytesIO()
    Image.new("RGB", (10, 10)).save(gif, "GIF")
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    truncated = image_bytes("PNG")[:200]
    for content, name in ((svg, "x.svg"), (gif.getvalue(), "x.gif"), (truncated, "x.png"),
                          (b"\x00" * 100, "x.jpg")):
        response = client.post(f"/api/video/{video_id}/thumbnail/", headers=EDIT,
                               data={"file": (io.BytesIO(content), name)})
        assert response.status_code == 400, name
        assert response.json == {"file": ["Upload a JPEG or PNG image."]}
    # A pixel bomb: a small PNG announcing 100 000 x 100 000 pixels.
    bomb = io.BytesIO()
    Image.new("1", (20000, 20000)).save(bomb, "PNG")
    response = client.post(f"/api/video/{video_id}/thumbnail/", headers=EDIT,
                           data={"file": (io.BytesIO(bomb.getvalue()), "bomb.png")})
    assert response.status_code == 400
    big = client.post(f"/api/video/{video_id}/thumbnail/", headers=EDIT,
                      data={"file": (io.BytesIO(b"\xff" * (11 * 1024 * 1024)), "big.jpg")})
    assert big.status_code == 413
    assert not (settings.media_dir / "hls" / str(video_id) / "thumbnail.jpg").exists()
    login(client, 2)
    response = client.post(f"/api/video/{video_id}/thumbnail/", headers=EDIT,
                           data={"file": (io.BytesIO(image_bytes("PNG")), "x.png")})
    assert response.status_code == 403


# --- retry ---------------------------------------------------------------------------------------

def test_retry_reenqueues_a_failed_video_from_scratch(app, client, login, make_video, redis, settings):
    video_id = make_video(owner_id=1, status="failed", failure_reason="ffmpeg died",
                          rungs={"360p": "failed", "480p": "failed"})
    original = settings.media_dir / "originals" / str(video_id) / "clip.mp4"
    original.parent.mkdir(parents=True)
    original.write_bytes(b"video")
    redis.set(f"videoflix:reconcile-attempts:{video_id}", 5)
    response = login(client, 1).post(f"/api/video/{video_id}/retry/", headers=EDIT)
    assert response.status_code == 202, response.json
    assert response.json["status"] == "queued"
    assert response.json["failure_reason"] is None and response.json["renditions_failed"] == []
    job = Queue("transcode", connection=redis).jobs[0]
    assert job.args == (video_id,) and job.kwargs["source_path"] == original.relative_to(settings.media_dir).as_posix()
    assert redis.get(f"videoflix:reconcile-attempts:{video_id}") is None
    assert client.post(f"/api/video/{video_id}/retry/", headers=EDIT).status_code == 409


def test_retry_refuses_others_videos_not_failed_ones_and_lost_originals(client, login, make_video):
    failed = make_video(owner_id=1, status="failed", failure_reason="x")
    assert login(client, 2).post(f"/api/video/{failed}/retry/", headers=EDIT).status_code == 404
    ready = make_video(owner_id=2)
    assert client.post(f"/api/video/{ready}/retry/", headers=EDIT).status_code == 409
    login(client, 1)
    response = client.post(f"/api/video/{failed}/retry/", headers=EDIT)
    assert response.status_code == 409
    assert response.json["detail"] == "The uploaded original is gone; upload the video again."
    assert client.post(f"/api/video/{failed}/retry/").status_code == 403
