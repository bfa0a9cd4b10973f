"""Segment delivery out of S3 (MEDIA_STORAGE=s3) beside local sendfile: requests/s of one real 1080p
segment, 16 and 64 connections (wrk), the same token and visibility checks on every variant.

(l)  the stack's gateway, local disk: JWT + visibility check (cached), nginx sends the file
(h)  the same gateway config rendered with MEDIA_STORAGE=s3, the segment in its local cache (a hit)
(m)  the same, its media cache taken out of the segment route: every request a signed GET to S3 (a miss)
The bucket is a SeaweedFS of the benchmark's own on loopback (shared/tests/seaweedfs.py), read with a
read-only key; the checks run against the stack's own auth and catalog, as for (l).
Target: (h) at least 75% of (l).
"""
from __future__ import annotations

import requests

from shared.tests.seaweedfs import SeaweedFS

from .measure import WRK_COLUMNS, no_errors_check, print_checks, print_table, ratio, save, wrk_rounds
from .servers import derived_gateway, segments_uncached

CONNECTIONS = (16, 64)
SECONDS = 5
ROUNDS = 2
TARGET_HIT_SHARE_OF_LOCAL = 0.75


def run(context) -> dict:
    stack, session = context.stack, context.session
    video_id = context.video_with_rung("1080p")
    rung_dir = stack.media_dir / "hls" / str(video_id) / "1080p"
    segment = "segment_001.ts" if (rung_dir / "segment_001.ts").exists() else "segment_000.ts"
    expected = (rung_dir / segment).read_bytes()
    public_path = f"/api/video/{video_id}/1080p/{segment}"
    cookie = {"Cookie": session.cookie_header()}
    hit_port, miss_port = context.port(10), context.port(11)

    with SeaweedFS(stack.var_dir / "bench" / "seaweedfs") as s3:
        s3.put(f"hls/{video_id}/1080p/{segment}", expected)
        environment = s3.gateway_environment()
        with derived_gateway(stack, "s3", hit_port, None, environment) as hit, \
                derived_gateway(stack, "s3-uncached", miss_port, segments_uncached, environment) as miss:
            variants = {
                "l": ("local disk: nginx sendfile", stack.gateway_url + public_path, cookie),
                "h": ("S3: gateway cache hit", hit.url + public_path, cookie),
                "m": ("S3: every request to S3 (miss)", miss.url + public_path, cookie),
            }
            for key, (label, url, _) in variants.items():  # also fills (h)'s cache
                response = requests.get(url, headers=cookie, timeout=10)
                assert response.status_code == 200 and response.content == expected, \
                    f"({key}) {label} did not serve the segment: {response.status_code} {response.text[:200]}"
            cache_status = requests.get(variants["h"][1], headers=cookie, timeout=10).headers.get("X-Cache-Status")
            assert cache_status == "HIT", f"(h) is no cache hit: X-Cache-Status {cache_status}"
            results, rows, runs = wrk_rounds(variants, CONNECTIONS, SECONDS, ROUNDS)

    ratios = {f"{c} connections": {
        "h/l": ratio(results[c]["h"]["requests_per_s"], results[c]["l"]["requests_per_s"]),
        "m/l": ratio(results[c]["m"]["requests_per_s"], results[c]["l"]["requests_per_s"]),
    } for c in CONNECTIONS}
    checks = {"(h) >= 75% of (l)": {
        "met": all(r["h/l"] >= TARGET_HIT_SHARE_OF_LOCAL for r in ratios.values()),
        "detail": ", ".join(f"{name}: h/l = {r['h/l']:.2f}" for name, r in ratios.items()),
    }, "no errors": no_errors_check(rows)}
    print_table(f"Segment delivery from S3: {len(expected) / 2**20:.2f} MiB 1080p segment, wrk {SECONDS} s, "
                f"best of {ROUNDS}", WRK_COLUMNS, rows)
    print_table("Ratios (requests/s)", ["", "h/l (hit)", "m/l (miss)"],
                [[name, r["h/l"], r["m/l"]] for name, r in ratios.items()])
    print_checks(checks)
    data = {"segment_bytes": len(expected), "seconds_per_run": SECONDS, "rounds": ROUNDS,
            "variants": {key: label for key, (label, _, _) in variants.items()},
            "results": {str(c): measured for c, measured in results.items()}, "ratios": ratios, "checks": checks,
            "all_rounds": [{str(c): measured for c, measured in run.items()} for run in runs]}
    save("s3_segments", data)
    return data
