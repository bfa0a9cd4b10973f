"""Catalog unit tests: a real PostgreSQL database (videoflix_unit_catalog, migrated from scratch),
Redis db 15 for the queue, a temporary MEDIA_DIR and a freshly generated key pair."""
from __future__ import annotations

import dataclasses
import io
import os
import shutil
import uuid
from datetime import datetime, timedelta, timezone

import jwt
import psycopg2
import pytest
import sqlalchemy as sa
from flask_migrate import Migrate, upgrade
from redis import Redis
from videoflix_shared import Settings
from videoflix_shared.keys import generate

from services.catalog.app import MIGRATIONS_DIR, create_app
from services.catalog.models import db
from shared.tests.seaweedfs import seaweedfs  # noqa: F401 - the session's S3 server

PG = os.environ.get("UNIT_PG_URL", "postgresql://postgres@127.0.0.1:5432")
# Per TEST_SLOT, like the test stacks: two checkouts running their unit tests at once do not share it.
DATABASE = f"videoflix_unit{os.environ.get('TEST_SLOT', '')}_catalog"
REDIS_URL = os.environ.get("CATALOG_UNIT_REDIS_URL", "redis://127.0.0.1:6379/15")
CSRF = "csrf-secret-value"


def recreate_database() -> None:
    connection = psycopg2.connect(f"{PG}/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        cursor.execute(f"CREATE DATABASE {DATABASE}")
    connection.close()


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys")
    generate(directory)
    return directory


@pytest.fixture(scope="session")
def settings(tmp_path_factory, keys_dir) -> Settings:
    return Settings.from_env({
        "KEYS_DIR": str(keys_dir),
        "MEDIA_DIR": str(tmp_path_factory.mktemp("media")),
        "CATALOG_DATABASE_URL": f"{PG}/{DATABASE}",
        "REDIS_URL": REDIS_URL,
        "PUBLIC_BASE_URL": "http://gateway.test",
        "MAX_UPLOAD_BYTES": str(1024 * 1024),
    })


@pytest.fixture(scope="session")
def make_app(settings):
    """Apps share the database migrated once; `overrides` replace settings (Redis URL, limits)."""
    recreate_database()
    migrated = create_app({"TESTING": True, "SETTINGS": settings})
    Migrate(migrated, db, directory=MIGRATIONS_DIR)  # create_app sets it up for `flask db` only
    with migrated.app_context():
        upgrade(directory=MIGRATIONS_DIR)
        db.engine.dispose()

    made = []

    def factory(**overrides):
        made.append(create_app({"TESTING": True, "SETTINGS": dataclasses.replace(settings, **overrides)}))
        return made[-1]

    yield factory
    for app in made:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture(scope="session")
def app(make_app):
    return make_app()


@pytest.fixture
def redis() -> Redis:
    connection = Redis.from_url(REDIS_URL)
    connection.flushdb()
    yield connection
    connection.flushdb()


@pytest.fixture(autouse=True)
def clean_state(app, settings, redis):
    """Every test starts with no videos, an empty queue and an empty MEDIA_DIR."""
    with app.app_context():
        db.session.execute(sa.text("TRUNCATE videos, renditions RESTART IDENTITY CASCADE"))
        db.session.commit()
    shutil.rmtree(settings.media_dir)
    settings.media_dir.mkdir()


def mint_token(private_key: str, user_id: int, *, token_type: str = "access", is_admin: bool = False,
               lifetime: timedelta = timedelta(minutes=5)) -> str:
    now = datetime.now(timezone.utc)
    claims = {"sub": str(user_id), "type": token_type, "jti": uuid.uuid4().hex, "iat": now, "nbf": now,
              "exp": now + lifetime, "csrf": CSRF, "email": f"user{user_id}@example.com", "is_admin": is_admin}
    return jwt.encode(claims, private_key, algorithm="RS256")


@pytest.fixture
def login(keys_dir):
    """login(client, user_id, is_admin=False): the browser state after a login (cookies)."""
    private_key = (keys_dir / "jwt_private.pem").read_text()

    def log_in(client, user_id: int, **claims):
        client.set_cookie("access_token", mint_token(private_key, user_id, **claims))
        client.set_cookie("csrftoken", CSRF)
        return client

    return log_in


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def service_headers(settings):
    return {"Authorization": f"Bearer {settings.service_token()}"}


def upload_form(content: bytes = b"\x00\x00\x00\x18ftypmp42 fake video bytes", filename: str = "clip.mp4",
                **fields) -> dict:
    form = {"title": "A title", "description": "A description", "category": "Drama", **fields}
    if content is not None:
        form["file"] = (io.BytesIO(content), filename)
    return form


@pytest.fixture
def upload(login):
    """upload(client, user_id=1, **form) -> response of a CSRF-correct upload by that user."""

    def post(client, user_id: int = 1, **form):
        login(client, user_id)
        return client.post("/api/video/upload/", data=upload_form(**form), headers={"X-CSRFToken": CSRF})

    return post


@pytest.fixture
def make_video(app):
    """make_video(owner_id=1, status="ready", rungs={"480p": "ready"}, **columns) -> id, straight in the DB."""

    def create(owner_id: int = 1, status: str = "ready", rungs: dict | None = None, **columns) -> int:
        from services.catalog.models import Rendition, Video

        with app.app_context():
            video = Video(title=columns.pop("title", "Title"), description=columns.pop("description", "Description"),
                          category=columns.pop("category", "Drama"),
                          owner_id=owner_id, status=status, original_filename="clip.mp4", **columns)
            for rung, state in (rungs or {}).items():
                height = int(rung[:-1])
                video.renditions.append(Rendition(
                    rung=rung, state=state, percent=100 if state == "ready" else 0,
                    **({"width": height * 16 // 9, "height": height, "bandwidth": height * 3000}
                       if state == "ready" else {})))
            db.session.add(video)
            db.session.flush()
            video.original_path = f"originals/{video.id}/clip.mp4"
            db.session.commit()
            return video.id

    return create


def media_tree(settings) -> list[str]:
    """Every file and folder under MEDIA_DIR (relative paths): what an upload left on the disk."""
    return sorted(path.relative_to(settings.media_dir).as_posix() for path in settings.media_dir.rglob("*"))
