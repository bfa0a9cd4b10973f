"""Resumable uploads: the tus protocol 1.0.0 (core, creation, termination, expiration) at /api/uploads/.

No maintained tus server fits Flask (flask-tus and tusfilter date from 2015-16, tuspyserver is for
FastAPI), so the protocol is here: https://tus.io/protocols/resumable-upload. An upload's bytes are
appended to MEDIA_DIR/resumable/<id> on the catalog's disk in chunks (memory stays flat) and moved into
the media storage once complete; its row holds the offset reached,
so a PATCH cut by a dropped connection keeps what arrived and the client resumes from there. Once
complete it becomes a video exactly as POST /api/video/upload/ makes one (`X-Video-Id` says which).
Uploads belong to their creator (anyone else gets 404), count against UPLOAD_QUOTA_BYTES until complete,
and expire UPLOAD_EXPIRY_HOURS after creation (`remove_expired_uploads`, run by the reconciler).
"""
from __future__ import annotations

import base64
import binascii
import errno
import fcntl
import logging
import os
import uuid
from contextlib import contextmanager
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import marshmallow as ma
import sqlalchemy as sa
from flask import current_app, request
from flask.views import MethodView
from flask_jwt_extended import jwt_required
from videoflix_shared.blueprint import Blueprint, has_control_character
from videoflix_shared.errors import ApiError
from videoflix_shared.security import current_user_id
from werkzeug.exceptions import ClientDisconnected

from .access import login_and_csrf_required
from .models import TusUpload, Video, db, utcnow
from .schemas import TusMetadataSchema
from .storage import storage
from .uploads import create_video

log = logging.getLogger(__name__)

blp = Blueprint("tus", __name__, url_prefix="/api/uploads",
                description="Resumable uploads (tus 1.0.0: core, creation, termination, expiration).")

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,expiration"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
CHUNK_BYTES = 1024 * 1024
# On the catalog's own disk, apart from the media keys: a paused upload may rest for hours.
TUS_DIR = "resumable"


def tus_dir() -> Path:
    """Unfinished uploads stay on the catalog's disk (appended to at any offset); complete, they move
    into the storage."""
    return current_app.config["SETTINGS"].media_dir / TUS_DIR


def data_path(upload_id: str) -> Path:
    return tus_dir() / upload_id


def settings():
    return current_app.config["SETTINGS"]


@blp.before_request
def require_tus_version():
    request.upload_limit = settings().max_upload_bytes
    if request.method != "OPTIONS" and request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise ApiError(412, f"Send the header Tus-Resumable: {TUS_VERSION}.")


@blp.after_request
def tus_headers(response):
    response.headers["Tus-Resumable"] = TUS_VERSION
    response.headers["Cache-Control"] = "no-store"
    if response.status_code == 412 or request.method == "OPTIONS":
        response.headers["Tus-Version"] = TUS_VERSION
    return response


def header_integer(name: str) -> int:
    value = request.headers.get(name, "")
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        raise ApiError(400, f"{name} must be a non-negative integer.")
    return int(value)


def parse_metadata(header: str) -> dict:
    """Upload-Metadata: comma-separated `key base64value` pairs; values must be UTF-8 text."""
    metadata = {}
    for pair in filter(None, (part.strip() for part in header.split(","))):
        key, _, encoded = pair.partition(" ")
        try:
            value = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(400, fields={"Upload-Metadata": [f"The value of {key!r} is not base64 UTF-8."]}) from None
        if has_control_character(key) or has_control_character(value):
            raise ApiError(400, fields={key if key.isprintable() else "Upload-Metadata":
                                        ["Control characters are not allowed."]})
        metadata[key] = value
    try:
        return TusMetadataSchema().load(metadata)
    except ma.ValidationError as error:
        raise ApiError(400, fields=error.messages) from None


def expiry_headers(upload: TusUpload) -> dict:
    return {"Upload-Expires": format_datetime(upload.expires_at, usegmt=True)}


def owned_upload(upload_id: str) -> TusUpload:
    """The caller's upload, not expired; 404 for anyone else's (nothing is said about it)."""
    upload = db.session.get(TusUpload, upload_id)
    if upload is None or upload.owner_id != current_user_id() or upload.expires_at <= utcnow():
        raise ApiError(404, "Upload not found.")
    return upload


