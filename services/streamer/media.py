"""HLS playlists, segments and thumbnails of published videos.

Every path part is matched against a strict pattern before any file is touched; a file exists only
once the transcoder published it whole (a growing first rung gains whole segments, then its playlist
is rewritten), so existence is the only check. Behind the gateway nginx sends the bytes (`X-Accel-Redirect`); run alone, Flask does.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from flask import Blueprint as FlaskBlueprint, current_app, request, send_file
from flask_jwt_extended import jwt_required
from videoflix_shared.blueprint import Blueprint
from videoflix_shared.errors import ApiError

blp = Blueprint("media", __name__, url_prefix="/api/video",
                description="HLS playlists, segments and thumbnails (access token required).")

VIDEO_ID = re.compile(r"[1-9][0-9]{0,17}", re.ASCII)
RUNG = re.compile(r"360p|480p|720p|1080p")
SEGMENT = re.compile(r"segment_[0-9]{3,6}\.ts", re.ASCII)

ACCEL_REQUEST_HEADER = "X-Sendfile-Type"
ACCEL_LOCATION = "/_media/"
PLAYLIST = "application/vnd.apple.mpegurl"
# The master playlist gains rungs as they land, so players re-read it soon; segments never change.
PLAYLIST_CACHE = "private, max-age=5"
# A growing rung's playlist (no #EXT-X-ENDLIST yet) gains a segment every few seconds: never reused
# unchecked, or a player would wait on a stale copy.
GROWING_PLAYLIST_CACHE = "no-cache"
ENDLIST = b"#EXT-X-ENDLIST"
SEGMENT_CACHE = "private, max-age=31536000, immutable"
THUMBNAIL_CACHE = "private, max-age=300"


def checked(pattern: re.Pattern, value: str) -> str:
    if not pattern.fullmatch(value):
        raise ApiError(404, "Not found.")
    return value


def hls_file(relative: str, mimetype: str, cache_control: str | Callable[[Path], str]):
    """Answer with `MEDIA_DIR/hls/<relative>`, or 404 when it is not (yet) published. `cache_control`
    may depend on the file."""
    relative = f"hls/{relative}"
    path = current_app.config["SETTINGS"].media_dir / relative
    if not path.is_file():
        raise ApiError(404, "Not found.")
    if callable(cache_control):
        cache_control = cache_control(path)
    if request.headers.get(ACCEL_REQUEST_HEADER) == "X-Accel-Redirect":
        response = current_app.response_class(mimetype=mimetype)
        response.headers["X-Accel-Redirect"] = ACCEL_LOCATION + relative
    else:
        response = send_file(path, mimetype=mimetype, conditional=True)
    response.headers["Cache-Control"] = cache_control
    return response


def media_route(rule: str):
    """A GET route, documented without a trailing slash; with one it answers the same (no redirect)."""

    def register(view):
        FlaskBlueprint.add_url_rule(blp, rule + "/", f"{view.__name__}_slash", view, methods=["GET"])
        return blp.route(rule, methods=["GET"])(view)

    return register


@media_route("/<video_id>/master.m3u8")
@jwt_required()
@blp.response(200, content_type=PLAYLIST, description="The master playlist.")
@blp.alt_response(401, description="Not logged in.")
@blp.alt_response(404, description="Unknown video, or no rung published yet.")
def master_playlist(video_id):
    """Master playlist: every published rung with BANDWIDTH, RESOLUTION and CODECS"""
    return hls_file(f"{checked(VIDEO_ID, video_id)}/master.m3u8", PLAYLIST, PLAYLIST_CACHE)


@media_route("/<video_id>/<rung>/index.m3u8")
@jwt_required()
@blp.response(200, content_type=PLAYLIST, description="The rung's media playlist.")
@blp.alt_response(401, description="Not logged in.")
@blp.alt_response(404, description="Unknown video or resolution, or not published yet.")
def rung_playlist(video_id, rung):
    """Media playlist of one rung (360p, 480p, 720p or 1080p)"""
    relative = f"{checked(VIDEO_ID, video_id)}/{checked(RUNG, rung)}/index.m3u8"
    return hls_file(relative, PLAYLIST, rung_playlist_cache)


def rung_playlist_cache(path: Path) -> str:
    """Finished playlists may be reused a few seconds; a growing one must be asked for again."""
    return PLAYLIST_CACHE if path.read_bytes().rstrip().endswith(ENDLIST) else GROWING_PLAYLIST_CACHE


@media_route("/<video_id>/<rung>/<segment>")
@jwt_required()
@blp.response(200, content_type="video/MP2T", description="An MPEG-TS segment.")
@blp.alt_response(401, description="Not logged in.")
@blp.alt_response(404, description="No such segment.")
def segment(video_id, rung, segment):
    """One MPEG-TS segment (`segment_000.ts`...); byte ranges supported"""
    relative = f"{checked(VIDEO_ID, video_id)}/{checked(RUNG, rung)}/{checked(SEGMENT, segment)}"
    return hls_file(relative, "video/MP2T", SEGMENT_CACHE)


@media_route("/<video_id>/thumbnail.jpg")
@jwt_required()
@blp.response(200, content_type="image/jpeg", description="The thumbnail.")
@blp.alt_response(401, description="Not logged in.")
@blp.alt_response(404, description="Unknown video or no thumbnail yet.")
def thumbnail(video_id):
    """The video's thumbnail JPEG"""
    return hls_file(f"{checked(VIDEO_ID, video_id)}/thumbnail.jpg", "image/jpeg", THUMBNAIL_CACHE)
