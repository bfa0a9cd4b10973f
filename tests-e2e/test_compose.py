"""The Docker Compose stack only (`make test-compose`, scripts/test-compose.sh, which sets E2E_STACK_ENV):
a `docker compose restart` of any service loses nothing, and scaled transcoders share one queue."""
from __future__ import annotations

import shlex
import subprocess
import time

import pytest
import redis
import requests
import rq

from conftest import STACK_ENV, login, register_and_activate
from test_videos import clip, listed_ids, upload, wait_until_ready  # noqa: F401 (clip is a fixture)

pytestmark = pytest.mark.skipif("COMPOSE_COMMAND" not in STACK_ENV,
                                reason="needs the compose stack: make test-compose")

SETTLE_TIMEOUT = 300
# Every HTTP process the stack runs, on its own loopback port (the override's host network): each
# /healthz answers 200 only when the process listens and its dependencies (database, Redis) answer.
HEALTH_PORTS = ("GATEWAY_PORT", "AUTH_PORT", "CATALOG_PORT", "CATALOG_INTERNAL_PORT", "STREAMER_PORT")


def compose(*arguments: str) -> str:
    command = [*shlex.split(STACK_ENV["COMPOSE_COMMAND"]), *arguments]
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=600).stdout


def containers() -> dict[str, dict]:
    """Every running container of the stack: id -> service, start time, state and health."""
    ids = compose("ps", "--quiet").split()
    lines = subprocess.run(
        ["docker", "inspect", "-f", "{{.Id}} {{index .Config.Labels \"com.docker.compose.service\"}} "
         "{{.State.StartedAt}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", *ids],
        check=True, capture_output=True, text=True).stdout.splitlines()
    found = {}
    for line in lines:
        container, service, started, *state = line.split()
        found[container] = {"service": service, "started": started, "state": state}
    return found


def answers_healthz(port: str) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{STACK_ENV[port]}/healthz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def wait_until_healthy(services: set[str]) -> dict[str, dict]:
    """Until each of `services` has its containers running with a healthcheck that passed since they
    (re)started (Docker resets a restarted container's health to `starting`), and every HTTP process
    answers its own /healthz now, not just at its last scheduled check: a dependent that was not restarted
    (auth when PostgreSQL was) must have reconnected before a request is sent."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        running = containers()
        waiting = sorted(f"{c['service']}: {' '.join(c['state'])}" for c in running.values()
                         if c["state"] != ["running", "healthy"])
        missing = services - {c["service"] for c in running.values()}
        silent = [port for port in HEALTH_PORTS if not answers_healthz(port)]
        if not (waiting or missing or silent):
            return running
        assert time.monotonic() < deadline, \
            f"not healthy after {SETTLE_TIMEOUT}s: {waiting}, no container: {missing}, no /healthz: {silent}"
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

    before = wait_until_healthy(set())
    long_running = {c["service"] for c in before.values()}
    assert {"postgres", "redis", "mailpit", "auth", "catalog", "catalog-internal", "reconciler", "pruner",
            "transcoder", "streamer", "gateway"} <= long_running
    for service in sorted(long_running):
        compose("restart", service)
        after = wait_until_healthy(long_running)
        restarted = {c["service"] for container, c in after.items()
                     if container not in before or c["started"] != before[container]["started"]}
        assert service in restarted, f"{service} was not restarted"
        before = after
        # One attempt each: every service answered its health check, so a failure here is one a user sees.
        viewer = make_client()
        login(viewer, address)
        assert video_id in listed_ids(viewer), f"video {video_id} gone after restarting {service}"
        assert plays(viewer, video_id), f"video {video_id} does not play after restarting {service}"
        assert mail.messages_to(address), f"the activation mail is gone after restarting {service}"

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
