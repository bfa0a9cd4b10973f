"""Resumable uploads at /api/uploads/: the tus 1.0.0 rules (core, creation, termination, expiration),
ownership, limits, and a complete upload becoming a video."""
from __future__ import annotations

import base64
import hashlib
import os
from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest
import sqlalchemy as sa
from rq import Queue

from services.catalog.models import TusUpload, Video, db, utcnow
from services.catalog.tus import remove_expired_uploads

from .conftest import CSRF

TUS = {"Tus-Resumable": "1.0.0", "X-CSRFToken": CSRF}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}


def metadata(**fields) -> str:
    fields = {"filename": "clip.mp4", "title": "A title", "description": "A description",
              "category": "Drama", **fields}
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in fields.items())


def create(client, length: int, **fields):
    return client.post("/api/uploads/", headers={**TUS, "Upload-Length": str(length),
                                                 "Upload-Metadata": metadata(**fields)})


def patch(client, url: str, offset: int, body: bytes, **headers):
    return client.patch(url, data=body, headers={**OCTETS, "Upload-Offset": str(offset), **headers})


def test_options_describe_the_server(client):
    response = client.options("/api/uploads/")
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    assert response.headers["Tus-Extension"] == "creation,termination,expiration"
    assert response.headers["Tus-Max-Size"] == str(1024 * 1024)


def test_upload_in_pieces_becomes_a_queued_video_with_identical_bytes(app, client, login, redis, settings):
    content = os.urandom(300_000)
    login(client, 1)
    created = create(client, len(content), title="Holiday")
    assert created.status_code == 201, created.json
    url = created.headers["Location"]
    assert url.startswith("/api/uploads/") and created.headers["Tus-Resumable"] == "1.0.0"
    expires = parsedate_to_datetime(created.headers["Upload-Expires"])
    assert timedelta(hours=23) < expires - utcnow() <= timedelta(hours=24)
    head = client.head(url, headers=TUS)
    assert (head.status_code, head.headers["Upload-Offset"], head.headers["Upload-Length"]) == (
        200, "0", str(len(content)))
    assert head.headers["Cache-Control"] == "no-store"
    first = patch(client, url, 0, content[:100_000])
    assert (first.status_code, first.headers["Upload-Offset"]) == (204, "100000")
    assert "X-Video-Id" not in first.headers and "Upload-Expires" in first.headers
    # A stale offset is a conflict and changes nothing.
    stale = patch(client, url, 0, content[:10])
    assert stale.status_code == 409
    assert client.head(url, headers=TUS).headers["Upload-Offset"] == "100000"
    last = patch(client, url, 100_000, content[100_000:])
    assert last.status_code == 204 and last.headers["Upload-Offset"] == str(len(content))
    video_id = int(last.headers["X-Video-Id"])
    video = client.get(f"/api/video/{video_id}/").json
    assert (video["title"], video["status"]) == ("Holiday", "queued")
    with app.app_context():
        stored = settings.media_dir / db.session.get(Video, video_id).original_path
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(content).digest()
    assert Queue("transcode", connection=redis).jobs[0].args == (video_id,)
    # HEAD after completion tells a reloaded page which video it became; a repeated last PATCH is a no-op.
    assert client.head(url, headers=TUS).headers["X-Video-Id"] == str(video_id)
    assert patch(client, url, len(content), b"").headers["X-Video-Id"] == str(video_id)
    assert patch(client, url, 5, b"x").status_code == 409


@pytest.mark.parametrize("terminated", [False, True], ids=["werkzeug limits the body", "gunicorn ends it"])
def test_a_cut_connection_keeps_what_arrived_and_resumes(app, client, login, settings, terminated):
    content = os.urandom(200_000)
    url = create(login(client, 1), len(content)).headers["Location"]
    # The client announces the whole body but the connection ends after 120 000 bytes: werkzeug raises
    # ClientDisconnected, or (gunicorn sets wsgi.input_terminated) the body just ends early.
    cut = client.patch(url, data=content[:120_000], headers={**OCTETS, "Upload-Offset": "0"},
                       environ_overrides={"CONTENT_LENGTH": str(len(content)),
                                          "wsgi.input_terminated": terminated})
    assert cut.status_code == 400
    offset = int(client.head(url, headers=TUS).headers["Upload-Offset"])
    assert offset == 120_000
    done = patch(client, url, offset, content[offset:])
    with app.app_context():
        stored = settings.media_dir / db.session.get(Video, int(done.headers["X-Video-Id"])).original_path
    assert stored.read_bytes() == content


