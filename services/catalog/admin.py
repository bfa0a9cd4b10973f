"""The videos' admin pages (Flask-Admin) at /admin/videos/.

Every video in every state with its owner, original's size and failure reason; edit title,
description, category and thumbnail; re-transcode; delete (rows, then files); upload a video as its
admin owner, the way the original's admins add the catalogue. Uploads stream into the storage as on the API.
"""
from __future__ import annotations

import io

import sqlalchemy as sa
from flask import Flask, current_app, flash, request
from flask_admin.actions import action
from PIL import Image, UnidentifiedImageError
from videoflix_shared.admin import AdminModelView, init_admin
from videoflix_shared.security import current_user_id
from wtforms import FileField
from wtforms.validators import DataRequired, InputRequired, Length, Optional, ValidationError

from . import queue
from .models import FAILED, READY, UPLOADED, Rendition, Video, db
from .storage import HLS_DIR, original_size, remove_hls_output, storage
from .uploads import store_upload
from .videos import delete_videos

THUMBNAIL_MAX_BYTES = 10 * 1024 * 1024
THUMBNAIL_FORMATS = {"JPEG", "PNG"}
THUMBNAIL_MAX_PIXELS = 40_000_000  # a decompression bomb is refused before it is decoded
THUMBNAIL_BOX = (1280, 720)
# Only finished videos are transcoded again; a queued or running one would race its own jobs.
RETRANSCODABLE = (READY, FAILED, UPLOADED)


def strip(value):
    return value.strip() if isinstance(value, str) else value


def human_size(size: int | None) -> str:
    if size is None:
        return "missing"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def validate_thumbnail(form, field) -> None:
    upload = field.data
    if not upload or not getattr(upload, "filename", ""):
        return
    try:
        with Image.open(upload.stream) as image:
            if image.format not in THUMBNAIL_FORMATS:
                raise ValidationError("The thumbnail must be a JPEG or PNG image.")
            if image.width * image.height > THUMBNAIL_MAX_PIXELS:
                raise ValidationError("The thumbnail image is too large.")
            image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise ValidationError("The thumbnail must be a JPEG or PNG image.") from error


def save_thumbnail(video: Video, upload) -> None:
    """Re-encode the checked image as the JPEG the streamer serves (`hls/<id>/thumbnail.jpg`)."""
    relative = f"{HLS_DIR}/{video.id}/thumbnail.jpg"
    upload.stream.seek(0)
    encoded = io.BytesIO()
    with Image.open(upload.stream) as image:
        image.thumbnail(THUMBNAIL_BOX)
        image.convert("RGB").save(encoded, "JPEG", quality=85)
    storage().put_bytes(relative, encoded.getvalue())  # a viewer never gets half a file
    video.thumbnail_path = relative


def size_column(view, context, model: Video, name) -> str:
    return human_size(original_size(model.original_path))


class VideoAdmin(AdminModelView):
    column_list = ("id", "title", "category", "status", "progress", "owner_id", "size", "failure_reason",
                   "created_at")
    column_details_list = ("id", "title", "description", "category", "status", "progress", "owner_id",
                           "size", "failure_reason", "original_filename", "duration", "source_width",
                           "source_height", "has_audio", "thumbnail_path", "created_at", "updated_at")
    column_labels = {"id": "ID", "owner_id": "Owner (user ID)", "failure_reason": "Failure reason",
                     "created_at": "Uploaded", "updated_at": "Updated", "progress": "Progress %"}
    column_formatters = {"size": size_column}
    column_formatters_detail = column_formatters
    column_searchable_list = ("title",)
    column_filters = ("status", "category", "owner_id")
    column_default_sort = ("created_at", True)
    form_columns = ("file", "title", "description", "category", "thumbnail")
    # Validated as the upload API validates them: not blank once stripped, the same lengths.
    form_args = {
        "title": {"validators": [DataRequired(), Length(max=200)], "filters": [strip]},
        "description": {"validators": [DataRequired(), Length(max=5000)], "filters": [strip]},
        "category": {"validators": [DataRequired(), Length(max=100)], "filters": [strip]},
    }
    form_extra_fields = {
        "file": FileField("Video file", [InputRequired()]),
        "thumbnail": FileField("Thumbnail (JPEG or PNG, replaces the current one)", [Optional(), validate_thumbnail]),
    }

    def __init__(self):
        super().__init__(Video, db.session, name="Videos", endpoint="admin_videos", url="videos")

    def get_create_form(self):
        class CreateForm(super().get_create_form()):
            thumbnail = None  # the transcoder makes the first one
        return CreateForm

    def get_edit_form(self):
        class EditForm(super().get_edit_form()):
            file = None
        return EditForm

    def create_model(self, form):
        """Upload: stored and enqueued like `POST /api/video/upload/`, owned by the admin."""
        video = store_upload(form.file.data, form.title.data, form.description.data, form.category.data,
                             current_user_id())
        flash(f"Video {video.id} uploaded: status {video.status}.", "success")
        return video

    def update_model(self, form, model: Video) -> bool:
        model.title, model.description, model.category = form.title.data, form.description.data, form.category.data
        upload = form.thumbnail.data
        if upload and getattr(upload, "filename", ""):
            save_thumbnail(model, upload)
        db.session.commit()
        return True

    def delete_model(self, model: Video) -> bool:
        delete_videos([model])
        return True

    @action("retranscode", "Re-transcode", "Transcode the selected videos again from their originals?")
    def retranscode(self, ids):
        videos = db.session.scalars(sa.select(Video).where(Video.id.in_([int(i) for i in ids]))).all()
        busy = [video for video in videos if video.status not in RETRANSCODABLE or not video.original_path]
        for video in videos:
            if video in busy:
                continue
            db.session.execute(sa.delete(Rendition).where(Rendition.video_id == video.id))
            video.status, video.progress, video.failure_reason, video.thumbnail_path = UPLOADED, 0, None, None
            db.session.commit()
            remove_hls_output(video.id)
            # When Redis is down the video stays `uploaded`; the reconciler enqueues it later.
            queue.enqueue_video(video)
        if len(busy) < len(videos):
            flash(f"Transcoding again: {', '.join(str(v.id) for v in videos if v not in busy)}.", "success")
        if busy:
            flash(f"Not re-transcoded (still in the queue or transcoding): {', '.join(str(v.id) for v in busy)}.",
                  "warning")


def allow_admin_uploads() -> None:
    """The upload form and the thumbnail form carry files: raise the body limit for those two only."""
    if request.endpoint == "admin_videos.create_view":
        request.upload_limit = current_app.config["SETTINGS"].max_upload_bytes
        request.upload_into_storage = True
    elif request.endpoint == "admin_videos.edit_view":
        request.upload_limit = THUMBNAIL_MAX_BYTES


def init_admin_site(app: Flask) -> None:
    init_admin(app, "catalog", [VideoAdmin()])
    app.before_request(allow_admin_uploads)
