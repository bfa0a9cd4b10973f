"""4. Upload: 1 GiB through the gateway (curl, multipart) vs writing the same bytes to local disk.

Measures MB/s of both and the peak resident memory of the catalog (gunicorn master and workers
together) while it receives the file; the file is streamed to disk in chunks, so that peak must stay
under 150 MB. The file is sparse (generated in no time under the stack's var dir) and deleted after;
the video it creates is deleted through the API.
"""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time

from .harness import process_tree, pss_bytes, rss_bytes
from .measure import print_checks, print_table, ratio, save

SIZE = 1024**3
CHUNK = 1024**2
PEAK_RSS_TARGET = 150 * 1024**2
GROWTH_BOUND = 32 * 1024**2


class PeakMemory(threading.Thread):
    """Samples a process tree every 50 ms until stopped: the sum of RSS (shared pages counted in every
    process), the sum of PSS (shared pages split between them) and the largest single RSS."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.idle = self.peak = self.sample()
        self.done = threading.Event()

    def sample(self) -> dict[str, int]:
        members = process_tree(self.pid)
        return {"tree_rss": sum(map(rss_bytes, members)), "tree_pss": sum(map(pss_bytes, members)),
                "largest_process_rss": max(map(rss_bytes, members))}

    def run(self) -> None:
        while not self.done.wait(0.05):
            self.peak = {key: max(value, self.peak[key]) for key, value in self.sample().items()}


def local_write_seconds(source, target, fsync: bool) -> float:
    """Copy `source` to `target` in 1 MiB chunks (then fsync, if asked): what the machine alone can do."""
    started = time.perf_counter()
    with open(source, "rb") as reader, open(target, "wb") as writer:
        while chunk := reader.read(CHUNK):
            writer.write(chunk)
        writer.flush()
        if fsync:
            os.fsync(writer.fileno())
    seconds = time.perf_counter() - started
    target.unlink()
    return seconds


def curl_upload(context, path) -> tuple[dict, float]:
    session = context.session
    command = [
        "curl", "-sS", "--max-time", "600", "-w", "\n%{http_code} %{time_total}",
        "-H", f"Cookie: {session.cookie_header()}", "-H", f"X-CSRFToken: {session.cookies['csrftoken']}",
        "-F", "title=upload bench", "-F", "description=1 GiB of zeros", "-F", "category=bench",
        "-F", f"file=@{path};type=video/mp4", f"{context.stack.api_url}video/upload/",
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    body, status_line = output.rsplit("\n", 1)
    status, seconds = status_line.split()
    assert status == "201", f"upload answered {status}: {body[:300]}"
    return json.loads(body), float(seconds)


def run(context) -> dict:
    stack, session = context.stack, context.session
    work = stack.var_dir / "bench"
    work.mkdir(parents=True, exist_ok=True)
    source, copy = work / "upload-1GiB.bin", work / "local-copy.bin"
    with open(source, "wb") as handle:
        handle.truncate(SIZE)
    try:
        local_write_seconds(source, copy, fsync=False)  # warm-up: the source's pages are cached for all
        # Like the catalog (no fsync: the page cache) and all the way to the disk.
        local_seconds = local_write_seconds(source, copy, fsync=False)
        synced_seconds = local_write_seconds(source, copy, fsync=True)
        catalog, gateway = PeakMemory(stack.pid("catalog")), PeakMemory(stack.pid("gateway"))
        catalog.start()
        gateway.start()
        created, upload_seconds = curl_upload(context, source)
        catalog.done.set()
        gateway.done.set()
        catalog.join()
        gateway.join()
        stored = stack.media_dir / "originals" / str(created["id"])
        stored_size = sum(path.stat().st_size for path in stored.iterdir())
        assert stored_size == SIZE, f"the catalog stored {stored_size} bytes of {SIZE}"
        assert session.delete(f"video/{created['id']}/").status_code == 204
    finally:
        source.unlink(missing_ok=True)
        copy.unlink(missing_ok=True)

    mib = SIZE / 2**20
    peak, idle = catalog.peak, catalog.idle
    rows = [["local write, page cache (as the catalog)", local_seconds, mib / local_seconds, None, None, None],
            ["local write + fsync", synced_seconds, mib / synced_seconds, None, None, None],
            ["upload through the gateway", upload_seconds, mib / upload_seconds, peak["tree_rss"] / 2**20,
             peak["tree_pss"] / 2**20, peak["largest_process_rss"] / 2**20]]
    checks = {
        "catalog peak RSS under 150 MB (all its processes, RSS summed)": {
            "met": peak["tree_rss"] < PEAK_RSS_TARGET,
            "detail": f"{peak['tree_rss'] / 2**20:.0f} MiB, idle {idle['tree_rss'] / 2**20:.0f} MiB"},
        "catalog peak under 150 MB counted as PSS (shared pages once)": {
            "met": peak["tree_pss"] < PEAK_RSS_TARGET,
            "detail": f"{peak['tree_pss'] / 2**20:.0f} MiB, idle {idle['tree_pss'] / 2**20:.0f} MiB"},
        f"the upload adds less than {GROWTH_BOUND // 2**20} MiB (streamed, not buffered)": {
            "met": peak["tree_rss"] - idle["tree_rss"] < GROWTH_BOUND,
            "detail": f"+{(peak['tree_rss'] - idle['tree_rss']) / 2**20:.1f} MiB RSS"},
    }
    print_table("Upload: 1 GiB", ["path", "seconds", "MiB/s", "catalog RSS MiB", "catalog PSS MiB",
                                  "largest process MiB"], rows)
    print(f"  upload speed / local write speed: {ratio(local_seconds, upload_seconds)} (page cache), "
          f"{ratio(synced_seconds, upload_seconds)} (fsync); "
          f"gateway (nginx) RSS peak {gateway.peak['tree_rss'] / 2**20:.0f} MiB "
          f"(idle {gateway.idle['tree_rss'] / 2**20:.0f})")
    print_checks(checks)
    data = {"bytes": SIZE, "local_write_s": local_seconds, "local_write_fsync_s": synced_seconds,
            "upload_s": upload_seconds, "upload_over_local_speed": ratio(local_seconds, upload_seconds),
            "upload_over_local_fsync_speed": ratio(synced_seconds, upload_seconds),
            "catalog_memory_bytes": {"idle": idle, "peak": peak},
            "gateway_memory_bytes": {"idle": gateway.idle, "peak": gateway.peak}, "checks": checks}
    save("upload", data)
    return data