@contextmanager
def exclusive(upload_id: str):
    """One PATCH at a time per upload (an advisory lock on its data file, across every process)."""
    with open(data_path(upload_id), "r+b") as data:
        try:
            fcntl.flock(data, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.EACCES):
                raise ApiError(423, "Another request is writing to this upload; retry shortly.") from None
            raise
        yield data


@blp.route("/")
class Uploads(MethodView):
    @blp.response(204, description="Tus-Version, Tus-Extension and Tus-Max-Size headers.")
    def options(self):
        """What this tus server supports"""
        return "", 204, {"Tus-Extension": TUS_EXTENSIONS, "Tus-Max-Size": str(settings().max_upload_bytes)}

    @login_and_csrf_required
    @blp.response(201, description="The upload's URL is in Location.")
    @blp.alt_response(400, description="Upload-Length or Upload-Metadata missing or invalid.")
    @blp.alt_response(401, description="Not logged in.")
    @blp.alt_response(403, description="CSRF check failed, or the upload quota would be exceeded.")
    @blp.alt_response(412, description="Tus-Resumable is not 1.0.0.")
    @blp.alt_response(413, description="Upload-Length is larger than MAX_UPLOAD_BYTES.")
    def post(self):
        """Create an upload (tus creation)

        `Upload-Length` is the file size; `Upload-Metadata` carries `filename`, `title`, `description`
        and `category` (base64), validated as POST /api/video/upload/ validates them.
        """
        if "Upload-Defer-Length" in request.headers:
            raise ApiError(400, "Upload-Defer-Length is not supported: send Upload-Length.")
        length = header_integer("Upload-Length")
        if length == 0:
            raise ApiError(400, "The file is empty.")
        if length > settings().max_upload_bytes:
            raise ApiError(413, f"The file is larger than {settings().max_upload_bytes} bytes.")
        metadata = parse_metadata(request.headers.get("Upload-Metadata", ""))
        owner_id = current_user_id()
        # Serialise one user's creations so two at once cannot both pass the quota check.
        db.session.execute(sa.select(sa.func.pg_advisory_xact_lock(owner_id)))
        in_flight = db.session.scalar(sa.select(sa.func.coalesce(sa.func.sum(TusUpload.length), 0)).where(
            TusUpload.owner_id == owner_id, TusUpload.video_id.is_(None), TusUpload.expires_at > utcnow()))
        if in_flight + length > settings().upload_quota_bytes:
            raise ApiError(403, f"Your unfinished uploads would exceed your quota of "
                                f"{settings().upload_quota_bytes} bytes; finish or delete some first.")
        now = utcnow()
        upload = TusUpload(id=uuid.uuid4().hex, owner_id=owner_id, length=length, offset=0,
                           created_at=now, expires_at=now + timedelta(hours=settings().upload_expiry_hours),
                           **metadata)
        tus_dir().mkdir(parents=True, exist_ok=True)
        data_path(upload.id).touch()
        db.session.add(upload)
        db.session.commit()
        return "", 201, {"Location": f"{request.script_root}/api/uploads/{upload.id}/", **expiry_headers(upload)}


@blp.route("/<string(length=32):upload_id>/")
class UploadResource(MethodView):
    @jwt_required()
    @blp.response(200, description="Upload-Offset and Upload-Length (X-Video-Id once complete).")
    @blp.alt_response(404, description="No such upload, not yours, or expired.")
    def head(self, upload_id):
        """How much of an upload arrived (tus core)"""
        upload = owned_upload(upload_id)
        return "", 200, progress_headers(upload)

    @login_and_csrf_required
    @blp.response(204, description="Upload-Offset: the new offset (X-Video-Id once complete).")
    @blp.alt_response(400, description="Bad Upload-Offset, or more bytes than Upload-Length.")
    @blp.alt_response(404, description="No such upload, not yours, or expired.")
    @blp.alt_response(409, description="Upload-Offset is not the upload's offset.")
    @blp.alt_response(415, description="Content-Type is not application/offset+octet-stream.")
    @blp.alt_response(423, description="Another PATCH of this upload is running.")
    def patch(self, upload_id):
        """Append bytes at Upload-Offset (tus core); the last ones turn the upload into a video"""
        if request.mimetype != OFFSET_CONTENT_TYPE:
            raise ApiError(415, f"Content-Type must be {OFFSET_CONTENT_TYPE}.")
        offset = header_integer("Upload-Offset")
        upload = owned_upload(upload_id)
        if upload.video_id is None:
            with exclusive(upload.id) as data:
                db.session.refresh(upload)
                if offset != upload.offset:
                    raise ApiError(409, f"Upload-Offset is {offset} but the upload is at {upload.offset}.")
                append_body(upload, data)
            if upload.offset == upload.length:
                become_video(upload)
        elif offset != upload.length:
            raise ApiError(409, f"Upload-Offset is {offset} but the upload is complete at {upload.length}.")
        return "", 204, progress_headers(upload)

    @login_and_csrf_required
    @blp.response(204)
    @blp.alt_response(404, description="No such upload, not yours, or expired.")
    @blp.alt_response(423, description="A PATCH of this upload is running.")
    def delete(self, upload_id):
        """Abandon an upload and delete its bytes (tus termination); a finished video stays"""
        upload = owned_upload(upload_id)
        if upload.video_id is None:
            with exclusive(upload.id):
                data_path(upload.id).unlink(missing_ok=True)
        db.session.delete(upload)
        db.session.commit()


