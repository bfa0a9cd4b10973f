"""Watching a video while its first rung is still being encoded (docs/performance.md).

A 2-minute source (a short clip stream-copied over and over: nothing is encoded for minutes) is uploaded
through the API; as soon as the catalog counts it playable, Chromium plays it from 0:00 with hls.js, in
our web app (master playlist) and as the original Videoflix frontend does (the 480p playlist), while the
480p playlist is still an EVENT playlist without #EXT-X-ENDLIST. Later segments keep arriving, and the
playlist ends as a finished VOD playlist.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page

from videoflix_e2e import GATEWAY, ApiClient, generate_clip, login, new_source_address, register_and_activate
from videoflix_e2e import wait_in_page as wait_for

SOURCE_SECONDS = 120
TIMEOUT = 120
PLAYLIST_JS = "url => fetch(url, {cache: 'no-store'}).then(response => response.text())"
# The original Videoflix frontend: hls.js on the 480p playlist, in a second <video> of the same page.
FRONTEND_480P_JS = """async url => {
  const module = document.querySelector('script[type=module]').src.replace(/\\/js\\/.*/, '/js/vendor/hls.js');
  const Hls = (await import(module)).default;
  const video = document.createElement('video');
  video.id = 'frontend-480p';
  video.muted = true;
  document.body.append(video);
  const hls = new Hls();
  hls.loadSource(url);
  hls.attachMedia(video);
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play());
}"""


@pytest.fixture(scope="module")
def two_minute_source(tmp_path_factory) -> Path:
    """480p H.264/AAC, 2 minutes: 10 s generated, then stream-copied 12 times."""
    directory = tmp_path_factory.mktemp("progressive")
    clip = generate_clip(directory / "ten.mp4", 854, 480, 10)
    source = directory / "two-minutes.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", str(SOURCE_SECONDS // 10 - 1), "-i", str(clip),
                    "-c", "copy", str(source)], check=True)
    return source


@pytest.fixture
def uploader(mail):
    client = ApiClient(f"{GATEWAY}/api/", new_source_address())
    login(client, register_and_activate(client, mail))
    yield client
    client.close()


def wait_until_playable(client: ApiClient, video_id: int) -> dict:
    deadline = time.monotonic() + TIMEOUT
    while True:
        detail = client.get(f"video/{video_id}/").json()
        assert detail["status"] != "failed", detail
        if detail["status"] == "ready":
            return detail
        assert time.monotonic() < deadline, detail
        time.sleep(0.2)


def is_growing(playlist: str) -> bool:
    return "#EXT-X-PLAYLIST-TYPE:EVENT" in playlist and "#EXT-X-ENDLIST" not in playlist


def segment_count(playlist: str) -> int:
    return playlist.count("#EXTINF:")


def test_a_two_minute_video_plays_from_the_start_while_its_first_rung_encodes(page: Page, uploader,
                                                                               two_minute_source):
    client = uploader
    with open(two_minute_source, "rb") as handle:
        response = client.post("video/upload/", data={"title": "Growing", "description": "Watched while it encodes", "category": "Testing"},
                               files={"file": (two_minute_source.name, handle)}, timeout=120)
    assert response.status_code == 201, response.text
    video_id = response.json()["id"]
    try:
        detail = wait_until_playable(client, video_id)
        # Ready to play before the first rung is complete: the detail says it grows.
        assert [rendition["rung"] for rendition in detail["renditions_growing"]] == ["480p"], detail
        assert "480p" in detail["renditions_pending"] and detail["renditions"] == []
        growing_playlist = client.get(f"video/{video_id}/480p/index.m3u8")
        assert growing_playlist.headers["Cache-Control"] == "no-cache"
        assert is_growing(growing_playlist.text), growing_playlist.text
        master = client.get(f"video/{video_id}/master.m3u8").text
        assert "480p/index.m3u8" in master, master

        page.context.add_cookies([{"name": cookie.name, "value": cookie.value, "url": GATEWAY}
                                  for cookie in client.cookies])
        page.goto(f"/pages/watch.html?id={video_id}")
        wait_for(page, "window.videoflixPlayer && window.videoflixPlayer.levels.length >= 1")
        # Our web app tells the viewer that what plays is still being encoded.
        assert "480p plays while it is still being encoded" in page.locator("#player-status").inner_text()
        page.locator("h1").click()
        page.keyboard.press("Space")
        wait_for(page, "document.querySelector('#player video, video').currentTime > 1", timeout=30)
        playlist_url = f"/api/video/{video_id}/480p/index.m3u8"
        page.evaluate(FRONTEND_480P_JS, playlist_url)
        wait_for(page, "document.getElementById('frontend-480p').currentTime > 1", timeout=30)

        # Both players started at 0:00 (not at the live edge), their time advances, and at that moment
        # the rung was still growing.
        times = page.evaluate("[...document.querySelectorAll('video')].map(video => video.currentTime)")
        playlist = page.evaluate(PLAYLIST_JS, playlist_url)
        assert is_growing(playlist), f"the first rung finished before the players were checked: {playlist}"
        listed = segment_count(playlist) * 4
        assert all(0 < position < listed - 4 for position in times), (times, listed)
        page.wait_for_timeout(1500)
        later = page.evaluate("[...document.querySelectorAll('video')].map(video => video.currentTime)")
        assert all(after > before for before, after in zip(times, later)), (times, later)

        # Seeking past what exists clamps or waits; it never breaks the player.
        page.evaluate("document.getElementById('frontend-480p').currentTime = 110")
        page.wait_for_timeout(1000)
        assert not page.evaluate("document.getElementById('frontend-480p').error")

        # The playlist kept growing while we watched, and ends as a finished VOD playlist.
        deadline = time.monotonic() + TIMEOUT
        while is_growing(playlist := page.evaluate(PLAYLIST_JS, playlist_url)):
            assert time.monotonic() < deadline, playlist
            page.wait_for_timeout(500)
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist and playlist.rstrip().endswith("#EXT-X-ENDLIST")
        assert segment_count(playlist) >= SOURCE_SECONDS // 4
        assert page.evaluate("document.querySelector('video').error") is None
    finally:
        client.delete(f"video/{video_id}/")  # stops the rest of its ladder: the stack is shared
