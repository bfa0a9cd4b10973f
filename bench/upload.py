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

from .harness import tree_rss_bytes
from .measure import print_checks, print_table, ratio, save

SIZE = 1024**3
CHUNK = 1024**2
PEAK_RSS_TARGET = 150 * 1024**2


class PeakMemory(threading.Thread):
    """Samples the RSS of a process tree every 50 ms until stopped; keeps the first and the peak value."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.baseline = self.peak = tree_rss_bytes(pid)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            self.peak = max(self.peak, tree_rss_bytes(self.pid))


def local_write_seconds(source, target) -> float:
    """Copy `source` to `target` in 1 MiB chunks and fsync: what the disk alone can do."""
    started = time.perf_counter()
    with open(source, "rb") as reader, open(target, "wb") as writer:
        while chunk := reader.read(CHUNK):
            writer.write(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    return time.perf_counter() - started


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
        local_seconds = local_write_seconds(source, copy)
        copy.unlink()
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
    rows = [["write to local disk (fsync)", local_seconds, mib / local_seconds, None, None],
            ["upload through the gateway", upload_seconds, mib / upload_seconds,
             catalog.peak / 2**20, (catalog.peak - catalog.baseline) / 2**20]]
    checks = {"catalog peak RSS under 150 MB": {
        "met": catalog.peak < PEAK_RSS_TARGET,
        "detail": f"{catalog.peak / 2**20:.0f} MiB (all catalog processes, {catalog.baseline / 2**20:.0f} MiB idle)"}}
    print_table("Upload: 1 GiB", ["path", "seconds", "MiB/s", "catalog peak RSS MiB", "growth MiB"], rows)
    print(f"  upload / local write speed: {ratio(local_seconds, upload_seconds)}; "
          f"gateway RSS peak {gateway.peak / 2**20:.0f} MiB (idle {gateway.baseline / 2**20:.0f})")
    print_checks(checks)
    data = {"bytes": SIZE, "local_write_s": local_seconds, "upload_s": upload_seconds,
            "upload_over_local_speed": ratio(local_seconds, upload_seconds),
            "catalog_rss_bytes": {"idle": catalog.baseline, "peak": catalog.peak},
            "gateway_rss_bytes": {"idle": gateway.baseline, "peak": gateway.peak}, "checks": checks}
    save("upload", data)
    return data
