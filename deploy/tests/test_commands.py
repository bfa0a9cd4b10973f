"""The commands the compose file and the images run, run here against the real PostgreSQL, Redis and
nginx of this machine: health checks (passing when healthy, failing when not), the database init
script, the admin job, and the gateway image's start command as an unprivileged user."""
from __future__ import annotations

import http.server
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from deploy.tests.compose_files import (
    ROOT,
    compose_dir,
    dockerfile_stages,
    env_template,
    environment,
    interpolate,
    load_compose,
    volume_mounts,
)

VENV_BIN = ROOT / ".venv" / "bin"
PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# A Redis database no stack uses (they take 0 to 8), so a worker registered here is ours.
REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture(scope="module")
def services() -> dict[str, dict]:
    return load_compose()["services"]


def local_env(**overrides: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", **overrides}


def run_healthcheck(service: dict, env: dict[str, str], replace: tuple[str, str] = ("", "")) -> int:
    """Run a service's healthcheck test as Docker would (after compose's interpolation)."""
    kind, *args = [interpolate(arg, env_template()) for arg in service["healthcheck"]["test"]]
    if replace[0]:
        args = [arg.replace(*replace) for arg in args]
    command = args if kind == "CMD" else ["sh", "-c", args[0]]
    return subprocess.run(command, env=env, capture_output=True, timeout=30).returncode


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


# --- Backends ---------------------------------------------------------------------------------------

def test_postgres_healthcheck(services):
    assert run_healthcheck(services["postgres"], local_env(POSTGRES_USER="postgres")) == 0
    assert run_healthcheck(services["postgres"], local_env(POSTGRES_USER="postgres", PGPORT="1")) != 0


def test_redis_healthcheck(services):
    assert run_healthcheck(services["redis"], local_env()) == 0


def psql(sql: str) -> str:
    return subprocess.run(["psql", PG_URL, "-Atqc", sql], capture_output=True, text=True, check=True).stdout


def test_postgres_init_script_creates_each_database(services):
    script = next(compose_dir() / source for source, target, _ in volume_mounts(services["postgres"])
                  if target.startswith("/docker-entrypoint-initdb.d/"))
    names = [f"videoflix_composecheck_{uuid.uuid4().hex[:8]}_{n}" for n in ("auth", "catalog")]
    try:
        env = local_env(POSTGRES_USER="postgres", POSTGRES_DATABASES=" ".join(names), PGHOST="127.0.0.1")
        subprocess.run(["sh", str(script)], env=env, check=True, capture_output=True, timeout=60)
        listed = psql("select datname from pg_database where datname like 'videoflix_composecheck_%'")
        assert set(names) <= set(listed.split())
    finally:
        for name in names:
            psql(f'drop database if exists "{name}"')


# --- Python services ----------------------------------------------------------------------------------

class HealthHandler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("name", ["auth", "catalog", "streamer"])
def test_http_healthcheck_follows_healthz(services, name):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HealthHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = f":{server.server_address[1]}/"
    try:
        HealthHandler.status = 200
        assert run_healthcheck(services[name], local_env(), (":8000/", port)) == 0
        HealthHandler.status = 503
        assert run_healthcheck(services[name], local_env(), (":8000/", port)) != 0
    finally:
        server.shutdown()
        server.server_close()
    assert run_healthcheck(services[name], local_env(), (":8000/", port)) != 0


def test_reconciler_healthcheck_needs_database_and_redis(services):
    reconciler = services["reconciler"]
    healthy = local_env(CATALOG_DATABASE_URL=PG_URL, REDIS_URL=REDIS_URL)
    assert run_healthcheck(reconciler, healthy) == 0
    assert run_healthcheck(reconciler, {**healthy, "REDIS_URL": "redis://127.0.0.1:1/0"}) != 0
    assert run_healthcheck(reconciler, {**healthy, "CATALOG_DATABASE_URL": PG_URL.replace("5432", "1")}) != 0


def test_transcoder_healthcheck_sees_this_containers_worker(services):
    """The transcoder image's command: healthy while its worker is registered; SIGTERM (rq's warm
    shutdown) ends it cleanly and unregisters it."""
    transcoder, env = services["transcoder"], local_env(REDIS_URL=REDIS_URL, PYTHONPATH=str(ROOT))
    assert run_healthcheck(transcoder, env) != 0, "a worker of this host is already registered in db 15"
    command = dockerfile_stages(ROOT / "services" / "transcoder" / "Dockerfile")[-1].last("CMD").words()
    worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: run_healthcheck(transcoder, env) == 0), "the worker never became healthy"
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
        assert run_healthcheck(transcoder, env) != 0
    finally:
        if worker.poll() is None:
            worker.kill()


def test_keys_job_creates_the_key_pair_and_service_token(services, tmp_path):
    command = [arg.replace("/data/", f"{tmp_path}/") for arg in services["keys"]["command"]]
    subprocess.run(command, env=local_env(), check=True, capture_output=True, timeout=60)
    created = sorted(p.name for p in (tmp_path / "keys").iterdir())
    assert created == ["jwt_private.pem", "jwt_public.pem", "service_token"]
    published = sorted(p.name for p in (tmp_path / "public-keys").iterdir())
    assert published == ["jwt_public.pem", "service_token"]  # never the private key
    for name in published:
        assert (tmp_path / "public-keys" / name).read_bytes() == (tmp_path / "keys" / name).read_bytes()
    before = (tmp_path / "keys" / "jwt_private.pem").read_bytes()
    subprocess.run(command, env=local_env(), check=True, capture_output=True, timeout=60)
    assert (tmp_path / "keys" / "jwt_private.pem").read_bytes() == before, "a restart must keep the keys"


