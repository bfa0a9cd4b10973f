"""One JSON error format for every service.

`{"detail": "message"}` for most errors, `{"field": ["message"]}` for validation errors (400, as the
Videoflix frontend expects, rather than flask-smorest's 422). Never HTML, never a stack trace.
"""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge

from .storage import StorageUnavailable

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Raise from a view to answer `status` with a JSON body."""

    def __init__(self, status: int, detail=None, *, fields: dict | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.fields = fields

    def body(self) -> dict:
        return self.fields if self.fields else {"detail": self.detail}


def _flatten_validation(messages: dict) -> dict:
    """flask-smorest nests messages by location (json, form, query...); the frontend wants fields."""
    flat: dict = {}
    for location_messages in messages.values():
        if not isinstance(location_messages, dict):
            flat.setdefault("detail", []).extend(_as_list(location_messages))
            continue
        for field, field_messages in location_messages.items():
            key = "detail" if field == "_schema" else field
            flat.setdefault(key, []).extend(_as_list(field_messages))
    return flat


def _as_list(messages) -> list:
    if isinstance(messages, dict):
        return [f"{key}: {'; '.join(map(str, _as_list(value)))}" for key, value in messages.items()]
    if isinstance(messages, (list, tuple)):
        return [str(message) for message in messages]
    return [str(messages)]


def _http_error(error: HTTPException):
    messages = getattr(error, "data", {}).get("messages")
    if error.code in (400, 422) and isinstance(messages, dict):
        body = _flatten_validation(messages)
        if list(body) == ["detail"] and len(body["detail"]) == 1:
            body = {"detail": body["detail"][0]}
        return jsonify(body), 400
    if isinstance(error, RequestEntityTooLarge):
        return jsonify(detail="Request body too large."), 413
    if isinstance(error, BadRequest) and "JSON" in (error.description or ""):
        return jsonify(detail="Malformed JSON body."), 400
    detail = error.description if error.code < 500 else "Internal server error."
    response = jsonify(detail=detail)
    response.status_code = error.code or 500
    for header in ("Allow", "Retry-After", "WWW-Authenticate"):
        if header in error.get_headers():
            response.headers[header] = dict(error.get_headers())[header]
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError):
        return jsonify(error.body()), error.status

    @app.errorhandler(StorageUnavailable)
    def _storage(error: StorageUnavailable):
        log.error("media storage unavailable: %s", error)
        response = jsonify(detail="The media storage is unavailable; nothing was stored. Try again shortly.")
        response.headers["Retry-After"] = "30"
        return response, 503

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        return _http_error(error)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error")
        return jsonify(detail="Internal server error."), 500
