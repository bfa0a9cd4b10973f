"""The transcoder's Prometheus metrics. The workers have no HTTP port: rq work horses (one process per
job) write their samples into PROMETHEUS_MULTIPROC_DIR, and the `metrics` exporter process of the stack
(exporter.py) serves them with the queue's figures. The label `rung` is one rung (`360p`) or, for a
split job, the rungs it encodes together (`720p+1080p`).
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Iterator

from prometheus_client import Counter, Histogram

JOB_SECONDS = Histogram(
    "videoflix_transcode_job_seconds", "Wall time of an encoding job that succeeded, by rung",
    ["rung"], buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600),
)
JOB_FAILURES = Counter("videoflix_transcode_job_failures", "Encoding jobs that raised, by rung", ["rung"])
REALTIME_FACTOR = Histogram(
    "videoflix_transcode_realtime_factor", "Seconds of video encoded per second of wall time, by rung",
    ["rung"], buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
)
SEGMENTS = Counter("videoflix_transcode_segments", "HLS segments published, by rung", ["rung"])
SOURCE_SECONDS = Counter("videoflix_transcode_source_seconds", "Seconds of video encoded, by rung", ["rung"])


def rung_label(rungs: list[str]) -> str:
    return "+".join(rungs)


@contextlib.contextmanager
def encoding(rungs: list[str], duration: float) -> Iterator[None]:
    """Measure one encoding of `duration` seconds of source into `rungs`: time and realtime factor on
    success, a failure otherwise (the exception goes on)."""
    label = rung_label(rungs)
    started = time.monotonic()
    try:
        yield
    except BaseException:
        JOB_FAILURES.labels(label).inc()
        raise
    seconds = max(time.monotonic() - started, 1e-6)
    JOB_SECONDS.labels(label).observe(seconds)
    SOURCE_SECONDS.labels(label).inc(duration)
    REALTIME_FACTOR.labels(label).observe(duration / seconds)


def count_segments(rung: str, directory: Path) -> None:
    """Count the segments of a rung just published."""
    SEGMENTS.labels(rung).inc(sum(1 for _ in directory.glob("*.ts")))
