"""Catalog service: `create_app(config=None)`.

gunicorn -c services/gunicorn.conf.py 'services.catalog.app:create_app()'
"""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from videoflix_shared import Settings
from videoflix_shared.database import init_database, init_migrations
from videoflix_shared.flask import init_service
from videoflix_shared.security import configure_jwt
from videoflix_shared.storage import storage_from_settings

from . import internal, library, queue, tus, uploads, videos
from .admin import init_admin_site
from .cli import reconcile_command
from .media_cli import media_command
from .models import db
from .storage import StreamingUploadRequest, discard_spools

MIGRATIONS_DIR = str(Path(__file__).parent / "migrations")


def create_app(config: dict | None = None) -> Flask:
    config = config or {}
    settings = config.get("SETTINGS") or Settings.from_env()
    app = Flask(__name__, static_folder=None)
    app.request_class = StreamingUploadRequest
    app.config.update(
        SETTINGS=settings,
        SQLALCHEMY_DATABASE_URI=settings.catalog_database_url,
    )
    app.config.update(config)
    init_database(app, db)
    init_migrations(app, db, MIGRATIONS_DIR)
    app.extensions["redis"] = queue.connect(settings.redis_url)
    app.extensions["storage"] = config.get("STORAGE") or storage_from_settings(settings)
    api = init_service(app, settings, "Videoflix catalog", health_checks={
        "database": lambda: db.session.execute(sa.text("SELECT 1")),
        "redis": lambda: app.extensions["redis"].ping(),
    })
    configure_jwt(app, settings)
    for blueprint in (videos.blp, library.blp, uploads.blp, tus.blp, internal.blp):
        api.register_blueprint(blueprint)
    app.teardown_request(discard_spools)
    app.cli.add_command(reconcile_command)
    app.cli.add_command(media_command)
    init_admin_site(app)
    return app
