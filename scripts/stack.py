"""Run the whole Videoflix stack as local processes (no Docker): the same topology as the compose file.

    stack.py --profile dev up      # `make up`: ports 8000/5001-5003, SMTP 1025, inbox 8025, var/
    stack.py --profile test up     # `make test`: ports 18000/15001-15003, 11025, 18025, var/test/, own databases
    stack.py --profile dev down | status | prepare
    stack.py --profile test reset  # stop, drop its databases, flush its Redis db, empty its var dir

The processes (the `processes(env)` list, the one place every program is defined) run under supervisord:
it restarts a program that dies, rotates the logs in $VAR_DIR/log, and `down` stops exactly what `up`
started. This script does what supervisord does not: the environment, databases, keys, the gateway
config, supervisord.conf, and resetting a test stack. A service whose package does not exist yet is skipped.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path

from videoflix_shared.config import Settings, layered_settings, read_dotenv
from videoflix_shared.keys import s3_credentials, seaweedfs_identities
from videoflix_shared.storage import StorageUnavailable, seaweedfs_command, storage_from_settings

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
PG = "postgresql://postgres@127.0.0.1:5432"

PROFILES = {
    "dev": {
        "VAR_DIR": str(ROOT / "var"),
        "GATEWAY_PORT": "8000", "AUTH_PORT": "5001", "CATALOG_PORT": "5002", "STREAMER_PORT": "5003",
        "CATALOG_INTERNAL_PORT": "5004", "SMTP_PORT": "1025", "INBOX_PORT": "8025",
        "METRICS_PORT": "5090", "GATEWAY_STATUS_PORT": "5091", "S3_PORT": "8333",
        "AUTH_DATABASE_URL": f"{PG}/videoflix_auth",
        "CATALOG_DATABASE_URL": f"{PG}/videoflix_catalog",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    },
    "test": {
        "VAR_DIR": str(ROOT / "var" / "test"),
        "GATEWAY_PORT": "18000", "AUTH_PORT": "15001", "CATALOG_PORT": "15002", "STREAMER_PORT": "15003",
        "CATALOG_INTERNAL_PORT": "15004", "SMTP_PORT": "11025", "INBOX_PORT": "18025",
        "METRICS_PORT": "15090", "GATEWAY_STATUS_PORT": "15091", "S3_PORT": "18333",
        "AUTH_DATABASE_URL": f"{PG}/videoflix_test_auth",
        "CATALOG_DATABASE_URL": f"{PG}/videoflix_test_catalog",
        "REDIS_URL": "redis://127.0.0.1:6379/1",
        "TRANSCODER_WORKERS": "2",
        # Each e2e test sends from its own 127.0.0.x: up to 20 account requests in a row, then 1 per 2 s.
        "GATEWAY_AUTH_RATE": "30r/m", "GATEWAY_AUTH_BURST": "20",
        # A TLS proxy in front of the gateway, as the e2e suite plays it (clients send from .2 to .251).
        "TRUSTED_PROXIES": "127.0.0.252",
        # Room for the 200 MiB resumable upload, small enough that the e2e suite can cross it (the
        # gateway renders its limit from it too).
        "MAX_UPLOAD_BYTES": str(256 * 1024 * 1024),
        # A logged-out token stops opening videos within seconds, so the e2e suite can wait for it.
        "GATEWAY_TOKEN_RECHECK_SECONDS": "3",
        # The first admin, as ADMIN_EMAIL/ADMIN_PASSWORD in .env make one for `make up`; the tests log in as it.
        "ADMIN_EMAIL": "admin@videoflix.test", "ADMIN_PASSWORD": "Test-Stack-Passw0rd!",
    },
}
MAILDEV = ROOT / "scripts" / "maildev" / "node_modules" / ".bin" / "maildev"


@dataclass
class Process:
    """One program of the stack; supervisord runs it from ROOT with the stack's environment plus
    `environment`."""
    name: str
    command: str
    needs: str  # a path relative to ROOT that must exist, or ""
    health_url: str = ""
    environment: dict[str, str] = field(default_factory=dict)


def test_slot_profile(slot: int) -> dict[str, str]:
    """TEST_SLOT=n (1-7) gives a second, third... test stack that runs beside the default one."""
    base = 20000 + slot * 1000
    return {
        **PROFILES["test"],
        "VAR_DIR": str(ROOT / "var" / f"test{slot}"),
        "GATEWAY_PORT": str(base), "AUTH_PORT": str(base + 1), "CATALOG_PORT": str(base + 2),
        "STREAMER_PORT": str(base + 3), "CATALOG_INTERNAL_PORT": str(base + 4), "SMTP_PORT": str(base + 25),
        "INBOX_PORT": str(base + 825), "METRICS_PORT": str(base + 90), "GATEWAY_STATUS_PORT": str(base + 91),
        "S3_PORT": str(base + 33),  # SeaweedFS takes S3_PORT to S3_PORT + 7
        "AUTH_DATABASE_URL": f"{PG}/videoflix_test{slot}_auth",
        "CATALOG_DATABASE_URL": f"{PG}/videoflix_test{slot}_catalog",
        "REDIS_URL": f"redis://127.0.0.1:6379/{slot + 1}",
    }


def build_env(profile: str, dotenv: Path = ROOT / ".env") -> dict[str, str]:
    env = dict(os.environ)
    if profile == "dev":
        # `make up WORKERS=4` (the environment) wins over .env, .env over the defaults.
        env = layered_settings(PROFILES["dev"], read_dotenv(dotenv), os.environ)
    elif int(env.get("TEST_SLOT", "0") or 0):
        env.update(test_slot_profile(int(env["TEST_SLOT"])))
    else:
        env.update(PROFILES[profile])
    var = ROOT / env["VAR_DIR"]  # a relative VAR_DIR (.env.template's `var`) is relative to the checkout
    env["VAR_DIR"] = str(var)
    env.setdefault("KEYS_DIR", str(var / "keys"))
    env.setdefault("MEDIA_DIR", str(var / "media"))
    env.setdefault("MAIL_DIR", str(var / "mail"))
    env.setdefault("FRONTEND_DIR", str(ROOT / "frontend" / "dist"))
    if env.get("MEDIA_STORAGE") == "s3" and not env.get("S3_ENDPOINT_URL"):
        use_own_seaweedfs(env)
    env["SMTP_HOST"] = env.get("SMTP_HOST", "127.0.0.1")
    # The transcoder reports to the catalog's internal API process, which public traffic never reaches.
    env["CATALOG_URL"] = f"http://127.0.0.1:{env['CATALOG_INTERNAL_PORT']}"
    env["AUTH_UPSTREAM"] = f"127.0.0.1:{env['AUTH_PORT']}"
    env["CATALOG_UPSTREAM"] = f"127.0.0.1:{env['CATALOG_PORT']}"
    env["STREAMER_UPSTREAM"] = f"127.0.0.1:{env['STREAMER_PORT']}"
    gateway = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
    env.setdefault("PUBLIC_BASE_URL", gateway)
    env.setdefault("FRONTEND_BASE_URL", gateway)
    # Root's checkout may sit in /root (mode 0700): nginx workers then run as root too, like the services,
    # instead of `nobody`, who could not read the web app, the media or the token socket.
    env["GATEWAY_WORKER_USER"] = "root" if os.geteuid() == 0 else ""
    # .env.template's empty PROMETHEUS_MULTIPROC_DIR means "in memory"; set but empty, prometheus_client
    # would write its sample files into the working directory (the checkout) of every flask command.
    if not env.get("PROMETHEUS_MULTIPROC_DIR"):
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["PYTHONPATH"] = str(ROOT)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def seaweedfs_url(env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env['S3_PORT']}"


def use_own_seaweedfs(env: dict[str, str]) -> None:
    """MEDIA_STORAGE=s3 with no S3_ENDPOINT_URL: the stack's own SeaweedFS, with the key pairs of
    $KEYS_DIR/s3_credentials.json for the settings that leave them empty."""
    env["S3_ENDPOINT_URL"] = seaweedfs_url(env)
    pairs = s3_credentials(ROOT / env["KEYS_DIR"])
    for prefix, role in (("", "service"), ("GATEWAY_", "gateway")):
        if not env.get(f"{prefix}S3_ACCESS_KEY_ID"):
            env[f"{prefix}S3_ACCESS_KEY_ID"] = pairs[role]["id"]
            env[f"{prefix}S3_SECRET_ACCESS_KEY"] = pairs[role]["secret"]


def runs_seaweedfs(env: dict[str, str]) -> bool:
    return env.get("MEDIA_STORAGE") == "s3" and env.get("S3_ENDPOINT_URL") == seaweedfs_url(env)


def seaweedfs_dir(env: dict[str, str]) -> Path:
    return Path(env["VAR_DIR"]) / "seaweedfs"


def write_seaweedfs_identities(env: dict[str, str]) -> None:
    """The S3 keys SeaweedFS accepts: the services' read-write one and the gateway's read-only one."""
    path = seaweedfs_dir(env) / "s3.json"
    (seaweedfs_dir(env) / "data").mkdir(parents=True, exist_ok=True)
    identities = seaweedfs_identities(
        env.get("S3_BUCKET") or "videoflix", (env["S3_ACCESS_KEY_ID"], env["S3_SECRET_ACCESS_KEY"]),
        (env["GATEWAY_S3_ACCESS_KEY_ID"], env["GATEWAY_S3_SECRET_ACCESS_KEY"]))
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(identities, handle)


def ensure_bucket(env: dict[str, str], timeout: float = 60) -> None:
    """The bucket, created if missing (idempotent); waits for a SeaweedFS that is just starting."""
    storage = storage_from_settings(Settings.from_env(env))
    deadline = time.monotonic() + timeout
    while True:
        try:
            storage.ensure_bucket()
            return
        except StorageUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def public_keys_dir(env: dict[str, str]) -> Path:
    """The public key and the service token, without the private key: every process but auth's reads
    its KEYS_DIR here."""
    return Path(env["VAR_DIR"]) / "public-keys"


def without_private_key(env: dict[str, str]) -> dict[str, str]:
    """The environment that points a process at the public keys only."""
    public = public_keys_dir(env)
    return {"KEYS_DIR": str(public), "SERVICE_TOKEN_FILE": str(public / "service_token")}


def metrics_dir(env: dict[str, str], name: str) -> str:
    """prometheus_client's multiprocess directory of one program (gunicorn workers, rq work horses)."""
    return str(Path(env["VAR_DIR"]) / "metrics" / name)


