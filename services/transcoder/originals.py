"""The originals a transcoder host's jobs read: one download per host, in a bounded cache.

Every job of a video reads its original: prepare, the first rung, the thumbnail, each chunk job, the
audio (40+ jobs for a 20-minute source). With the media in S3 each used to download the whole original
(1.1 GB for 20 minutes of 1080p). Now the first job on a host downloads it into its own scratch
directory and links it into `$TRANSCODER_SCRATCH_DIR/cache/<key>`; every later job on that host
hard-links the cached file into its own scratch directory and reads that:

- One download per host: a lock file per original (flock): a job finding the download under way waits
  for it, then links the finished file.
- Whole or nothing: a download enters the cache only complete; one that dies stays in its job's scratch
  directory, which `jobs.remove_dead_scratch` removes.
- Bounded (TRANSCODER_ORIGINALS_CACHE_MB): adding an original evicts the least recently used ones
  first. An evicted original a running job still reads stays readable through that job's own link until
  the job ends (so the disk holds the bound plus what running jobs read). An original larger than the
  whole cache is not cached; 0 turns the cache off (one download per job).
- Evicted when its video is deleted, when its ladder is complete (on the host that completes it), and on
  every host after IDLE_SECONDS without a job reading it.

With the media on local disk (MEDIA_DIR) the stored file itself is read: no copy, no cache.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

from videoflix_shared import Settings
from videoflix_shared.storage import Storage

CACHE_DIR = "cache"
LOCKS_DIR = ".locks"
IDLE_SECONDS = 3600  # long enough for queued chunk jobs of a busy farm, short enough to free the disk


@contextlib.contextmanager
def locked(path: Path, blocking: bool = True) -> Iterator[bool]:
    """An exclusive flock on the file `path` (created if missing); yields False when `blocking` is off and
    another process holds it. The lock is on the file the path names when taken: a lock file removed
    and created again meanwhile (`_forget`) is taken again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                current = os.stat(path).st_ino == os.fstat(descriptor).st_ino
            except FileNotFoundError:
                current = False
            if current:
                yield True
                return
        finally:
            os.close(descriptor)


class OriginalsCache:
    def __init__(self, storage: Storage | None, scratch_root: Path, max_bytes: int):
        self.storage = storage  # None: only evicting (no download)
        self.root = Path(scratch_root) / CACHE_DIR
        self.max_bytes = max_bytes

    @classmethod
    def from_settings(cls, settings: Settings, storage: Storage) -> "OriginalsCache":
        return cls(storage, settings.transcoder_scratch_dir, settings.transcoder_originals_cache_mb * 1024 * 1024)

    def entry(self, key: str) -> Path:
        if not key or ".." in Path(key).parts or Path(key).is_absolute() or key.startswith("."):
            raise ValueError(f"not a storage key: {key!r}")
        return self.root / key

    def _lock_file(self, key: str) -> Path:
        return self.root / LOCKS_DIR / hashlib.sha256(key.encode()).hexdigest()[:32]

    def local_copy(self, key: str, scratch: Path) -> contextlib.AbstractContextManager[Path]:
        """A local file with the original `key` for as long as the block runs: the stored file on local
        disk, else this job's own link (in `scratch`) to the host's cached copy."""
        return self.storage.local_copy(key, scratch, fetch=self._fetch)

    def _fetch(self, key: str, target: Path) -> None:
        entry = self.entry(key)
        with locked(self._lock_file(key)):
            if entry.is_file():
                os.utime(entry)  # most recently used
                _link(entry, target)
                return
            self.storage.download(key, target)
            size = target.stat().st_size
            if size > self.max_bytes:
                return
            with locked(self.root / LOCKS_DIR / "cache"):
                self._make_room(size)
                entry.parent.mkdir(parents=True, exist_ok=True)
                _link(target, entry)

    def cached(self) -> list[tuple[str, Path]]:
        """(key, file) of every cached original, least recently used first."""
        if not self.root.is_dir():
            return []
        files = []
        for path in self.root.rglob("*"):
            relative = path.relative_to(self.root)
            if relative.parts[0] != LOCKS_DIR and path.is_file():
                with contextlib.suppress(FileNotFoundError):
                    files.append((path.stat().st_mtime, relative.as_posix(), path))
        return [(key, path) for _, key, path in sorted(files)]

    def _make_room(self, size: int) -> None:
        """Evict the least recently used originals until `size` more bytes fit (skipping those whose
        lock another job holds: it is about to read them)."""
        entries = [(key, path, path.stat().st_size) for key, path in self.cached()]
        total = sum(entry_size for _, _, entry_size in entries)
        for key, _, entry_size in entries:
            if total + size <= self.max_bytes:
                break
            if self.evict(key, wait=False):
                total -= entry_size

    def evict(self, key: str, wait: bool = True) -> bool:
        """Drop the cached copy of `key` (running jobs keep reading their own links); False when
        `wait` is off and a job holds its lock."""
        with locked(self._lock_file(key), blocking=wait) as held:
            if not held:
                return False
            entry = self.entry(key)
            entry.unlink(missing_ok=True)
            self._forget(key)
            with contextlib.suppress(OSError):  # its video's directory, once empty
                entry.parent.rmdir()
        return True

    def _forget(self, key: str) -> None:
        """Remove the lock file of `key` (called holding it: a job waiting on it takes the new one)."""
        self._lock_file(key).unlink(missing_ok=True)

    def evict_video(self, video_id: int) -> int:
        """Drop every cached original of a video (deleted, or its ladder complete); returns how many."""
        keys = [key for key, _ in self.cached() if key.startswith(f"originals/{video_id}/")]
        for key in keys:
            self.evict(key)
        return len(keys)

    def expire(self, idle_seconds: float = IDLE_SECONDS) -> list[str]:
        """Drop the originals no job has read for `idle_seconds` (ladders finished on other hosts), and
        the lock files no job holds (of downloads that failed or were too large to keep)."""
        cutoff = time.time() - idle_seconds
        expired = []
        for key, path in self.cached():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff and self.evict(key, wait=False):
                    expired.append(key)
        locks = self.root / LOCKS_DIR
        for path in locks.iterdir() if locks.is_dir() else ():
            with locked(path, blocking=False) as held:
                if held:
                    path.unlink(missing_ok=True)
        return expired


def _link(source: Path, target: Path) -> None:
    """A second name for the same file (same disk), else a copy."""
    try:
        os.link(source, target)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        shutil.copyfile(source, target)
