"""POST /api/video/upload/: streamed to its original's place on disk, committed, then enqueued on rq."""
from __future__ import annotations

import tracemalloc

import pytest

from rq import Queue
from rq.job import Job

from services.catalog.models import Video, db

from .conftest import CSRF, media_tree, upload_form


def stored_videos(app):
    with app.app_context():
        return db.session.query(Video).all()


def test_upload_stores_the_file_and_enqueues_prepare_video(app, client, upload, settings, redis):
    content = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4000
    response = upload(client, user_id=7, content=content, filename="Holiday clip.mp4",
                      title="  Holiday  ", category="Travel")

    assert response.status_code == 201, response.json
    body = response.json
    assert body["status"] == "queued"
    assert body["progress"] == 0
    assert body["title"] == "Holiday" and body["category"] == "Travel"
    stored = settings.media_dir / "originals" / str(body["id"]) / "Holiday_clip.mp4"
    assert stored.read_bytes() == content
    # Written there as it arrived: nothing else on the disk, no spool moved afterwards.
    assert media_tree(settings) == ["originals", f"originals/{body['id']}", f"originals/{body['id']}/Holiday_clip.mp4"]

    queue = Queue("transcode", connection=redis)
    assert queue.get_job_ids() == [f"prepare-video-{body['id']}"]
    job = Job.fetch(f"prepare-video-{body['id']}", connection=redis)
    assert job.func_name == "services.transcoder.jobs.prepare_video"
    assert job.args == (body["id"],)
    assert job.kwargs == {"source_path": stored.relative_to(settings.media_dir).as_posix()}
    assert job.to_dict()["failure_callback_name"] == "services.transcoder.jobs.report_final_failure"
    [video] = stored_videos(app)
    assert (video.owner_id, video.status, video.original_filename) == (7, "queued", "Holiday clip.mp4")


def test_upload_without_login_is_401_and_stores_nothing(app, client, settings):
    response = client.post("/api/video/upload/", data=upload_form())
    assert response.status_code == 401
    assert response.json == {"detail": "Authentication credentials were not provided."}
    assert stored_videos(app) == []


def test_upload_with_missing_or_wrong_csrf_header_is_403(app, client, login, settings):
    login(client, 1)
    for headers in ({}, {"X-CSRFToken": "forged"}):
        response = client.post("/api/video/upload/", data=upload_form(), headers=headers)
        assert response.status_code == 403
        assert response.json == {"detail": "CSRF token missing or incorrect."}
    assert stored_videos(app) == []
    assert media_tree(settings) == []


def test_every_missing_field_is_reported_at_once(client, login):
    login(client, 1)
    response = client.post("/api/video/upload/", data={"title": "   "}, headers={"X-CSRFToken": CSRF})
    assert response.status_code == 400
    assert set(response.json) == {"file", "title", "description", "category"}
    assert response.json["file"] == ["Missing data for required field."]


def test_empty_file_and_blank_fields_are_400(app, client, upload, settings):
    response = upload(client, content=b"")
    assert response.status_code == 400
    assert response.json == {"file": ["The submitted file is empty."]}
    response = upload(client, category=" ", description="")
    assert response.status_code == 400
    assert set(response.json) == {"category", "description"}
    assert stored_videos(app) == []
    assert media_tree(settings) == []


@pytest.mark.parametrize("field, value", [
    ("title", "A\x00title"), ("description", "bell\x07"), ("category", "Drama\x1b[2J"),
])
def test_control_characters_in_any_field_are_400_and_store_nothing(app, client, upload, settings, field, value):
    response = upload(client, **{field: value})
    assert response.status_code == 400 and response.json == {field: ["Control characters are not allowed."]}
    assert stored_videos(app) == []
    assert media_tree(settings) == []


def test_a_text_field_named_file_is_not_a_file(client, login):
    login(client, 1)
    response = client.post("/api/video/upload/", headers={"X-CSRFToken": CSRF},
                           data={**upload_form(content=None), "file": "not a file"})
    assert response.status_code == 400
    assert response.json == {"file": ["Upload a video file."]}


def test_file_one_byte_over_the_limit_is_413_and_leaves_nothing(make_app, upload, settings):
    app = make_app(max_upload_bytes=4096)
    client = app.test_client()
    response = upload(client, content=b"x" * 4097)
    assert response.status_code == 413
    assert response.json == {"detail": "Request body too large."}
    assert stored_videos(app) == []
    assert media_tree(settings) == []
    assert upload(client, content=b"x" * 4096).status_code == 201


def test_announced_oversize_body_is_refused_before_reading(client, login):
    login(client, 1)
    response = client.post("/api/video/upload/", data=upload_form(), headers={"X-CSRFToken": CSRF},
                           environ_overrides={"CONTENT_LENGTH": str(50 * 1024**3)})
    assert response.status_code == 413


def test_upload_is_streamed_to_disk_not_held_in_memory(make_app, login, settings, tmp_path):
    size = 24 * 1024 * 1024
    source = tmp_path / "big.mp4"
    with open(source, "wb") as handle:
        handle.truncate(size)
    client = make_app(max_upload_bytes=64 * 1024 * 1024).test_client()
    login(client, 1)
    with open(source, "rb") as handle:
        form = {**upload_form(content=None), "file": (handle, "big.mp4")}
        tracemalloc.start()
        response = client.post("/api/video/upload/", data=form, headers={"X-CSRFToken": CSRF})
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert response.status_code == 201, response.json
    assert (settings.media_dir / "originals" / str(response.json["id"]) / "big.mp4").stat().st_size == size
    assert peak < 4 * 1024 * 1024, f"peak Python memory {peak} bytes for a {size} byte upload"


def test_hostile_filename_stays_inside_the_video_folder(app, client, upload, settings):
    response = upload(client, filename="../../../etc/passwd")
    assert response.status_code == 201
    folder = settings.media_dir / "originals" / str(response.json["id"])
    assert [path.name for path in folder.iterdir()] == ["etc_passwd"]
    response = upload(client, filename="../..")
    assert [path.name for path in (settings.media_dir / "originals" / str(response.json["id"])).iterdir()] \
        == ["original"]


def test_redis_down_still_answers_201_and_keeps_the_upload(make_app, upload, settings, redis):
    app = make_app(redis_url="redis://127.0.0.1:1/0")
    response = upload(app.test_client(), content=b"video bytes")
    assert response.status_code == 201
    assert response.json["status"] == "uploaded"
    assert (settings.media_dir / "originals" / str(response.json["id"]) / "clip.mp4").read_bytes() == b"video bytes"
    [video] = stored_videos(app)
    assert video.status == "uploaded"
    assert Queue("transcode", connection=redis).count == 0


def test_a_client_that_disconnects_mid_upload_leaves_nothing(app, client, login, settings):
    login(client, 1)
    response = client.post("/api/video/upload/", data=upload_form(content=b"x" * 50_000),
                           headers={"X-CSRFToken": CSRF}, environ_overrides={"CONTENT_LENGTH": "900000"})
    assert response.status_code == 400
    assert stored_videos(app) == []
    assert media_tree(settings) == []
