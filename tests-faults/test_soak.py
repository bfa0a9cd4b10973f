"""Soak: 20 concurrent viewers stream one video through the gateway; zero errors, bounded memory.

SOAK_SECONDS sets the duration (default 120). Each viewer loads the catalog list, the master playlist,
the rung playlist and then every segment, one every VIEWER_SEGMENT_INTERVAL seconds (8x real time for
2-second segments), over and over. Every answer must be 200 with exactly the bytes on disk.
Memory bound: between the end of warm-up and the end of the soak, the resident memory of no service
(each process with all its children: nginx workers, gunicorn workers) grows by more than 32 MiB.
"""
from __future__ import annotations

import os
import threading
import time
from collections import Counter

import requests

from bench.harness import make_clip, register_and_login, tree_rss_bytes, upload, wait_for_ladder

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "120"))
VIEWERS = 20
VIEWER_SEGMENT_INTERVAL = 0.25
WARM_UP_SECONDS = min(10.0, SOAK_SECONDS / 4)
MEMORY_GROWTH_BOUND = 32 * 1024**2
WATCHED = ("gateway", "auth", "catalog", "streamer")
RUNG = "360p"


def test_twenty_viewers_without_errors_or_memory_growth(stack):
    owner = register_and_login(stack)
    video_id = upload(owner, make_clip(8, 640, 360), "soak")["id"]
    wait_for_ladder(owner, video_id, timeout=180)
    rung_dir = stack.media_dir / "hls" / str(video_id) / RUNG
    base = f"{stack.api_url}video/{video_id}/"
    playlist = owner.get(f"{base}{RUNG}/index.m3u8").text
    segments = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    assert segments, playlist
    expected_sizes = {name: (rung_dir / name).stat().st_size for name in segments}

    stop_at = time.monotonic() + SOAK_SECONDS
    errors: list[str] = []
    served = Counter()

    def fetch(session: requests.Session, url: str, size: int | None = None) -> None:
        try:
            response = session.get(url, timeout=15)
        except requests.RequestException as error:
            errors.append(f"{url}: {error!r}")
            return
        if response.status_code != 200 or (size is not None and len(response.content) != size):
            errors.append(f"{url}: {response.status_code}, {len(response.content)} bytes (expected {size})")
        served[url.rsplit("/", 1)[-1] if size else "other"] += 1

    def viewer() -> None:
        with requests.Session() as session:
            session.cookies.update(owner.cookies)
            while time.monotonic() < stop_at:
                for url in (f"{stack.api_url}video/", f"{base}master.m3u8", f"{base}{RUNG}/index.m3u8"):
                    fetch(session, url)
                for name in segments:
                    if time.monotonic() >= stop_at:
                        return
                    fetch(session, f"{base}{RUNG}/{name}", expected_sizes[name])
                    time.sleep(VIEWER_SEGMENT_INTERVAL)

    threads = [threading.Thread(target=viewer, daemon=True) for _ in range(VIEWERS)]
    for thread in threads:
        thread.start()
    time.sleep(WARM_UP_SECONDS)
    baseline = {name: tree_rss_bytes(stack.pid(name)) for name in WATCHED}
    peak = dict(baseline)
    while time.monotonic() < stop_at:
        time.sleep(2)
        for name in WATCHED:
            peak[name] = max(peak[name], tree_rss_bytes(stack.pid(name)))
    for thread in threads:
        thread.join(timeout=30)

    growth = {name: peak[name] - baseline[name] for name in WATCHED}
    report = ", ".join(f"{name} {baseline[name] / 2**20:.0f}->{peak[name] / 2**20:.0f} MiB" for name in WATCHED)
    print(f"\nsoak {SOAK_SECONDS:.0f} s, {VIEWERS} viewers, {sum(served.values())} requests; RSS {report}")
    assert not errors, f"{len(errors)} errors, first: {errors[:5]}"
    assert sum(served.values()) >= VIEWERS * SOAK_SECONDS / 2, served
    assert all(value < MEMORY_GROWTH_BOUND for value in growth.values()), f"memory grew: {report}"
