"""deploy/docker-compose.yml: structure, dependencies, scaling, configuration, and validation by the
compose specification (and by `docker compose config` where Compose is installed)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from deploy.tests.compose_files import (
    COMPOSE_FILE,
    ENV_TEMPLATE,
    RENDER_SCRIPT,
    ROOT,
    compose_dir,
    depends_on,
    env_template,
    environment,
    interpolate,
    interpolated_names,
    is_job,
    load_compose,
    variables_read_by_code,
    volume_mounts,
)

APP_SERVICES = ["auth", "catalog", "streamer", "transcoder", "reconciler"]
HTTP_SERVICES = ["auth", "catalog", "streamer"]
# Set by every stack for each process (stack.py locally, `environment` in compose), never from .env.
SET_PER_PROCESS = {"PORT", "BIND_HOST", "AUTH_UPSTREAM", "CATALOG_UPSTREAM", "STREAMER_UPSTREAM",
                   "GATEWAY_WORKER_USER"}
VENV_BIN = ROOT / ".venv" / "bin"


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


@pytest.fixture(scope="module")
def template() -> dict[str, str]:
    return env_template()


def seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration}"
    return sum(float(number) * units[unit] for number, unit in parts)


# --- The stack --------------------------------------------------------------------------------------

def test_stack_has_every_part(services):
    expected = {"postgres", "redis", "mailpit", "keys", "migrate-auth", "migrate-catalog", "admin",
                "auth", "catalog", "reconciler", "transcoder", "streamer", "gateway"}
    assert expected <= set(services)


def test_every_build_context_and_dockerfile_exists(services):
    built = {name: s["build"] for name, s in services.items() if "build" in s}
    assert set(APP_SERVICES + ["gateway"]) <= set(built)
    for name, build in built.items():
        context = (compose_dir() / build["context"]).resolve()
        assert context == ROOT, f"{name}: the build context must be the repository root (shared/ is in it)"
        assert (context / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']} is missing"


def test_services_sharing_an_image_build_it_from_the_same_dockerfile(services):
    builds = {}
    for name, service in services.items():
        if "build" in service:
            image = service.get("image")
            assert image, f"{name}: a built service names its image so jobs can share it"
            builds.setdefault(image, set()).add(service["build"]["dockerfile"])
    assert all(len(dockerfiles) == 1 for dockerfiles in builds.values()), builds


def test_every_long_running_service_has_a_healthcheck(services):
    for name, service in services.items():
        if is_job(service):
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test") and check["test"][0] in {"CMD", "CMD-SHELL"}, f"{name} has no healthcheck"
        assert not check.get("disable"), name


def test_dependencies_wait_for_health_or_completion(services):
    for name, service in services.items():
        for target, options in depends_on(service).items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = options.get("condition")
            if is_job(services[target]):
                assert condition == "service_completed_successfully", f"{name} -> {target}"
            else:
                assert condition == "service_healthy", f"{name} -> {target}"
                assert services[target].get("healthcheck"), f"{name} waits for {target}'s missing healthcheck"


def test_every_job_is_awaited_by_a_long_running_service(services):
    """`docker compose up --wait` counts a job that exited as a failure unless a running service
    waits for its completion."""
    for name, service in services.items():
        if is_job(service):
            awaiting = [other for other, s in services.items() if not is_job(s) and
                        depends_on(s).get(name, {}).get("condition") == "service_completed_successfully"]
            assert awaiting, f"no long-running service waits for the job {name}"


def dependency_closure(services, name) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        for target in depends_on(services[todo.pop()]):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_nothing_waits_on_itself(services):
    for name in services:
        assert name not in dependency_closure(services, name), f"dependency cycle through {name}"


def test_services_start_after_keys_migrations_and_their_backends(services):
    needs = {
        "auth": {"keys", "migrate-auth", "postgres", "mailpit"},
        "catalog": {"keys", "migrate-catalog", "postgres", "redis"},
        "reconciler": {"migrate-catalog", "postgres", "redis"},
        "transcoder": {"keys", "redis", "catalog"},
        "streamer": {"keys"},
        "gateway": {"keys", "auth", "catalog", "streamer", "admin"},
        "admin": {"migrate-auth"},
        "migrate-auth": {"keys", "postgres"},
        "migrate-catalog": {"keys", "postgres"},
    }
    for name, required in needs.items():
        missing = required - dependency_closure(services, name)
        assert not missing, f"{name} may start before {sorted(missing)}"


AUTH_CONTAINERS = {"keys", "auth", "migrate-auth", "admin", "pruner"}


def test_only_auths_containers_can_read_the_private_key(services):
    """The `keys` volume (private key) is auth's; every other container mounts `public-keys` (the
    public key and the service token, copied there by the keys job) at the same place."""
    with_private_key = {name for name, service in services.items()
                        if any(source == "keys" for source, _, _ in volume_mounts(service))}
    assert with_private_key == AUTH_CONTAINERS
    for name, service in services.items():
        mounts = {target: (source, read_only) for source, target, read_only in volume_mounts(service)}
        if name in AUTH_CONTAINERS or "/data/keys" not in mounts:
            continue
        assert mounts["/data/keys"] == ("public-keys", True), name
    assert ("public-keys", "/data/public-keys", False) in volume_mounts(services["keys"])
    for name in ("catalog", "reconciler", "transcoder", "streamer", "gateway", "migrate-catalog"):
        assert ("public-keys", "/data/keys", True) in volume_mounts(services[name]), name


def test_pruner_deletes_expired_tokens_hourly(services):
    pruner = services["pruner"]
    assert pruner["command"] == ["flask", "--app", "services.auth.app", "prune-tokens", "--every", "3600"]
    assert not is_job(pruner) and "healthcheck" in pruner
    assert depends_on(pruner)["migrate-auth"]["condition"] == "service_completed_successfully"


def test_one_shot_jobs_run_keys_migrations_and_admin(services):
    commands = {name: " ".join(services[name]["command"]) for name in
                ("keys", "migrate-auth", "migrate-catalog", "admin")}
    assert all(is_job(services[name]) for name in commands)
    assert commands["keys"] == "python -m videoflix_shared.keys /data/keys /data/public-keys"
    for service in ("auth", "catalog"):
        assert commands[f"migrate-{service}"] == (
            f"flask --app services.{service}.app db upgrade -d services/{service}/migrations")
    assert "flask --app services.auth.app create-admin" in commands["admin"]
    assert {"ADMIN_EMAIL", "ADMIN_PASSWORD"} <= set(environment(services["admin"]))


def test_reconciler_and_transcoder_run_their_commands(services):
    assert services["reconciler"]["command"] == ["flask", "--app", "services.catalog.app", "reconcile",
                                                 "--every", "30"]
    assert "command" not in services["transcoder"], "the image's CMD runs the worker"


# --- Scaling and ports -------------------------------------------------------------------------------

def networks_of(service: dict) -> set[str]:
    return set(service.get("networks") or ["default"])


def test_transcoder_reaches_only_redis_and_the_catalog(compose, services):
    """It runs ffmpeg on hostile uploads: no database, no auth, no mail, no gateway, no way out."""
    transcoding = networks_of(services["transcoder"])
    reachable = {name for name, service in services.items()
                 if name != "transcoder" and networks_of(service) & transcoding}
    assert reachable == {"redis", "catalog"}
    assert all(compose["networks"][name].get("internal") is True for name in transcoding)
    for name in ("redis", "catalog"):
        assert "default" in networks_of(services[name]), f"{name} must stay reachable by the rest of the stack"


def test_transcoder_can_be_scaled(services):
    transcoder = services["transcoder"]
    for fixed in ("container_name", "ports", "hostname"):
        assert fixed not in transcoder, f"transcoder has {fixed}: `--scale transcoder=4` would clash"
    replicas = interpolate(str(transcoder["deploy"]["replicas"]), {})
    assert int(replicas) >= 1


def test_only_the_gateway_and_the_mail_ui_are_published(services, template):
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"gateway", "mailpit"}
    gateway_port = interpolate(services["gateway"]["ports"][0], {})
    assert gateway_port == "8000:8000"
    assert interpolate(services["gateway"]["ports"][0], template) == f"{template['GATEWAY_PORT']}:8000"
    # Mail holds activation links: its UI is reachable from the server itself only.
    assert all(p.startswith("127.0.0.1:") for p in services["mailpit"]["ports"])


def test_nothing_sets_a_fixed_container_name(services):
    assert not [name for name, service in services.items() if "container_name" in service]


# --- Volumes ----------------------------------------------------------------------------------------

def test_named_volumes_hold_database_media_and_keys(compose, services):
    declared = set(compose["volumes"])
    assert {"postgres-data", "media", "keys"} <= declared
    assert ("postgres-data", "/var/lib/postgresql/data", False) in volume_mounts(services["postgres"])
    for name, service in services.items():
        for source, _, _ in volume_mounts(service):
            assert source in declared or source.startswith("./"), f"{name}: undeclared volume {source}"


def test_keys_are_written_by_the_keys_job_only(services):
    for name, service in services.items():
        for source, target, read_only in volume_mounts(service):
            if source == "keys":
                assert target == "/data/keys"
                assert read_only or name == "keys", f"{name} mounts the keys read-write"
    assert ("keys", "/data/keys", False) in volume_mounts(services["keys"])


def test_media_is_shared_by_the_services_that_need_it(services):
    def media(name):
        return [(read_only) for source, target, read_only in volume_mounts(services[name])
                if source == "media" and target == "/data/media"]

    assert media("catalog") == [False] and media("transcoder") == [False]
    assert media("streamer") == [True] and media("gateway") == [True]


def test_postgres_creates_one_database_per_service_on_first_start(services):
    postgres = services["postgres"]
    script = next(source for source, target, _ in volume_mounts(postgres)
                  if target.startswith("/docker-entrypoint-initdb.d/"))
    assert (compose_dir() / script).is_file()
    created = set(environment(postgres)["POSTGRES_DATABASES"].split())
    for name in APP_SERVICES + ["migrate-auth", "migrate-catalog", "admin"]:
        for key, value in environment(services[name]).items():
            if key.endswith("_DATABASE_URL"):
                url = urlsplit(interpolate(value, {}))
                assert url.hostname == "postgres" and url.path.lstrip("/") in created, f"{name} {key}"


# --- Configuration ----------------------------------------------------------------------------------

def test_app_services_read_the_env_file(services):
    for name in APP_SERVICES + ["gateway", "keys", "migrate-auth", "migrate-catalog", "admin"]:
        env_files = services[name].get("env_file") or []
        paths = [entry["path"] if isinstance(entry, dict) else entry for entry in env_files]
        assert paths == ["../.env"], f"{name} does not read the repository's .env"
        assert (compose_dir() / paths[0]).resolve() == ROOT / ".env"


def test_every_variable_the_compose_file_interpolates_is_documented():
    used = interpolated_names(COMPOSE_FILE.read_text())
    missing = used - set(env_template())
    assert not missing, f"add to .env.template: {sorted(missing)}"


def test_every_variable_the_code_reads_is_documented():
    read = variables_read_by_code()
    assert {"AUTH_DATABASE_URL", "KEYS_DIR", "GUNICORN_WORKERS"} <= set(read), "the scan finds nothing"
    missing = {name: sorted(where) for name, where in read.items()
               if name not in env_template() and name not in SET_PER_PROCESS}
    assert not missing, f"add to .env.template: {missing}"


def is_local_only(value: str, gateway_port: str) -> bool:
    """A .env.template value that only makes sense outside containers: a path in the checkout, or a
    host address on this machine other than the public gateway."""
    if not value or " " in value:
        return False
    if "://" not in value:
        top = value.split("/")[0]
        in_checkout = "/" in value and (top == "var" or (top and (ROOT / top).is_dir()))
        return value in {"127.0.0.1", "localhost"} or in_checkout
    url = urlsplit(value)
    return url.hostname in {"127.0.0.1", "localhost"} and str(url.port) != gateway_port


def test_local_only_values_are_recognised():
    assert is_local_only("var/keys", "8000") and is_local_only("frontend/dist", "8000")
    assert is_local_only("postgresql://postgres@127.0.0.1:5432/videoflix_auth", "8000")
    assert not is_local_only("http://127.0.0.1:8000", "8000") and not is_local_only("10r/m", "8000")
    assert not is_local_only("/data/keys", "8000") and not is_local_only("a b", "8000")


def test_containers_override_every_local_only_setting(services, template):
    read = variables_read_by_code()
    local = {name for name, value in template.items()
             if name in read and is_local_only(value, template["GATEWAY_PORT"])}
    assert {"AUTH_DATABASE_URL", "REDIS_URL", "KEYS_DIR", "SMTP_HOST", "CATALOG_URL"} <= local
    python_needs = {name for name in local if read[name] - {RENDER_SCRIPT}}
    for name in APP_SERVICES + ["keys", "migrate-auth", "migrate-catalog", "admin"]:
        missing = python_needs - set(environment(services[name]))
        assert not missing, f"{name} would take {sorted(missing)} from .env (values for `make up`)"
    gateway_needs = {name for name in local if RENDER_SCRIPT in read[name]} | {"GATEWAY_PORT"}
    missing = gateway_needs - set(environment(services["gateway"]))
    assert not missing, f"gateway would take {sorted(missing)} from .env"


def test_hosts_in_the_container_settings_are_services_of_the_stack(services):
    for name, service in services.items():
        for key, value in environment(service).items():
            value = interpolate(value, {})
            if "://" in value:
                host = urlsplit(value).hostname
            elif key.endswith("_UPSTREAM") or key.endswith("_HOST"):
                host = value.split(":")[0]
            else:
                continue
            if key != "BIND_HOST":
                assert host in services, f"{name}: {key}={value} names no service"


def test_gateway_reaches_each_service_on_its_port(services):
    gateway = environment(services["gateway"])
    for name in HTTP_SERVICES:
        host, port = gateway[f"{name.upper()}_UPSTREAM"].split(":")
        assert host == name and port == environment(services[name])["PORT"]
        assert port in [str(p) for p in services[name].get("expose", [])]
        # nginx resolved the old container's address at start.
        assert depends_on(services["gateway"])[name].get("restart") is True, name


# --- Graceful shutdown ------------------------------------------------------------------------------

def test_stop_grace_outlasts_gunicorns_graceful_timeout(services, template):
    graceful = float(template["GUNICORN_GRACEFUL_TIMEOUT"])
    for name in HTTP_SERVICES:
        assert seconds(services[name]["stop_grace_period"]) > graceful, name


def test_transcoder_gets_time_for_rqs_warm_shutdown(services, template):
    transcoder = services["transcoder"]
    assert transcoder.get("stop_signal", "SIGTERM") == "SIGTERM"
    grace = interpolate(transcoder["stop_grace_period"], template)
    assert seconds(grace) >= 60
    assert services["gateway"]["stop_grace_period"]


def test_python_containers_run_an_init_process(services):
    for name in APP_SERVICES + ["keys", "migrate-auth", "migrate-catalog", "admin"]:
        assert services[name].get("init") is True, name


def test_our_containers_keep_no_privileges(services):
    for name in APP_SERVICES + ["keys", "migrate-auth", "migrate-catalog", "admin", "gateway"]:
        assert services[name].get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in services[name].get("security_opt", []), name


# --- Validation -------------------------------------------------------------------------------------

def schema_check(path: Path) -> subprocess.CompletedProcess:
    tool = shutil.which("check-jsonschema", path=str(VENV_BIN)) or shutil.which("check-jsonschema")
    if not tool:
        pytest.skip("check-jsonschema is not installed (pip install -r requirements-dev.txt)")
    return subprocess.run([tool, "--builtin-schema", "vendor.compose-spec", str(path)],
                          capture_output=True, text=True, timeout=120)


def test_compose_specification_accepts_the_file():
    result = schema_check(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_specification_check_rejects_a_broken_file(tmp_path):
    broken = load_compose()
    broken["services"]["transcoder"]["depends_on"]["redis"]["condition"] = "service_ready"
    broken["services"]["gateway"]["stop_grace_period"] = 30
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = schema_check(path)
    assert result.returncode != 0
    assert "service_ready" in result.stdout + result.stderr


def compose_command() -> list[str]:
    """`docker compose`, else a `docker-compose` (requirements-dev.txt installs Compose v2 as one)."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose", path=str(VENV_BIN)) or shutil.which("docker-compose")
    if not legacy:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed here "
                    "(pip install -r requirements-dev.txt); the compose-spec schema check still runs")
    version = subprocess.run([legacy, "version", "--short"], capture_output=True, text=True).stdout.strip()
    if version.startswith("1."):
        pytest.skip(f"docker-compose {version} is Compose v1, which predates this file's format "
                    "(top-level name, optional env_file); the compose-spec schema check still runs")
    return [legacy]


