"""The catalog with MEDIA_STORAGE=s3 against a real SeaweedFS: uploads stream into the bucket, nothing
lands on the catalog's disk, an unreachable S3 answers 503 and keeps no half video; the media commands."""
import io

import pytest
from videoflix_shared.storage import PART_BYTES, S3Storage

from services.catalog.models import Video, db


@pytest.fixture
def bucket(seaweedfs):
    storage = seaweedfs.storage()
    storage.delete_prefix("")
    return storage


@pytest.fixture
def s3_app(make_app, seaweedfs, bucket):
    return make_app(media_storage="s3", s3_endpoint_url=seaweedfs.url, s3_bucket=seaweedfs.bucket,
                    s3_access_key_id=seaweedfs.service[0], s3_secret_access_key=seaweedfs.service[1],
                    max_upload_bytes=3 * PART_BYTES)


def post_video(client, data: bytes, name="clip.mp4"):
    return client.post("/api/video/upload/", content_type="multipart/form-data", headers={"X-CSRFToken": "csrf-secret-value"},
                       data={"title": "T", "description": "D", "category": "C", "file": (io.BytesIO(data), name)})


def files_under(directory):
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file())


def s3_calls(app) -> list[str]:
    """The names of the S3 operations the app's storage sends from now on (botocore's events)."""
    calls = []
    app.extensions["storage"].client.meta.events.register(
        "before-call.s3", lambda model, **_: calls.append(model.name))
    return calls


