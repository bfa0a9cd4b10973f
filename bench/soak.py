"""Concurrent viewers streaming one video through the gateway, with the memory of the services watched.

Used by the fault suite (tests-faults/test_soak.py, 2 minutes) and by `make test`
(tests-e2e/test_attacks.py, a short run). Each viewer loads the catalog list, the master playlist,
the rung playlist and then every segment, one every `segment_interval` seconds, over and over;
every answer must be 200 with exactly the bytes on disk.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

from .harness import tree_rss_bytes


@dataclass
class SoakResult:
    requests: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    baseline_rss: dict[str, int] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)

    def growth(self) -> dict[str, int]:
        return {name: self.peak_rss[name] - self.baseline_rss[name] for name in self.baseline_rss}

    def report(self) -> str:
        memory = ", ".join(f"{name} {self.baseline_rss[name] / 2**20:.0f}->{self.peak_rss[name] / 2**20:.0f} MiB"
                           for name in self.baseline_rss)
        return f"{sum(self.requests.values())} requests, {len(self.errors)} errors; RSS {memory}"


def soak(api_url: str, cookies, video_id: int, rung_dir: Path | str, seconds: float, viewers: int,
         watched: dict[str, int], segment_interval: float = 0.25, storage=None) -> SoakResult:
    """Run `viewers` threads for `seconds`; `watched` maps names to pids whose process trees are
    sampled every 2 s after a warm-up of a quarter of the run (at most 10 s). `rung_dir` is the rung's
    directory, or with `storage` (videoflix_shared.storage) its key prefix `hls/<id>/<rung>`."""
    rung = Path(rung_dir).name
    base = f"{api_url}video/{video_id}/"
    if storage is not None:
        sizes = {item.key.rsplit("/", 1)[1]: item.size for item in storage.list(f"{rung_dir}/")
                 if item.key.endswith(".ts")}
    else:
        sizes = {path.name: path.stat().st_size for path in sorted(Path(rung_dir).glob("segment_*.ts"))}
    result = SoakResult()
    stop_at = time.monotonic() + seconds

    def fetch(session: requests.Session, url: str, size: int | None = None) -> None:
        try:
            response = session.get(url, timeout=15)
        except requests.RequestException as error:
            result.errors.append(f"{url}: {error!r}")
            return
        if response.status_code != 200 or (size is not None and len(response.content) != size):
            result.errors.append(f"{url}: {response.status_code}, {len(response.content)} bytes (expected {size})")
        result.requests["segment" if size is not None else "other"] += 1

    def viewer() -> None:
        with requests.Session() as session:
            session.cookies.update(cookies)
            while time.monotonic() < stop_at:
                for url in (api_url + "video/", base + "master.m3u8", f"{base}{rung}/index.m3u8"):
                    fetch(session, url)
                for name, size in sizes.items():
                    if time.monotonic() >= stop_at:
                        return
                    fetch(session, f"{base}{rung}/{name}", size)
                    time.sleep(segment_interval)

    threads = [threading.Thread(target=viewer, daemon=True) for _ in range(viewers)]
    for thread in threads:
        thread.start()
    time.sleep(min(10.0, seconds / 4))
    result.baseline_rss = {name: tree_rss_bytes(pid) for name, pid in watched.items()}
    result.peak_rss = dict(result.baseline_rss)
    while time.monotonic() < stop_at:
        time.sleep(min(2.0, max(0.0, stop_at - time.monotonic())))
        for name, pid in watched.items():
            result.peak_rss[name] = max(result.peak_rss[name], tree_rss_bytes(pid))
    for thread in threads:
        thread.join(timeout=30)
    return result
