"""GET /api/video/ (the contract's list), GET and DELETE /api/video/<id>/."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import json

import sqlalchemy as sa
from rq import Queue

from services.catalog.models import Rendition, Video, db

from .conftest import CSRF


def test_list_needs_login(client):
    response = client.get("/api/video/")
    assert response.status_code == 401
    assert response.json == {"detail": "Authentication credentials were not provided."}


def test_list_shows_only_ready_videos_newest_first_in_the_contract_shape(client, login, make_video):
    now = datetime.now(timezone.utc)
    old = make_video(title="old", created_at=now - timedelta(days=2))
    new = make_video(title="new", created_at=now - timedelta(days=1), owner_id=2)
    for status in ("uploaded", "queued", "processing", "failed"):
        make_video(status=status)
    response = login(client, 1).get("/api/video/")
    assert response.status_code == 200
    assert [item["id"] for item in response.json] == [new, old]
    item = response.json[0]
    assert list(item) == ["id", "created_at", "title", "description", "thumbnail_url", "category"]
    assert item["thumbnail_url"] == f"http://gateway.test/api/video/{new}/thumbnail.jpg"
    assert item["category"] == "Drama"
    assert datetime.fromisoformat(item["created_at"]) == now - timedelta(days=1)


def test_list_pages_with_limit_and_offset(client, login, make_video):
    ids = [make_video() for _ in range(5)]
    login(client, 1)
    assert [v["id"] for v in client.get("/api/video/?limit=2").json] == ids[::-1][:2]
    assert [v["id"] for v in client.get("/api/video/?limit=2&offset=4").json] == [ids[0]]
    assert client.get(f"/api/video/?offset={2**63 - 1}").json == []  # the largest OFFSET PostgreSQL takes
    for query in ("limit=0", "limit=abc", "offset=-1", "limit=100000", f"offset={2**63}"):
        response = client.get(f"/api/video/?{query}")
        assert response.status_code == 400, query
        assert list(response.json) == [query.split("=")[0]]


def test_list_of_ten_thousand_ready_videos_stays_fast(app, client, login):
    with app.app_context():
        db.session.execute(sa.text(
            "INSERT INTO videos (title, description, category, owner_id, created_at, updated_at, status,"
            " progress, original_filename)"
            " SELECT 'Video ' || n, repeat('words ', 20), 'Drama', n % 50, now() - n * interval '1 minute',"
            " now(), CASE WHEN n % 10 = 0 THEN 'processing' ELSE 'ready' END, 100, 'clip.mp4'"
            " FROM generate_series(1, 11000) AS n"))
        db.session.commit()
        db.session.execute(sa.text("ANALYZE videos"))
        plan = db.session.execute(sa.text(
            "EXPLAIN SELECT id FROM videos WHERE status = 'ready' ORDER BY created_at DESC, id DESC LIMIT 20"
        )).scalars().all()
    assert "ix_videos_ready_newest" in "\n".join(plan)
    login(client, 1)
    started = time.perf_counter()
    response = client.get("/api/video/")
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert len(response.json) == 9900
    assert response.json[0]["title"] == "Video 1"
    assert elapsed < 1.5, f"listing 9,900 videos took {elapsed:.2f}s"


def test_owner_watches_a_video_work_others_get_404_until_ready(client, login, make_video):
    video_id = make_video(owner_id=1, status="processing", progress=37, duration=6.0, source_width=1920,
                          source_height=1080, has_audio=True, rungs={"480p": "pending", "1080p": "pending"})
    body = login(client, 1).get(f"/api/video/{video_id}/").json
    assert body["status"] == "processing" and body["progress"] == 37
    assert (body["width"], body["height"], body["duration"], body["has_audio"]) == (1920, 1080, 6.0, True)
    assert body["renditions"] == [] and body["renditions_pending"] == ["480p", "1080p"]
    assert body["master_playlist_url"] is None
    assert login(client, 2).get(f"/api/video/{video_id}/").status_code == 404
    assert login(client, 2, is_admin=True).get(f"/api/video/{video_id}/").status_code == 200


def test_ready_video_shows_what_plays_and_what_is_still_coming(client, login, make_video):
    video_id = make_video(owner_id=1, thumbnail_path="hls/1/thumbnail.jpg",
                          rungs={"360p": "ready", "480p": "ready", "720p": "pending", "1080p": "failed"})
    response = login(client, 2).get(f"/api/video/{video_id}/")
    assert response.status_code == 200
    body = response.json
    assert body["renditions"] == [
        {"rung": "360p", "width": 640, "height": 360, "bandwidth": 1080000},
        {"rung": "480p", "width": 853, "height": 480, "bandwidth": 1440000},
    ]
    assert body["renditions_pending"] == ["720p"]
    assert body["renditions_failed"] == [{"rung": "1080p", "reason": None}]
    assert body["master_playlist_url"] == f"http://gateway.test/api/video/{video_id}/master.m3u8"
    assert body["thumbnail_url"] == f"http://gateway.test/api/video/{video_id}/thumbnail.jpg"


def test_unknown_video_is_404_json(client, login):
    response = login(client, 1).get("/api/video/999/")
    assert response.status_code == 404
    assert response.json == {"detail": "Video not found."}


def make_files(settings, video_id):
    folders = [settings.media_dir / "originals" / str(video_id), settings.media_dir / "hls" / str(video_id) / "480p"]
    for folder in folders:
        folder.mkdir(parents=True)
        (folder / "file").write_bytes(b"x")
    return [settings.media_dir / "originals" / str(video_id), settings.media_dir / "hls" / str(video_id)]


def test_owner_deletes_video_with_its_files(app, client, login, make_video, settings):
    video_id = make_video(owner_id=1, rungs={"480p": "ready"})
    kept_id = make_video(owner_id=1)
    folders, kept = make_files(settings, video_id), make_files(settings, kept_id)
    response = login(client, 1).delete(f"/api/video/{video_id}/", headers={"X-CSRFToken": CSRF})
    assert response.status_code == 204
    assert not any(folder.exists() for folder in folders)
    assert all(folder.exists() for folder in kept)
    with app.app_context():
        assert db.session.get(Video, video_id) is None
        assert db.session.query(Rendition).filter_by(video_id=video_id).count() == 0
    assert client.get(f"/api/video/{video_id}/").status_code == 404


def test_deleting_a_video_stops_its_running_jobs_and_drops_its_waiting_ones(client, login, make_video, redis):
    video_id, other_id = make_video(owner_id=1, status="processing"), make_video(owner_id=1, status="processing")
    queue = Queue("transcode", connection=redis)
    jobs = "services.transcoder.jobs."
    running = queue.enqueue(jobs + "transcode_rung", video_id, "480p", job_id=f"video-{video_id}-480p")
    queue.remove(running)
    running.worker_name = "worker-a"
    running.set_status("started")
    running.save()
    queue.started_job_registry.add(running, ttl=600)
    waiting = queue.enqueue(jobs + "make_thumbnail", video_id, job_id=f"video-{video_id}-thumbnail")
    others = queue.enqueue(jobs + "transcode_rung", other_id, "480p", job_id=f"video-{other_id}-480p")
    commands = redis.pubsub()
    commands.subscribe("rq:pubsub:worker-a")
    commands.get_message(timeout=1)  # the subscription confirmation

    response = login(client, 1).delete(f"/api/video/{video_id}/", headers={"X-CSRFToken": CSRF})
    assert response.status_code == 204
    message = commands.get_message(timeout=2)
    assert json.loads(message["data"]) == {"command": "stop-job", "job_id": running.id}
    assert queue.job_ids == [others.id]
    assert not redis.exists(waiting.key)
    commands.close()


def test_others_cannot_delete_and_csrf_is_checked(client, login, make_video, settings):
    ready = make_video(owner_id=1)
    hidden = make_video(owner_id=1, status="processing")
    login(client, 2)
    assert client.delete(f"/api/video/{ready}/", headers={"X-CSRFToken": CSRF}).status_code == 403
    assert client.delete(f"/api/video/{hidden}/", headers={"X-CSRFToken": CSRF}).status_code == 404
    login(client, 1)
    assert client.delete(f"/api/video/{ready}/").status_code == 403
    assert client.get(f"/api/video/{ready}/").status_code == 200


def test_admin_deletes_any_video(client, login, make_video):
    video_id = make_video(owner_id=1, status="failed")
    response = login(client, 99, is_admin=True).delete(f"/api/video/{video_id}/", headers={"X-CSRFToken": CSRF})
    assert response.status_code == 204
