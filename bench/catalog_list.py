"""5. Catalog list: p50/p99 of GET /api/video/ through the gateway with 100 and with 10,000 ready videos
(rows inserted straight into the catalog database), the whole list and one page (`?limit=50`)."""
from __future__ import annotations

import time

from .measure import percentile, print_table, ratio, save

SIZES = (100, 10_000)
SAMPLES = 40
MAX_SECONDS_PER_VARIANT = 30
CATEGORY = "bench-list"


def insert_ready_videos(stack, count: int) -> None:
    stack.psql(stack.env["CATALOG_DATABASE_URL"], f"""
        INSERT INTO videos (title, description, category, owner_id, created_at, updated_at, status, progress,
                            original_filename)
        SELECT 'bench video ' || g, 'generated for the list benchmark', '{CATEGORY}', 1,
               now() - g * interval '1 second', now(), 'ready', 100, 'bench.mp4'
        FROM generate_series(1, {count}) AS g""")


def sample(session, url: str) -> dict:
    latencies, size = [], 0
    deadline = time.monotonic() + MAX_SECONDS_PER_VARIANT
    while len(latencies) < SAMPLES and time.monotonic() < deadline:
        started = time.perf_counter()
        response = session.get(url)
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text[:200]
        size = len(response.content)
    return {"samples": len(latencies), "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "bytes": size, "items": len(response.json())}


def run(context) -> dict:
    stack, session = context.stack, context.session
    url = f"{stack.api_url}video/"
    results, inserted = {}, 0
    try:
        for size in SIZES:
            insert_ready_videos(stack, size - inserted)
            inserted = size
            session.get(url)  # warm up: connections, query plan
            results[f"{size} videos, whole list"] = sample(session, url)
            results[f"{size} videos, ?limit=50"] = sample(session, url + "?limit=50")
    finally:
        stack.psql(stack.env["CATALOG_DATABASE_URL"], f"DELETE FROM videos WHERE category = '{CATEGORY}'")

    small, large = (results[f"{size} videos, whole list"] for size in SIZES)
    rows = [[name, r["items"], r["bytes"] / 1024, r["p50_ms"], r["p99_ms"], r["samples"]] for name, r in results.items()]
    ratios = {"p50 10k / 100 (whole list)": ratio(large["p50_ms"], small["p50_ms"]),
              "p50 whole / page (10k)": ratio(large["p50_ms"], results["10000 videos, ?limit=50"]["p50_ms"])}
    print_table("Catalog list: GET /api/video/ through the gateway",
                ["variant", "items", "KiB", "p50 ms", "p99 ms", "samples"], rows)
    print_table("Ratios", ["", "value"], [[name, value] for name, value in ratios.items()])
    data = {"results": results, "ratios": ratios}
    save("catalog", data)
    return data
