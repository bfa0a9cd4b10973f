"""Where uploads land on disk: file parts stream into MEDIA_DIR/uploads, originals live in
MEDIA_DIR/originals/<id>/, HLS output in MEDIA_DIR/hls/<id>/ (written by the transcoder)."""
from __future__ import annotations

import os
import shutil
import time
import uuid
from datetime import timedelta
from pathlib import Path

from flask import Request, current_app, g
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import secure_filename

UPLOADS_DIR = "uploads"
ORIGINALS_DIR = "originals"
HLS_DIR = "hls"
# Room for the form fields and multipart boundaries on top of the file itself.
FORM_OVERHEAD_BYTES = 64 * 1024


def media_dir() -> Path:
    return current_app.config["SETTINGS"].media_dir


class UploadSpool:
    """A file part written straight to disk as it arrives; refuses to grow past the upload limit."""

    def __init__(self, directory: Path, limit: int):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{uuid.uuid4().hex}.part"
        self.limit = limit
        self.size = 0
        self.file = open(self.path, "w+b")

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.limit:
            raise RequestEntityTooLarge()
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


class StreamingUploadRequest(Request):
    """Flask's request, except that file parts go to disk in chunks (never into memory) and the
    body limit can be raised for one route (`allow_upload()`)."""

    upload_limit: int | None = None

    @property
    def max_content_length(self) -> int | None:
        if self.upload_limit is not None:
            return self.upload_limit + FORM_OVERHEAD_BYTES
        return super().max_content_length

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        spool = UploadSpool(media_dir() / UPLOADS_DIR, self.upload_limit or 0)
        g.setdefault("upload_spools", []).append(spool)
        return spool


def discard_spools(_error=None) -> None:
    """Teardown: remove every spooled part the view did not move into place."""
    for spool in g.pop("upload_spools", []):
        spool.discard()


def remove_stale_spools(older_than: timedelta) -> int:
    """Delete parts left by uploads whose worker died mid-request (its teardown never ran). A live
    upload writes all the time, so its part is never old."""
    cutoff = time.time() - older_than.total_seconds()
    removed = 0
    for part in (media_dir() / UPLOADS_DIR).glob("*.part"):
        if part.stat().st_mtime < cutoff:
            part.unlink(missing_ok=True)
            removed += 1
    return removed


def original_relative_path(video_id: int, filename: str) -> str:
    name = secure_filename(filename)[-200:] or "original"
    return f"{ORIGINALS_DIR}/{video_id}/{name}"


def keep_original(spool: UploadSpool, relative_path: str) -> Path:
    """Move a spooled upload to its final place (same filesystem: a rename, no copy)."""
    target = media_dir() / relative_path
    target.parent.mkdir(parents=True, exist_ok=True)
    spool.file.flush()
    os.replace(spool.path, target)
    return target


def remove_video_files(video_id: int) -> None:
    for top in (ORIGINALS_DIR, HLS_DIR):
        shutil.rmtree(media_dir() / top / str(video_id), ignore_errors=True)


def remove_hls_output(video_id: int) -> None:
    """Before a re-transcode: the transcoder skips rungs already published."""
    shutil.rmtree(media_dir() / HLS_DIR / str(video_id), ignore_errors=True)


def original_size(relative_path: str | None) -> int | None:
    """Bytes of a stored original, None when it is missing."""
    try:
        return (media_dir() / relative_path).stat().st_size if relative_path else None
    except OSError:
        return None
