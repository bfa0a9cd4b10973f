"""Run the whole Videoflix stack as local processes (no Docker): the same topology as the compose file.

    stack.py --profile dev up      # `make up`: ports 8000/5001-5003/1025, var/
    stack.py --profile test up     # `make test`: ports 18000/15001-15003/11025, var/test/, own databases
    stack.py --profile dev down | status | prepare
    stack.py --profile test reset  # stop, drop its databases, flush its Redis db, empty its var dir

Processes are started in the background with pid files and logs under $VAR_DIR/run and $VAR_DIR/log.
A service whose package does not exist yet is skipped.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
PG = "postgresql://postgres@127.0.0.1:5432"

PROFILES = {
    "dev": {
        "VAR_DIR": str(ROOT / "var"),
        "GATEWAY_PORT": "8000", "AUTH_PORT": "5001", "CATALOG_PORT": "5002", "STREAMER_PORT": "5003",
        "SMTP_PORT": "1025",
        "AUTH_DATABASE_URL": f"{PG}/videoflix_auth",
        "CATALOG_DATABASE_URL": f"{PG}/videoflix_catalog",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    },
    "test": {
        "VAR_DIR": str(ROOT / "var" / "test"),
        "GATEWAY_PORT": "18000", "AUTH_PORT": "15001", "CATALOG_PORT": "15002", "STREAMER_PORT": "15003",
        "SMTP_PORT": "11025",
        "AUTH_DATABASE_URL": f"{PG}/videoflix_test_auth",
        "CATALOG_DATABASE_URL": f"{PG}/videoflix_test_catalog",
        "REDIS_URL": "redis://127.0.0.1:6379/1",
        "TRANSCODER_WORKERS": "2",
        # Each e2e test sends from its own 127.0.0.x: up to 20 account requests in a row, then 1 per 2 s.
        "GATEWAY_AUTH_RATE": "30r/m", "GATEWAY_AUTH_BURST": "20",
        # Room for the 200 MiB resumable upload, small enough that the e2e suite can cross it (the
        # gateway renders its limit from it too).
        "MAX_UPLOAD_BYTES": str(256 * 1024 * 1024),
        # A logged-out token stops opening videos within seconds, so the e2e suite can wait for it.
        "GATEWAY_TOKEN_RECHECK_SECONDS": "3",
    },
}


@dataclass
class Process:
    name: str
    command: str
    needs: str  # a path relative to ROOT that must exist, or ""
    health_url: str = ""


def read_dotenv(path: Path) -> dict[str, str]:
    values = {}
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip().strip("'\"")
    return values


def test_slot_profile(slot: int) -> dict[str, str]:
    """TEST_SLOT=n (1-7) gives a second, third... test stack that runs beside the default one."""
    base = 20000 + slot * 1000
    return {
        **PROFILES["test"],
        "VAR_DIR": str(ROOT / "var" / f"test{slot}"),
        "GATEWAY_PORT": str(base), "AUTH_PORT": str(base + 1), "CATALOG_PORT": str(base + 2),
        "STREAMER_PORT": str(base + 3), "SMTP_PORT": str(base + 25),
        "AUTH_DATABASE_URL": f"{PG}/videoflix_test{slot}_auth",
        "CATALOG_DATABASE_URL": f"{PG}/videoflix_test{slot}_catalog",
        "REDIS_URL": f"redis://127.0.0.1:6379/{slot + 1}",
    }


def build_env(profile: str) -> dict[str, str]:
    env = dict(os.environ)
    if profile == "dev":
        env.update(read_dotenv(ROOT / ".env"))
        for key, value in PROFILES["dev"].items():
            env.setdefault(key, value)
    elif int(env.get("TEST_SLOT", "0") or 0):
        env.update(test_slot_profile(int(env["TEST_SLOT"])))
    else:
        env.update(PROFILES[profile])
    var = Path(env["VAR_DIR"])
    env.setdefault("KEYS_DIR", str(var / "keys"))
    env.setdefault("MEDIA_DIR", str(var / "media"))
    env.setdefault("MAIL_DIR", str(var / "mail"))
    env.setdefault("FRONTEND_DIR", str(ROOT / "frontend" / "dist"))
    env["SMTP_HOST"] = env.get("SMTP_HOST", "127.0.0.1")
    env["CATALOG_URL"] = f"http://127.0.0.1:{env['CATALOG_PORT']}"
    env["AUTH_UPSTREAM"] = f"127.0.0.1:{env['AUTH_PORT']}"
    env["CATALOG_UPSTREAM"] = f"127.0.0.1:{env['CATALOG_PORT']}"
    env["STREAMER_UPSTREAM"] = f"127.0.0.1:{env['STREAMER_PORT']}"
    gateway = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
    env.setdefault("PUBLIC_BASE_URL", gateway)
    env.setdefault("FRONTEND_BASE_URL", gateway)
    env["PYTHONPATH"] = str(ROOT)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def public_keys_dir(env: dict[str, str]) -> Path:
    """The public key and the service token, without the private key: every process but auth's reads
    its KEYS_DIR here."""
    return Path(env["VAR_DIR"]) / "public-keys"


def without_private_key(env: dict[str, str]) -> str:
    """`env ...` prefix pointing a process at the public keys only."""
    public = public_keys_dir(env)
    return f"env KEYS_DIR={shlex.quote(str(public))} SERVICE_TOKEN_FILE={shlex.quote(str(public / 'service_token'))}"


def processes(env: dict[str, str]) -> list[Process]:
    gunicorn = "gunicorn -c services/gunicorn.conf.py"
    gateway_dir = Path(env["VAR_DIR"]) / "gateway"
    public = without_private_key(env)
    listed = [
        Process("mailsink", f"python scripts/mailsink.py --port {env['SMTP_PORT']} --maildir {env['MAIL_DIR']}", ""),
    ]
    for name in ("auth", "catalog", "streamer"):
        port = env[f"{name.upper()}_PORT"]
        keys = "" if name == "auth" else f"{public} "
        listed.append(Process(
            name, f"{keys}env PORT={port} {gunicorn} 'services.{name}.app:create_app()'",
            f"services/{name}/app.py", f"http://127.0.0.1:{port}/healthz",
        ))
    listed.append(Process(
        "reconciler", f"{public} flask --app services.catalog.app reconcile --every 30", "services/catalog/app.py",
    ))
    listed.append(Process(  # auth's housekeeping: expired link and refresh tokens, hourly
        "pruner", "flask --app services.auth.app prune-tokens --every 3600", "services/auth/app.py",
    ))
    for index in range(int(env.get("TRANSCODER_WORKERS", "2"))):
        listed.append(Process(f"transcoder-{index + 1}", f"{public} python -m services.transcoder.worker",
                              "services/transcoder/worker.py"))
    listed.append(Process(
        "gateway", f"nginx -p {gateway_dir} -c {gateway_dir}/nginx.conf -g 'daemon off;'",
        "deploy/nginx.conf", f"http://127.0.0.1:{env['GATEWAY_PORT']}/healthz",
    ))
    return [process for process in listed if not process.needs or (ROOT / process.needs).exists()]


def run(command: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(command, shell=True, cwd=ROOT, env=env, check=check, text=True,
                          capture_output=not check)


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def ensure_database(name: str, env: dict[str, str]) -> None:
    exists = run(f"psql -h 127.0.0.1 -U postgres -d postgres -Atqc "
                 f"\"select 1 from pg_database where datname='{name}'\"", env, check=False)
    if exists.stdout.strip() != "1":
        run(f"createdb -h 127.0.0.1 -U postgres {name}", env)


def prepare(env: dict[str, str]) -> None:
    """Keys, databases, migrations and the rendered gateway config: everything before starting."""
    var = Path(env["VAR_DIR"])
    for sub in ("run", "log", "media", "gateway"):
        (var / sub).mkdir(parents=True, exist_ok=True)
    run(f"python -m videoflix_shared.keys {shlex.quote(env['KEYS_DIR'])} {shlex.quote(str(public_keys_dir(env)))}",
        env)
    for service in ("auth", "catalog"):
        if (ROOT / "services" / service / "migrations").exists():
            ensure_database(database_name(env[f"{service.upper()}_DATABASE_URL"]), env)
            run(f"flask --app services.{service}.app db upgrade -d services/{service}/migrations", env)
    if (ROOT / "frontend" / "build.sh").exists():
        run("frontend/build.sh", env)
    if (ROOT / "gateway" / "render.sh").exists():
        run(f"gateway/render.sh {var / 'gateway'}", {**env, "KEYS_DIR": str(public_keys_dir(env))})


def pid_file(env: dict[str, str], name: str) -> Path:
    return Path(env["VAR_DIR"]) / "run" / f"{name}.pid"


def running_pid(env: dict[str, str], name: str) -> int | None:
    path = pid_file(env, name)
    try:
        pid = int(path.read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None


def start(env: dict[str, str], process: Process) -> None:
    if running_pid(env, process.name):
        return
    log = open(Path(env["VAR_DIR"]) / "log" / f"{process.name}.log", "ab")
    # exec: the pid file then names the process itself, not a shell that dies first on SIGTERM.
    child = subprocess.Popen(f"exec {process.command}", shell=True, cwd=ROOT, env=env, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
    pid_file(env, process.name).write_text(str(child.pid))


def wait_healthy(url: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def up(env: dict[str, str]) -> int:
    prepare(env)
    listed = processes(env)
    for process in listed:
        start(env, process)
    failed = [p.name for p in listed if p.health_url and not wait_healthy(p.health_url)]
    if failed:
        print(f"not healthy: {', '.join(failed)}; see {env['VAR_DIR']}/log/", file=sys.stderr)
        return 1
    print(f"Videoflix is up: http://127.0.0.1:{env['GATEWAY_PORT']}/  (API at /api/, mail in {env['MAIL_DIR']})")
    return 0


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def stop(env: dict[str, str], name: str, timeout: float = 30) -> None:
    """SIGTERM the process group (graceful: gunicorn drains, rq finishes its job), SIGKILL after timeout."""
    pid = running_pid(env, name)
    if pid:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and group_alive(pid):
            time.sleep(0.1)
        if group_alive(pid):
            os.killpg(pid, signal.SIGKILL)
    pid_file(env, name).unlink(missing_ok=True)


def down(env: dict[str, str]) -> int:
    names = [path.stem for path in (Path(env["VAR_DIR"]) / "run").glob("*.pid")]
    for name in names:
        stop(env, name)
    print(f"stopped: {', '.join(sorted(names)) or 'nothing was running'}")
    return 0


def reset(env: dict[str, str]) -> int:
    """A fresh test stack: stopped, its databases dropped, its Redis db flushed, its VAR_DIR emptied."""
    down(env)
    for key in ("AUTH_DATABASE_URL", "CATALOG_DATABASE_URL"):
        server, name = env[key].rsplit("/", 1)
        run(f"psql {shlex.quote(server + '/postgres')} -Atqc 'DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)'", env)
    run(f"redis-cli -u {shlex.quote(env['REDIS_URL'])} flushdb", env)
    shutil.rmtree(env["VAR_DIR"], ignore_errors=True)
    Path(env["VAR_DIR"]).mkdir(parents=True)
    return 0


def status(env: dict[str, str]) -> int:
    for process in processes(env):
        pid = running_pid(env, process.name)
        print(f"{process.name:14} {'running pid ' + str(pid) if pid else 'stopped'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="dev")
    parser.add_argument("action", choices=["up", "down", "reset", "status", "prepare", "env"])
    options = parser.parse_args()
    if options.action == "reset" and options.profile != "test":
        parser.error("reset is for test stacks only: it would delete the dev stack's data")
    env = build_env(options.profile)
    if options.action == "env":
        for key in sorted(set(env) - set(os.environ) | set(PROFILES[options.profile])):
            print(f"{key}={shlex.quote(env[key])}")
        return 0
    if options.action == "prepare":
        prepare(env)
        return 0
    return {"up": up, "down": down, "reset": reset, "status": status}[options.action](env)


if __name__ == "__main__":
    sys.exit(main())
