"""Browser fixtures: Debian's chromium driven by playwright against the running test stack's gateway.

The stack, mail reading and API helpers are the e2e suite's (tests-e2e/conftest.py), loaded from there.
Screenshots of every page land in test-output/screenshots/.
"""
from __future__ import annotations

import email
import email.policy
import importlib.util
import re
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic", "--mute-audio",
]


def _load_e2e():
    spec = importlib.util.spec_from_file_location("videoflix_e2e", ROOT / "tests-e2e" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


e2e = _load_e2e()
GATEWAY = e2e.GATEWAY


@pytest.fixture(scope="session")
def mail():
    return e2e.Mailbox(Path(e2e.STACK_ENV["MAIL_DIR"]))


def newest_mail_text(mail, address: str, count: int) -> str:
    """The plain text of the newest mail to `address`, once `count` have arrived (file time orders them)."""
    mail.wait_for(address, count)
    received = []
    for path in (mail.path / "new").iterdir():
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if address.lower() in str(message["To"]).lower():
            received.append((path.stat().st_mtime_ns, message))
    return e2e.mail_text(max(received, key=lambda item: item[0])[1])


@pytest.fixture(scope="session")
def mail_link(mail):
    """mail_link(address, '/pages/auth/activate.html', count=1): the full link in the newest mail."""

    def find(address: str, page_path: str, count: int = 1) -> str:
        text = newest_mail_text(mail, address, count)
        pattern = r"https?://[^\s\"'<>]+" + re.escape(page_path) + r"\?uid=[\w-]+&(?:amp;)?token=[\w\-.:]+"
        match = re.search(pattern, text)
        assert match, f"no {page_path} link in mail:\n{text}"
        return match.group(0).replace("&amp;", "&")

    return find


@pytest.fixture(scope="session")
def gateway_url() -> str:
    return GATEWAY


@pytest.fixture
def new_email() -> str:
    """An address nobody has registered yet."""
    return e2e.unique_email("browser")


@pytest.fixture
def activated_user(mail) -> str:
    """The address of a user registered and activated through the API (password e2e.STRONG_PASSWORD)."""
    client = e2e.ApiClient(f"{GATEWAY}/api/", e2e.new_source_address())
    address = e2e.register_and_activate(client, mail)
    client.close()
    return address


@pytest.fixture
def logged_in_page(page, mail) -> Page:
    """`page` with the cookies of a fresh user logged in through the API (for tests not about logging in:
    it spares the browser's own address the gateway's rate limit on login)."""
    client = e2e.ApiClient(f"{GATEWAY}/api/", e2e.new_source_address())
    e2e.login(client, e2e.register_and_activate(client, mail))
    page.context.add_cookies([{"name": cookie.name, "value": cookie.value, "url": GATEWAY} for cookie in client.cookies])
    client.close()
    return page


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: run scripts/install.sh (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Page:
    """A fresh browser profile (no cookies, empty localStorage) on the gateway.

    Fails the test on uncaught JavaScript errors and on any page or asset that does not load (a module
    that fails to import stops its page silently); API answers are the tests' business.
    """
    context = browser.new_context(base_url=GATEWAY, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # Anything the gateway's Content-Security-Policy blocks is a page that does not fully work.
    page.on("console", lambda message: errors.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.on("response", lambda response: errors.append(f"{response.status} {response.url}")
            if response.status >= 400 and "/api/" not in response.url else None)
    yield page
    context.close()
    assert not errors, f"JavaScript errors or failed loads: {errors}"


@pytest.fixture
def shoot():
    """shoot(page, 'name') saves test-output/screenshots/name.png of the whole page."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page: Page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    """A 5-second 720p H.264/AAC clip with picture and tone: the transcoder makes 360p, 480p and 720p of it."""
    return e2e.generate_clip(tmp_path_factory.mktemp("media") / "sunrise_over_the_test_pattern.mp4", 1280, 720, 5)
