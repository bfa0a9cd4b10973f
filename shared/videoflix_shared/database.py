"""Flask-SQLAlchemy set up so that a database outage is a JSON 503, never a crash.

After PostgreSQL restarts, every pooled connection is dead: the request that meets one fails (503 JSON
here, the pool's pre-ping replaces the connection for the next one), and the session's end-of-request
rollback on that dead connection must not escape Flask's error handling as gunicorn's HTML 500.
"""
from __future__ import annotations

import logging

import click
from flask import Flask, jsonify
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

log = logging.getLogger(__name__)


def init_database(app: Flask, db: SQLAlchemy) -> None:
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": True})
    db.init_app(app)
    remove_session = db._teardown_session
    app.teardown_appcontext_funcs.remove(remove_session)

    @app.teardown_appcontext
    def remove_session_quietly(error):
        try:
            remove_session(error)
        except SQLAlchemyError as cleanup_error:  # the connection died under the session
            log.warning("database session cleanup failed: %s", cleanup_error)

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def database_unavailable(error: DBAPIError):
        log.warning("database unavailable: %s", error.orig)
        response = jsonify(detail="Service temporarily unavailable. Please try again.")
        response.headers["Retry-After"] = "5"
        return response, 503


def init_migrations(app: Flask, db: SQLAlchemy, directory: str) -> None:
    """`flask db ...` (Flask-Migrate) where a command line runs, never in a gunicorn worker: importing
    alembic costs every process ~6 MiB and a worker never migrates. The flask command line loads the
    app inside a click context; gunicorn has none (tests that migrate call Migrate themselves)."""
    if click.get_current_context(silent=True) is None:
        return
    # Imported after the service's logging is set up: alembic's plugin registry would log every plugin.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    from flask_migrate import Migrate

    Migrate(app, db, directory=directory)
