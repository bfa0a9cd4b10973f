"""Both storage backends against the same expectations: local disk, and a real SeaweedFS (SigV4 checked)."""
import io

import pytest

from videoflix_shared.config import Settings
from videoflix_shared.storage import (PART_BYTES, LocalStorage, S3Storage, StorageUnavailable, publish_order,
                                      storage_from_settings)


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    if request.param == "local":
        return LocalStorage(tmp_path / "media")
    server = request.getfixturevalue("seaweedfs")
    store = server.storage()
    store.delete_prefix("")  # one bucket for the whole session: each test starts empty
    return store


def test_put_get_size_list_delete(storage, tmp_path):
    storage.put_bytes("hls/1/thumbnail.jpg", b"jpeg")
    source = tmp_path / "a.ts"
    source.write_bytes(b"x" * 1000)
    storage.put_file("hls/1/480p/segment_000.ts", source)
    assert storage.get("hls/1/thumbnail.jpg") == b"jpeg"
    assert storage.get_range("hls/1/480p/segment_000.ts", 10, 5) == b"xxxxx"
    assert storage.size("hls/1/480p/segment_000.ts") == 1000
    assert storage.exists("hls/1/thumbnail.jpg") and not storage.exists("hls/1/nothing")
    assert storage.get("hls/1/nothing") is None and storage.size("hls/2/x") is None
    assert [item.key for item in storage.list("hls/1/")] == ["hls/1/480p/segment_000.ts", "hls/1/thumbnail.jpg"]
    storage.put_bytes("hls/10/master.m3u8", b"#EXTM3U\n")
    assert storage.delete_prefix("hls/1/") == 2
    assert storage.list("hls/1/") == [] and storage.exists("hls/10/master.m3u8")
    target = tmp_path / "copy"
    storage.download("hls/10/master.m3u8", target)
    assert target.read_bytes() == b"#EXTM3U\n"
    with pytest.raises(FileNotFoundError):
        storage.download("hls/10/none", tmp_path / "none")


def test_streams_go_up_part_by_part(storage):
    data = bytes(range(256)) * (PART_BYTES * 2 // 256 + 1000)  # two full parts and a bit
    size = storage.put_stream("originals/7/movie.mp4", io.BytesIO(data))
    assert size == len(data) == storage.size("originals/7/movie.mp4")
    assert storage.get_range("originals/7/movie.mp4", PART_BYTES - 2, 4) == data[PART_BYTES - 2:PART_BYTES + 2]


def test_an_aborted_writer_leaves_nothing(storage, tmp_path):
    writer = storage.writer("originals/3/x.mp4")
    writer.write(b"y" * (PART_BYTES + 10))
    writer.abort()
    assert storage.list("") == []
    if isinstance(storage, LocalStorage):
        assert list(storage.root.iterdir()) == []  # not even the folders it made


def test_a_published_rung_appears_whole_with_its_playlist_last(storage, tmp_path):
    rung = tmp_path / "rung"
    rung.mkdir()
    for index in range(3):
        (rung / f"segment_{index:03d}.ts").write_bytes(b"ts" * 100)
    (rung / "index.m3u8").write_text("#EXTM3U\n")
    assert [path.name for path in publish_order(rung)][-1] == "index.m3u8"
    assert storage.publish_directory(rung, "hls/3/480p") is True
    assert [item.key.rsplit("/", 1)[1] for item in storage.list("hls/3/480p/")] == [
        "index.m3u8", "segment_000.ts", "segment_001.ts", "segment_002.ts"]
    again = tmp_path / "again"
    again.mkdir()
    (again / "index.m3u8").write_text("other\n")
    assert storage.publish_directory(again, "hls/3/480p") is False
    assert storage.get("hls/3/480p/index.m3u8") == b"#EXTM3U\n"


def test_local_copy_is_a_readable_file(storage, tmp_path):
    storage.put_bytes("originals/4/a.mp4", b"movie")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with storage.local_copy("originals/4/a.mp4", scratch) as path:
        assert path.read_bytes() == b"movie"


def test_signatures_are_checked(seaweedfs):
    wrong = S3Storage(seaweedfs.url, "us-east-1", seaweedfs.bucket, seaweedfs.service[0], "wrong-secret", attempts=1)
    with pytest.raises(StorageUnavailable, match="SignatureDoesNotMatch"):
        wrong.put_bytes("hls/9/x", b"x")
    with pytest.raises(StorageUnavailable):
        wrong.size("hls/9/x")


def test_the_gateway_key_only_reads(seaweedfs):
    seaweedfs.storage().put_bytes("hls/5/master.m3u8", b"#EXTM3U\n")
    gateway = seaweedfs.storage(seaweedfs.gateway, attempts=1)
    assert gateway.get("hls/5/master.m3u8") == b"#EXTM3U\n"
    for write in (lambda: gateway.put_bytes("hls/5/x", b"x"), lambda: gateway.delete("hls/5/master.m3u8"),
                  lambda: gateway.list("hls/")):
        with pytest.raises(StorageUnavailable, match="AccessDenied"):
            write()


def test_a_server_that_is_down_is_unavailable():
    down = S3Storage("http://127.0.0.1:9", "us-east-1", "videoflix", "a", "b", attempts=1, connect_timeout=1)
    with pytest.raises(StorageUnavailable):
        down.put_bytes("k", b"x")


def test_settings_choose_the_backend(tmp_path):
    assert isinstance(storage_from_settings(Settings.from_env({"VAR_DIR": str(tmp_path)})), LocalStorage)
    s3 = storage_from_settings(Settings.from_env({"MEDIA_STORAGE": "s3", "S3_ENDPOINT_URL": "http://127.0.0.1:9",
                                                   "S3_ACCESS_KEY_ID": "a", "S3_SECRET_ACCESS_KEY": "secret"}))
    assert isinstance(s3, S3Storage) and s3.bucket == "videoflix"
    with pytest.raises(ValueError, match="MEDIA_STORAGE"):
        Settings.from_env({"MEDIA_STORAGE": "ftp"})
    assert "hunter2" not in repr(Settings.from_env({"S3_SECRET_ACCESS_KEY": "hunter2"}))


def test_writes_abandoned_by_a_dead_process_are_removed_complete_objects_kept(storage):
    storage.put_bytes("originals/1/done.mp4", b"x")
    writer = storage.writer("originals/2/dying.mp4")  # a worker killed mid-upload: never committed
    writer.write(b"y" * (PART_BYTES + 10))  # on S3: a multipart upload with one part
    if isinstance(storage, LocalStorage):
        writer.file.flush()
    assert storage.remove_abandoned_writes("originals/", 3600) == 0  # still fresh: may be live
    assert storage.remove_abandoned_writes("originals/", -1) == 1
    assert [item.key for item in storage.list("")] == ["originals/1/done.mp4"]
    if isinstance(storage, LocalStorage):
        assert sorted(path.name for path in (storage.root / "originals").iterdir()) == ["1"]
    else:
        assert storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", []) == []
