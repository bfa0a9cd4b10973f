"""The web app in a real browser against the real stack: sign-up to playback, password reset, forms.

Each test starts from a fresh browser profile; screenshots of every page go to test-output/screenshots/.
"""
from __future__ import annotations

import re
import time
from urllib.parse import quote

import requests
from playwright.sync_api import Page, expect

from videoflix_e2e import wait_in_page as wait_for  # tests-e2e/conftest.py, loaded by frontend/tests/conftest.py

PASSWORD = "Corr3ct-Horse-Battery!"  # the e2e suite's STRONG_PASSWORD, which `activated_user` has
TRANSCODE_TIMEOUT = 180


def sign_up(page: Page, shoot, address: str) -> None:
    page.goto("/pages/auth/signup.html")
    page.get_by_label("Email address", exact=True).fill(address)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.get_by_label("I accept the privacy policy").check()
    shoot(page, "01-signup")
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(re.compile(r"/pages/auth/check_mail\.html$"))
    expect(page.locator("#sent-to")).to_contain_text(address)


def log_in(page: Page, address: str, password: str = PASSWORD) -> None:
    page.get_by_label("Email address", exact=True).fill(address)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def video_detail(page: Page, video_id: str) -> dict:
    return page.evaluate("id => fetch(`/api/video/${id}/`).then(response => response.json())", video_id)


def wait_for_all_rungs(page: Page, video_id: str) -> dict:
    deadline = time.monotonic() + TRANSCODE_TIMEOUT
    while time.monotonic() < deadline:
        detail = video_detail(page, video_id)
        assert detail["status"] != "failed", detail
        if detail["status"] == "ready" and not detail["renditions_pending"]:
            return detail
        time.sleep(1)
    raise AssertionError(f"video {video_id} not fully transcoded: {detail}")


def upload(page: Page, shoot, clip) -> str:
    """Fills the upload form, watches both progress bars; returns the new video's id."""
    expect(page.get_by_role("heading", name="Upload a video")).to_be_visible()
    shoot(page, "06-upload-empty")
    page.get_by_label("Video file").set_input_files(str(clip))
    expect(page.locator("#file-name")).to_contain_text(clip.name)
    page.get_by_label("Title").fill("Sunrise over the test pattern")
    page.get_by_label("Description").fill("Five seconds of colour bars and a 440 Hz tone, made by ffmpeg.")
    page.get_by_label("Category").fill("Documentary")
    shoot(page, "07-upload-filled")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-progress")).to_have_attribute("value", "100", timeout=60_000)
    shoot(page, "08-upload-transcoding")
    watch = page.get_by_role("link", name="Watch now")
    expect(watch).to_be_visible(timeout=TRANSCODE_TIMEOUT * 1000)
    expect(page.locator("#transcode-progress")).not_to_have_attribute("value", "0")
    shoot(page, "09-upload-ready")
    return re.search(r"id=(\d+)", watch.get_attribute("href")).group(1)


def check_library(page: Page, shoot, video_id: str) -> None:
    page.goto("/")
    newest = page.locator("section.row", has=page.get_by_role("heading", name="Newest"))
    card = newest.locator(f'a.card[href="/pages/watch.html?id={video_id}"]')
    expect(card).to_contain_text("Sunrise over the test pattern")
    expect(page.locator("section.row", has=page.get_by_role("heading", name="Documentary"))).to_be_visible()
    thumbnail = card.locator("img")
    expect(thumbnail).to_be_visible()
    wait_for(page, "image => image.complete && image.naturalWidth > 0", thumbnail.element_handle())
    shoot(page, "10-library")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "horizontal overflow on a phone"
    shoot(page, "11-library-phone")
    page.set_viewport_size({"width": 1280, "height": 800})


def current_time(page: Page) -> float:
    return page.evaluate("document.querySelector('video').currentTime")


