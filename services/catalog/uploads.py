"""Uploading a video: the file streams into the storage, the row is committed, then transcoding is enqueued."""
from __future__ import annotations

from collections.abc import Callable

from flask import current_app, request
from flask.views import MethodView
from prometheus_client import Counter
from werkzeug.datastructures import FileStorage
from videoflix_shared.security import current_user_id

from . import queue
from .access import login_and_csrf_required
from videoflix_shared.blueprint import Blueprint
from .models import Video, db
from .schemas import UploadSchema, VideoSchema
from .storage import original_relative_path, remove_video_files

UPLOAD_BYTES = Counter("videoflix_upload_bytes", "Bytes of uploaded originals stored")

blp = Blueprint("uploads", __name__, url_prefix="/api/video", description="Upload videos.")


@blp.before_request
def allow_upload():
    request.upload_limit = current_app.config["SETTINGS"].max_upload_bytes
    request.upload_into_storage = True


@blp.route("/upload/")
class Upload(MethodView):
    @login_and_csrf_required
    @blp.arguments(UploadSchema, location="multipart")
    @blp.response(201, VideoSchema)
    @blp.alt_response(401, description="Not logged in.")
    @blp.alt_response(403, description="CSRF check failed.")
    @blp.alt_response(413, description="The file is larger than MAX_UPLOAD_BYTES.")
    def post(self, form):
        """Upload a video file for transcoding

        The answer comes once the file is stored: status `queued` (or `uploaded` when the queue is
        unreachable; the reconciler enqueues it later). Watch `GET /api/video/<id>/` for progress.
        """
        return store_upload(form["file"], form["title"], form["description"], form["category"],
                            current_user_id())


def store_upload(upload: FileStorage, title: str, description: str, category: str, owner_id: int) -> Video:
    """Keep a streamed upload as a new video's original (it is at its key already, under the id it
    reserved) and enqueue its transcoding (API and admin site)."""
    spool = upload.stream
    return create_video(title, description, category, owner_id, upload.filename, spool.keep, spool.video_id)


def create_video(title: str, description: str, category: str, owner_id: int, filename: str,
                 keep: Callable[[Video], int], video_id: int | None = None) -> Video:
    """A new video (with `video_id` when one was reserved) whose original `keep(video)` puts at
    `video.original_path` in the storage (returning its size): committed, then enqueued. Every way in
    (form upload, admin site, resumable upload) ends here. The storage failing answers 503 and leaves no
    row; the row is committed only with its original."""
    video = Video(id=video_id, title=title, description=description, category=category, owner_id=owner_id,
                  original_filename=filename[-255:])
    db.session.add(video)
    db.session.flush()
    video.original_path = original_relative_path(video.id, filename)
    try:
        size = keep(video)
    except BaseException:
        db.session.rollback()
        raise
    UPLOAD_BYTES.inc(size)
    try:
        db.session.commit()
    except Exception:
        remove_video_files(video.id)
        raise
    queue.enqueue_video(video)
    return video
