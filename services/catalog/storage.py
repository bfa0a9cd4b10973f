"""The catalog's media: uploads stream into the storage (videoflix_shared.storage: MEDIA_DIR or an S3
bucket) as they arrive, under `uploads/<random>.part` until the video row exists, then move to
`originals/<id>/<name>`; HLS output under `hls/<id>/` is the transcoder's."""
from __future__ import annotations

import io
from datetime import timedelta

from flask import Request, current_app, g
from videoflix_shared.storage import Storage, new_upload_key
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import secure_filename

UPLOADS_DIR = "uploads"
ORIGINALS_DIR = "originals"
HLS_DIR = "hls"
# Room for the form fields and multipart boundaries on top of the file itself.
FORM_OVERHEAD_BYTES = 64 * 1024


def storage() -> Storage:
    return current_app.extensions["storage"]


class UploadSpool:
    """A file part written straight into the storage as it arrives (on disk, or an S3 multipart upload
    one part at a time); refuses to grow past the upload limit."""

    def __init__(self, limit: int):
        self.key = new_upload_key()
        self.writer = storage().writer(self.key)
        self.limit = limit
        self.size = 0
        self.state = "writing"  # then stored (complete, at self.key), kept (moved away) or discarded

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

    def store(self) -> None:
        """Complete the write: the whole file is at `self.key` now."""
        if self.state == "writing":
            self.writer.commit()
            self.state = "stored"

    def keep_as(self, key: str) -> int:
        """Move the complete upload to `key`; returns its size."""
        self.store()
        storage().rename(self.key, key)
        self.state = "kept"
        return self.size

    def discard(self) -> None:
        if self.state == "writing":
            self.writer.abort()
        elif self.state == "stored":
            storage().delete(self.key)
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
        spool = UploadSpool(self.upload_limit or 0)
        g.setdefault("upload_spools", []).append(spool)
        return spool


def discard_spools(_error=None) -> None:
    """Teardown: remove every spooled part the view did not keep (a failed removal is retried by the
    reconciler's `remove_stale_spools`)."""
    for spool in g.pop("upload_spools", []):
        try:
            spool.discard()
        except Exception:  # noqa: BLE001 - the storage may be down; the reconciler cleans up later
            current_app.logger.warning("could not discard an upload part", exc_info=True)


def remove_stale_spools(older_than: timedelta) -> int:
    """Delete parts left by uploads whose worker died mid-request (its teardown never ran). A live
    upload writes all the time, so its part is never old."""
    return storage().remove_stale(f"{UPLOADS_DIR}/", older_than.total_seconds())


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
