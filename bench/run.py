"""`make bench [BENCH=name ...]`: start a private stack, run the benchmarks, print tables, write JSON.

    python -m bench.run                  # all, in this order: transcode segments s3-segments jwt upload catalog
                                         # search s3-pipeline (last: it replaces the stack by one on S3)
    python -m bench.run s3-upload        # s3-pipeline's 1 GiB upload alone (not in the default run)
    python -m bench.run segments jwt     # only these

The stack runs on TEST_SLOT (default 7: gateway on port 27000), from a fresh state, and is stopped at
the end. Results: bench/results/<name>.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from . import catalog_list, catalog_search, jwt_check, s3_segments, segments, transcode, upload
from .harness import Stack, make_clip, register_and_login, wait_for_ladder
from .harness import upload as upload_clip


def s3_pipeline(context) -> dict:
    from . import s3_pipeline  # boto3 and the storage interface: only for this benchmark

    return s3_pipeline.run(context)


def s3_upload(context) -> dict:
    from . import s3_pipeline

    return s3_pipeline.run_upload(context)


BENCHMARKS = {
    "transcode": transcode.run,
    "segments": segments.run,
    "s3-segments": s3_segments.run,
    "jwt": jwt_check.run,
    "upload": upload.run,
    "catalog": catalog_list.run,
    "search": catalog_search.run,
    "s3-pipeline": s3_pipeline,
    "s3-upload": s3_upload,
}
DEFAULT = [name for name in BENCHMARKS if name != "s3-upload"]  # s3-pipeline makes that upload too
DEFAULT_SLOT = 7
PRODUCTION_UPLOAD_LIMIT = 2 * 1024**3


class Context:
    """What the benchmarks share: the stack, a logged-in user, videos already transcoded."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.session = register_and_login(stack)
        self.videos: dict[str, int] = {}  # rung -> a ready video that has it

    def port(self, offset: int) -> int:
        """Ports for the benchmark's own servers, inside this slot's range."""
        return 20000 + self.stack.slot * 1000 + 100 + offset

    def remember_video(self, video_id: int, rungs: list[str]) -> None:
        for rung in rungs:
            self.videos.setdefault(rung, video_id)

    def video_with_rung(self, rung: str) -> int:
        if rung not in self.videos:
            video_id = upload_clip(self.session, make_clip(8, 1920, 1080), "bench segments")["id"]
            detail = wait_for_ladder(self.session, video_id, timeout=300)
            self.remember_video(video_id, [r["rung"] for r in detail["renditions"]])
        return self.videos[rung]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="name", help=f"any of: {', '.join(BENCHMARKS)} (default: all)")
    names = parser.parse_args(argv).names or DEFAULT
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    # The test profile caps uploads at 64 MiB; the benchmark needs the production default.
    stack = Stack(int(os.environ.get("TEST_SLOT") or DEFAULT_SLOT), MAX_UPLOAD_BYTES=str(PRODUCTION_UPLOAD_LIMIT))
    started = time.monotonic()
    print(f"Videoflix benchmarks: {', '.join(names)} on a private stack at {stack.gateway_url} "
          f"({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f})")
    stack.reset()
    context = None
    try:
        stack.up()
        context = Context(stack)
        for name in names:
            BENCHMARKS[name](context)
    finally:
        (context.stack if context else stack).down()  # s3-pipeline replaces the context's stack
    print(f"\nall done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