def test_an_upload_streams_into_the_bucket_part_by_part(s3_app, bucket, login, settings):
    data = bytes(range(256)) * (2 * PART_BYTES // 256 + 4321)  # two full parts and a bit
    calls = s3_calls(s3_app)
    response = post_video(login(s3_app.test_client(), 1), data)
    assert response.status_code == 201, response.json
    video_id = response.json["id"]
    assert bucket.get(f"originals/{video_id}/clip.mp4") == data
    # Streamed straight to the original's key: three parts, no copy, nothing else in the bucket.
    assert calls == ["CreateMultipartUpload", "UploadPart", "UploadPart", "UploadPart", "CompleteMultipartUpload"]
    assert [item.key for item in bucket.list("")] == [f"originals/{video_id}/clip.mp4"]
    assert files_under(settings.media_dir) == []  # nothing on the catalog's disk
    with s3_app.app_context():
        assert db.session.get(Video, video_id).original_path == f"originals/{video_id}/clip.mp4"


def test_deleting_a_video_removes_its_objects(s3_app, bucket, login):
    client = login(s3_app.test_client(), 1)
    video_id = post_video(client, b"video bytes").json["id"]
    bucket.put_bytes(f"hls/{video_id}/480p/index.m3u8", b"#EXTM3U\n")
    assert client.delete(f"/api/video/{video_id}/", headers={"X-CSRFToken": "csrf-secret-value"}).status_code == 204
    assert bucket.list(f"originals/{video_id}/") == [] and bucket.list(f"hls/{video_id}/") == []


def test_s3_down_during_an_upload_is_a_json_503_and_no_video(make_app, login, settings):
    down = S3Storage("http://127.0.0.1:9", "us-east-1", "videoflix", "a", "b", attempts=1, connect_timeout=1)
    app = make_app()
    app.extensions["storage"] = down
    response = post_video(login(app.test_client(), 1), b"video bytes")
    assert response.status_code == 503
    assert response.json["detail"].startswith("The media storage is unavailable")
    with app.app_context():
        assert db.session.query(Video).count() == 0


def test_wrong_s3_credentials_are_a_json_503(make_app, seaweedfs, login):
    app = make_app(media_storage="s3", s3_endpoint_url=seaweedfs.url, s3_bucket=seaweedfs.bucket,
                   s3_access_key_id=seaweedfs.service[0], s3_secret_access_key="wrong")
    app.extensions["storage"] = S3Storage(seaweedfs.url, "us-east-1", seaweedfs.bucket, seaweedfs.service[0],
                                          "wrong", attempts=1)
    response = post_video(login(app.test_client(), 1), b"video bytes")
    assert response.status_code == 503 and "detail" in response.json


def test_import_local_copies_a_library_once_and_resumes(s3_app, bucket, settings):
    for key, data in {"originals/5/a.mp4": b"movie", "hls/5/480p/segment_000.ts": b"ts",
                      "hls/5/480p/index.m3u8": b"#EXTM3U\n", "hls/5/master.m3u8": b"#EXTM3U\n"}.items():
        (settings.media_dir / key).parent.mkdir(parents=True, exist_ok=True)
        (settings.media_dir / key).write_bytes(data)
    bucket.put_bytes("hls/5/480p/segment_000.ts", b"ts")  # an interrupted earlier run got this far
    result = s3_app.test_cli_runner().invoke(args=["media", "import-local"])
    assert result.exit_code == 0, result.output
    assert "4/4 files" in result.output and "3 copied, 1 already there" in result.output
    assert bucket.get("originals/5/a.mp4") == b"movie" and bucket.get("hls/5/master.m3u8") == b"#EXTM3U\n"
    again = s3_app.test_cli_runner().invoke(args=["media", "import-local"])
    assert "0 copied, 4 already there" in again.output


def test_orphans_are_found_and_deleted(s3_app, bucket, login):
    video_id = post_video(login(s3_app.test_client(), 1), b"video bytes").json["id"]
    bucket.put_bytes("hls/999999/480p/index.m3u8", b"#EXTM3U\n")
    bucket.put_bytes("originals/999999/x.mp4", b"x")
    bucket.delete(f"originals/{video_id}/clip.mp4")
    report = s3_app.test_cli_runner().invoke(args=["media", "orphans"])
    assert "orphan hls/999999/ (1 objects)" in report.output and "orphan originals/999999/" in report.output
    assert f"video {video_id} (queued): its original originals/{video_id}/clip.mp4 is gone" in report.output \
        or f"video {video_id} (uploaded)" in report.output
    assert bucket.exists("hls/999999/480p/index.m3u8")
    s3_app.test_cli_runner().invoke(args=["media", "orphans", "--delete"])
    assert bucket.list("hls/999999/") == [] and bucket.list("originals/999999/") == []


def test_deleting_with_s3_down_deletes_the_video_and_leaves_its_objects_to_orphans(make_app, login):
    app = make_app()
    client = login(app.test_client(), 1)
    video_id = post_video(client, b"video bytes").json["id"]
    app.extensions["storage"] = S3Storage("http://127.0.0.1:9", "us-east-1", "videoflix", "a", "b", attempts=1,
                                          connect_timeout=1)
    response = client.delete(f"/api/video/{video_id}/", headers={"X-CSRFToken": "csrf-secret-value"})
    assert response.status_code == 204
    with app.app_context():
        assert db.session.get(Video, video_id) is None


def test_create_bucket_creates_a_missing_bucket_and_is_idempotent(s3_app, bucket):
    bucket.client.delete_bucket(Bucket=bucket.bucket)
    for _ in range(2):
        result = s3_app.test_cli_runner().invoke(args=["media", "create-bucket", "--wait", "5"])
        assert result.exit_code == 0, result.output
        assert "the bucket is there" in result.output
    bucket.client.head_bucket(Bucket=bucket.bucket)


def test_create_bucket_on_an_unreachable_endpoint_fails_with_a_message(make_app):
    app = make_app(media_storage="s3", s3_endpoint_url="http://127.0.0.1:9", s3_access_key_id="a",
                   s3_secret_access_key="b")
    result = app.test_cli_runner().invoke(args=["media", "create-bucket", "--wait", "0"])
    assert result.exit_code == 1
    assert "creating bucket videoflix" in result.output and "Traceback" not in result.output


def test_a_refused_upload_leaves_no_object_and_no_multipart_upload(make_app, seaweedfs, bucket, login):
    app = make_app(media_storage="s3", s3_endpoint_url=seaweedfs.url, s3_bucket=seaweedfs.bucket,
                   s3_access_key_id=seaweedfs.service[0], s3_secret_access_key=seaweedfs.service[1],
                   max_upload_bytes=PART_BYTES + 1000)
    response = post_video(login(app.test_client(), 1), b"x" * (PART_BYTES + 1001))  # one part sent, then 413
    assert response.status_code == 413
    assert bucket.list("") == []
    assert bucket.client.list_multipart_uploads(Bucket=bucket.bucket).get("Uploads", []) == []
    with app.app_context():
        assert db.session.query(Video).count() == 0
