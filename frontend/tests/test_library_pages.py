"""The web app's library management and resumable uploads in a real browser: an upload cut by a reload
resumes where the server stopped; My videos lists, edits and retries one's own videos; search."""
from __future__ import annotations

import contextlib
import hashlib
import re
from pathlib import Path
from typing import Iterator

import psycopg2
import pytest
from playwright.sync_api import Page, expect

import videoflix_e2e as e2e  # tests-e2e/conftest.py, loaded under this name by frontend/tests/conftest.py

# Slow enough that the reload lands mid-upload whatever the machine's load.
UPLOAD_BYTES_PER_SECOND = 256 * 1024


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """A 30-second 640x360 clip (a few MiB): several seconds to send at the throttled rate."""
    return e2e.generate_clip(tmp_path_factory.mktemp("media") / "long_walk.mp4", 640, 360, 30)


@contextlib.contextmanager
def ready_video_of_someone_else(title: str, description: str, category: str) -> Iterator[int]:
    """A ready video of another user, inserted straight into the catalog (no transcoding), then deleted."""
    with psycopg2.connect(e2e.STACK_ENV["CATALOG_DATABASE_URL"]) as connection, connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO videos (title, description, category, owner_id, created_at, updated_at, status, progress,"
            " original_filename) VALUES (%s, %s, %s, 999999, now(), now(), 'ready', 100, 'x.mp4') RETURNING id",
            (title, description, category))
        video_id = cursor.fetchone()[0]
    try:
        yield video_id
    finally:
        with psycopg2.connect(e2e.STACK_ENV["CATALOG_DATABASE_URL"]) as connection, connection.cursor() as cursor:
            cursor.execute("DELETE FROM videos WHERE id = %s", (video_id,))


def settle_session(page: Page) -> None:
    """A fresh profile refreshes its token on the first page; a reload while that refresh is in flight
    would send the same refresh token twice (reuse detection then ends the session)."""
    e2e.wait_in_page(page, "localStorage.getItem('videoflix.lastRefresh') !== null")


def fill_upload_form(page: Page, clip: Path, title: str) -> None:
    page.get_by_label("Video file").set_input_files(str(clip))
    expect(page.locator("#file-name")).to_contain_text(clip.name)
    page.get_by_label("Title").fill(title)
    page.get_by_label("Description").fill("Sent over a connection that broke.")
    page.get_by_label("Category").fill("Travel")
    page.get_by_role("button", name="Upload").click()


def test_an_upload_cut_by_a_reload_resumes_where_the_server_stopped(logged_in_page: Page, shoot, long_clip):
    page = logged_in_page
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": UPLOAD_BYTES_PER_SECOND})
    patches = []
    page.on("request", lambda request: patches.append(request.headers.get("upload-offset"))
            if request.method == "PATCH" and "/api/uploads/" in request.url else None)

    page.goto("/pages/upload.html")
    settle_session(page)
    fill_upload_form(page, long_clip, "A walk, resumed")
    e2e.wait_in_page(page, "document.getElementById('upload-progress').value >= 25", timeout=120)
    shoot(page, "20-resumable-before-reload")
    page.reload()  # the connection drops mid-body; tus-js-client kept the upload's URL in localStorage

    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 20 * 1024 * 1024})
    fill_upload_form(page, long_clip, "A walk, resumed")
    expect(page.locator("#progress-status")).to_contain_text("Continuing your earlier upload", timeout=30_000)
    expect(page.locator("#upload-progress")).to_have_attribute("value", "100", timeout=120_000)
    shoot(page, "21-resumable-done")
    # The resumed PATCH started where the server had stopped, not at 0.
    assert patches[0] == "0" and int(patches[-1]) > 0, patches
    e2e.wait_in_page(page, "localStorage.length === 0 || !Object.keys(localStorage).some(k => k.startsWith('tus::'))")

    page.goto("/pages/mine.html")
    item = page.locator("li.upload-item", has_text="A walk, resumed")
    expect(item).to_be_visible()
    video_id = item.get_attribute("data-video-id")
    original = e2e.STORAGE.get(f"originals/{video_id}/{long_clip.name}")
    assert hashlib.sha256(original).digest() == hashlib.sha256(long_clip.read_bytes()).digest()
    item.get_by_role("button", name="Delete").click()
    expect(item).to_have_count(0)


