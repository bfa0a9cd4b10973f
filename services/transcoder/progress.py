"""ffmpeg's `-progress pipe:1` output turned into a throttled percentage.

ffmpeg writes blocks of `key=value` lines, each ended by `progress=continue` (or `progress=end`).
`out_time_ms` is, despite its name, in microseconds (so is `out_time_us`); either may be `N/A` early on.
"""
from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator

TIME_KEYS = ("out_time_us", "out_time_ms")


def encoded_seconds(lines: Iterable[str]) -> Iterator[float]:
    """One value per progress block: how many seconds of output ffmpeg has written so far."""
    block: dict[str, str] = {}
    for line in lines:
        key, _, value = line.strip().partition("=")
        if key != "progress":
            block[key] = value.strip()
            continue
        for time_key in TIME_KEYS:
            if block.get(time_key, "").lstrip("-").isdigit():
                yield max(0, int(block[time_key])) / 1_000_000
                break
        block = {}


def percent_done(seconds: float, duration: float) -> int:
    if duration <= 0:
        return 0
    return max(0, min(100, int(seconds * 100 / duration)))


class Throttle:
    """Lets a percentage through when it changed and at least `interval` seconds passed since the last."""

    def __init__(self, interval: float = 2.0, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.clock = clock
        self.last_time: float | None = None
        self.last_percent: int | None = None

    def allows(self, percent: int) -> bool:
        now = self.clock()
        if percent == self.last_percent:
            return False
        if self.last_time is not None and now - self.last_time < self.interval:
            return False
        self.last_time, self.last_percent = now, percent
        return True
