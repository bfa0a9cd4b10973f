"""Request and response bodies of the catalog (public API and the transcoder's internal API)."""
from __future__ import annotations

import marshmallow as ma
from flask import current_app
from marshmallow import fields, validate
from werkzeug.datastructures import FileStorage

from .models import PENDING, READY, RUNGS, Video


def public_url(path: str) -> str:
    return current_app.config["SETTINGS"].public_base_url + path


def thumbnail_url(video_id: int) -> str:
    return public_url(f"/api/video/{video_id}/thumbnail.jpg")


def by_rung(renditions):
    return sorted(renditions, key=lambda rendition: RUNGS.index(rendition.rung) if rendition.rung in RUNGS else 99)


class NotBlank(validate.Length):
    def __init__(self, max: int):
        super().__init__(min=1, max=max)

    def __call__(self, value: str) -> str:
        return super().__call__(value.strip())


# --- public API ---------------------------------------------------------------------------------

class UploadSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})
    title = fields.String(required=True, validate=NotBlank(200))
    description = fields.String(required=True, validate=NotBlank(5000))
    category = fields.String(required=True, validate=NotBlank(100))

    @ma.validates("file")
    def validate_file(self, value, **kwargs):
        if not isinstance(value, FileStorage) or not value.filename:
            raise ma.ValidationError("Upload a video file.")
        if value.stream.size == 0:
            raise ma.ValidationError("The submitted file is empty.")

    @ma.post_load
    def strip(self, data, **kwargs):
        return {key: value.strip() if isinstance(value, str) else value for key, value in data.items()}


class TusMetadataSchema(ma.Schema):
    """Upload-Metadata of a resumable upload: the upload form's fields, and the file's name."""

    class Meta:
        unknown = ma.EXCLUDE

    filename = fields.String(required=True, validate=NotBlank(255))
    title = fields.String(required=True, validate=NotBlank(200))
    description = fields.String(required=True, validate=NotBlank(5000))
    category = fields.String(required=True, validate=NotBlank(100))

    @ma.post_load
    def strip(self, data, **kwargs):
        return {key: value.strip() for key, value in data.items()}


class PageSchema(ma.Schema):
    limit = fields.Integer(validate=validate.Range(min=1, max=1000),
                           metadata={"description": "Page size; without it the whole list is returned."})
    # PostgreSQL's OFFSET is a bigint: a larger one is a bad request, not a database error.
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=2**63 - 1))


class VideoSearchSchema(PageSchema):
    q = fields.String(validate=NotBlank(200),
                      metadata={"description": "Words to find in title or description (web search syntax: "
                                               "\"a phrase\", or, -word)."})
    category = fields.String(validate=NotBlank(100), metadata={"description": "Only this category."})


class MyVideosPageSchema(PageSchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=1000))


class VideoUpdateSchema(ma.Schema):
    """The fields an owner may change, validated as at upload; at least one."""

    class Meta:
        unknown = ma.RAISE

    title = fields.String(validate=NotBlank(200))
    description = fields.String(validate=NotBlank(5000))
    category = fields.String(validate=NotBlank(100))

    @ma.validates_schema
    def not_empty(self, data, **kwargs):
        if not data:
            raise ma.ValidationError("Send at least one of title, description, category.")

    @ma.post_load
    def strip(self, data, **kwargs):
        return {key: value.strip() for key, value in data.items()}


class ImageUploadSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})

    @ma.validates("file")
    def validate_file(self, value, **kwargs):
        if not isinstance(value, FileStorage) or not value.filename:
            raise ma.ValidationError("Upload a JPEG or PNG image.")
        if value.stream.size == 0:
            raise ma.ValidationError("The submitted file is empty.")


class VideoListItemSchema(ma.Schema):
    id = fields.Integer()
    created_at = fields.DateTime()
    title = fields.String()
    description = fields.String()
    thumbnail_url = fields.String()
    category = fields.String()


class RenditionSchema(ma.Schema):
    rung = fields.String()
    width = fields.Integer()
    height = fields.Integer()
    bandwidth = fields.Integer()


class RungFailureSchema(ma.Schema):
    rung = fields.String()
    reason = fields.String(attribute="failure_reason")