def test_another_user_can_neither_see_resume_nor_delete_an_upload(client, login, settings):
    url = create(login(client, 1), 1000).headers["Location"]
    patch(client, url, 0, b"a" * 400)
    login(client, 2)
    assert client.head(url, headers=TUS).status_code == 404
    refused = patch(client, url, 400, b"b" * 600)
    assert refused.status_code == 404 and refused.json == {"detail": "Upload not found."}
    assert client.delete(url, headers=TUS).status_code == 404
    login(client, 3, is_admin=True)
    assert patch(client, url, 400, b"b" * 600).status_code == 404
    login(client, 1)
    own = client.head(url, headers=TUS)
    assert own.status_code == 200, own.json
    assert own.headers["Upload-Offset"] == "400"


def test_protocol_rules(client, login):
    login(client, 1)
    no_version = client.post("/api/uploads/", headers={"X-CSRFToken": CSRF, "Upload-Length": "10",
                                                        "Upload-Metadata": metadata()})
    assert no_version.status_code == 412 and no_version.headers["Tus-Version"] == "1.0.0"
    assert client.post("/api/uploads/", headers={**TUS, "Upload-Metadata": metadata()}).status_code == 400
    for length in ("-1", "abc", "1e3", "0", "٣"):
        response = client.post("/api/uploads/", headers={**TUS, "Upload-Length": length,
                                                          "Upload-Metadata": metadata()})
        assert response.status_code == 400, length
    assert client.post("/api/uploads/", headers={**TUS, "Upload-Defer-Length": "1",
                                                  "Upload-Metadata": metadata()}).status_code == 400
    url = create(client, 100).headers["Location"]
    wrong_type = client.patch(url, data=b"x", headers={**TUS, "Upload-Offset": "0",
                                                       "Content-Type": "application/octet-stream"})
    assert wrong_type.status_code == 415
    assert client.patch(url, data=b"x", headers={**OCTETS}).status_code == 400
    too_long = patch(client, url, 0, b"x" * 101)
    assert too_long.status_code == 400
    assert client.head(url, headers=TUS).headers["Upload-Offset"] == "0"
    assert client.head("/api/uploads/" + "0" * 32 + "/", headers=TUS).status_code == 404
    assert patch(client, url, 0, b"x", **{"X-CSRFToken": "wrong"}).status_code == 403
    client.delete_cookie("access_token")
    assert client.head(url, headers=TUS).status_code == 401


def test_metadata_is_validated_like_the_upload_form(client, login):
    login(client, 1)
    assert set(create(client, 10, title=" ", category="").json) == {"title", "category"}
    missing = client.post("/api/uploads/", headers={**TUS, "Upload-Length": "10",
                                                     "Upload-Metadata": "title QQ=="})
    assert set(missing.json) == {"filename", "description", "category"}
    for header in ("title !!!", "title " + base64.b64encode(b"\xff\xfe").decode()):
        response = client.post("/api/uploads/", headers={**TUS, "Upload-Length": "10", "Upload-Metadata": header})
        assert response.status_code == 400, header
    assert create(client, 10, title="a\x00b").status_code == 400


def test_size_limit_and_quota(make_app, login, settings):
    client = make_app(upload_quota_bytes=1000).test_client()
    login(client, 1)
    too_big = create(client, 1024 * 1024 + 1)
    assert too_big.status_code == 413
    assert create(client, 600).status_code == 201
    over = create(client, 401)
    assert over.status_code == 403 and "quota" in over.json["detail"]
    assert create(client, 400).status_code == 201
    assert create(login(client, 2), 1000).status_code == 201  # quotas are per user


def test_termination_deletes_the_bytes(client, login, settings):
    url = create(login(client, 1), 100).headers["Location"]
    patch(client, url, 0, b"x" * 50)
    data = settings.media_dir / "resumable" / url.strip("/").rsplit("/", 1)[1]
    assert data.stat().st_size == 50
    assert client.delete(url, headers=TUS).status_code == 204
    assert not data.exists()
    assert client.head(url, headers=TUS).status_code == 404


def test_expired_uploads_are_refused_then_deleted_by_the_reconciler(app, client, login, settings):
    login(client, 1)
    expired_url = create(client, 100).headers["Location"]
    patch(client, expired_url, 0, b"x" * 10)
    live_url = create(client, 100).headers["Location"]
    expired_id, live_id = (url.strip("/").rsplit("/", 1)[1] for url in (expired_url, live_url))
    with app.app_context():
        db.session.execute(sa.update(TusUpload).where(TusUpload.id == expired_id)
                           .values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert client.head(expired_url, headers=TUS).status_code == 404
    assert patch(client, expired_url, 10, b"y").status_code == 404
    result = app.test_cli_runner().invoke(args=["reconcile"])
    assert result.exit_code == 0, result.output
    tus_dir = settings.media_dir / "resumable"
    assert sorted(path.name for path in tus_dir.iterdir()) == [live_id]
    with app.app_context():
        assert db.session.scalars(sa.select(TusUpload.id)).all() == [live_id]
        assert remove_expired_uploads() == 0
