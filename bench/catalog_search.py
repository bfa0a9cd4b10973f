"""6. Catalog search: p50/p99 of GET /api/video/?q=...&category=... through the gateway with 100,000 ready
videos (rows inserted straight into the catalog database), side by side with the plain list's page
(`?limit=50`): a word in one video, a word in 27% of them, a three-word phrase, a category filter, and
both together."""
from __future__ import annotations

from .catalog_list import sample
from .measure import print_table, ratio, save

COUNT = 100_000
CATEGORY_PREFIX = "bench-search"
# Ten common words: each video's title holds one of them, its description two more (so "ocean" is in
# about 27% of the videos).
WORDS = ("river", "mountain", "city", "forest", "ocean", "desert", "village", "harbour", "valley", "island")
VARIANTS = {
    "plain list, ?limit=50": "?limit=50",
    "q: word in 1 video": "?q=reel42424&limit=50",
    "q: word in 27% of videos": "?q=ocean&limit=50",
    "q: phrase": "?q=%22ocean%20at%20dawn%22&limit=50",
    "category (1/20 of videos)": f"?category={CATEGORY_PREFIX}-7&limit=50",
    "q + category": f"?q=ocean&category={CATEGORY_PREFIX}-4&limit=50",
}


def insert_videos(stack) -> None:
    words = "ARRAY[" + ",".join(f"'{word}'" for word in WORDS) + "]"
    stack.psql(stack.env["CATALOG_DATABASE_URL"], f"""
        INSERT INTO videos (title, description, category, owner_id, created_at, updated_at, status, progress,
                            original_filename)
        SELECT 'Reel' || g || ' ' || ({words})[g % 10 + 1],
               'Filmed by the ' || ({words})[(g / 10) % 10 + 1] || ' at dawn, then the '
                 || ({words})[(g / 100) % 10 + 1] || ' at night',
               '{CATEGORY_PREFIX}-' || (g % 20), g % 500, now() - g * interval '1 second', now(), 'ready', 100,
               'bench.mp4'
        FROM generate_series(1, {COUNT}) AS g;
        ANALYZE videos""")


def run(context) -> dict:
    stack, session = context.stack, context.session
    url = f"{stack.api_url}video/"
    results = {}
    try:
        insert_videos(stack)
        for name, query in VARIANTS.items():
            session.get(url + query)  # warm up: connections, query plan
            results[name] = sample(session, url + query)
    finally:
        stack.psql(stack.env["CATALOG_DATABASE_URL"], f"DELETE FROM videos WHERE category LIKE '{CATEGORY_PREFIX}-%'")

    plain = results["plain list, ?limit=50"]["p50_ms"]
    rows = [[name, r["items"], r["p50_ms"], r["p99_ms"], ratio(r["p50_ms"], plain), r["samples"]]
            for name, r in results.items()]
    print_table(f"Catalog search: GET /api/video/ with {COUNT:,} ready videos, through the gateway",
                ["variant", "items", "p50 ms", "p99 ms", "p50 / plain page", "samples"], rows)
    data = {"videos": COUNT, "results": results,
            "ratios": {name: ratio(r["p50_ms"], plain) for name, r in results.items()}}
    save("catalog_search", data)
    return data
