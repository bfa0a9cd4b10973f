"""The `metrics` process of the stack: Prometheus figures of what has no HTTP port of its own.

    python -m services.transcoder.exporter --port 5090 --multiprocess-dir var/metrics/transcoder \
        --stub-status http://127.0.0.1:5091/stub_status

GET /metrics (on 127.0.0.1 only) serves:
- the transcoder workers' samples from their multiprocess directory (metrics.py: job durations, failures
  and realtime factor per rung, segments published);
- the rq queue `transcode`: jobs waiting, encoding (started), failed, and workers (read from Redis at
  every scrape);
- the gateway's nginx stub_status as nginx_* gauges and counters (connections, requests).
"""
from __future__ import annotations

import argparse
import logging
import re
import threading
import urllib.request

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from redis import Redis
from rq import Queue, Worker

from videoflix_shared import Settings
from videoflix_shared.logs import configure_logging

from .jobs import QUEUE

log = logging.getLogger(__name__)


class QueueCollector:
    """rq's own registries of the transcode queue, read at scrape time."""

    def __init__(self, connection: Redis):
        self.queue = Queue(QUEUE, connection=connection)

    def collect(self):
        jobs = GaugeMetricFamily("videoflix_queue_jobs", "Jobs of the transcode queue by state", labels=["state"])
        workers = GaugeMetricFamily("videoflix_queue_workers", "rq workers listening on the transcode queue")
        try:
            jobs.add_metric(["waiting"], self.queue.count)
            jobs.add_metric(["encoding"], self.queue.started_job_registry.count)
            jobs.add_metric(["failed"], self.queue.failed_job_registry.count)
            jobs.add_metric(["scheduled"], self.queue.scheduled_job_registry.count)
            workers.add_metric([], Worker.count(queue=self.queue))
        except OSError as error:  # Redis down: the scrape still answers, without queue figures
            log.warning("queue figures unavailable", extra={"fields": {"error": repr(error)}})
            return
        yield jobs
        yield workers


STUB_STATUS = re.compile(
    r"Active connections:\s*(?P<active>\d+).*?\n\s*(?P<accepts>\d+)\s+(?P<handled>\d+)\s+(?P<requests>\d+)"
    r".*?Reading:\s*(?P<reading>\d+)\s+Writing:\s*(?P<writing>\d+)\s+Waiting:\s*(?P<waiting>\d+)", re.S)


def parse_stub_status(text: str) -> dict[str, int]:
    match = STUB_STATUS.search(text)
    if not match:
        raise ValueError(f"not nginx stub_status output: {text[:80]!r}")
    return {key: int(value) for key, value in match.groupdict().items()}


class NginxCollector:
    """The gateway's stub_status page (an internal listener) as Prometheus metrics."""

    def __init__(self, url: str):
        self.url = url

    def collect(self):
        try:
            with urllib.request.urlopen(self.url, timeout=2) as response:
                status = parse_stub_status(response.read().decode())
        except (OSError, ValueError) as error:
            log.warning("gateway status unavailable", extra={"fields": {"error": repr(error)}})
            return
        connections = GaugeMetricFamily("nginx_connections", "Gateway client connections by state", labels=["state"])
        for state in ("active", "reading", "writing", "waiting"):
            connections.add_metric([state], status[state])
        yield connections
        yield CounterMetricFamily("nginx_connections_accepted", "Client connections accepted", status["accepts"])
        yield CounterMetricFamily("nginx_connections_handled", "Client connections handled", status["handled"])
        yield CounterMetricFamily("nginx_http_requests", "Client requests served by the gateway", status["requests"])


def build_registry(multiprocess_dir: str, redis_url: str, stub_status_url: str) -> CollectorRegistry:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=multiprocess_dir)
    registry.register(QueueCollector(Redis.from_url(redis_url, socket_timeout=2)))
    if stub_status_url:
        registry.register(NginxCollector(stub_status_url))
    return registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--multiprocess-dir", required=True)
    parser.add_argument("--stub-status", default="", help="URL of the gateway's stub_status page")
    options = parser.parse_args()
    settings = Settings.from_env()
    configure_logging("metrics", settings.log_level)
    registry = build_registry(options.multiprocess_dir, settings.redis_url, options.stub_status)
    server, thread = start_http_server(options.port, options.host, registry=registry)
    log.info("metrics exporter listening", extra={"fields": {"port": options.port}})
    threading.Event().wait()  # serve until SIGTERM ends the process


if __name__ == "__main__":
    main()