def progress_headers(upload: TusUpload) -> dict:
    headers = {"Upload-Offset": str(upload.offset), "Upload-Length": str(upload.length), **expiry_headers(upload)}
    if upload.video_id is not None:
        headers["X-Video-Id"] = str(upload.video_id)
    return headers


def append_body(upload: TusUpload, data) -> None:
    """Stream the request body onto the data file at the upload's offset; on a dropped connection keep
    what arrived (fsynced before the offset is committed, so the offset never runs ahead of the disk)."""
    data.seek(upload.offset)
    data.truncate()  # bytes of a request that died before its offset was committed
    remaining = upload.length - upload.offset
    if request.content_length is not None and request.content_length > remaining:
        raise ApiError(400, f"The body is longer than the {remaining} bytes left of the upload.")
    stream, disconnected = request.stream, False
    while remaining >= 0:
        try:
            chunk = stream.read(min(CHUNK_BYTES, remaining + 1))
        except (ClientDisconnected, OSError):  # werkzeug's short body, or gunicorn's cut chunked body
            disconnected = True
            break
        if not chunk:
            break
        if len(chunk) > remaining:
            data.truncate(upload.offset)
            raise ApiError(400, f"The body is longer than the {upload.length - upload.offset} bytes left "
                                "of the upload.")
        data.write(chunk)
        remaining -= len(chunk)
    received = upload.length - remaining - upload.offset
    # gunicorn ends a cut body early without an error (wsgi.input_terminated): count what came.
    if request.content_length is not None and received < request.content_length:
        disconnected = True
    data.flush()
    os.fsync(data.fileno())
    upload.offset = upload.length - remaining
    db.session.commit()
    if disconnected:
        log.info("upload %s cut at %s of %s bytes", upload.id, upload.offset, upload.length)
        raise ApiError(400, "The connection closed before the body was complete; resume with HEAD.")


def become_video(upload: TusUpload) -> Video:
    """A complete upload becomes a video as POST /api/video/upload/ makes one: row, original (moved from
    the local data file into the storage; with the storage down, 503 and the data file stays for a retry
    of the last PATCH), enqueue."""

    def keep(video: Video) -> int:
        upload.video_id = video.id
        storage().move_in(data_path(upload.id), video.original_path)
        return upload.length

    return create_video(upload.title, upload.description, upload.category, upload.owner_id, upload.filename, keep)


def remove_expired_uploads() -> int:
    """Delete expired uploads: the rows and the bytes of unfinished ones. Returns how many."""
    expired = list(db.session.scalars(sa.select(TusUpload).where(TusUpload.expires_at <= utcnow())))
    for upload in expired:
        if upload.video_id is None:
            data_path(upload.id).unlink(missing_ok=True)
        db.session.delete(upload)
    db.session.commit()
    # Data files without a row (the row's creation failed after the file was made).
    known = set(db.session.scalars(sa.select(TusUpload.id)))
    cutoff = utcnow().timestamp() - timedelta(hours=1).total_seconds()
    for orphan in tus_dir().glob("*") if tus_dir().is_dir() else ():
        if orphan.name not in known and orphan.stat().st_mtime < cutoff:
            orphan.unlink(missing_ok=True)
    return len(expired)
