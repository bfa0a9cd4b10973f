"""The per-host cache of originals, against a real S3 server (SeaweedFS) and real processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from services.transcoder.jobs import job_scratch, remove_dead_scratch
from services.transcoder.originals import OriginalsCache
from videoflix_shared import Settings
from videoflix_shared.storage import LocalStorage

from .conftest import REPO, wait_for

MIB = 1024 * 1024


class CountingStorage:
    """The real S3 storage, counting its downloads (and slowed, so concurrent jobs overlap)."""

    def __init__(self, storage, delay: float = 0.0):
        self.storage, self.delay = storage, delay
        self.downloads: list[str] = []
        self.lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self.storage, name)

    def download(self, key: str, path: Path) -> None:
        with self.lock:
            self.downloads.append(key)
        time.sleep(self.delay)
        self.storage.download(key, path)


@pytest.fixture
def s3(seaweedfs):
    storage = seaweedfs.storage()
    storage.delete_prefix("originals/")
    yield storage
    storage.delete_prefix("originals/")


def put_original(storage, video_id: int, size: int) -> tuple[str, bytes]:
    key = f"originals/{video_id}/clip.mp4"
    data = os.urandom(size)
    storage.put_bytes(key, data)
    return key, data


def read_in_job(cache: OriginalsCache, key: str, scratch_root: Path) -> bytes:
    directory = Path(tempfile.mkdtemp(prefix=f"job-{os.getpid()}-", dir=scratch_root))
    with cache.local_copy(key, directory) as path:
        return path.read_bytes()


def test_many_jobs_on_one_host_download_the_original_once(s3, tmp_path):
    key, data = put_original(s3, 1, 3 * MIB)
    storage = CountingStorage(s3, delay=0.5)
    cache = OriginalsCache(storage, tmp_path, 100 * MIB)
    with ThreadPoolExecutor(8) as pool:  # 8 jobs at once: one downloads, the others wait for it
        results = list(pool.map(lambda _: read_in_job(cache, key, tmp_path), range(8)))
    assert results == [data] * 8
    assert read_in_job(cache, key, tmp_path) == data  # and a later job
    assert storage.downloads == [key]
    assert [cached for cached, _ in cache.cached()] == [key]
    assert not [path for path in tmp_path.glob("job-*/**/*") if path.is_file()]  # each job's link is gone


def test_least_recently_used_originals_are_evicted_to_stay_under_the_bound(s3, tmp_path):
    originals = [put_original(s3, video_id, 2 * MIB) for video_id in (1, 2, 3)]
    storage = CountingStorage(s3)
    cache = OriginalsCache(storage, tmp_path, 5 * MIB)  # room for two
    for key, data in originals[:2]:
        assert read_in_job(cache, key, tmp_path) == data
    os.utime(cache.entry(originals[0][0]), (time.time() - 60,) * 2)  # 2 was used more recently than 1...
    read_in_job(cache, originals[0][0], tmp_path)  # ... until 1 is read again
    assert read_in_job(cache, originals[2][0], tmp_path) == originals[2][1]
    assert [key for key, _ in cache.cached()] == [originals[0][0], originals[2][0]]  # 2 went
    assert sum(path.stat().st_size for _, path in cache.cached()) <= 5 * MIB
    assert read_in_job(cache, originals[1][0], tmp_path) == originals[1][1]  # downloaded again
    assert storage.downloads == [originals[0][0], originals[1][0], originals[2][0], originals[1][0]]


def test_an_original_evicted_while_a_job_reads_it_stays_readable_for_that_job(s3, tmp_path):
    key, data = put_original(s3, 1, MIB)
    cache = OriginalsCache(s3, tmp_path, 10 * MIB)
    scratch = tmp_path / "job-1"
    scratch.mkdir()
    with cache.local_copy(key, scratch) as path:
        assert cache.evict_video(1) == 1
        assert cache.cached() == []
        assert path.read_bytes() == data


def test_an_original_larger_than_the_cache_is_read_but_not_kept(s3, tmp_path):
    key, data = put_original(s3, 1, 2 * MIB)
    cache = OriginalsCache(s3, tmp_path, MIB)
    assert read_in_job(cache, key, tmp_path) == data
    assert cache.cached() == []
    cache.expire()  # its lock file goes too
    assert list((tmp_path / "cache" / ".locks").iterdir()) == []


def test_deleting_the_video_or_idleness_drops_its_originals(s3, tmp_path):
    first, _ = put_original(s3, 1, MIB)
    second, _ = put_original(s3, 2, MIB)
    cache = OriginalsCache(s3, tmp_path, 10 * MIB)
    read_in_job(cache, first, tmp_path)
    read_in_job(cache, second, tmp_path)
    assert cache.evict_video(1) == 1
    assert [key for key, _ in cache.cached()] == [second]
    assert cache.expire(idle_seconds=3600) == []
    os.utime(cache.entry(second), (time.time() - 7200,) * 2)
    assert cache.expire(idle_seconds=3600) == [second]
    assert cache.cached() == []


CRASHING_DOWNLOAD = """
import os, sys, time
from pathlib import Path
from services.transcoder.originals import OriginalsCache
from shared.tests.seaweedfs import SeaweedFS
from videoflix_shared.storage import S3Storage

