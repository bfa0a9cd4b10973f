"""Key material on the running test stack: only auth's processes can find the RSA private key.

Every other process (catalog, streamer, reconciler, transcoders, gateway) is pointed at a directory
holding the public key and the service token only (scripts/stack.py), as in compose (deploy/tests).
"""
from __future__ import annotations

from pathlib import Path

from conftest import STACK

AUTH_PROCESSES = {"auth", "pruner"}
PRIVATE_KEY = "jwt_private.pem"


def running(stack_env) -> dict[str, int]:
    """Each program supervisord runs for the test stack, by name: its pid."""
    pids = {process.name: STACK.running_pid(stack_env, process.name) for process in STACK.processes(stack_env)}
    return {name: pid for name, pid in pids.items() if pid}


def environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def test_only_auths_processes_are_given_the_private_key(stack_env):
    processes = running(stack_env)
    others = {name: pid for name, pid in processes.items() if name not in AUTH_PROCESSES}
    assert {"catalog", "streamer", "reconciler", "gateway", "transcoder-1"} <= set(others), processes
    auth_keys = Path(environment(processes["auth"])["KEYS_DIR"]).resolve()
    assert (auth_keys / PRIVATE_KEY).is_file()
    for name, pid in others.items():
        if name == "gateway":  # nginx reuses its environ area for its process title: see its config below
            continue
        env = environment(pid)
        keys_dir = Path(env["KEYS_DIR"]).resolve()
        assert keys_dir != auth_keys and not (keys_dir / PRIVATE_KEY).exists(), name
        assert (keys_dir / "jwt_public.pem").read_bytes() == (auth_keys / "jwt_public.pem").read_bytes(), name
        assert (keys_dir / "service_token").is_file(), name
        for variable, value in env.items():
            if value.startswith("/"):
                path = Path(value).resolve()
                assert path != auth_keys and auth_keys not in path.parents, f"{name}: {variable}={value}"


def test_the_gateway_config_names_only_the_public_key(stack_env):
    config = (Path(stack_env["VAR_DIR"]) / "gateway" / "nginx.conf").read_text()
    auth_keys = str(Path(stack_env["KEYS_DIR"]).resolve())
    assert PRIVATE_KEY not in config and auth_keys + "/" not in config
    assert "jwt_public.pem" in config
