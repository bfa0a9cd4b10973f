"""kill -9 a transcoder mid-job: the video still ends ready with its whole ladder, and no partial rung
is ever served (a watcher polls every playlist through the gateway for the whole job)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import requests

from bench.harness import kill_tree, make_clip, process_tree, register_and_login, upload, wait_for_ladder, wait_until

RUNGS = ("360p", "480p", "720p", "1080p")
LADDER_TIMEOUT = 300


class PlaylistWatcher(threading.Thread):
    """Fetches master.m3u8 and every rung playlist over and over; records every incomplete one served."""

    def __init__(self, session: requests.Session, base: str):
        super().__init__(daemon=True)
        self.session, self.base = session, base
        self.problems: list[str] = []
        self.served_playlists = 0
        self.checked_segments: set[str] = set()
        self.finished = threading.Event()

    def run(self) -> None:
        while not self.finished.is_set():
            master = self.session.get(f"{self.base}master.m3u8", timeout=15)
            if master.status_code == 200:
                self.check_master(master.text)
            for rung in RUNGS:
                self.check_rung(rung)
            time.sleep(0.2)

    def check_master(self, text: str) -> None:
        for uri in (line for line in text.splitlines() if line and not line.startswith("#")):
            rung = uri.split("/")[0]
            if self.check_rung(rung) is None:
                self.problems.append(f"master.m3u8 lists {uri}, which is not served")

    def check_rung(self, rung: str) -> bool | None:
        response = self.session.get(f"{self.base}{rung}/index.m3u8", timeout=15)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            self.problems.append(f"{rung}/index.m3u8 answered {response.status_code}")
            return False
        self.served_playlists += 1
        text = response.text
        # Finished (VOD, #EXT-X-ENDLIST), or the first rung growing (an EVENT playlist of whole segments).
        if not text.rstrip().endswith("#EXT-X-ENDLIST") and "#EXT-X-PLAYLIST-TYPE:EVENT" not in text:
            self.problems.append(f"{rung}/index.m3u8 served unfinished and not as EVENT:\n{text[-200:]}")
        for name in (line for line in text.splitlines() if line and not line.startswith("#")):
            url = f"{self.base}{rung}/{name}"
            if url not in self.checked_segments:
                segment = self.session.get(url, timeout=15)
                if segment.status_code != 200 or not segment.content:
                    self.problems.append(f"{rung}/{name} listed but answered {segment.status_code}")
                elif len(segment.content) % 188 or segment.content[0] != 0x47:  # whole MPEG-TS packets
                    self.problems.append(f"{rung}/{name} served partial ({len(segment.content)} bytes)")
                self.checked_segments.add(url)
        return True


def running_ffmpeg(stack) -> str | None:
    """The name of a transcoder that has an ffmpeg process (a job in progress) right now."""
    for name in stack.transcoder_names():
        pid = stack.pid(name)
        for member in process_tree(pid) if pid else []:
            try:
                if Path(f"/proc/{member}/comm").read_text().strip() == "ffmpeg":
                    return name
            except OSError:
                continue
    return None


def test_transcoder_killed_mid_job_still_ends_ready_without_partial_rungs(stack):
    session = register_and_login(stack)
    video_id = upload(session, make_clip(20, 1280, 720), "kill -9")["id"]
    watcher = PlaylistWatcher(session, f"{stack.api_url}video/{video_id}/")
    watcher.start()
    try:
        victim = wait_until(lambda: running_ffmpeg(stack), 90, interval=0.1, what="a transcoder running ffmpeg")
        time.sleep(1.0)  # well into the rung: some segments are written in its temporary directory
        killed = kill_tree(stack.pid(victim))
        assert len(killed) >= 2, f"expected the worker and its ffmpeg, killed {killed}"
        stack.stop(victim)   # forget the dead process, then restart it as a supervisor would
        stack.start(victim)
        detail = wait_for_ladder(session, video_id, LADDER_TIMEOUT)
    finally:
        watcher.finished.set()
        watcher.join(timeout=30)

    assert detail["status"] == "ready"
    assert not watcher.problems, "\n".join(watcher.problems[:5])
    assert watcher.served_playlists > 0, "the watcher never saw a published rung"
    for rung in ("360p", "480p", "720p"):
        playlist = session.get(f"{stack.api_url}video/{video_id}/{rung}/index.m3u8")
        assert playlist.status_code == 200 and playlist.text.rstrip().endswith("#EXT-X-ENDLIST")
