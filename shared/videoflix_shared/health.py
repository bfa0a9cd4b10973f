"""GET /healthz: 200 when every dependency check passes, 503 naming the one that failed."""
from __future__ import annotations

import logging
from typing import Callable

from flask import Flask, jsonify

log = logging.getLogger(__name__)


def register_health(app: Flask, checks: dict[str, Callable[[], None]] | None = None) -> None:
    checks = checks or {}

    @app.get("/healthz")
    def healthz():
        results = {}
        for name, check in checks.items():
            try:
                check()
                results[name] = "ok"
            except Exception as error:  # a health check reports failures, it never raises
                log.warning("health check %s failed: %s", name, error)
                results[name] = "failing"
        healthy = all(state == "ok" for state in results.values())
        return jsonify(status="ok" if healthy else "failing", checks=results), 200 if healthy else 503
