"""Real media for the transcoder's tests: tiny clips generated with ffmpeg's testsrc2 and sine sources."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis import Redis
from rq.job import Job

from shared.tests.seaweedfs import seaweedfs  # noqa: F401 - the session's S3 server

REPO = Path(__file__).resolve().parents[3]


def generate_clip(path: Path, width: int, height: int, seconds: float, audio: bool = True,
                  rate: int = 25, extra: list[str] | None = None) -> Path:
    inputs = ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={rate}:duration={seconds}"]
    if audio:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    codecs += ["-c:a", "aac", "-shortest"] if audio else []
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *inputs, *codecs, *(extra or []),
                    str(path)], check=True)
    return path


@pytest.fixture(scope="session")
def make_clip():
    return generate_clip


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip_360p(media) -> Path:
    """2 s, 640x360, 25 fps, with audio."""
    return generate_clip(media / "clip-360p.mp4", 640, 360, 2)


@pytest.fixture(scope="session")
def clip_480p_silent(media) -> Path:
    """3 s, 854x480, no audio."""
    return generate_clip(media / "clip-480p-silent.mp4", 854, 480, 3, audio=False)


@pytest.fixture(scope="session")
def text_as_mp4(media) -> Path:
    path = media / "not-a-video.mp4"
    path.write_text("This is a text file, renamed to look like a video.\n")
    return path


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis database of the transcoder's tests alone (flushed by them): db 14 unless overridden."""
    return os.environ.get("TRANSCODER_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")


@pytest.fixture
def redis(redis_url):
    connection = Redis.from_url(redis_url)
    wait_for(lambda: not blocked_clients(connection), timeout=10)
    connection.flushdb()
    yield connection
    connection.flushdb()


def blocked_clients(connection: Redis) -> list[dict]:
    """The clients of this Redis database blocked in a command: an idle worker's BLMOVE. A killed worker's
    socket lives on in its scheduler child until the kernel has killed that too; a job pushed meanwhile
    would go to the dead worker, and rq would fail it as stuck a minute later (suspected, not proven, in
    a rare CI timeout)."""
    db = str(connection.connection_pool.connection_kwargs.get("db", 0))
    return [client for client in connection.client_list() if client["db"] == db and "b" in client["flags"]]


@pytest.fixture
def start_worker(redis_url):
    started = []

    def start() -> subprocess.Popen:
        env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(REPO),
               "LOG_LEVEL": os.environ.get("WORKER_LOG_LEVEL", "WARNING")}
        process = subprocess.Popen([sys.executable, "-m", "services.transcoder.worker"], cwd=REPO, env=env,
                                   start_new_session=True)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            # The worker and its scheduler, which shares its Redis sockets (the work horse has its own session).
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for(condition, timeout=60.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {condition}")


def wait_for_worker(condition, worker: subprocess.Popen, redis: Redis, timeout=60.0):
    """wait_for, for a condition a worker process should bring about; on timeout the assertion says
    whether the worker still runs and what Redis holds, and the worker and its children (work horse,
    scheduler) write their threads' stacks into the test's captured stderr (SIGUSR1: faulthandler)."""
    try:
        return wait_for(condition, timeout=timeout)
    except AssertionError:
        if worker.poll() is None:
            for pid in [worker.pid, *children(worker.pid)]:
                os.kill(pid, signal.SIGUSR1)
                time.sleep(0.5)  # one process's stacks after the other's, not interleaved
        keys = {key.decode(): redis.type(key).decode() for key in redis.keys("*")}
        raise AssertionError(f"timed out waiting for {condition}: worker exit code {worker.poll()}, "
                             f"redis keys {keys}, jobs {jobs_in(redis, keys)}") from None


def jobs_in(redis: Redis, keys: dict[str, str]) -> dict[str, dict[str, str]]:
    """Each job among `keys` (name: Redis type): its status, worker and times, and the last line of its
    exception: what became of it."""
    jobs = {}
    ids = [key.removeprefix("rq:job:") for key, kind in keys.items() if key.startswith("rq:job:") and kind == "hash"]
    for job in filter(None, Job.fetch_many(ids, connection=redis)):
        result = job.latest_result()
        jobs[job.id] = {"status": str(job.get_status(refresh=False)), "worker": str(job.worker_name),
                        "enqueued": str(job.enqueued_at), "started": str(job.started_at), "ended": str(job.ended_at),
                        "exception": (result.exc_string or "").strip().splitlines()[-1:] if result else None}
    return jobs


def children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def work_horse(worker_pid: int) -> int | None:
    """The worker's work horse: the child leading its own session (rq's scheduler, also a child, does not)."""
    for child in children(worker_pid):
        try:
            session = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[3])
        except (OSError, IndexError):
            continue
        if session == child:
            return child
    return None
