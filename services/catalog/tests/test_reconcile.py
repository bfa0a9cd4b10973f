"""`flask reconcile`: uploads that missed the queue and videos whose jobs were lost get enqueued."""
from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from rq import Queue
from videoflix_shared.storage import TMP_PREFIX

from services.catalog.models import Video, db


def reconcile(app, *args):
    return app.test_cli_runner().invoke(args=["reconcile", *args])


def make_quiet(app, video_id: int, seconds: int = 60) -> None:
    """As if the video had not changed for `seconds`."""
    with app.app_context():
        db.session.execute(sa.update(Video).where(Video.id == video_id)
                           .values(updated_at=datetime.now(timezone.utc) - timedelta(seconds=seconds)))
        db.session.commit()


def status(app, video_id: int) -> str:
    with app.app_context():
        return db.session.get(Video, video_id).status


def queued_ids(redis) -> list[str]:
    return Queue("transcode", connection=redis).get_job_ids()


def test_upload_made_while_redis_was_down_is_enqueued(app, make_app, upload, redis, settings):
    response = upload(make_app(redis_url="redis://127.0.0.1:1/0").test_client())
    video_id = response.json["id"]
    assert response.json["status"] == "uploaded"

    result = reconcile(app)
    assert result.exit_code == 0, result.output
    assert queued_ids(redis) == [], "a fresh upload gets time to enqueue itself"

    make_quiet(app, video_id)
    assert reconcile(app).exit_code == 0
    assert queued_ids(redis) == [f"prepare-video-{video_id}"]
    assert status(app, video_id) == "queued"
    job = Queue("transcode", connection=redis).fetch_job(f"prepare-video-{video_id}")
    assert job.kwargs == {"source_path": f"originals/{video_id}/clip.mp4"}


def test_jobs_lost_with_redis_are_enqueued_again_once(app, make_video, redis):
    queued = make_video(status="queued")
    processing = make_video(status="processing", rungs={"480p": "pending"})
    unfinished_ladder = make_video(status="ready", rungs={"480p": "ready", "1080p": "pending"})
    untouched = [make_video(status="ready", rungs={"480p": "ready", "720p": "failed"}),
                 make_video(status="failed", rungs={"480p": "failed"})]
    for video_id in (queued, processing, unfinished_ladder, *untouched):
        make_quiet(app, video_id)

    assert reconcile(app, "--quiet-for", "5").exit_code == 0
    expected = [f"prepare-video-{video_id}" for video_id in (queued, processing, unfinished_ladder)]
    assert sorted(queued_ids(redis)) == sorted(expected)

    for video_id in (queued, processing, unfinished_ladder):
        make_quiet(app, video_id)
    assert reconcile(app, "--quiet-for", "5").exit_code == 0
    assert sorted(queued_ids(redis)) == sorted(expected), "live jobs are not enqueued twice"
    assert status(app, processing) == "processing"


def test_a_video_with_a_running_rung_job_is_left_alone(app, make_video, redis):
    video_id = make_video(status="processing", rungs={"1080p": "pending"})
    make_quiet(app, video_id)
    queue = Queue("transcode", connection=redis)
    rung_job = queue.enqueue("services.transcoder.jobs.transcode_rung", video_id, "1080p", job_id="rung-job")
    queue.remove(rung_job)
    queue.started_job_registry.add(rung_job, ttl=600)

    assert reconcile(app, "--quiet-for", "5").exit_code == 0
    assert queued_ids(redis) == []


def test_one_pass_fails_loudly_when_redis_is_down(make_app, make_video):
    app = make_app(redis_url="redis://127.0.0.1:1/0")
    video_id = make_video(status="queued")
    make_quiet(app, video_id)
    result = reconcile(app)
    assert result.exit_code != 0
    assert "Error" in result.output


def test_abandoned_upload_parts_are_deleted(app, settings):
    """A worker killed mid-upload leaves its writer's hidden partial file in the original's folder."""
    originals = settings.media_dir / "originals"
    abandoned, live = originals / "41" / f"{TMP_PREFIX}clip.mp4-x1", originals / "42" / f"{TMP_PREFIX}clip.mp4-x2"
    complete = originals / "40" / "clip.mp4"
    for path, data in ((abandoned, b"half an upload"), (live, b"still arriving"), (complete, b"a whole original")):
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
    two_hours_ago = time.time() - 7200
    for path in (abandoned, complete):
        os.utime(path, (two_hours_ago, two_hours_ago))
    assert reconcile(app).exit_code == 0
    assert not abandoned.parent.exists()
    assert live.exists() and complete.exists()


def test_a_video_whose_jobs_keep_getting_lost_is_given_up(app, make_video, redis):
    never_finishes = make_video(status="processing", rungs={"480p": "pending"})
    half_ready = make_video(status="ready", rungs={"480p": "ready", "1080p": "pending"})
    queue = Queue("transcode", connection=redis)
    for attempt in range(2):
        for video_id in (never_finishes, half_ready):
            make_quiet(app, video_id)
        assert reconcile(app, "--quiet-for", "5", "--max-attempts", "2").exit_code == 0
        assert len(queued_ids(redis)) == 2, f"attempt {attempt + 1} enqueues both"
        queue.empty()  # lost again (a worker that dies on them, a Redis without persistence)
    for video_id in (never_finishes, half_ready):
        make_quiet(app, video_id)
    assert reconcile(app, "--quiet-for", "5", "--max-attempts", "2").exit_code == 0
    assert queued_ids(redis) == []
    reason = "Processing did not finish after 2 restarts; it was given up."
    with app.app_context():
        failed = db.session.get(Video, never_finishes)
        assert (failed.status, failed.failure_reason) == ("failed", reason)
        assert [(r.rung, r.state, r.failure_reason) for r in failed.renditions] == [("480p", "failed", reason)]
        playable = db.session.get(Video, half_ready)
        assert playable.status == "ready"
        assert [(r.rung, r.state) for r in playable.renditions] == [("480p", "ready"), ("1080p", "failed")]
    make_quiet(app, never_finishes)
    assert reconcile(app, "--quiet-for", "5").exit_code == 0
    assert queued_ids(redis) == [], "a failed video stays given up"


def test_a_video_without_an_original_is_given_up_and_the_others_still_enqueued(app, make_video, redis):
    orphan = make_video(status="uploaded")
    with app.app_context():
        db.session.get(Video, orphan).original_path = None  # a row whose upload never landed
        db.session.commit()
    waiting = make_video(status="uploaded")
    for video_id in (orphan, waiting):
        make_quiet(app, video_id)
    assert reconcile(app, "--quiet-for", "5").exit_code == 0
    assert queued_ids(redis) == [f"prepare-video-{waiting}"]
    with app.app_context():
        failed = db.session.get(Video, orphan)
        assert (failed.status, failed.failure_reason) == (
            "failed", "The original file is missing; please upload the video again.")


def test_prepare_is_retried_later_not_at_once(app, make_video, redis):
    video_id = make_video(status="uploaded")
    make_quiet(app, video_id)
    assert reconcile(app).exit_code == 0
    job = Queue("transcode", connection=redis).fetch_job(f"prepare-video-{video_id}")
    assert job.retries_left == 3 and job.retry_intervals == [15, 60, 180]
