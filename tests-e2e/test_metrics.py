"""Prometheus metrics: every service serves GET /metrics on its internal port, the `metrics` exporter
serves the transcoder's, the queue's and the gateway's figures, and the public gateway serves none."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT, generate_clip

TIMEOUT = 150


def samples(url: str) -> dict[tuple[str, frozenset], float]:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text[:200]
    assert response.headers["Content-Type"].startswith("text/plain")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(found: dict, name: str, **labels) -> float | None:
    """Sum of the samples named `name` whose labels include `labels` (None when there is none)."""
    matching = [v for (sample, have), v in found.items() if sample == name and set(labels.items()) <= have]
    return sum(matching) if matching else None


def service_url(stack_env, name: str) -> str:
    return f"http://127.0.0.1:{stack_env[f'{name.upper()}_PORT']}"


@pytest.mark.parametrize("service, method, path, rule", [
    ("auth", "POST", "/api/login/", "/api/login/"),
    ("catalog", "GET", "/api/video/", "/api/video/"),
    ("streamer", "GET", "/api/video/1/master.m3u8", "/api/video/<video_id>/master.m3u8"),
])
def test_every_service_counts_requests_per_route(stack_env, service, method, path, rule):
    base = service_url(stack_env, service)
    before = value(samples(f"{base}/metrics"), "flask_http_request_duration_seconds_count", url_rule=rule) or 0
    for _ in range(3):  # two gunicorn workers: the count must add up whichever one answers
        requests.request(method, base + path, json={}, timeout=10)
    after = samples(f"{base}/metrics")
    assert value(after, "flask_http_request_duration_seconds_count", url_rule=rule) == before + 3
    assert value(after, "flask_http_request_duration_seconds_bucket", url_rule=rule, le="+Inf") >= 3


def test_exporter_serves_queue_and_gateway_figures(stack_env):
    found = samples(f"{service_url(stack_env, 'metrics')}/metrics")
    for state in ("waiting", "encoding", "failed"):
        assert value(found, "videoflix_queue_jobs", state=state) is not None, state
    assert value(found, "videoflix_queue_workers") >= 1
    assert value(found, "nginx_http_requests_total") > 0
    assert value(found, "nginx_connections", state="active") >= 1


def test_upload_and_transcode_are_measured(logged_in_client, stack_env, tmp_path):
    catalog = f"{service_url(stack_env, 'catalog')}/metrics"
    exporter = f"{service_url(stack_env, 'metrics')}/metrics"
    uploaded_before = value(samples(catalog), "videoflix_upload_bytes_total") or 0
    segments_before = value(samples(exporter), "videoflix_transcode_segments_total", rung="360p") or 0
    clip = generate_clip(tmp_path / "measured.mp4", 640, 360, 3)
    with open(clip, "rb") as handle:
        response = logged_in_client.post("video/upload/", files={"file": ("measured.mp4", handle)},
                                         data={"title": "Measured", "description": "d", "category": "c"})
    assert response.status_code == 201, response.text
    video_id = response.json()["id"]
    deadline = time.monotonic() + TIMEOUT
    while logged_in_client.get(f"video/{video_id}/").json()["status"] != "ready":
        assert time.monotonic() < deadline, "the clip was not transcoded in time"
        time.sleep(0.5)

    assert value(samples(catalog), "videoflix_upload_bytes_total") == uploaded_before + clip.stat().st_size
    found = samples(exporter)
    assert value(found, "videoflix_transcode_segments_total", rung="360p") > segments_before
    assert value(found, "videoflix_transcode_job_seconds_count", rung="360p") >= 1
    assert value(found, "videoflix_transcode_realtime_factor_count", rung="360p") >= 1
    assert value(found, "videoflix_transcode_realtime_factor_sum", rung="360p") > 0


@pytest.mark.parametrize("path", ["/metrics", "/stub_status", "/nginx_status", "/api/metrics",
                                  "/api/video/metrics", "/metrics/"])
def test_the_public_gateway_serves_no_metrics(gateway_url, path):
    response = requests.get(gateway_url + path, timeout=10)
    assert response.status_code == 404
    assert "_total" not in response.text and "Active connections" not in response.text


def test_top_shows_the_figures_of_the_running_stack(stack_env):
    """`make top` (scripts/top.py) reads the exporter and the services; --once prints one screen."""
    result = subprocess.run([sys.executable, "scripts/top.py", "--profile", "test", "--once", "--interval", "1"],
                            cwd=ROOT, env={**os.environ, **stack_env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "not answering" not in result.stdout
    workers = next(line for line in result.stdout.splitlines() if "transcoder workers" in line)
    assert workers.split()[-1] == stack_env["TRANSCODER_WORKERS"]
    for figure in ("videos waiting", "encoding now", "failed jobs", "segments/s", "error rate"):
        assert figure in result.stdout