class VideoSchema(ma.Schema):
    """One video as its uploader watches it work."""

    id = fields.Integer()
    created_at = fields.DateTime()
    title = fields.String()
    description = fields.String()
    category = fields.String()
    status = fields.String(metadata={"enum": ["uploaded", "queued", "processing", "ready", "failed"]})
    progress = fields.Integer(metadata={"description": "Percent of the whole ladder done."})
    failure_reason = fields.String(allow_none=True)
    duration = fields.Float(allow_none=True)
    width = fields.Integer(attribute="source_width", allow_none=True)
    height = fields.Integer(attribute="source_height", allow_none=True)
    has_audio = fields.Boolean(allow_none=True)
    renditions = fields.Method("ready_renditions", metadata={"description": "Rungs that can be played now."})
    renditions_pending = fields.Method("pending_rungs", metadata={"description": "Rungs still coming."})
    renditions_failed = fields.Method("failed_rungs")
    thumbnail_url = fields.Method("thumbnail")
    master_playlist_url = fields.Method("master_playlist")

    def ready_renditions(self, video: Video):
        return RenditionSchema(many=True).dump(by_rung(video.renditions_in(READY)))

    def pending_rungs(self, video: Video):
        return [rendition.rung for rendition in by_rung(video.renditions_in(PENDING))]

    def failed_rungs(self, video: Video):
        return RungFailureSchema(many=True).dump(by_rung(video.renditions_in("failed")))

    def thumbnail(self, video: Video):
        return thumbnail_url(video.id) if video.thumbnail_path else None

    def master_playlist(self, video: Video):
        return public_url(f"/api/video/{video.id}/master.m3u8") if video.status == READY else None


# --- internal API (transcoder -> catalog) -------------------------------------------------------

class InternalSchema(ma.Schema):
    class Meta:
        # Tolerate extra fields: the transcoder may send more than we store.
        unknown = ma.EXCLUDE


rung_field = fields.String(required=True, validate=validate.OneOf(RUNGS))


class ProbeSchema(InternalSchema):
    duration = fields.Float(required=True, validate=validate.Range(min=0))
    width = fields.Integer(required=True, validate=validate.Range(min=1))
    height = fields.Integer(required=True, validate=validate.Range(min=1))
    has_audio = fields.Boolean(required=True)
    rungs = fields.List(fields.String(validate=validate.OneOf(RUNGS)), required=True)


class ProgressSchema(InternalSchema):
    rung = rung_field
    percent = fields.Float(required=True, validate=validate.Range(min=0, max=100))


class RenditionReportSchema(InternalSchema):
    rung = rung_field
    width = fields.Integer(required=True, validate=validate.Range(min=1))
    height = fields.Integer(required=True, validate=validate.Range(min=1))
    bandwidth = fields.Integer(required=True, validate=validate.Range(min=1))


class ThumbnailSchema(InternalSchema):
    path = fields.String(required=True, validate=validate.Regexp(r"^hls/[0-9]+/[A-Za-z0-9_-]+\.jpg\Z"))


class FailureSchema(InternalSchema):
    reason = fields.String(required=True, validate=validate.Length(min=1))
    rung = fields.String(validate=validate.OneOf(RUNGS))


class InternalRenditionSchema(RenditionSchema):
    state = fields.String(metadata={"enum": ["pending", "ready", "failed"]})
    percent = fields.Integer()
    failure_reason = fields.String(allow_none=True)


class InternalVideoSchema(ma.Schema):
    """Everything the transcoder needs to resume a video's work."""

    id = fields.Integer()
    status = fields.String()
    progress = fields.Integer()
    failure_reason = fields.String(allow_none=True)
    duration = fields.Float(allow_none=True)
    width = fields.Integer(attribute="source_width", allow_none=True)
    height = fields.Integer(attribute="source_height", allow_none=True)
    has_audio = fields.Boolean(allow_none=True)
    original_filename = fields.String()
    original_path = fields.String(metadata={"description": "The original's key in the media storage."})
    source_path = fields.Function(lambda video: video.original_path,
                                  metadata={"description": "The original's key in the media storage (as original_path)."})
    thumbnail_path = fields.String(allow_none=True)
    rungs = fields.Method("planned_rungs", metadata={"description": "Every planned rung, in ladder order."})
    renditions = fields.Method("all_renditions")

    def planned_rungs(self, video: Video):
        return [rendition.rung for rendition in by_rung(video.renditions)]

    def all_renditions(self, video: Video):
        return InternalRenditionSchema(many=True).dump(by_rung(video.renditions))


# --- internal API (auth -> catalog) --------------------------------------------------------------

class OwnerSchema(ma.Schema):
    owner_id = fields.Integer(required=True, validate=validate.Range(min=1, max=2**63 - 1))


class DeletedSchema(ma.Schema):
    deleted = fields.Integer(metadata={"description": "How many videos were deleted."})