def catalog_gunicorn(env: dict[str, str]) -> dict[str, str]:
    """The public catalog's gunicorn: its own processes and threads (CATALOG_GUNICORN_*, .env.template)."""
    return {"GUNICORN_WORKERS": env.get("CATALOG_GUNICORN_WORKERS") or "1",
            "GUNICORN_THREADS": env.get("CATALOG_GUNICORN_THREADS") or "8"}


def processes(env: dict[str, str]) -> list[Process]:
    """Every program of the local stack: the one place one is defined (supervisord.conf is rendered
    from this list)."""
    gunicorn = "gunicorn -c services/gunicorn.conf.py"
    gateway_dir = Path(env["VAR_DIR"]) / "gateway"
    public = without_private_key(env)
    listed = []
    if runs_seaweedfs(env):  # the S3 API on S3_PORT (403 unsigned: it is up), data under $VAR_DIR/seaweedfs
        weed = seaweedfs_dir(env)
        listed.append(Process("seaweedfs", shlex.join(seaweedfs_command(
            str(VENV_BIN / "weed"), weed / "data", int(env["S3_PORT"]), weed / "s3.json")), "", "",
            without_private_key(env)))
    listed += [
        # maildev (npm, scripts/install.sh): SMTP, the web inbox, and one MAIL_DIR/<id>.eml per message.
        Process("maildev", f"{MAILDEV} --ip 127.0.0.1 --smtp {env['SMTP_PORT']} --web {env['INBOX_PORT']} "
                           f"--mail-directory {shlex.quote(env['MAIL_DIR'])} --silent",
                str(MAILDEV.relative_to(ROOT)), f"http://127.0.0.1:{env['INBOX_PORT']}/healthz", public),
    ]
    for name in ("auth", "catalog", "streamer"):
        port = env[f"{name.upper()}_PORT"]
        listed.append(Process(
            name, f"{gunicorn} 'services.{name}.app:create_app()'",
            f"services/{name}/app.py", f"http://127.0.0.1:{port}/healthz",
            {"PORT": port, "PROMETHEUS_MULTIPROC_DIR": metrics_dir(env, name), **({} if name == "auth" else public),
             **(catalog_gunicorn(env) if name == "catalog" else {})},
        ))
    # The same catalog app for the transcoder's /internal/ reports, in its own process: slow or
    # numerous public requests cannot take the threads the transcoders need.
    listed.append(Process(
        "catalog-internal", f"{gunicorn} 'services.catalog.app:create_app()'",
        "services/catalog/app.py", f"http://127.0.0.1:{env['CATALOG_INTERNAL_PORT']}/healthz",
        {"PORT": env["CATALOG_INTERNAL_PORT"], "GUNICORN_WORKERS": "1",
         "PROMETHEUS_MULTIPROC_DIR": metrics_dir(env, "catalog-internal"), **public},
    ))
    listed.append(Process(
        "reconciler", "flask --app services.catalog.app reconcile --every 30", "services/catalog/app.py",
        environment=public,
    ))
    listed.append(Process(  # auth's housekeeping: expired link and refresh tokens, hourly
        "pruner", "flask --app services.auth.app prune-tokens --every 3600", "services/auth/app.py",
    ))
    transcoder = "python -m services.transcoder.worker"
    if env.get("TRANSCODER_SEPARATE_HOST") == "true":  # no shared disk: see scripts/transcoder-host.sh
        transcoder = f"unshare --mount --propagation private scripts/transcoder-host.sh {transcoder}"
    for index in range(int(env.get("TRANSCODER_WORKERS", "2"))):
        listed.append(Process(f"transcoder-{index + 1}", transcoder,
                              "services/transcoder/worker.py",
                              environment={"PROMETHEUS_MULTIPROC_DIR": metrics_dir(env, "transcoder"), **public}))
    listed.append(Process(
        "metrics", f"python -m services.transcoder.exporter --port {env['METRICS_PORT']} "
                   f"--multiprocess-dir {metrics_dir(env, 'transcoder')} "
                   f"--stub-status http://127.0.0.1:{env['GATEWAY_STATUS_PORT']}/stub_status",
        "services/transcoder/exporter.py", f"http://127.0.0.1:{env['METRICS_PORT']}/metrics", public,
    ))
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
    # Multiprocess metric files belong to one run of the stack (counters start again from zero).
    if supervisor(env) is None:
        shutil.rmtree(var / "metrics", ignore_errors=True)
    for process in processes(env):
        if "PROMETHEUS_MULTIPROC_DIR" in process.environment:
            Path(process.environment["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    run(f"python -m videoflix_shared.keys {shlex.quote(env['KEYS_DIR'])} {shlex.quote(str(public_keys_dir(env)))}",
        env)
    if runs_seaweedfs(env):
        write_seaweedfs_identities(env)
    for service in ("auth", "catalog"):
        if (ROOT / "services" / service / "migrations").exists():
            ensure_database(database_name(env[f"{service.upper()}_DATABASE_URL"]), env)
            run(f"flask --app services.{service}.app db upgrade -d services/{service}/migrations", env)
    if env.get("ADMIN_EMAIL") and env.get("ADMIN_PASSWORD"):
        create_admin(env)
    if (ROOT / "frontend" / "build.sh").exists():
        run("frontend/build.sh", env)
    if (ROOT / "gateway" / "render.sh").exists():
        run(f"gateway/render.sh {var / 'gateway'}", {**env, "KEYS_DIR": str(public_keys_dir(env))})


def create_admin(env: dict[str, str]) -> None:
    """The first admin from ADMIN_EMAIL/ADMIN_PASSWORD (idempotent: made an active admin again if it exists)."""
    run(f"flask --app services.auth.app create-admin {shlex.quote(env['ADMIN_EMAIL'])}", env)


def supervisor_paths(env: dict[str, str]) -> tuple[Path, Path, Path]:
    """supervisord's config, control socket and pid file of this stack (one supervisord per VAR_DIR)."""
    var = Path(env["VAR_DIR"])
    return var / "supervisord.conf", var / "run" / "supervisor.sock", var / "run" / "supervisord.pid"


def settings_digest(env: dict[str, str]) -> str:
    """A hash of the settings the processes inherit: a changed one means supervisord must restart."""
    names = set(PROFILES["test"]) | set(read_dotenv(ROOT / ".env.template")) | {"PATH", "PYTHONPATH"}
    text = "\n".join(f"{key}={env.get(key, '')}" for key in sorted(names))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def supervisor_config(env: dict[str, str], listed: list[Process]) -> str:
    """supervisord.conf for `listed`: every program restarted when it dies, its log rotated, stopped with
    its whole process group (gunicorn workers, rq work horses, ffmpeg) on `down`."""
    conf, socket_path, pid_path = supervisor_paths(env)
    log = Path(env["VAR_DIR"]) / "log"

    def quote(value: str) -> str:
        return value.replace("%", "%%")

    sections = [f"""# Rendered by scripts/stack.py from processes(env); settings digest {settings_digest(env)}
[unix_http_server]
file={socket_path}
chmod=0700

[supervisord]
logfile={log / "supervisord.log"}
logfile_maxbytes=10MB
logfile_backups=3
pidfile={pid_path}
directory={ROOT}
childlogdir={log}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{socket_path}
"""]
    for process in listed:
        environment = ",".join(f'{key}="{quote(value)}"' for key, value in process.environment.items())
        sections.append(f"""[program:{process.name}]
command={quote(process.command)}
directory={ROOT}
{"environment=" + environment if environment else ""}
autorestart=true
startsecs=1
startretries=20
stopwaitsecs=30
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={log / (process.name + ".log")}
stdout_logfile_maxbytes=20MB
stdout_logfile_backups=3
""")
    return "\n".join(sections)


def supervisor(env: dict[str, str]):
    """An XML-RPC proxy to this stack's supervisord, or None when it is not running."""
    from supervisor.xmlrpc import SupervisorTransport

    _, socket_path, _ = supervisor_paths(env)
    if not socket_path.exists():
        return None
    proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", SupervisorTransport(None, None, f"unix://{socket_path}"))
    try:
        proxy.supervisor.getState()
    except OSError:
        return None
    return proxy


def running_pid(env: dict[str, str], name: str) -> int | None:
    """The pid of a running program (its process group leader), as supervisord reports it."""
    proxy = supervisor(env)
    if proxy is None:
        return None
    try:
        info = proxy.supervisor.getProcessInfo(name)
    except xmlrpc.client.Fault:
        return None
    return info["pid"] if info["statename"] == "RUNNING" and info["pid"] else None


def start(env: dict[str, str], process: Process) -> None:
    """Start one stopped program (supervisord restarts crashed ones by itself)."""
    try:
        supervisor(env).supervisor.startProcess(process.name, True)
    except xmlrpc.client.Fault as fault:
        if "ALREADY_STARTED" not in fault.faultString:
            raise


def stop(env: dict[str, str], name: str) -> None:
    """Stop one program and keep it stopped (SIGTERM to its group, SIGKILL after stopwaitsecs)."""
    proxy = supervisor(env)
    if proxy is None:
        return
    try:
        proxy.supervisor.stopProcess(name, True)
    except xmlrpc.client.Fault as fault:
        if "NOT_RUNNING" not in fault.faultString:
            raise


def start_supervisor(env: dict[str, str], listed: list[Process]) -> None:
    """supervisord with this config; a running one with another config (other programs or settings:
    `make up WORKERS=4` after `make up`) is shut down first."""
    conf, _, _ = supervisor_paths(env)
    text = supervisor_config(env, listed)
    proxy = supervisor(env)
    if proxy is not None and conf.exists() and conf.read_text() == text:
        proxy.supervisor.startAllProcesses(False)
        return
    if proxy is not None:
        down(env)
    conf.write_text(text)
    # supervisord daemonizes: the programs it starts inherit `env`.
    subprocess.run(["supervisord", "-c", str(conf)], cwd=ROOT, env=env, check=True)
    deadline = time.monotonic() + 30
    while supervisor(env) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"supervisord did not start; see {env['VAR_DIR']}/log/supervisord.log")
        time.sleep(0.2)


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
    start_supervisor(env, listed)
    if env.get("MEDIA_STORAGE") == "s3":
        ensure_bucket(env)
    failed = [p.name for p in listed if p.health_url and not wait_healthy(p.health_url)]
    failed += [p.name for p in listed if not p.health_url and not wait_until_running(env, p.name)]
    if failed:
        print(f"not healthy: {', '.join(failed)}; see {env['VAR_DIR']}/log/", file=sys.stderr)
        return 1
    print(f"Videoflix is up: http://127.0.0.1:{env['GATEWAY_PORT']}/  (API at /api/, admin site at /admin/)")
    print(f"Mail inbox: http://127.0.0.1:{env['INBOX_PORT']}/  (each message also in {env['MAIL_DIR']}/*.eml)")
    if env.get("ADMIN_EMAIL"):
        print(f"Admin site login: {env['ADMIN_EMAIL']} with the password ADMIN_PASSWORD")
    return 0


