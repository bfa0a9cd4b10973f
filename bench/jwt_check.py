"""3. Gateway JWT check: latency of a tiny protected response with and without the check.

The response is a 16-byte file on the segment route of a ready video (no Python involved), fetched
through three gateways that differ only in that route: no check, the check as deployed (auth_request to
a cache of answers per video and token), and the check without its cache (RSA verification in njs and
the catalog's answer on every request).
p50/p99 come from wrk with one connection (no queueing); requests/s with 16 connections.
"""
from __future__ import annotations

import requests

from .measure import print_table, ratio, save, wrk
from .servers import derived_gateway, segments_without_check, token_check_uncached

TINY_SEGMENT = "segment_999999.ts"
SECONDS = 5


def run(context) -> dict:
    stack, session = context.stack, context.session
    video_id = context.video_with_rung("360p")  # the media check asks the catalog: a real, ready video
    tiny = stack.media_dir / "hls" / str(video_id) / "360p" / TINY_SEGMENT
    tiny.write_bytes(b"G" * 16)
    path = f"/api/video/{video_id}/360p/{TINY_SEGMENT}"
    cookie = {"Cookie": session.cookie_header()}
    try:
        with derived_gateway(stack, "no-check", context.port(10), segments_without_check) as unchecked, \
                derived_gateway(stack, "uncached-check", context.port(11), token_check_uncached) as uncached:
            variants = {
                "no check": unchecked.url,
                "check (deployed, cached)": stack.gateway_url,
                "check without cache": uncached.url,
            }
            for label, base in variants.items():
                answer = requests.get(base + path, headers=cookie, timeout=10)
                assert answer.status_code == 200 and len(answer.content) == 16, f"{label}: {answer.status_code}"
                refused = requests.get(base + path, timeout=10).status_code
                assert (refused == 200) == (label == "no check"), f"{label}: no cookie gave {refused}"
            single = {label: wrk(base + path, 1, SECONDS, cookie, threads=1) for label, base in variants.items()}
            loaded = {label: wrk(base + path, 16, SECONDS, cookie) for label, base in variants.items()}
    finally:
        tiny.unlink(missing_ok=True)

    baseline = single["no check"]
    rows = [[label, single[label]["p50_ms"], single[label]["p99_ms"],
             ratio(single[label]["p50_ms"], baseline["p50_ms"]), ratio(single[label]["p99_ms"], baseline["p99_ms"]),
             loaded[label]["requests_per_s"], ratio(loaded[label]["requests_per_s"], loaded["no check"]["requests_per_s"])]
            for label in variants]
    print_table(f"Gateway JWT check: 16-byte protected file, wrk {SECONDS} s per run",
                ["variant", "p50 ms (1 conn)", "p99 ms", "p50 x", "p99 x", "req/s (16 conns)", "req/s x"], rows)
    data = {"seconds_per_run": SECONDS, "one_connection": single, "sixteen_connections": loaded,
            "ratios_to_no_check": {row[0]: {"p50": row[3], "p99": row[4], "requests_per_s": row[6]} for row in rows}}
    save("jwt", data)
    return data