def play_and_switch_rungs(page: Page, shoot, video_id: str) -> None:
    page.goto(f"/pages/watch.html?id={video_id}")
    wait_for(page, "window.videoflixPlayer && window.videoflixPlayer.levels.length >= 2")
    heights = page.evaluate("window.videoflixPlayer.levels.map(level => level.height)")
    assert {360, 720} <= set(heights), heights
    quality = page.get_by_label("Quality")
    expect(quality.locator("option")).to_have_text(["Auto", "720p", "480p", "360p"])

    # Space starts playback (keyboard shortcut), and time advances.
    page.locator("h1").click()
    page.keyboard.press("Space")
    wait_for(page, "document.querySelector('video').currentTime > 0.5", timeout=20)
    first = current_time(page)
    page.wait_for_timeout(700)
    assert current_time(page) > first, "currentTime did not advance"

    # Manual choice: each rung in turn becomes the playing level.
    for label in ("360p", "720p"):
        quality.select_option(label=label)
        expect(page.locator("#level-status")).to_have_text(f"Playing {label}", timeout=20_000)
        level = page.evaluate("window.videoflixPlayer.levels[window.videoflixPlayer.currentLevel].height")
        assert f"{level}p" == label
    quality.select_option(label="Auto")
    assert page.evaluate("window.videoflixPlayer.autoLevelEnabled")
    shoot(page, "12-player")

    # Shortcuts: m mutes, arrows seek, space pauses.
    page.locator("h1").click()
    page.keyboard.press("m")
    assert page.evaluate("document.querySelector('video').muted")
    page.keyboard.press("Space")
    wait_for(page, "document.querySelector('video').paused")
    page.evaluate("document.querySelector('video').currentTime = 3")
    wait_for(page, "!document.querySelector('video').seeking")
    page.keyboard.press("ArrowLeft")
    wait_for(page, "document.querySelector('video').currentTime < 0.5")
    page.keyboard.press("ArrowRight")  # 0 + 5 s: the end of this 5 s clip
    wait_for(page, "document.querySelector('video').currentTime > 4")
    page.evaluate("document.querySelector('video').currentTime = 1")
    page.keyboard.press("f")
    wait_for(page, "document.fullscreenElement && document.fullscreenElement.id === 'player'")
    page.keyboard.press("f")
    wait_for(page, "!document.fullscreenElement")
    # With the video element itself focused, Space toggles once (not also by the native controls).
    page.locator("video").focus()
    page.keyboard.press("Space")
    page.wait_for_timeout(300)
    assert not page.evaluate("document.querySelector('video').paused")
    page.keyboard.press("Space")
    wait_for(page, "document.querySelector('video').paused")

    # Resume: the position stored on pause/seek comes back after a reload.
    page.evaluate("document.querySelector('video').currentTime = 2.5")
    wait_for(page, "!document.querySelector('video').seeking")
    page.reload()
    expect(page.locator("#player-status")).to_have_text("Resumed at 0:02.")
    wait_for(page, "Math.abs(document.querySelector('video').currentTime - 2.5) < 0.6")
    expect(page.get_by_role("button", name="Start from the beginning")).to_be_visible()
    shoot(page, "13-player-resumed")


def test_sign_up_activate_upload_play_and_log_out(page: Page, shoot, mail_link, clip, new_email, gateway_url):
    address = new_email
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/pages/auth/login\.html\?next=%2F$"))
    expect(page.locator("#notice")).to_have_text("Please log in to continue.")

    sign_up(page, shoot, address)
    shoot(page, "02-check-mail")
    page.get_by_role("button", name="Send the activation mail again").click()
    expect(page.locator("#resend-form .status")).not_to_be_empty()
    # A resend voids the first link and mails a "finish signing up" link: the mailbox owner chooses
    # the password there (docs/security.md, re-registration rule).
    link = mail_link(address, "/pages/auth/confirm_password.html", count=2)
    assert link.startswith(f"{gateway_url}/pages/auth/confirm_password.html?uid="), link

    page.goto(link)
    page.get_by_label("New password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the new password").fill(PASSWORD)
    page.get_by_role("button", name="Save the new password").click()
    expect(page.locator("#confirm-form .status")).to_contain_text("You can log in with it now.")
    shoot(page, "03-activated")

    # A page behind login sends us to log in and back to it.
    page.goto("/pages/upload.html")
    expect(page).to_have_url(re.compile(r"/pages/auth/login\.html\?next=%2Fpages%2Fupload\.html$"))
    shoot(page, "04-login")
    log_in(page, address)
    expect(page).to_have_url(f"{gateway_url}/pages/upload.html")
    assert {"access_token", "refresh_token", "csrftoken"} <= {c["name"] for c in page.context.cookies()}

    video_id = upload(page, shoot, clip)
    wait_for_all_rungs(page, video_id)
    check_library(page, shoot, video_id)
    play_and_switch_rungs(page, shoot, video_id)

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="You are logged out")).to_be_visible()
    shoot(page, "14-logged-out")
    assert not {"access_token", "refresh_token"} & {c["name"] for c in page.context.cookies()}
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/pages/auth/login\.html\?next="))