def wait_until_running(env: dict[str, str], name: str, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running_pid(env, name):
            return True
        time.sleep(0.3)
    return False


def down(env: dict[str, str]) -> int:
    """Shut supervisord down: it stops every program it started (each with its process group) first."""
    proxy = supervisor(env)
    if proxy is None:
        print("stopped: nothing was running")
        return 0
    names = sorted(info["name"] for info in proxy.supervisor.getAllProcessInfo())
    _, socket_path, pid_path = supervisor_paths(env)
    pid = int(pid_path.read_text())
    proxy.supervisor.shutdown()
    deadline = time.monotonic() + 90
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    print(f"stopped: {', '.join(names)}")
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
    """Every program with its state, pid and uptime (supervisorctl status)."""
    conf, _, _ = supervisor_paths(env)
    if supervisor(env) is None:
        print(f"not running (no supervisord for {env['VAR_DIR']})")
        return 3
    return subprocess.run(["supervisorctl", "-c", str(conf), "status"], env=env, check=False).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="dev")
    parser.add_argument("action", choices=["up", "down", "reset", "status", "prepare", "env"])
    options = parser.parse_args()
    if options.action == "reset" and options.profile != "test":
        parser.error("reset is for test stacks only: it would delete the dev stack's data")
    if options.profile == "dev" and options.action == "up" and not (ROOT / ".env").exists():
        shutil.copyfile(ROOT / ".env.template", ROOT / ".env")
        print("created .env from .env.template: change ADMIN_PASSWORD (and ADMIN_EMAIL) there")
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
