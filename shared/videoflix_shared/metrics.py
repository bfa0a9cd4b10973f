"""Prometheus metrics of a Flask service at GET /metrics on its own (internal) port.

Per route (the URL rule, not the raw path): request counts by status and latency histograms, from
prometheus-flask-exporter. Under gunicorn every worker is a process of its own: with
PROMETHEUS_MULTIPROC_DIR set (the local stack sets one per service) the workers write their samples
there and /metrics sums them, whichever worker answers. The gateway never routes /metrics.
"""
from __future__ import annotations

from flask import Flask
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

from .config import Settings


class _DefaultRegistryMetrics:
    """The process's own metrics (module-level counters such as upload bytes) on an app's registry."""

    def collect(self):
        yield from REGISTRY.collect()


def init_metrics(app: Flask, settings: Settings) -> PrometheusMetrics:
    options = {"group_by": "url_rule", "excluded_paths": ["^/healthz$", "^/metrics$"]}
    if settings.metrics_multiprocess_dir:
        # MultiProcessCollector reads every file, module-level metrics included.
        return GunicornInternalPrometheusMetrics(app, **options)
    # One registry per app: unit tests build many apps in one process.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_DefaultRegistryMetrics())
    return PrometheusMetrics(app, registry=registry, **options)
