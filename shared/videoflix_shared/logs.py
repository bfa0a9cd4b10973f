"""JSON logs, one object per line, carrying the request id the gateway created."""
from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid

from flask import Flask, g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-Id"
# Mailed link tokens travel in these paths (/api/activate/<uid>/<token>/, /api/password_confirm/...):
# logged, they would let a log reader activate an account or choose its password.
SECRET_PATH = re.compile(r"^(/api/(?:activate|password_confirm)/[^/]*/)[^/]+")
MASK = "***"


def masked_path(path: str) -> str:
    """The request path as logs show it: link tokens replaced by ***."""
    return SECRET_PATH.sub(rf"\g<1>{MASK}", path)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if has_request_context():
            entry["request_id"] = getattr(g, "request_id", None)
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every logger's records to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def init_request_logging(app: Flask) -> None:
    """Keep (or create) X-Request-Id, return it, and log one line per request."""
    access_log = logging.getLogger("access")

    @app.before_request
    def _start():
        g.request_id = request.headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response):
        response.headers[REQUEST_ID_HEADER] = getattr(g, "request_id", "")
        elapsed_ms = (time.perf_counter() - getattr(g, "started", time.perf_counter())) * 1000
        access_log.info(
            "%s %s %s",
            request.method,
            masked_path(request.path),
            response.status_code,
            extra={"fields": {"status": response.status_code, "ms": round(elapsed_ms, 1)}},
        )
        return response