@pytest.mark.parametrize("env_file", [None, ".env.template"])
def test_docker_compose_config_accepts_the_file(env_file):
    options = ["--env-file", str(ROOT / env_file)] if env_file else []
    result = subprocess.run([*compose_command(), *options, "-f", str(COMPOSE_FILE), "config", "--quiet"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr


def test_docker_compose_resolves_a_dotenv_made_from_the_template(tmp_path, template):
    """A checkout whose .env is the template plus two changes: Compose's resolved model must give
    the containers their own paths and hosts, pass .env's other settings through, and apply the
    changes (published port, number of transcoders)."""
    (tmp_path / "deploy").mkdir()
    for name in ("docker-compose.yml", "postgres-init.sh"):
        shutil.copy(compose_dir() / name, tmp_path / "deploy" / name)
    (tmp_path / ".env").write_text(ENV_TEMPLATE.read_text() + "GATEWAY_PORT=9000\nTRANSCODER_WORKERS=3\n")
    result = subprocess.run([*compose_command(), "--env-file", ".env", "-f", "deploy/docker-compose.yml",
                             "config", "--format", "json"], capture_output=True, text=True, cwd=tmp_path,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)["services"]
    auth = resolved["auth"]["environment"]
    assert auth["KEYS_DIR"] == "/data/keys" and auth["SMTP_HOST"] == "mailpit"
    assert urlsplit(auth["AUTH_DATABASE_URL"]).hostname == "postgres"
    assert auth["ACCESS_TOKEN_MINUTES"] == template["ACCESS_TOKEN_MINUTES"], ".env is not passed through"
    assert resolved["gateway"]["environment"]["GATEWAY_PORT"] == "8000"
    assert [(p["published"], p["target"]) for p in resolved["gateway"]["ports"]] == [("9000", 8000)]
    assert resolved["transcoder"]["deploy"]["replicas"] == 3
    assert resolved["auth"]["build"]["context"] == str(tmp_path)


def test_the_offline_test_override_puts_every_service_on_its_own_loopback_port(tmp_path):
    """`make test-compose`'s override (deploy/offline/docker-compose.test.yml): every container on the host
    network, none publishing a port, every address on 127.0.0.1, each listener on its own port in
    30000-30999. A service added to the compose file without its line in the override fails here."""
    for name in ("docker-compose.yml", "postgres-init.sh", "offline/docker-compose.test.yml"):
        (tmp_path / "deploy" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(compose_dir() / name, tmp_path / "deploy" / name)
    result = subprocess.run([*compose_command(), "-f", "deploy/docker-compose.yml", "-f",
                             "deploy/offline/docker-compose.test.yml", "config", "--format", "json"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)["services"]
    for name, service in resolved.items():
        assert service.get("network_mode") == "host", f"{name} is not on the host network"
        assert not service.get("ports"), f"{name} publishes {service['ports']}"
        for key, value in (service.get("environment") or {}).items():
            if "://" in value:
                host = urlsplit(value).hostname
            elif key.endswith(("_UPSTREAM", "_HOST", "_ADDR")):
                host = value.rsplit(":", 1)[0]
            else:
                continue
            assert host == "127.0.0.1", f"{name}: {key}={value}"
    listeners = [resolved[name]["environment"]["PORT"] for name in [*HTTP_SERVICES, "catalog-internal"]]
    listeners += [resolved["gateway"]["environment"]["GATEWAY_PORT"], resolved["postgres"]["environment"]["PGPORT"]]
    assert len(set(listeners)) == len(listeners) and all(30000 <= int(port) < 31000 for port in listeners)


def test_transcoders_report_to_a_catalog_process_of_their_own(services):
    internal = services["catalog-internal"]
    assert internal["image"] == services["catalog"]["image"]
    assert environment(internal)["GUNICORN_WORKERS"] == "1"
    public = environment(services["catalog"])  # its own settings, defaults as in .env.template
    assert [interpolate(public[name], {}) for name in ("GUNICORN_WORKERS", "GUNICORN_THREADS")] == [
        env_template()["CATALOG_GUNICORN_WORKERS"], env_template()["CATALOG_GUNICORN_THREADS"]]
    assert environment(services["transcoder"])["CATALOG_URL"] == "http://catalog-internal:8000"
    assert "catalog-internal" in depends_on(services["transcoder"])
    gateway = environment(services["gateway"])
    assert "catalog-internal" not in " ".join(gateway.values())  # never routed


def test_cookies_are_secure_by_default_in_compose(services, template):
    for name in ("auth", "catalog", "streamer"):
        value = environment(services[name])["COOKIE_SECURE"]
        assert interpolate(value, {}) == "true", name
        assert interpolate(value, template) == "true", name  # a .env copied from .env.template too