def admin_job(services, tmp_path, **env: str) -> tuple[subprocess.CompletedProcess, Path]:
    """The admin job's shell command, with a `flask` that records its arguments in front on PATH."""
    recorded = tmp_path / "flask-args"
    stub = tmp_path / "bin" / "flask"
    stub.parent.mkdir()
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {recorded}\n')
    stub.chmod(0o755)
    command = [interpolate(arg, {}) for arg in services["admin"]["command"]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30,
                            env={"PATH": f"{stub.parent}:/usr/bin:/bin", **env})
    return result, recorded


def test_admin_job_skips_without_an_email(services, tmp_path):
    result, recorded = admin_job(services, tmp_path, ADMIN_EMAIL="", ADMIN_PASSWORD="")
    assert result.returncode == 0 and "ADMIN_EMAIL is not set" in result.stdout
    assert not recorded.exists()


def test_admin_job_fails_without_a_password(services, tmp_path):
    result, recorded = admin_job(services, tmp_path, ADMIN_EMAIL="root@example.com", ADMIN_PASSWORD="")
    assert result.returncode == 1 and "ADMIN_PASSWORD is empty" in result.stderr
    assert not recorded.exists()


def test_admin_job_passes_email_and_password_as_they_are(services, tmp_path):
    password = "pa ss'\"$word"
    result, recorded = admin_job(services, tmp_path, ADMIN_EMAIL="root@example.com", ADMIN_PASSWORD=password)
    assert result.returncode == 0, result.stderr
    assert recorded.read_text().splitlines() == [
        "--app", "services.auth.app", "create-admin", "root@example.com", "--password", password]


# --- Gateway ------------------------------------------------------------------------------------------

def unprivileged(command: list[str]) -> list[str]:
    """Run as `nobody` when the tests run as root, as the gateway image runs nginx unprivileged."""
    if os.getuid() != 0:
        return command
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]


@pytest.fixture
def world_readable_dir():
    """A directory another user can read (pytest's tmp_path is private to the user running the tests)."""
    path = Path(tempfile.mkdtemp(prefix="videoflix-composecheck-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_gateway_start_command_runs_nginx_unprivileged(services, world_readable_dir):
    """The gateway image's CMD, run from the repository (the image's /app has the same layout): it
    renders deploy/nginx.conf into a fresh prefix as a non-root user, serves /healthz, and stops
    gracefully on the image's STOPSIGNAL."""
    if not Path("/usr/lib/nginx/modules/ngx_http_js_module.so").exists() or not shutil.which("nginx"):
        pytest.skip("nginx with the njs module is not installed (scripts/install.sh installs it)")
    stage = dockerfile_stages(ROOT / "gateway" / "Dockerfile")[-1]
    base = world_readable_dir
    subprocess.run([str(VENV_BIN / "python"), "-m", "videoflix_shared.keys", str(base / "keys")],
                   check=True, capture_output=True)
    (base / "keys").chmod(0o755)
    for sub in ("media", "frontend"):
        (base / sub).mkdir()
    (base / "frontend" / "index.html").write_text("<!doctype html><title>Videoflix</title>")
    # The image's /tmp: writable by anyone, sticky.
    (base / "tmp").mkdir(mode=0o1777)
    (base / "tmp").chmod(0o1777)
    prefix = base / "tmp" / "gateway"
    port = free_port()
    compose_env = {key: interpolate(value, {}) for key, value in environment(services["gateway"]).items()}
    upstreams = {f"{name}_UPSTREAM": "127.0.0.1:9" for name in ("AUTH", "CATALOG", "STREAMER")}
    env = {**env_template(), **compose_env, **upstreams, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
           "GATEWAY_PORT": str(port), "GATEWAY_STATUS_PORT": str(free_port()),
           "KEYS_DIR": str(base / "keys"), "MEDIA_DIR": str(base / "media"),
           "FRONTEND_DIR": str(base / "frontend")}
    command = [arg.replace("/tmp/gateway", str(prefix)) for arg in stage.last("CMD").words()]
    # Like runc, which gives the container's stdio to its user, so nginx may open /dev/stdout.
    log = base / "gateway.log"
    log.touch()
    if os.getuid() == 0:
        shutil.chown(log, "nobody")
    with log.open("ab") as output:
        nginx = subprocess.Popen(unprivileged(command), cwd=ROOT, env=env, stdout=output, stderr=output,
                                 start_new_session=True)
    try:
        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return nginx.poll() is not None
        assert wait_for(healthy) and nginx.poll() is None, log.read_text()
        assert (prefix / "nginx.conf").is_file() and (prefix / "nginx.pid").is_file()
        nginx.send_signal(getattr(signal, stage.last("STOPSIGNAL").arguments))
        assert nginx.wait(timeout=60) == 0, log.read_text()
        assert "/healthz" in log.read_text(), "the access log goes to stdout"
    finally:
        if nginx.poll() is None:
            os.killpg(nginx.pid, signal.SIGKILL)
