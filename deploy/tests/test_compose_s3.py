"""deploy/docker-compose.s3.yml, the compose S3 mode: resolved by `docker compose config` (no engine needed),
no container mounts a media volume, the keys come from the environment only, SeaweedFS behind the profile."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from deploy.tests.compose_files import compose_dir
from deploy.tests.test_compose import compose_command

KEYS = {"S3_ACCESS_KEY_ID": "VFSERVICE", "S3_SECRET_ACCESS_KEY": "service-secret",
        "GATEWAY_S3_ACCESS_KEY_ID": "VFGATEWAY", "GATEWAY_S3_SECRET_ACCESS_KEY": "gateway-secret"}
FILES = ("docker-compose.yml", "docker-compose.s3.yml", "postgres-init.sh", "offline/docker-compose.test.yml",
         "offline/docker-compose.s3.test.yml")


def resolve(tmp_path, files: list[str], options: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    for name in FILES:  # a copy: no .env of the checkout reaches the model
        (tmp_path / "deploy" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(compose_dir() / name, tmp_path / "deploy" / name)
    arguments = [argument for name in files for argument in ("-f", f"deploy/{name}")]
    return subprocess.run([*compose_command(), *arguments, *options, "config", "--format", "json"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={"PATH": "/usr/local/bin:/usr/bin:/bin", **env})


def services(tmp_path, files: list[str], options: list[str], env: dict[str, str] = KEYS) -> dict[str, dict]:
    result = resolve(tmp_path, files, options, env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


def volumes(service: dict) -> list[str]:
    return [f"{volume.get('source')}:{volume['target']}" for volume in service.get("volumes", [])]


@pytest.fixture
def s3_mode(tmp_path) -> dict[str, dict]:
    return services(tmp_path, ["docker-compose.yml", "docker-compose.s3.yml"], ["--profile", "s3"])


def test_no_container_mounts_media_and_transcoders_only_the_public_keys(s3_mode):
    assert not [name for name, service in s3_mode.items() if any(v.startswith("media:") for v in volumes(service))]
    assert volumes(s3_mode["transcoder"]) == ["public-keys:/data/keys"]
    # Unfinished resumable uploads: the catalog's own volume, which the reconciler expires.
    assert {name for name, service in s3_mode.items()
            if any(v.startswith("catalog-uploads:") for v in volumes(service))} == {"catalog", "reconciler"}
    assert s3_mode["transcoder"]["networks"].keys() == {"transcoding"}


def test_every_media_user_is_in_s3_mode_on_the_bundled_seaweedfs(s3_mode):
    for name in ("catalog", "catalog-internal", "reconciler", "streamer", "transcoder", "bucket", "gateway"):
        environment = s3_mode[name]["environment"]
        assert environment["MEDIA_STORAGE"] == "s3", name
        assert environment["S3_ENDPOINT_URL"] == "http://seaweedfs:8333", name
    # The gateway gets its read-only pair, not the services' read-write one.
    assert s3_mode["gateway"]["environment"]["GATEWAY_S3_ACCESS_KEY_ID"] == "VFGATEWAY"
    assert "S3_SECRET_ACCESS_KEY" not in s3_mode["gateway"]["environment"]
    # The overlay keeps the public catalog's own gunicorn (its memory during an upload into S3).
    catalog = s3_mode["catalog"]["environment"]
    assert (catalog["GUNICORN_WORKERS"], catalog["GUNICORN_THREADS"]) == ("1", "8")


def test_seaweedfs_is_the_official_image_unpublished_on_both_networks(s3_mode):
    seaweedfs = s3_mode["seaweedfs"]
    assert seaweedfs["image"].startswith("chrislusf/seaweedfs:")
    assert not seaweedfs.get("ports")
    assert seaweedfs["networks"].keys() == {"default", "transcoding"}
    assert volumes(seaweedfs) == ["seaweedfs-data:/data", "seaweedfs-config:/etc/videoflix"]
    assert seaweedfs["depends_on"]["seaweedfs-config"]["condition"] == "service_completed_successfully"
    # The bucket exists before anything that reads or writes media starts.
    for name in ("catalog", "catalog-internal", "transcoder", "gateway"):
        assert s3_mode[name]["depends_on"]["bucket"]["condition"] == "service_completed_successfully", name


def test_without_the_profile_no_seaweedfs_runs(tmp_path):
    resolved = services(tmp_path, ["docker-compose.yml", "docker-compose.s3.yml"], [],
                        {**KEYS, "S3_ENDPOINT_URL": "https://s3.eu-central-1.amazonaws.com"})
    assert "seaweedfs" not in resolved and "seaweedfs-config" not in resolved
    assert resolved["transcoder"]["environment"]["S3_ENDPOINT_URL"] == "https://s3.eu-central-1.amazonaws.com"


@pytest.mark.parametrize("missing", sorted(KEYS))
def test_a_missing_key_stops_compose_with_its_name(tmp_path, missing):
    result = resolve(tmp_path, ["docker-compose.yml", "docker-compose.s3.yml"], ["--profile", "s3"],
                     {name: value for name, value in KEYS.items() if name != missing})
    assert result.returncode != 0
    assert f"set {missing} in .env" in result.stderr


def test_the_offline_s3_override_runs_the_stand_in_on_loopback(tmp_path):
    resolved = services(tmp_path, list(FILES[:2]) + list(FILES[3:]), ["--profile", "s3"],
                        {**KEYS, "S3_ENDPOINT_URL": "http://127.0.0.1:30333"})
    assert resolved["seaweedfs"]["image"] == "videoflix-offline/seaweedfs"
    assert {name for name, service in resolved.items()
            if service.get("network_mode") not in {"host", "none"}} == set()
    assert "-s3.port=30333" in resolved["seaweedfs"]["command"]
    assert not [name for name, service in resolved.items() if any(v.startswith("media:") for v in volumes(service))]
