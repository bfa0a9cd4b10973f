"""A database that cannot be reached is a JSON 503, not a crash."""
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from videoflix_shared.database import init_database
from videoflix_shared.errors import register_error_handlers


def test_unreachable_database_is_a_503_with_retry_after():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "postgresql://postgres@127.0.0.1:9/nowhere"  # discard port: refused
    db = SQLAlchemy()
    register_error_handlers(app)
    init_database(app, db)

    @app.get("/count")
    def count():
        return {"count": db.session.execute(sa.text("SELECT 1")).scalar()}

    response = app.test_client().get("/count")
    assert response.status_code == 503
    assert response.get_json() == {"detail": "Service temporarily unavailable. Please try again."}
    assert response.headers["Retry-After"] == "5"
