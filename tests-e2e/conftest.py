"""Fixtures for the end-to-end suite: it talks only to the gateway of the running test stack.

`scripts/test.sh` starts the stack (`stack.py --profile test up`) before pytest runs; with TEST_SLOT=n
the same suite runs against a second stack on other ports, and with E2E_STACK_ENV (scripts/test-compose.sh)
against the Docker Compose stack.
"""
from __future__ import annotations

import base64
import email
import email.policy
import importlib.util
import itertools
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jwt
import pytest
import requests
from videoflix_shared.config import Settings
from videoflix_shared.storage import storage_from_settings

ROOT = Path(__file__).resolve().parents[1]


def _load_stack():
    spec = importlib.util.spec_from_file_location("videoflix_stack", ROOT / "scripts" / "stack.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # @dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


STACK = _load_stack()  # scripts/stack.py: tests that restart a process use STACK.start()
STACK_ENV = STACK.build_env("test")
if os.environ.get("E2E_STACK_ENV"):
    # `make test-compose`: the suite runs against the Docker Compose stack this file describes.
    STACK_ENV.update(STACK.read_dotenv(Path(os.environ["E2E_STACK_ENV"])))
GATEWAY = f"http://127.0.0.1:{STACK_ENV['GATEWAY_PORT']}"
# The stack's media (MEDIA_DIR, or the S3 bucket of MEDIA_STORAGE=s3), read as the services read it.
STORAGE = storage_from_settings(Settings.from_env(STACK_ENV))
_source_addresses = itertools.count(2)


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    return STACK_ENV


@pytest.fixture(scope="session")
def media_storage():
    return STORAGE


@pytest.fixture(scope="session")
def gateway_url() -> str:
    return GATEWAY


@pytest.fixture(scope="session")
def api_url() -> str:
    return f"{GATEWAY}/api/"


class SourceAddressAdapter(requests.adapters.HTTPAdapter):
    """Sends from a given loopback address, so each test has its own rate-limit bucket at the gateway."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


class ApiClient(requests.Session):
    """A browser-like client: keeps cookies and sends X-CSRFToken from the csrftoken cookie on POST."""

    def __init__(self, base: str, source_address: str | None = None):
        super().__init__()
        self.base = base
        if source_address:
            self.mount("http://", SourceAddressAdapter(source_address))

    def request(self, method, url, *args, csrf: bool = True, **kwargs):
        if not url.startswith("http"):
            url = self.base + url.lstrip("/")
        headers = kwargs.pop("headers", None) or {}
        token = self.cookies.get("csrftoken")
        if csrf and token and method.upper() not in {"GET", "HEAD", "OPTIONS"}:
            headers.setdefault("X-CSRFToken", token)
        kwargs.setdefault("timeout", 30)
        return super().request(method, url, *args, headers=headers, **kwargs)


def new_source_address() -> str:
    """A fresh 127.0.0.x address (x from 2 to 254) for a new client."""
    return f"127.0.0.{2 + next(_source_addresses) % 250}"


@pytest.fixture
def client(api_url) -> ApiClient:
    session = ApiClient(api_url, new_source_address())
    yield session
    session.close()


@pytest.fixture
def make_client(api_url):
    """Factory for extra independent clients (another user, an attacker...)."""
    sessions = []

    def factory(source_address: str | None = None) -> ApiClient:
        session = ApiClient(api_url, source_address or new_source_address())
        sessions.append(session)
        return session

    yield factory
    for session in sessions:
        session.close()


def generate_clip(path: Path, width: int, height: int, seconds: int, audio: bool = True) -> Path:
    """A test clip from ffmpeg's testsrc2 picture (and a 440 Hz sine tone), H.264/AAC."""
    inputs = ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=25:duration={seconds}"]
    if audio:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    codecs += ["-c:a", "aac", "-shortest"] if audio else []
    subprocess.run(["ffmpeg", "-v", "error", "-y", *inputs, *codecs, str(path)], check=True)
    return path


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


class Mailbox:
    """Reads the mail files (MAIL_DIR/<id>.eml) the test stack's maildev writes, oldest first."""

    def __init__(self, path: Path):
        self.path = path

    def files(self) -> list[Path]:
        return sorted(self.path.glob("*.eml"), key=lambda path: path.stat().st_mtime_ns)

    def messages_to(self, address: str) -> list[email.message.EmailMessage]:
        found = []
        for path in self.files():
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            # A file maildev is still writing parses with defects (no closing MIME boundary): not yet.
            complete = not any(part.defects for part in message.walk())
            if complete and address.lower() in str(message["To"]).lower():
                found.append(message)
        return found

    def wait_for(self, address: str, count: int = 1, timeout: float = 20) -> list[email.message.EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.messages_to(address)
            if len(messages) >= count:
                return messages
            time.sleep(0.2)
        raise AssertionError(f"expected {count} mail(s) to {address}, got {len(self.messages_to(address))}")


def mail_text(message: email.message.EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def mail_html(message: email.message.EmailMessage) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def link_params(text: str, page: str) -> tuple[str, str]:
    """uid and token of the first `{page}?uid=...&token=...` link in a mail body."""
    match = re.search(re.escape(page) + r"\?uid=([A-Za-z0-9_\-]+)&(?:amp;)?token=([A-Za-z0-9_\-.:]+)", text)
    assert match, f"no {page} link in mail:\n{text}"
    return match.group(1), match.group(2)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="session")
def keys() -> dict[str, str]:
    """The test stack's key pair (PEM text)."""
    directory = Path(STACK_ENV["KEYS_DIR"])
    return {"private": (directory / "jwt_private.pem").read_text(),
            "public": (directory / "jwt_public.pem").read_text()}


@pytest.fixture(scope="session")
def live_session_id(api_url, mail) -> str:
    """The `sid` of a real login that nobody logs out: minted tokens carry it, so the gateway's
    session check passes them."""
    session = ApiClient(api_url, new_source_address())
    login(session, register_and_activate(session, mail))
    return jwt.decode(session.cookies["access_token"], options={"verify_signature": False})["sid"]


@pytest.fixture(scope="session")
def mint(keys, live_session_id):
    """mint(**claims) -> a valid access token of a live session, claims overriding (None removes a claim)."""
    def factory(key: str | None = None, algorithm: str = "RS256", headers: dict | None = None, **claims):
        now = int(time.time())
        payload = {"sub": "42", "type": "access", "jti": uuid.uuid4().hex, "iat": now, "exp": now + 600,
                   "csrf": "x", "sid": live_session_id, **claims}
        payload = {name: value for name, value in payload.items() if value is not None}
        return jwt.encode(payload, key or keys["private"], algorithm=algorithm, headers=headers)
    return factory


def catalog_video(video_id: int, owner_id: int, status: str = "ready") -> None:
    """A video row written straight into the test stack's catalog database (for media published by hand)."""
    import psycopg2

    with psycopg2.connect(STACK_ENV["CATALOG_DATABASE_URL"]) as connection, connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO videos (id, title, description, category, owner_id, created_at, updated_at, status,"
            " progress, original_filename) VALUES (%s, 'fake', '', 'test', %s, now(), now(), %s, 0, 'fake.mp4')",
            (video_id, owner_id, status))
    connection.close()


@pytest.fixture(scope="session")
def mail() -> Mailbox:
    return Mailbox(Path(STACK_ENV["MAIL_DIR"]))


STRONG_PASSWORD = "Corr3ct-Horse-Battery!"


def register_and_activate(client: ApiClient, mail: Mailbox, email_address: str | None = None,
                          password: str = STRONG_PASSWORD) -> str:
    """Register through the API and follow the mailed activation link; returns the address."""
    email_address = email_address or unique_email()
    response = client.post("register/", json={
        "email": email_address, "password": password, "confirmed_password": password,
        "privacy_policy": "on",
    })
    assert response.status_code == 201, response.text
    uid, token = link_params(mail_text(mail.wait_for(email_address)[-1]), "activate.html")
    response = client.get(f"activate/{uid}/{token}/")
    assert response.status_code == 200, response.text
    return email_address


def login(client: ApiClient, email_address: str, password: str = STRONG_PASSWORD) -> requests.Response:
    response = client.post("login/", json={"email": email_address, "password": password})
    assert response.status_code == 200, response.text
    return response


@pytest.fixture
def logged_in_client(client, mail) -> ApiClient:
    """A client of a freshly registered, activated and logged-in user (`client.email`)."""
    client.email = register_and_activate(client, mail)
    login(client, client.email)
    return client


def wait_in_page(page, expression: str, arg=None, timeout: float = 15) -> None:
    """page.wait_for_function, which runs its string through eval() in the page, where the app's CSP
    (no 'unsafe-eval') forbids it; page.evaluate is not affected."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression, arg):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {expression}"
        page.wait_for_timeout(100)
