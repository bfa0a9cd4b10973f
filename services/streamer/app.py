"""Streamer service: `create_app(config=None)`.

gunicorn -c services/gunicorn.conf.py 'services.streamer.app:create_app()'
"""
from __future__ import annotations

import os

from flask import Flask
from videoflix_shared import Settings
from videoflix_shared.flask import init_service
from videoflix_shared.security import configure_jwt

from . import media


def create_app(config: dict | None = None) -> Flask:
    config = config or {}
    settings = config.get("SETTINGS") or Settings.from_env()
    app = Flask(__name__, static_folder=None)
    app.config.update(SETTINGS=settings)
    app.config.update(config)
    # `//` must not be merged into `/` and redirected: every path part is validated as sent.
    app.url_map.merge_slashes = False
    api = init_service(app, settings, "Videoflix streamer", health_checks={
        "media": lambda: check_readable(settings.media_dir),
    })
    configure_jwt(app, settings)
    api.register_blueprint(media.blp)
    return app


def check_readable(directory) -> None:
    if not os.access(directory, os.R_OK | os.X_OK):
        raise OSError(f"{directory} is not a readable directory")
