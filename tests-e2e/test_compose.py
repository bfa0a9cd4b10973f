"""The Docker Compose stack only (`make test-compose`, scripts/test-compose.sh, which sets E2E_STACK_ENV):
a `docker compose restart` of any service loses nothing, and scaled transcoders share one queue."""
from __future__ import annotations

import shlex
import subprocess
import time
import warnings

import pytest
import redis
import rq

from conftest import STACK_ENV, login, register_and_activate
from test_videos import clip, listed_ids, upload, wait_until_ready  # noqa: F401 (clip is a fixture)

pytestmark = pytest.mark.skipif("COMPOSE_COMMAND" not in STACK_ENV,
                                reason="needs the compose stack: make test-compose")

SETTLE_TIMEOUT = 300


def compose(*arguments: str) -> str:
    command = [*shlex.split(STACK_ENV["COMPOSE_COMMAND"]), *arguments]
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=600).stdout


def wait_until_every_container_is_healthy() -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        states = subprocess.run(
            ["docker", "inspect", "-f", "{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
             *compose("ps", "--quiet").split()], check=True, capture_output=True, text=True).stdout.splitlines()
        waiting = [state for state in states if state.split()[1:] not in (["running"], ["running", "healthy"])]
        if not waiting:
            return
        assert time.monotonic() < deadline, f"not healthy after {SETTLE_TIMEOUT}s: {waiting}"
        time.sleep(2)


def eventually(check, what: str, timeout: float = 60):
    """The first request after a restart may meet a connection the restart broke: retry for a while,
    and say so (a warning in pytest's summary), as a retried request is one a user would have seen fail."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, OSError) as error:
            if time.monotonic() > deadline:
                raise
            warnings.warn(f"{what}: retrying after {str(error).splitlines()[0][:200]}")
            time.sleep(1)


def plays(client, video_id: int) -> bool:
    detail = client.get(f"video/{video_id}/").json()
    rung = detail["renditions"][0]["rung"]
    playlist = client.get(f"video/{video_id}/{rung}/index.m3u8/")
    segment = client.get(f"video/{video_id}/{rung}/segment_000.ts")
    return (client.get(f"video/{video_id}/master.m3u8").status_code == 200 and playlist.status_code == 200
            and segment.status_code == 200 and len(segment.content) > 0)


def test_a_restart_of_any_service_loses_nothing(make_client, mail, clip):  # noqa: F811
    owner = make_client()
    address = register_and_activate(owner, mail)
    login(owner, address)
    response = upload(owner, clip)
    assert response.status_code == 201, response.text
    video_id = response.json()["id"]
    wait_until_ready(owner, video_id)
    assert plays(owner, video_id)

    long_running = sorted(set(compose("ps", "--format", "{{.Service}}").split()))
    assert {"postgres", "redis", "auth", "catalog", "transcoder", "streamer", "gateway"} <= set(long_running)
    for service in long_running:
        compose("restart", service)
        wait_until_every_container_is_healthy()
        viewer = make_client()

        def account_and_video_are_there():
            login(viewer, address)
            assert video_id in listed_ids(viewer), f"video {video_id} gone after restarting {service}"
            assert plays(viewer, video_id), f"video {video_id} does not play after restarting {service}"
            assert mail.messages_to(address), f"the activation mail is gone after restarting {service}"

        eventually(account_and_video_are_there, f"after restarting {service}")

    # The pipeline still works end to end: queue, workers, mail and media after every restart.
    response = upload(owner, clip)
    assert response.status_code == 201, response.text
    wait_until_ready(owner, response.json()["id"])


def test_three_scaled_transcoders_share_the_queue(logged_in_client, clip):  # noqa: F811
    connection = redis.Redis.from_url(STACK_ENV["REDIS_URL"])
    workers = rq.Worker.all(connection=connection)
    assert len(workers) == 3, [worker.name for worker in workers]
    before = {worker.name: worker.successful_job_count for worker in workers}
    took_jobs: set[str] = set()
    # Uploads in quick rounds: each idle worker blocks on the queue and takes the next job, so three
    # jobs in a row land on three workers; a few rounds make that certain.
    for _ in range(4):
        videos = []
        for index in range(3):
            response = upload(logged_in_client, clip, title=f"scaled {index}")
            assert response.status_code == 201, response.text
            videos.append(response.json()["id"])
        for video_id in videos:
            wait_until_ready(logged_in_client, video_id)
        after = {worker.name: worker.successful_job_count for worker in rq.Worker.all(connection=connection)}
        took_jobs = {name for name, count in after.items() if count > before.get(name, 0)}
        if len(took_jobs) == 3:
            break
    assert len(took_jobs) == 3, f"only {sorted(took_jobs)} took jobs: {after}"
