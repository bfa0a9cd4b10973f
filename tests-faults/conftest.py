"""Fixtures for the fault tests (`make test-faults`): each module gets a fresh private stack.

Every test here breaks something on purpose, so none of them shares the `make test` stack: they run on
TEST_SLOT (default 6), one module at a time, and a test that needs Redis or PostgreSQL to die gets a
private redis-server or PostgreSQL cluster on the slot's ports, never the machine's shared ones.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from bench.harness import Stack, wait_until

SLOT = int(os.environ.get("TEST_SLOT") or 6)
PORT_BASE = 20000 + SLOT * 1000
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


@pytest.fixture(scope="module")
def make_stack():
    """Factory: a fresh stack of this slot with environment overrides; stopped after the module."""
    started = []

    def factory(**overrides: str) -> Stack:
        stack = Stack(SLOT, **overrides)
        stack.reset()
        started.append(stack)
        stack.up()
        return stack

    yield factory
    for stack in started:
        stack.down()


@pytest.fixture(scope="module")
def stack(make_stack) -> Stack:
    return make_stack()


class PrivateRedis:
    """A redis-server of our own (no persistence, like the shared one) that a test may stop and start."""

    def __init__(self, port: int, log_dir: Path):
        self.port = port
        self.log = log_dir / f"redis-{port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--logfile", str(self.log)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_until(lambda: subprocess.run(["redis-cli", "-p", str(self.port), "ping"],
                                          capture_output=True, text=True, check=False).stdout.strip() == "PONG",
                   10, what=f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class PrivatePostgres:
    """A throw-away PostgreSQL 15 cluster (initdb into a temp dir, pg_ctl), run as user postgres."""

    def __init__(self, port: int):
        self.port = port
        self.directory = Path(tempfile.mkdtemp(prefix="videoflix-pg-"))
        shutil.chown(self.directory, "postgres", "postgres")
        self.data = self.directory / "data"

    def _as_postgres(self, *command: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True, timeout=120)

    def pg_ctl(self, action: str, *options: str) -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *options, action)

    def init_and_start(self) -> None:
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                          "--no-sync")
        self.pg_ctl("start", *self._server_options())

    def restart(self, downtime: float) -> None:
        """Stop (fast: every session is cut), stay down for `downtime` seconds, start again."""
        self.pg_ctl("stop", "-m", "fast")
        time.sleep(downtime)
        self.pg_ctl("start", *self._server_options())

    def _server_options(self) -> list[str]:
        # The server logs to a file: its output must not hold our pipes open.
        return ["-l", str(self.directory / "postgres.log"),
                "-o", f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"]

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory):
    server = PrivateRedis(PORT_BASE + 379, tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def private_postgres():
    server = PrivatePostgres(PORT_BASE + 432)
    server.init_and_start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def private_postgres_env(private_postgres) -> dict[str, str]:
    """Overrides that move this slot's databases (same names) onto the private cluster."""
    defaults = Stack(SLOT).env
    overrides = {"PGPORT": str(private_postgres.port)}
    for key in ("AUTH_DATABASE_URL", "CATALOG_DATABASE_URL"):
        overrides[key] = private_postgres.url(defaults[key].rsplit("/", 1)[1])
    return overrides