def test_forgot_and_reset_password(page: Page, shoot, mail_link, activated_user, gateway_url):
    address = activated_user
    page.goto("/pages/auth/login.html")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email address", exact=True).fill(address)
    page.get_by_role("button", name="Send the reset link").click()
    expect(page.locator("#forgot-form .status")).to_have_text("An email has been sent to reset your password.")
    shoot(page, "20-forgot-password")

    page.goto(mail_link(address, "/pages/auth/confirm_password.html"))
    page.get_by_label("New password", exact=True).fill("An0ther-Long-Passphrase")
    page.get_by_label("Repeat the new password").fill("An0ther-Long-Passphrase")
    page.get_by_role("button", name="Save the new password").click()
    expect(page.locator("#confirm-form .status")).to_contain_text("You can log in with it now.")
    shoot(page, "21-password-reset")

    page.get_by_role("link", name="Log in", exact=True).last.click()
    log_in(page, address, "An0ther-Long-Passphrase")
    expect(page).to_have_url(f"{gateway_url}/")
    expect(page.get_by_role("heading", name="Library")).to_be_attached()


def test_forms_show_errors_next_to_their_fields(page: Page, shoot, new_email):
    page.goto("/pages/auth/signup.html")
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("#email")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#email")).to_be_focused()

    page.get_by_label("Email address", exact=True).fill(new_email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD + "x")
    page.get_by_label("I accept the privacy policy").check()
    page.get_by_role("button", name="Sign up").click()
    error = page.locator("#confirmed_password-error")
    expect(error).not_to_be_empty()
    expect(page.locator("#confirmed_password")).to_have_attribute("aria-describedby", "confirmed_password-error")
    shoot(page, "30-signup-errors")

    page.goto("/pages/auth/login.html")
    log_in(page, new_email, "Wrong-Passw0rd!")
    expect(page.locator("#login-form .status")).to_have_attribute("data-kind", "error")
    expect(page.locator("#login-form .status")).not_to_be_empty()
    expect(page).to_have_url(re.compile(r"/pages/auth/login\.html$"))

    page.goto("/pages/auth/activate.html?uid=AA&token=not-a-token")
    expect(page.get_by_role("heading", name="Activation failed")).to_be_visible()
    expect(page.get_by_role("link", name="Get a new activation link")).to_be_visible()


PAGES = [
    "/", "/pages/upload.html", "/pages/mine.html", "/pages/watch.html?id=1", "/pages/auth/signup.html",
    "/pages/auth/check_mail.html", "/pages/auth/activate.html", "/pages/auth/login.html",
    "/pages/auth/logout.html", "/pages/auth/forgot_password.html", "/pages/auth/confirm_password.html",
]