def test_my_videos_lists_edits_and_retries_and_search_finds(logged_in_page: Page, shoot, gateway_url):
    page = logged_in_page
    page.goto("/pages/mine.html")
    expect(page.locator("#mine-status")).to_have_text("You have no videos yet.")
    settle_session(page)
    # A file that is no video: the transcoder fails it, so My videos offers Retry.
    page.evaluate("""async () => {
        const form = new FormData();
        form.append('title', 'Not a video');
        form.append('description', 'Plain text');
        form.append('category', 'Broken');
        form.append('file', new Blob(['just some text'], {type: 'text/plain'}), 'notes.mp4');
        const csrf = document.cookie.match(/csrftoken=([^;]*)/)[1];
        const response = await fetch('/api/video/upload/', {method: 'POST', body: form, headers: {'X-CSRFToken': csrf}});
        if (response.status !== 201) throw new Error(await response.text());
    }""")
    page.reload()
    item = page.locator("li.upload-item").first
    expect(item.locator(".upload-text")).to_contain_text("Transcoding failed", timeout=120_000)
    shoot(page, "22-my-videos-failed")

    item.get_by_role("button", name="Edit").click()
    item.get_by_label("Title").fill("Renamed quokka notes")
    item.get_by_label("Category").fill("Notes")
    item.get_by_role("button", name="Save").click()
    expect(item.locator(".title")).to_have_text("Renamed quokka notes")
    expect(item.locator(".meta")).to_contain_text("Notes")
    item.get_by_role("button", name="Edit").click()
    item.get_by_label("Title").fill("   ")
    item.get_by_role("button", name="Save").click()
    expect(item.locator(".edit-form .status")).to_contain_text("Length must be between 1 and 200.")
    item.get_by_role("button", name="Cancel").click()

    with page.expect_response(re.compile(r"/api/video/\d+/retry/$")) as retried:
        item.get_by_role("button", name="Retry").click()
    assert retried.value.status == 202 and retried.value.json()["status"] in ("uploaded", "queued")
    # Fails again (still not a video: the probe is quick), and says so.
    expect(item.locator(".upload-text")).to_contain_text("Transcoding failed", timeout=120_000)
    page.reload()
    expect(page.locator("li.upload-item .title")).to_have_text(["Renamed quokka notes"])
    shoot(page, "23-my-videos-edited")

    # Search: a ready video of someone else (inserted straight into the catalog) is found by a word of
    # its description, and only with its own category.
    with ready_video_of_someone_else("Wildlife at dawn", "A quokka smiles", "Nature") as ready_id:
        page.goto("/")
        page.get_by_label("Search").fill("quokka")
        page.get_by_role("button", name="Search").click()
        expect(page).to_have_url(f"{gateway_url}/?q=quokka")
        expect(page.locator("#library-status")).to_have_text("1 found.")
        expect(page.locator("#rows a.card")).to_have_attribute("href", f"/pages/watch.html?id={ready_id}")
        shoot(page, "24-search")
        page.get_by_label("Category").select_option("Nature")
        page.get_by_label("Search").fill("zzzznothing")
        page.get_by_role("button", name="Search").click()
        expect(page.locator("#library-status")).to_have_text("Nothing matches your search.")
        page.goto("/?q=quokka&category=Nature")  # a search is a link
        expect(page.locator("#library-status")).to_have_text("1 found.")


def test_words_typed_into_search_before_the_library_loads_are_kept(logged_in_page: Page, gateway_url):
    """The library's list arrives after the page: what the viewer typed meanwhile stays in the box when
    the list (one ready video at least) fills the page."""
    page = logged_in_page
    held = []
    library = re.compile(r"/api/video/$")
    page.route(library, lambda route: held.append(route))  # GET /api/video/ waits until the words are typed
    with ready_video_of_someone_else("Harbour at noon", "Boats", "Places"):
        page.goto("/")
        page.get_by_label("Search").fill("quokka")
        for _ in range(50):  # the route's handler runs while Playwright waits
            if held:
                break
            page.wait_for_timeout(100)
        assert len(held) == 1, "the library's list was not requested"
        held[0].continue_()
        page.unroute(library)
        expect(page.locator("#search-category option", has_text="Places")).to_have_count(1)  # the list is in
        expect(page.get_by_label("Search")).to_have_value("quokka")
        page.get_by_role("button", name="Search").click()
        expect(page).to_have_url(f"{gateway_url}/?q=quokka")
