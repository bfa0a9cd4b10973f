"""The public video list, one video's detail, and deleting a video."""
from __future__ import annotations

import logging

import sqlalchemy as sa
from flask.views import MethodView
from flask_jwt_extended import jwt_required
from videoflix_shared.errors import ApiError
from videoflix_shared.storage import StorageUnavailable

from . import queue
from .access import can_manage, login_and_csrf_required, visible_video
from videoflix_shared.blueprint import Blueprint
from .models import READY, Video, db
from .library import search_videos
from .schemas import VideoListItemSchema, VideoSchema, VideoSearchSchema, thumbnail_url
from .storage import remove_video_files

log = logging.getLogger(__name__)

blp = Blueprint("videos", __name__, url_prefix="/api/video", description="Browse, inspect and delete videos.")


@blp.route("/")
class Videos(MethodView):
    @jwt_required()
    @blp.arguments(VideoSearchSchema, location="query")
    @blp.response(200, VideoListItemSchema(many=True))
    @blp.alt_response(401, description="Not logged in.")
    def get(self, page):
        """Videos ready to play, newest first

        The whole list by default; `limit` and `offset` page through it. `q` searches title and
        description (best matches first), `category` filters.
        """
        query = search_videos(
            sa.select(Video.id, Video.created_at, Video.title, Video.description, Video.category)
            .where(Video.status == READY), page,
        ).offset(page["offset"])
        if "limit" in page:
            query = query.limit(page["limit"])
        return [
            {**row._asdict(), "thumbnail_url": thumbnail_url(row.id)}
            for row in db.session.execute(query)
        ]


@blp.route("/<int:video_id>/")
class VideoDetail(MethodView):
    @jwt_required()
    @blp.response(200, VideoSchema)
    @blp.alt_response(401, description="Not logged in.")
    @blp.alt_response(404, description="No such video, or not ready and not yours.")
    def get(self, video_id):
        """One video: status, progress, renditions available and still coming

        Its owner sees it from the upload on; everyone else once it is ready.
        """
        return visible_video(video_id)

    @login_and_csrf_required
    @blp.response(204)
    @blp.alt_response(401, description="Not logged in.")
    @blp.alt_response(403, description="CSRF check failed, or the video is not yours.")
    @blp.alt_response(404, description="No such video.")
    def delete(self, video_id):
        """Delete a video and its files (owner or admin)"""
        video = visible_video(video_id)
        if not can_manage(video):
            raise ApiError(403, "Only the owner or an admin can delete this video.")
        delete_videos([video])


def delete_videos(videos: list[Video]) -> None:
    """Delete rows, then stop their transcoder jobs and remove their files. With the storage down the
    rows are gone all the same (the video is deleted for everyone); its objects are left to
    `flask media orphans --delete`, and the failure is logged."""
    for video in videos:
        db.session.delete(video)
    db.session.commit()
    for video in videos:
        queue.stop_video_jobs(video.id)
        try:
            remove_video_files(video.id)
        except StorageUnavailable as error:
            log.error("video %s deleted, its media not (run `flask media orphans --delete`): %s", video.id, error)
