"""The admin site's videos (/admin/videos/): admins only, CSRF on every form, edit, delete, re-transcode,
upload, thumbnail; and the internal call auth makes to delete an account's videos."""
from __future__ import annotations

import io

import sqlalchemy as sa
from PIL import Image
from rq import Queue

from services.catalog.models import Rendition, Video, db
from services.catalog.queue import QUEUE_NAME, prepare_job_id

from .conftest import CSRF, media_tree, upload_form

ADMIN_ID = 7


def as_admin(client, login):
    return login(client, ADMIN_ID, is_admin=True)


def video(app, video_id: int) -> Video | None:
    with app.app_context():
        found = db.session.get(Video, video_id)
        if found is not None:
            db.session.expunge(found)
        return found


def image_bytes(kind: str, size=(320, 240)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, kind)
    return buffer.getvalue()


def test_anonymous_is_sent_to_the_login_page(client, make_video):
    make_video(title="Secret title")
    response = client.get("/admin/videos/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/pages/auth/login.html?next=%2Fadmin%2Fvideos%2F"


def test_a_user_who_is_no_admin_gets_403_and_no_data(client, login, make_video):
    make_video(title="Secret title")
    login(client, 1)
    for path in ("/admin/videos/", "/admin/videos/details/?id=1", "/admin/"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert b"403 Forbidden" in response.data and b"Secret title" not in response.data


def test_admin_lists_every_video_with_status_owner_size_and_failure(client, login, make_video, settings):
    ready = make_video(title="Ready one", owner_id=3)
    failed = make_video(title="Broken one", status="failed", failure_reason="No video stream in the upload.",
                        owner_id=4)
    original = settings.media_dir / f"originals/{ready}/clip.mp4"
    original.parent.mkdir(parents=True)
    original.write_bytes(b"x" * 3 * 1024 * 1024)
    response = as_admin(client, login).get("/admin/videos/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for text in ("Ready one", "Broken one", "failed", "No video stream in the upload.", "3.0 MiB", "missing"):
        assert text in page, text
    searched = client.get("/admin/videos/?search=broken").get_data(as_text=True)
    assert "Broken one" in searched and "Ready one" not in searched
    assert str(failed) in searched


def edit(client, video_id: int, csrf: str | None = CSRF, **fields):
    data = {"title": "New title", "description": "New description", "category": "Comedy", **fields}
    if csrf is not None:
        data["csrf_token"] = csrf
    return client.post(f"/admin/videos/edit/?id={video_id}", data=data, content_type="multipart/form-data")


def test_edit_needs_the_csrf_token_of_the_login(app, client, login, make_video):
    video_id = make_video(title="Old title")
    as_admin(client, login)
    for csrf in (None, "", "forged-value"):
        response = edit(client, video_id, csrf)
        assert response.status_code == 200  # the form again, with the error
        assert "Failed to save record." in response.get_data(as_text=True)
        assert video(app, video_id).title == "Old title"
    assert edit(client, video_id).status_code == 302
    changed = video(app, video_id)
    assert (changed.title, changed.description, changed.category) == ("New title", "New description", "Comedy")


def test_edit_validates_like_the_upload(app, client, login, make_video):
    video_id = make_video(title="Old title")
    as_admin(client, login)
    for fields in ({"title": "   "}, {"title": "x" * 201}, {"category": ""}):
        assert edit(client, video_id, **fields).status_code == 200, fields
        assert video(app, video_id).title == "Old title"
    edit(client, video_id, title="  Padded  ")
    assert video(app, video_id).title == "Padded"


def test_thumbnail_upload_is_checked_and_re_encoded_as_jpeg(app, client, login, make_video, settings):
    video_id = make_video()
    as_admin(client, login)
    response = edit(client, video_id, thumbnail=(io.BytesIO(b"<svg>not an image</svg>"), "evil.png"))
    assert response.status_code == 200 and "JPEG or PNG" in response.get_data(as_text=True)
    gif = edit(client, video_id, thumbnail=(io.BytesIO(image_bytes("GIF")), "moving.gif"))
    assert gif.status_code == 200 and video(app, video_id).thumbnail_path is None

    assert edit(client, video_id, thumbnail=(io.BytesIO(image_bytes("PNG", (2000, 1000))), "a.png")).status_code == 302
    path = settings.media_dir / f"hls/{video_id}/thumbnail.jpg"
    with Image.open(path) as stored:
        assert stored.format == "JPEG" and stored.size == (1280, 640)
    assert video(app, video_id).thumbnail_path == f"hls/{video_id}/thumbnail.jpg"


def test_thumbnail_larger_than_its_limit_is_refused(app, client, login, make_video):
    video_id = make_video()
    as_admin(client, login)
    huge = io.BytesIO(b"\x89PNG" + b"\x00" * (11 * 1024 * 1024))
    response = edit(client, video_id, thumbnail=(huge, "huge.png"))
    assert response.status_code == 413
    assert video(app, video_id).thumbnail_path is None


def test_delete_removes_the_row_and_the_files_with_csrf_only(app, client, login, make_video, settings):
    video_id = make_video()
    files = settings.media_dir / f"hls/{video_id}/480p"
    files.mkdir(parents=True)
    (files / "index.m3u8").write_text("#EXTM3U\n")
    as_admin(client, login)
    client.post("/admin/videos/delete/", data={"id": str(video_id)})
    assert video(app, video_id) is not None
    response = client.post("/admin/videos/delete/", data={"id": str(video_id), "csrf_token": CSRF})
    assert response.status_code == 302
    assert video(app, video_id) is None and not files.exists()


def test_retranscode_starts_over_from_the_original(app, client, login, make_video, settings, redis):
    done = make_video(rungs={"480p": "ready", "720p": "failed"}, thumbnail_path="hls/1/thumbnail.jpg")
    busy = make_video(status="processing")
    published = settings.media_dir / f"hls/{done}/480p"
    published.mkdir(parents=True)
    as_admin(client, login)
    response = client.post("/admin/videos/action/", data={
        "action": "retranscode", "rowid": [str(done), str(busy)], "csrf_token": CSRF})
    assert response.status_code == 302
    again = video(app, done)
    assert (again.status, again.progress, again.failure_reason, again.thumbnail_path) == ("queued", 0, None, None)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).where(Rendition.video_id == done)) == 0
    assert not published.exists()
    assert Queue(QUEUE_NAME, connection=redis).get_job_ids() == [prepare_job_id(done)]
    assert video(app, busy).status == "processing"


def test_admin_uploads_a_video_as_its_owner(app, client, login, settings, redis):
    as_admin(client, login)
    form = upload_form(title="Admin upload")
    without_csrf = client.post("/admin/videos/new/", data=form, content_type="multipart/form-data")
    assert without_csrf.status_code == 200
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Video)) == 0
    assert media_tree(settings) == []  # the refused form's file was dropped
    form = upload_form(title="Admin upload", csrf_token=CSRF)
    response = client.post("/admin/videos/new/", data=form, content_type="multipart/form-data")
    assert response.status_code == 302
    with app.app_context():
        stored = db.session.scalars(sa.select(Video)).one()
        assert (stored.title, stored.owner_id, stored.status) == ("Admin upload", ADMIN_ID, "queued")
        original = settings.media_dir / stored.original_path
    assert original.read_bytes() == b"\x00\x00\x00\x18ftypmp42 fake video bytes"
    assert media_tree(settings) == ["originals", f"originals/{stored.id}", stored.original_path]


def test_internal_delete_of_an_owners_videos(app, client, make_video, service_headers, settings):
    gone = [make_video(owner_id=5), make_video(owner_id=5, status="failed")]
    kept = make_video(owner_id=6)
    (settings.media_dir / f"originals/{gone[0]}").mkdir(parents=True)
    assert client.delete("/internal/videos/?owner_id=5").status_code == 401
    response = client.delete("/internal/videos/?owner_id=5", headers=service_headers)
    assert response.status_code == 200 and response.json == {"deleted": 2}
    assert [video(app, video_id) for video_id in gone] == [None, None]
    assert video(app, kept) is not None
    assert not (settings.media_dir / f"originals/{gone[0]}").exists()
    assert client.delete("/internal/videos/?owner_id=abc", headers=service_headers).status_code == 400

