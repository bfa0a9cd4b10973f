"""The transcoder's reports (never routed by the gateway; authenticated by the service token).

Every report answers with the whole video, or 404 once the video was deleted: the transcoder
then stops working on it.
"""
from __future__ import annotations

import hmac
from functools import wraps

import sqlalchemy as sa
from flask import current_app, request
from flask.views import MethodView
from videoflix_shared.errors import ApiError

from videoflix_shared.blueprint import Blueprint
from .models import GROWING, PROCESSING, READY, UNFINISHED, Video, db
from .videos import delete_videos
from .schemas import (
    DeletedSchema, FailureSchema, InternalVideoSchema, OwnerSchema, ProbeSchema, ProgressSchema,
    RenditionReportSchema, ThumbnailSchema,
)

blp = Blueprint("internal", __name__, url_prefix="/internal/videos",
                description="Transcoder -> catalog reports, and auth deleting an account's videos. "
                            "`Authorization: Bearer <service token>`.")


@blp.before_request
def require_service_token():
    expected = current_app.config["SETTINGS"].service_token()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise ApiError(401, "Invalid service credentials.")


def locked_video(video_id: int) -> Video:
    """The video, locked until commit: reports for one video arrive from several workers at once."""
    video = db.session.get(Video, video_id, with_for_update=True)
    if video is None:
        raise ApiError(404, "Video not found.")
    return video


def save(video: Video) -> Video:
    video.update_progress()
    db.session.commit()
    return video


def report(rule: str, schema):
    """Route `POST /internal/videos/<id>/<rule>`: validated body in, the locked video changed by the
    decorated function, the whole video out."""

    def decorator(apply):
        @wraps(apply)
        def view(body, video_id):
            video = locked_video(video_id)
            apply(video, body)
            return save(video)

        for decorate in (
            blp.alt_response(404, description="The video was deleted: stop working on it."),
            blp.alt_response(401, description="Wrong or missing service token."),
            blp.response(200, InternalVideoSchema),
            blp.arguments(schema),
            blp.route(f"/<int:video_id>/{rule}", methods=["POST"]),
        ):
            view = decorate(view)
        return view

    return decorator


@blp.route("/")
class InternalOwnerVideos(MethodView):
    @blp.arguments(OwnerSchema, location="query")
    @blp.response(200, DeletedSchema)
    @blp.alt_response(401, description="Wrong or missing service token.")
    def delete(self, query):
        """Delete every video of one owner (auth, before it deletes the account), with their files"""
        videos = db.session.scalars(sa.select(Video).where(Video.owner_id == query["owner_id"])).all()
        delete_videos(videos)
        return {"deleted": len(videos)}


@blp.route("/<int:video_id>")
class InternalVideo(MethodView):
    @blp.response(200, InternalVideoSchema)
    @blp.alt_response(401, description="Wrong or missing service token.")
    @blp.alt_response(404, description="The video was deleted.")
    def get(self, video_id):
        """The whole video, so a retried job can see what is done"""
        video = db.session.get(Video, video_id)
        if video is None:
            raise ApiError(404, "Video not found.")
        return video


@report("probe", ProbeSchema)
def probed(video: Video, body: dict) -> None:
    """Source facts and the planned ladder: status `processing`"""
    video.duration, video.has_audio = body["duration"], body["has_audio"]
    video.source_width, video.source_height = body["width"], body["height"]
    for rung in body["rungs"]:
        video.rendition(rung)
    if video.status != READY:
        video.status, video.failure_reason = PROCESSING, None


@report("progress", ProgressSchema)
def progressed(video: Video, body: dict) -> None:
    """Percent done of one rung (progress never goes backwards)"""
    rendition = video.rendition(body["rung"])
    if rendition.state in UNFINISHED:
        rendition.percent = max(rendition.percent, int(body["percent"]))


@report("renditions", RenditionReportSchema)
def published(video: Video, body: dict) -> None:
    """A rung is published, complete or `growing`: the video is `ready` (playable) from the first one on"""
    rendition = video.rendition(body["rung"])
    if body["growing"]:
        if rendition.state == READY:  # a late report of an attempt that another one already finished
            return
        rendition.state, rendition.failure_reason = GROWING, None
    else:
        rendition.state, rendition.percent, rendition.failure_reason = READY, 100, None
    rendition.width, rendition.height, rendition.bandwidth = body["width"], body["height"], body["bandwidth"]
    video.status, video.failure_reason = READY, None


@report("thumbnail", ThumbnailSchema)
def thumbnailed(video: Video, body: dict) -> None:
    """The thumbnail JPEG (a path under MEDIA_DIR, `hls/<id>/...`)"""
    if not body["path"].startswith(f"hls/{video.id}/"):
        raise ApiError(400, fields={"path": [f"Must be under hls/{video.id}/."]})
    video.thumbnail_path = body["path"]


@report("failed", FailureSchema)
def failed(video: Video, body: dict) -> None:
    """A rung failed, or the whole video (no `rung`)

    The video is `failed` unless a rendition is already playable; then only the rungs fail.
    """
    video.mark_failed(body["reason"], body.get("rung"))