class HalfDownload(S3Storage):
    def download(self, key, path):  # half the bytes, then the job hangs until it is killed
        Path(path).write_bytes(self.get_range(key, 0, 1024 * 1024))
        print("half", flush=True)
        time.sleep(600)

url, bucket, key_id, secret, root, key = sys.argv[1:]
scratch = Path(root) / f"job-{os.getpid()}-crash"
scratch.mkdir(parents=True)
with OriginalsCache(HalfDownload(url, "us-east-1", bucket, key_id, secret), Path(root), 10 << 20).local_copy(key, scratch):
    pass
"""


def test_a_download_killed_halfway_is_never_used_and_its_partial_file_goes(s3, seaweedfs, tmp_path):
    key, data = put_original(s3, 1, 2 * MIB)
    crashing = subprocess.Popen(
        [sys.executable, "-c", CRASHING_DOWNLOAD, seaweedfs.url, seaweedfs.bucket, *seaweedfs.service,
         str(tmp_path), key], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
        text=True)
    try:
        assert crashing.stdout.readline().strip() == "half"
        [partial] = [path for path in tmp_path.glob("job-*/originals/1/*")]
        assert partial.stat().st_size == MIB
        storage = CountingStorage(s3)
        cache = OriginalsCache(storage, tmp_path, 10 * MIB)
        waiting = ThreadPoolExecutor(1).submit(read_in_job, cache, key, tmp_path)
        time.sleep(0.5)
        assert not waiting.done() and storage.downloads == []  # the killed job's download is under way
        crashing.send_signal(signal.SIGKILL)
        crashing.wait()
        assert waiting.result(timeout=30) == data  # a whole download of its own, never the half file
        assert storage.downloads == [key]
        assert cache.entry(key).read_bytes() == data
        assert [path.name for path in remove_dead_scratch(tmp_path)] == [f"job-{crashing.pid}-crash"]
    finally:
        crashing.kill()
        crashing.wait()


def test_local_media_is_read_in_place(tmp_path):
    original = tmp_path / "media" / "originals" / "1" / "clip.mp4"
    original.parent.mkdir(parents=True)
    original.write_bytes(b"video")
    cache = OriginalsCache(LocalStorage(tmp_path / "media"), tmp_path / "scratch", 10 * MIB)
    with cache.local_copy("originals/1/clip.mp4", tmp_path / "scratch" / "job-1") as path:
        assert path == original
    assert not (tmp_path / "scratch").exists()


def test_jobs_expire_idle_originals_at_their_start(s3, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSCODER_SCRATCH_DIR", str(tmp_path))
    key, _ = put_original(s3, 1, MIB)
    cache = OriginalsCache(s3, tmp_path, 10 * MIB)
    read_in_job(cache, key, tmp_path)
    os.utime(cache.entry(key), (time.time() - 2 * 3600,) * 2)
    with job_scratch(Settings.from_env()):
        assert cache.cached() == []
