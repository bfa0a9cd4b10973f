"""`make top`: one screen of live figures of the local stack, read from its Prometheus metrics.

    scripts/top.py [--profile dev|test] [--interval 2] [--once]

Videos waiting, encoding and failed (the rq queue), segments published per second, the transcoders'
realtime factor, gateway requests per second, and the services' error rate (5xx share), as rates
between two scrapes.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("auth", "catalog", "streamer")


def load_stack():
    spec = importlib.util.spec_from_file_location("videoflix_stack", ROOT / "scripts" / "stack.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample at `url`, or [] when it does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            text = response.read().decode()
    except OSError:
        return []
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def total(samples, name: str, **labels) -> float:
    return sum(value for sample, have, value in samples
               if sample == name and all(have.get(k) == v for k, v in labels.items()))


def snapshot(env: dict[str, str]) -> dict[str, float]:
    exporter = scrape(f"http://127.0.0.1:{env['METRICS_PORT']}/metrics")
    figures = {
        "waiting": total(exporter, "videoflix_queue_jobs", state="waiting"),
        "encoding": total(exporter, "videoflix_queue_jobs", state="encoding"),
        "failed": total(exporter, "videoflix_queue_jobs", state="failed"),
        "workers": total(exporter, "videoflix_queue_workers"),
        "segments": total(exporter, "videoflix_transcode_segments_total"),
        "source_seconds": total(exporter, "videoflix_transcode_source_seconds_total"),
        "job_seconds": total(exporter, "videoflix_transcode_job_seconds_sum"),
        "gateway_requests": total(exporter, "nginx_http_requests_total"),
        "active": total(exporter, "nginx_connections", state="active"),
        "up": float(bool(exporter)),
        "requests": 0.0, "errors": 0.0,
    }
    for service in SERVICES:
        for name, labels, value in scrape(f"http://127.0.0.1:{env[f'{service.upper()}_PORT']}/metrics"):
            if name == "flask_http_request_duration_seconds_count":
                figures["requests"] += value
                figures["errors"] += value if labels.get("status", "").startswith("5") else 0
    return figures


def render(before: dict[str, float], after: dict[str, float], seconds: float, env: dict[str, str]) -> str:
    def rate(key: str) -> float:
        return max(after[key] - before[key], 0) / seconds

    requests = after["requests"] - before["requests"]
    errors = after["errors"] - before["errors"]
    encoded = after["job_seconds"] - before["job_seconds"]
    realtime = (after["source_seconds"] - before["source_seconds"]) / encoded if encoded > 0 else None
    overall = after["source_seconds"] / after["job_seconds"] if after["job_seconds"] else None
    lines = [
        f"Videoflix  {time.strftime('%H:%M:%S')}  gateway http://127.0.0.1:{env['GATEWAY_PORT']}/"
        + ("" if after["up"] else "   (metrics exporter not answering: is the stack up?)"),
        "",
        f"  videos waiting   {after['waiting']:>8.0f}      transcoder workers  {after['workers']:>6.0f}",
        f"  encoding now     {after['encoding']:>8.0f}      segments/s          {rate('segments'):>6.1f}",
        f"  failed jobs      {after['failed']:>8.0f}      realtime factor     "
        + (f"{realtime:>6.2f}" if realtime is not None else "     -")
        + (f"  (since start {overall:.2f})" if overall else ""),
        "",
        f"  gateway req/s    {rate('gateway_requests'):>8.1f}      open connections    {after['active']:>6.0f}",
        f"  service req/s    {requests / seconds:>8.1f}      error rate (5xx)    "
        + (f"{100 * errors / requests:>5.1f}%" if requests else "     -"),
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=["dev", "test"], default="dev")
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--once", action="store_true", help="print one screen and exit")
    options = parser.parse_args()
    env = load_stack().build_env(options.profile)
    before, started = snapshot(env), time.monotonic()
    try:
        while True:
            time.sleep(options.interval)
            after, now = snapshot(env), time.monotonic()
            screen = render(before, after, now - started, env)
            if options.once:
                print(screen)
                return 0
            print("\033[H\033[2J" + screen + "\n\n  (Ctrl-C to quit)", flush=True)
            before, started = after, now
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
