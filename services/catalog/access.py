"""Who may see and change which video."""
from __future__ import annotations

from functools import wraps

from flask_jwt_extended import jwt_required
from videoflix_shared.errors import ApiError
from videoflix_shared.security import current_user_id, current_user_is_admin, require_csrf

from .models import READY, Video, db


def login_and_csrf_required(view):
    """Verify the access token and the CSRF double submit before the body is read."""

    @wraps(view)
    @jwt_required()
    def checked(*args, **kwargs):
        require_csrf()
        return view(*args, **kwargs)

    return checked


def can_manage(video: Video) -> bool:
    return video.owner_id == current_user_id() or current_user_is_admin()


def visible_video(video_id: int) -> Video:
    """Ready videos are everyone's; the others only their owner's (or an admin's). 404 otherwise."""
    video = db.session.get(Video, video_id)
    if video is None or (video.status != READY and not can_manage(video)):
        raise ApiError(404, "Video not found.")
    return video
