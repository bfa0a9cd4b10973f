"""Soak: 20 concurrent viewers stream one video through the gateway; zero errors, bounded memory.

SOAK_SECONDS sets the duration (default 120). Viewers fetch a segment every 0.25 s (8x real time for
the pipeline's 4-second segments), plus the list and both playlists on every pass (bench/soak.py).
Memory bound: between the end of warm-up and the end of the soak, the resident memory of no service
(each process with all its children: nginx workers, gunicorn workers) grows by more than 32 MiB.
"""
from __future__ import annotations

import os

from bench.harness import make_clip, register_and_login, upload, wait_for_ladder
from bench.soak import soak

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "120"))
VIEWERS = 20
MEMORY_GROWTH_BOUND = 32 * 1024**2
WATCHED = ("gateway", "auth", "catalog", "streamer")


def test_twenty_viewers_without_errors_or_memory_growth(stack):
    owner = register_and_login(stack)
    video_id = upload(owner, make_clip(8, 640, 360), "soak")["id"]
    wait_for_ladder(owner, video_id, timeout=180)
    result = soak(stack.api_url, owner.cookies, video_id, stack.media_dir / "hls" / str(video_id) / "360p",
                  SOAK_SECONDS, VIEWERS, {name: stack.pid(name) for name in WATCHED})
    print(f"\nsoak {SOAK_SECONDS:.0f} s, {VIEWERS} viewers: {result.report()}")
    assert not result.errors, f"{len(result.errors)} errors, first: {result.errors[:5]}"
    assert result.requests["segment"] >= VIEWERS * SOAK_SECONDS, result.requests
    assert all(value < MEMORY_GROWTH_BOUND for value in result.growth().values()), result.report()
