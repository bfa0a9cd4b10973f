"""Unit-test fixtures: the auth app on a real PostgreSQL database and a real SMTP server (aiosmtpd).

The database `videoflix_unit_auth` (`videoflix_unit_auth<n>` with TEST_SLOT=n, so test runs of two
checkouts never empty each other's tables) is created if missing; its tables are created for the session,
emptied before every test and dropped at the end.
"""
from __future__ import annotations

import email
import email.policy
import os
import re
import socket
import threading
import uuid

import psycopg2
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text
from videoflix_shared import Settings
from videoflix_shared.keys import generate

from services.auth.app import create_app
from services.auth.models import db

SERVER = "postgresql://postgres@127.0.0.1:5432"
DATABASE = "videoflix_unit_auth" + (os.environ.get("TEST_SLOT", "0").strip("0") and os.environ["TEST_SLOT"])
FRONTEND = "http://frontend.test"
STRONG_PASSWORD = "Corr3ct-Horse-Battery!"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Inbox:
    """aiosmtpd handler keeping every message it receives over SMTP."""

    port: int

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.arrived:
            self.messages.append(message)
            self.arrived.notify_all()
        return "250 Message accepted"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [message for message in self.messages if address in str(message["To"])]

    def wait_for(self, address: str, count: int = 1, timeout: float = 10) -> list[email.message.EmailMessage]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.to(address)) >= count, timeout)
        found = self.to(address)
        assert len(found) >= count, f"expected {count} mail(s) to {address}, got {len(found)}"
        return found


def mail_text(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def mail_html(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def link_params(text: str, page: str) -> tuple[str, str]:
    match = re.search(re.escape(f"{FRONTEND}/pages/auth/{page}") + r"\?uid=([\w-]+)&(?:amp;)?token=([\w-]+)", text)
    assert match, f"no {page} link in:\n{text}"
    return match.group(1), match.group(2)


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


@pytest.fixture(scope="session")
def inbox():
    handler = Inbox()
    handler.port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    yield handler
    controller.stop()


@pytest.fixture(scope="session")
def database_url() -> str:
    connection = psycopg2.connect(f"{SERVER}/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
        if cursor.fetchone() is None:
            cursor.execute(f"CREATE DATABASE {DATABASE}")
    connection.close()
    return f"{SERVER}/{DATABASE}"


@pytest.fixture(scope="session")
def make_settings(tmp_path_factory, database_url, inbox):
    keys_dir = tmp_path_factory.mktemp("keys")
    generate(keys_dir)

    def factory(**env) -> Settings:
        return Settings.from_env({
            "VAR_DIR": str(keys_dir.parent), "KEYS_DIR": str(keys_dir), "AUTH_DATABASE_URL": database_url,
            "SMTP_PORT": str(inbox.port), "FRONTEND_BASE_URL": FRONTEND, **env,
        })

    return factory


@pytest.fixture(scope="session")
def make_app(make_settings):
    """Factory for apps on the unit database; keyword arguments override config values."""

    def factory(settings: Settings | None = None, **config):
        return create_app({"TESTING": True, "SETTINGS": settings or make_settings(), **config})

    return factory


@pytest.fixture(scope="session")
def app(make_app):
    app = make_app()
    with app.app_context():
        db.drop_all()
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.drop_all()


@pytest.fixture(autouse=True)
def empty_tables(app, inbox):
    with app.app_context():
        db.session.execute(text("TRUNCATE users, link_tokens, refresh_tokens"))
        db.session.commit()
    inbox.messages.clear()


@pytest.fixture
def client(app):
    return app.test_client()


class Accounts:
    """Steps of the account flow, through the HTTP API of the app under test."""

    def __init__(self, client, inbox):
        self.client = client
        self.inbox = inbox

    def register(self, address: str | None = None, password: str = STRONG_PASSWORD, client=None):
        address = address or unique_email()
        response = (client or self.client).post("/api/register/", json={
            "email": address, "password": password, "confirmed_password": password, "privacy_policy": "on",
        })
        assert response.status_code == 201, response.json
        return address

    def link(self, address: str, page: str, count: int = 1) -> tuple[str, str]:
        return link_params(mail_text(self.inbox.wait_for(address, count)[count - 1]), page)

    def activate(self, address: str, count: int = 1):
        uid, token = self.link(address, "activate.html", count)
        return self.client.get(f"/api/activate/{uid}/{token}/")

    def active_user(self, address: str | None = None, password: str = STRONG_PASSWORD) -> str:
        address = self.register(address, password)
        assert self.activate(address).status_code == 200
        return address

    def login(self, address: str, password: str = STRONG_PASSWORD, client=None):
        return (client or self.client).post("/api/login/", json={"email": address, "password": password})


@pytest.fixture
def accounts(client, inbox) -> Accounts:
    return Accounts(client, inbox)
