"""An uploader's library: edit a video, list one's own videos, a custom thumbnail, retry a failed video;
and the search the public list uses (`search_videos`)."""
from __future__ import annotations

import contextlib
import io

import sqlalchemy as sa
from flask import request
from flask_jwt_extended import jwt_required
from flask.views import MethodView
from PIL import Image, UnidentifiedImageError
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job
from sqlalchemy.orm import selectinload
from videoflix_shared.blueprint import Blueprint
from videoflix_shared.errors import ApiError
from videoflix_shared.security import current_user_id

from . import queue
from .access import can_manage, login_and_csrf_required, visible_video
from .models import FAILED, SEARCH_CONFIG, UPLOADED, Rendition, Video, db
from .schemas import ImageUploadSchema, MyVideosPageSchema, VideoSchema, VideoUpdateSchema
from .storage import HLS_DIR, storage

blp = Blueprint("library", __name__, url_prefix="/api/video",
                description="Your videos: edit, list, thumbnail, retry.")

# A custom thumbnail: at most this many bytes uploaded and pixels decoded, re-encoded to a JPEG that
# fits in THUMBNAIL_BOX (the streamer serves hls/<id>/thumbnail.jpg).
THUMBNAIL_MAX_BYTES = 10 * 1024 * 1024
THUMBNAIL_MAX_PIXELS = 40_000_000
THUMBNAIL_BOX = (1280, 720)
THUMBNAIL_FORMATS = {"JPEG", "PNG"}


def search_videos(query: sa.Select, args: dict) -> sa.Select:
    """`query` narrowed by `q` (full text, best match first) and `category`; newest first otherwise."""
    if "category" in args:
        query = query.where(Video.category == args["category"])
    order = [Video.created_at.desc(), Video.id.desc()]
    if "q" in args:
        terms = sa.func.websearch_to_tsquery(SEARCH_CONFIG, args["q"])
        query = query.where(Video.search_vector.op("@@")(terms))
        order.insert(0, sa.func.ts_rank_cd(Video.search_vector, terms).desc())
    return query.order_by(*order)


def managed_video(video_id: int) -> Video:
    video = visible_video(video_id)
    if not can_manage(video):
        raise ApiError(403, "Only the owner or an admin can change this video.")
    return video


@blp.route("/<int:video_id>/")
class VideoEdit(MethodView):
    @login_and_csrf_required
    @blp.arguments(VideoUpdateSchema)
    @blp.response(200, VideoSchema)
    @blp.alt_response(400, description="A field is blank, too long, or unknown.")
    @blp.alt_response(401, description="Not logged in.")
    @blp.alt_response(403, description="CSRF check failed, or the video is not yours.")
    @blp.alt_response(404, description="No such video.")
    def patch(self, changes, video_id):
        """Change a video's title, description or category (owner or admin)"""
        video = managed_video(video_id)
        for field, value in changes.items():
            setattr(video, field, value)
        db.session.commit()
        return video


@blp.route("/mine/")
class MyVideos(MethodView):
    @jwt_required()
    @blp.arguments(MyVideosPageSchema, location="query")
    @blp.response(200, VideoSchema(many=True))
    @blp.alt_response(401, description="Not logged in.")
    def get(self, page):
        """Your own videos in every state (uploaded to failed), newest first

        `limit` (default 50) and `offset` page through them.
        """
        query = (
            sa.select(Video).where(Video.owner_id == current_user_id())
            .options(selectinload(Video.renditions))
            .order_by(Video.created_at.desc(), Video.id.desc())
            .offset(page["offset"]).limit(page["limit"])
        )
        return list(db.session.scalars(query))


@blp.route("/<int:video_id>/thumbnail/")
class CustomThumbnail(MethodView):
    @login_and_csrf_required
    @blp.arguments(ImageUploadSchema, location="multipart")
    @blp.response(200, VideoSchema)
    @blp.alt_response(400, description="Not a JPEG or PNG image, or too many pixels.")
    @blp.alt_response(401, description="Not logged in.")
    @blp.alt_response(403, description="CSRF check failed, or the video is not yours.")
    @blp.alt_response(404, description="No such video.")
    @blp.alt_response(413, description="The image is larger than 10 MiB.")
    def post(self, form, video_id):
        """Replace the video's thumbnail with your own JPEG or PNG

        The image is decoded and re-encoded as a JPEG of at most 1280x720 (nothing of the upload is kept).
        """
        video = managed_video(video_id)
        key = f"{HLS_DIR}/{video.id}/thumbnail.jpg"
        write_thumbnail(form["file"].stream, key)
        video.thumbnail_path = key
        db.session.commit()
        return video


@blp.before_request
def allow_thumbnail_upload():
    if request.endpoint == "library.CustomThumbnail":
        request.upload_limit = THUMBNAIL_MAX_BYTES


def write_thumbnail(stream, key: str) -> None:
    """Decode an uploaded image (JPEG or PNG only, pixel count capped) and store it re-encoded."""
    stream.seek(0)
    try:
        with Image.open(stream, formats=sorted(THUMBNAIL_FORMATS)) as image:
            if image.width * image.height > THUMBNAIL_MAX_PIXELS:
                raise ApiError(400, fields={"file": ["The image has too many pixels."]})
            image.load()
            picture = image.convert("RGB")
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        raise ApiError(400, fields={"file": ["Upload a JPEG or PNG image."]}) from None
    picture.thumbnail(THUMBNAIL_BOX)
    encoded = io.BytesIO()
    picture.save(encoded, "JPEG", quality=85, optimize=True)
    storage().put_bytes(key, encoded.getvalue())  # whole or not at all: never half a picture served


@blp.route("/<int:video_id>/retry/")
class Retry(MethodView):
    @login_and_csrf_required
    @blp.response(202, VideoSchema)
    @blp.alt_response(401, description="Not logged in.")
    @blp.alt_response(403, description="CSRF check failed, or the video is not yours.")
    @blp.alt_response(404, description="No such video.")
    @blp.alt_response(409, description="The video has not failed, or its original is gone.")
    def post(self, video_id):
        """Transcode a failed video again (owner or admin)

        Its failed rungs are forgotten and the whole ladder is planned again; status `queued` (or
        `uploaded` when the queue is unreachable: the reconciler enqueues it later).
        """
        video = managed_video(video_id)
        if video.status != FAILED:
            raise ApiError(409, "Only a failed video can be retried.")
        if not video.original_path or not storage().exists(video.original_path):
            raise ApiError(409, "The uploaded original is gone; upload the video again.")
        db.session.execute(sa.delete(Rendition).where(Rendition.video_id == video.id))
        video.status, video.failure_reason, video.progress = UPLOADED, None, 0
        db.session.commit()
        forget_previous_attempts(video.id)
        queue.enqueue_video(video)
        db.session.refresh(video)
        return video


def forget_previous_attempts(video_id: int) -> None:
    """The failed prepare job (same deterministic id) and the reconciler's count: a fresh start."""
    with contextlib.suppress(RedisError):
        queue.redis().delete(queue.attempts_key(video_id))
        with contextlib.suppress(NoSuchJobError):
            Job.fetch(queue.prepare_job_id(video_id), connection=queue.redis()).delete()
