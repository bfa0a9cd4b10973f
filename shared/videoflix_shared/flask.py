"""The part of every app factory that is the same in every service."""
from __future__ import annotations

from typing import Callable

from flask import Flask
from flask_smorest import Api

from .config import Settings
from .errors import register_error_handlers
from .health import register_health
from .logs import configure_logging, init_request_logging
from .metrics import init_metrics


def init_service(
    app: Flask,
    settings: Settings,
    title: str,
    health_checks: dict[str, Callable[[], None]] | None = None,
) -> Api:
    """Logging, OpenAPI (served at /openapi/openapi.json), JSON errors, /healthz and /metrics."""
    app.config.setdefault("SETTINGS", settings)
    app.config.setdefault("API_TITLE", title)
    app.config.setdefault("API_VERSION", "1.0")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/openapi")
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    if app.config.get("MAX_CONTENT_LENGTH") is None:  # Flask's default is None: unlimited
        app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024  # JSON bodies; uploads raise it per route
    app.json.sort_keys = False
    if not app.testing:
        configure_logging(app.import_name.split(".")[-2] if "." in app.import_name else title, settings.log_level)
    init_request_logging(app)
    api = Api(app)
    # After Api(): flask-smorest registers its own HTTPException handler, which ours replaces.
    register_error_handlers(app)
    register_health(app, health_checks)
    init_metrics(app, settings)
    return api