def test_every_control_has_a_label_and_pages_fit_a_phone(browser, gateway_url):
    """Static check of every page's markup (JS off: pages behind login would redirect)."""
    context = browser.new_context(base_url=gateway_url, java_script_enabled=False, viewport={"width": 360, "height": 740})
    page = context.new_page()
    for path in PAGES:
        assert page.goto(path).status == 200, path
        unlabeled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea, button')]
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
            .map(el => el.outerHTML)""")
        assert not unlabeled, (path, unlabeled)
        assert page.evaluate("document.documentElement.lang") == "en"
        assert page.locator("main#main h1").count() == 1, path
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
    context.close()


def test_gateway_caches_assets_for_long_and_html_never(gateway_url):
    page = requests.get(f"{gateway_url}/", timeout=10)
    assert page.status_code == 200
    assert "no-cache" in page.headers["Cache-Control"]
    assets = re.findall(r'(?:href|src)="(/assets/[0-9a-f]{12}/[^"]+)"', page.text)
    assert assets, page.text
    for path in assets + [re.sub(r"/js/.*", "/js/vendor/hls.js", assets[-1])]:
        response = requests.get(gateway_url + path, timeout=10)
        assert response.status_code == 200, path
        assert "max-age=31536000" in response.headers["Cache-Control"] or "immutable" in response.headers["Cache-Control"], (
            path, response.headers)
    for mailed in ("/pages/auth/activate.html", "/pages/auth/confirm_password.html"):
        response = requests.get(f"{gateway_url}{mailed}?uid=MQ&token=abc", timeout=10)
        assert response.status_code == 200 and "text/html" in response.headers["Content-Type"]


def test_session_is_refreshed_on_time_and_on_401_and_a_dead_one_goes_to_login(page: Page, activated_user, gateway_url):
    page.clock.install()
    page.goto("/pages/auth/login.html?next=%2Fpages%2Fupload.html")
    log_in(page, activated_user)
    expect(page).to_have_url(f"{gateway_url}/pages/upload.html")

    # The 20-minute timer refreshes before the 30-minute access token expires.
    with page.expect_response("**/api/token/refresh/") as refreshed:
        page.clock.run_for("20:05")
    assert refreshed.value.status == 200

    # A lost or expired access token: the 401 is answered by one refresh and a retry, invisibly.
    page.context.clear_cookies(name="access_token")
    with page.expect_response("**/api/token/refresh/") as refreshed:
        page.goto("/")
    assert refreshed.value.status == 200
    expect(page.locator("#library-status")).to_have_text(re.compile(r"^\d+ videos? in|library is empty"))
    expect(page).to_have_url(f"{gateway_url}/")

    # No way to refresh: off to the login page, which brings us back afterwards.
    page.context.clear_cookies(name="access_token")
    page.context.clear_cookies(name="refresh_token")
    page.goto("/pages/upload.html")
    expect(page).to_have_url(re.compile(r"/pages/auth/login\.html\?next=%2Fpages%2Fupload\.html$"))


def test_a_file_dropped_on_the_upload_page_is_chosen(logged_in_page: Page, gateway_url):
    page = logged_in_page
    page.goto("/pages/upload.html")
    expect(page).to_have_url(f"{gateway_url}/pages/upload.html")
    dropped = page.evaluate_handle("""() => {
        const transfer = new DataTransfer();
        transfer.items.add(new File(['not really a film'], 'holiday_at_sea.mp4', { type: 'video/mp4' }));
        return transfer;
    }""")
    page.dispatch_event("#dropzone", "dragover", {"dataTransfer": dropped})
    expect(page.locator("#dropzone")).to_have_class(re.compile("dragging"))
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": dropped})
    expect(page.locator("#file-name")).to_have_text("Selected: holiday_at_sea.mp4 (17 bytes)")
    expect(page.get_by_label("Title")).to_have_value("holiday at sea")
    assert page.evaluate("document.getElementById('file').files[0].name") == "holiday_at_sea.mp4"


NEXT_VALUES_THAT_LEAVE = [
    "//evil.example", "/\t/evil.example", "/\n/evil.example", "/\\evil.example", "\\\\evil.example",
    "/\\/evil.example", " //evil.example", "https://evil.example/", "javascript:alert(1)",
    "JaVaScRiPt:alert(1)", "data:text/html,<script>alert(1)</script>", "//evil.example@evil.example",
    "https:/evil.example", "\t//evil.example",
]
# Odd, but on this site: the answer is an absolute URL here (a bare `//evil.example` path would leave).
NEXT_VALUES_ODD_BUT_HOME = ["/.//evil.example", "/x/..//evil.example", "http:evil.example"]
NEXT_VALUES_THAT_STAY = {"/pages/upload.html": "/pages/upload.html", "/?q=1#top": "/?q=1#top",
                         "/pages/watch.html?id=5": "/pages/watch.html?id=5"}


def test_next_after_login_only_goes_to_this_site(page: Page, gateway_url):
    """safeNext, as the login page uses it, in the browser that will follow its answer."""
    page.goto("/pages/auth/login.html")
    version = page.evaluate("document.querySelector('script[type=module]').src.split('/assets/')[1].split('/')[0]")
    answers = page.evaluate("""async ([version, values]) => {
        const { safeNext } = await import(`/assets/${version}/js/api.js`);
        return values.map(value => safeNext(value));
    }""", [version, NEXT_VALUES_THAT_LEAVE + list(NEXT_VALUES_THAT_STAY) + NEXT_VALUES_ODD_BUT_HOME])
    leaving = dict(zip(NEXT_VALUES_THAT_LEAVE, answers))
    assert {value: answer for value, answer in leaving.items() if answer != "/"} == {}
    staying = dict(zip(NEXT_VALUES_THAT_STAY, answers[len(NEXT_VALUES_THAT_LEAVE):]))
    assert staying == {value: gateway_url + path for value, path in NEXT_VALUES_THAT_STAY.items()}
    odd = answers[len(NEXT_VALUES_THAT_LEAVE) + len(NEXT_VALUES_THAT_STAY):]
    assert all(answer.startswith(gateway_url + "/") for answer in odd), odd


def test_login_with_a_next_to_another_site_stays_home(page: Page, activated_user, gateway_url):
    page.goto("/pages/auth/login.html?next=" + quote("/\t/evil.example/steal"))
    log_in(page, activated_user)
    expect(page).to_have_url(f"{gateway_url}/")
