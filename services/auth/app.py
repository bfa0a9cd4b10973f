"""The auth service: accounts, login sessions (RS256 JWT cookies), activation and reset mail.

Run: `gunicorn -c services/gunicorn.conf.py 'services.auth.app:create_app()'`; migrate:
`flask --app services.auth.app db upgrade -d services/auth/migrations`.
"""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from flask import Flask
from sqlalchemy import text
from videoflix_shared import Settings
from videoflix_shared.database import init_database, init_migrations
from videoflix_shared.flask import init_service
from videoflix_shared.security import configure_jwt

from . import accounts, passwords, tokens
from .admin import init_admin_site
from .cli import register_commands
from .mail import init_mail
from .models import db

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "false").strip().lower() in {"1", "true", "yes", "on"}


def default_config(settings: Settings) -> dict:
    return {
        "SQLALCHEMY_DATABASE_URI": settings.auth_database_url,
        "MAIL_SERVER": settings.smtp_host,
        "MAIL_PORT": settings.smtp_port,
        # Credentials and TLS for a real SMTP relay; the local sink needs none of them.
        "MAIL_USERNAME": os.environ.get("SMTP_USERNAME") or None,
        "MAIL_PASSWORD": os.environ.get("SMTP_PASSWORD") or None,
        "MAIL_USE_TLS": _env_flag("SMTP_STARTTLS"),
        "MAIL_USE_SSL": _env_flag("SMTP_SSL"),
        "MAIL_DEFAULT_SENDER": settings.mail_from,
        "MAIL_SUPPRESS_SEND": False,  # Flask-Mail would drop every mail when TESTING is on
        "FRONTEND_BASE_URL": settings.frontend_base_url,
        "ACTIVATION_LINK_LIFETIME": timedelta(hours=settings.activation_token_hours),
        "RESET_LINK_LIFETIME": timedelta(hours=settings.reset_token_hours),
    }


def _check_database() -> None:
    db.session.execute(text("SELECT 1"))


def create_app(config: dict | None = None) -> Flask:
    """`config` overrides any setting; `config["SETTINGS"]` replaces the environment's Settings."""
    config = config or {}
    settings = config.get("SETTINGS") or Settings.from_env()
    app = Flask(__name__, static_folder=None)
    app.config.update(default_config(settings))
    app.config.update(config)
    api = init_service(app, settings, "Videoflix auth", {"database": _check_database})
    jwt = configure_jwt(app, settings, signing=True)
    tokens.init_revocation(jwt)
    init_database(app, db)
    init_migrations(app, db, str(MIGRATIONS))
    init_mail(app)
    for blueprint in (accounts.blp, tokens.blp, tokens.internal_blp, passwords.blp):
        api.register_blueprint(blueprint)
    register_commands(app)
    init_admin_site(app)
    return app
