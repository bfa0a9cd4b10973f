"""2. Segment delivery: requests/s and MB/s of one real 1080p segment, 16 and 64 connections (wrk).

(a)  the gateway as deployed: JWT check (auth_request + verified-token cache), nginx sends the file
(a') the same gateway with the segment route sent to the streamer, which answers X-Accel-Redirect
(b)  plain nginx serving the file statically (the ceiling)
(c)  nginx -> Flask send_file (Python sends the bytes)
Target: (a) at least 80% of (b).
"""
from __future__ import annotations

import requests

from .measure import WRK_COLUMNS, no_errors_check, print_checks, print_table, ratio, save, wrk_rounds
from .servers import SendFileApp, derived_gateway, reference_nginx, segments_via_streamer

CONNECTIONS = (16, 64)
SECONDS = 5
ROUNDS = 2
TARGET_SHARE_OF_STATIC = 0.8


def run(context) -> dict:
    stack, session = context.stack, context.session
    video_id = context.video_with_rung("1080p")
    rung_dir = stack.media_dir / "hls" / str(video_id) / "1080p"
    segment = "segment_001.ts" if (rung_dir / "segment_001.ts").exists() else "segment_000.ts"
    expected = (rung_dir / segment).read_bytes()
    public_path = f"/api/video/{video_id}/1080p/{segment}"
    file_path = f"/hls/{video_id}/1080p/{segment}"
    cookie = {"Cookie": session.cookie_header()}
    static_port, flask_port, app_port, streamer_port = (context.port(n) for n in range(4))

    with derived_gateway(stack, "via-streamer", streamer_port, segments_via_streamer) as via_streamer, \
            reference_nginx(stack, static_port, flask_port, app_port) as reference, \
            SendFileApp(stack, app_port):
        variants = {
            "a": ("gateway: JWT check + nginx file", stack.gateway_url + public_path, cookie),
            "a'": ("gateway: JWT check + streamer X-Accel", via_streamer.url + public_path, cookie),
            "b": ("plain nginx static", reference.url + file_path, {}),
            "c": ("nginx -> Flask send_file", f"http://127.0.0.1:{flask_port}{file_path}", {}),
        }
        for key, (label, url, headers) in variants.items():
            response = requests.get(url, headers=headers, timeout=10)
            assert response.status_code == 200 and response.content == expected, \
                f"({key}) {label} did not serve the segment: {response.status_code} {response.text[:200]}"
        results, rows, runs = wrk_rounds(variants, CONNECTIONS, SECONDS, ROUNDS)

    ratios = {f"{c} connections": {
        "a/b": ratio(results[c]["a"]["requests_per_s"], results[c]["b"]["requests_per_s"]),
        "a/c": ratio(results[c]["a"]["requests_per_s"], results[c]["c"]["requests_per_s"]),
        "a'/b": ratio(results[c]["a'"]["requests_per_s"], results[c]["b"]["requests_per_s"]),
        "a/a'": ratio(results[c]["a"]["requests_per_s"], results[c]["a'"]["requests_per_s"]),
    } for c in CONNECTIONS}
    checks = {"(a) >= 80% of (b)": {
        "met": all(r["a/b"] >= TARGET_SHARE_OF_STATIC for r in ratios.values()),
        "detail": ", ".join(f"{name}: a/b = {r['a/b']:.2f}" for name, r in ratios.items()),
    }, "no errors": no_errors_check(rows)}
    print_table(f"Segment delivery: {len(expected) / 2**20:.2f} MiB 1080p segment, wrk {SECONDS} s, best of {ROUNDS}",
                WRK_COLUMNS, rows)
    print_table("Ratios (requests/s)", ["", "a/b", "a/c", "a'/b", "a/a'"],
                [[name, r["a/b"], r["a/c"], r["a'/b"], r["a/a'"]] for name, r in ratios.items()])
    print_checks(checks)
    data = {"segment_bytes": len(expected), "seconds_per_run": SECONDS, "rounds": ROUNDS,
            "variants": {key: label for key, (label, _, _) in variants.items()},
            "results": {str(c): measured for c, measured in results.items()}, "ratios": ratios, "checks": checks,
            "all_rounds": [{str(c): measured for c, measured in run.items()} for run in runs]}
    save("segments", data)
    return data
