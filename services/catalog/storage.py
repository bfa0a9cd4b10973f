"""The catalog's media: an upload streams into the storage (videoflix_shared.storage: MEDIA_DIR or an S3
bucket) as it arrives, straight to its original's key `originals/<id>/<name>`: the video's id is
reserved from the database first, the row follows once the file is whole. HLS output under `hls/<id>/`
is the transcoder's."""
from __future__ import annotations

import io
from datetime import timedelta

import sqlalchemy as sa
from flask import Request, current_app, g
from videoflix_shared.storage import Storage
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import secure_filename

from .models import db

ORIGINALS_DIR = "originals"
HLS_DIR = "hls"
# Room for the form fields and multipart boundaries on top of the file itself.
FORM_OVERHEAD_BYTES = 64 * 1024


def storage() -> Storage:
    return current_app.extensions["storage"]


def reserve_video_id() -> int:
    """The next id of the videos table, taken now (outside the request's transaction: a failed upload
    only leaves a gap in the ids)."""
    with db.engine.connect() as connection:
        return connection.scalar(sa.text("SELECT nextval(pg_get_serial_sequence('videos', 'id'))"))


class UploadSpool:
    """A file part written straight into the storage as it arrives (on disk, or an S3 multipart upload
    one part at a time), at the original's key of a video id reserved for it: nothing is copied once
    it is whole. Refuses to grow past the upload limit."""

    def __init__(self, limit: int, filename: str):
        self.video_id = reserve_video_id()
        self.key = original_relative_path(self.video_id, filename)
        self.writer = storage().writer(self.key)
        self.limit = limit
        self.size = 0
        self.state = "writing"  # then kept (complete, at self.key) or discarded

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.limit:
            raise RequestEntityTooLarge()
        return self.writer.write(data)

    def seek(self, offset: int, whence: int = 0) -> int:  # werkzeug rewinds the stream once it is parsed
        return 0

    def tell(self) -> int:
        return self.size

    def read(self, size: int = -1) -> bytes:
        raise OSError("an upload spool is write-only")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def keep(self, video) -> int:
        """Complete the write as the original of `video` (whose id this spool reserved); returns its size."""
        if (video.id, video.original_path) != (self.video_id, self.key):
            raise ValueError(f"upload {self.key} is not the original of video {video.id}")
        self.writer.commit()
        self.state = "kept"
        return self.size

    def discard(self) -> None:
        if self.state == "writing":
            self.writer.abort()
        self.state = "discarded"


class ImageSpool(io.BytesIO):
    """A small file part (a thumbnail image) kept in memory to be decoded; refuses to grow past the limit."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def write(self, data) -> int:
        if self.tell() + len(data) > self.limit:
            raise RequestEntityTooLarge()
        return super().write(data)

    @property
    def size(self) -> int:
        return len(self.getbuffer())


class StreamingUploadRequest(Request):
    """Flask's request, except that file parts go to the storage in chunks (never into memory or onto
    the catalog's disk whole) and the body limit can be raised for one route (`allow_upload()`)."""

    upload_limit: int | None = None
    upload_into_storage = False  # video files (allow_upload()); other file parts are small images

    @property
    def max_content_length(self) -> int | None:
        if self.upload_limit is not None:
            return self.upload_limit + FORM_OVERHEAD_BYTES
        return super().max_content_length

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        if not self.upload_into_storage:
            return ImageSpool(self.upload_limit or 0)
        spool = UploadSpool(self.upload_limit or 0, filename or "")
        g.setdefault("upload_spools", []).append(spool)
        return spool


def discard_spools(_error=None) -> None:
    """Teardown: drop every spooled part the view did not keep (a failed abort is retried by the
    reconciler's `remove_stale_spools`)."""
    for spool in g.pop("upload_spools", []):
        try:
            spool.discard()
        except Exception:  # noqa: BLE001 - the storage may be down; the reconciler cleans up later
            current_app.logger.warning("could not discard an upload part", exc_info=True)


def remove_stale_spools(older_than: timedelta) -> int:
    """Drop the unfinished writes of uploads whose worker died mid-request (its teardown never ran):
    hidden partial files, incomplete S3 multipart uploads. A live upload writes all the time, so it is
    never this old; complete originals are never touched."""
    return storage().remove_abandoned_writes(f"{ORIGINALS_DIR}/", older_than.total_seconds())


def original_relative_path(video_id: int, filename: str) -> str:
    name = secure_filename(filename)[-200:] or "original"
    return f"{ORIGINALS_DIR}/{video_id}/{name}"


def remove_video_files(video_id: int) -> None:
    for top in (ORIGINALS_DIR, HLS_DIR):
        storage().delete_prefix(f"{top}/{video_id}/")


def remove_hls_output(video_id: int) -> None:
    """Before a re-transcode: the transcoder skips rungs already published."""
    storage().delete_prefix(f"{HLS_DIR}/{video_id}/")


def original_size(key: str | None) -> int | None:
    """Bytes of a stored original, None when it is missing."""
    return storage().size(key) if key else None
