"""Explicit settings (the environment: `make up WORKERS=4`) win over .env, .env over the defaults."""
import importlib.util
import sys

import pytest

from videoflix_shared.config import REPO_ROOT, layered_settings, read_dotenv


def load_stack():
    spec = importlib.util.spec_from_file_location("videoflix_stack", REPO_ROOT / "scripts" / "stack.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_each_layer_wins_over_the_one_below():
    merged = layered_settings(
        {"A": "default", "B": "default", "C": "default"},
        {"B": "dotenv", "C": "dotenv"},
        {"C": "explicit"},
    )
    assert merged == {"A": "default", "B": "dotenv", "C": "explicit"}


def test_read_dotenv_skips_comments_and_strips_quotes(tmp_path):
    path = tmp_path / ".env"
    path.write_text("# a comment\n\nTRANSCODER_WORKERS=3\nMAIL_FROM='Videoflix <a@b.c>'\nEMPTY=\n")
    assert read_dotenv(path) == {"TRANSCODER_WORKERS": "3", "MAIL_FROM": "Videoflix <a@b.c>", "EMPTY": ""}
    assert read_dotenv(tmp_path / "missing") == {}


@pytest.mark.parametrize("environment, dotenv, workers", [
    ({}, "", 2),                                        # the default
    ({}, "TRANSCODER_WORKERS=3\n", 3),                  # .env over the default
    ({"TRANSCODER_WORKERS": "4"}, "TRANSCODER_WORKERS=3\n", 4),  # `make up WORKERS=4` over .env
])
def test_the_dev_stack_starts_the_workers_asked_for(monkeypatch, tmp_path, environment, dotenv, workers):
    stack = load_stack()
    monkeypatch.delenv("TRANSCODER_WORKERS", raising=False)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    (tmp_path / ".env").write_text(dotenv)
    env = stack.build_env("dev", dotenv=tmp_path / ".env")
    names = [process.name for process in stack.processes(env) if process.name.startswith("transcoder-")]
    assert len(names) == workers


def test_an_empty_metrics_directory_from_env_is_no_directory(monkeypatch, tmp_path):
    """Set but empty, PROMETHEUS_MULTIPROC_DIR would make prometheus_client write into the checkout."""
    stack = load_stack()
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    (tmp_path / ".env").write_text("PROMETHEUS_MULTIPROC_DIR=\n")
    assert "PROMETHEUS_MULTIPROC_DIR" not in stack.build_env("dev", dotenv=tmp_path / ".env")


def test_the_public_catalog_runs_its_own_gunicorn_processes_and_threads(monkeypatch, tmp_path):
    """CATALOG_GUNICORN_* (default: 1 process, 8 threads) for the public catalog; the rest keep GUNICORN_*."""
    stack = load_stack()
    for name in ("CATALOG_GUNICORN_WORKERS", "CATALOG_GUNICORN_THREADS", "GUNICORN_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text("GUNICORN_WORKERS=3\n")
    by_name = {process.name: process.environment for process in stack.processes(
        stack.build_env("dev", dotenv=tmp_path / ".env"))}
    assert (by_name["catalog"]["GUNICORN_WORKERS"], by_name["catalog"]["GUNICORN_THREADS"]) == ("1", "8")
    assert "GUNICORN_WORKERS" not in by_name["auth"]  # .env's 3 reaches it through the environment
    (tmp_path / ".env").write_text("CATALOG_GUNICORN_WORKERS=2\nCATALOG_GUNICORN_THREADS=16\n")
    catalog = next(p for p in stack.processes(stack.build_env("dev", dotenv=tmp_path / ".env")) if p.name == "catalog")
    assert (catalog.environment["GUNICORN_WORKERS"], catalog.environment["GUNICORN_THREADS"]) == ("2", "16")
