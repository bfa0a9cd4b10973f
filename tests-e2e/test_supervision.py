"""The local stack runs under supervisord: a process killed with -9 is back within seconds, and
`stack.py status` (`make status`) lists every process with its uptime."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import requests

from conftest import ROOT, STACK

RESTART_TIMEOUT = 30


def healthy(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_catalog_killed_with_sigkill_is_restarted(stack_env):
    before = STACK.running_pid(stack_env, "catalog")
    assert before, "the catalog is not running under supervisord"
    os.kill(before, signal.SIGKILL)  # the gunicorn master only: no graceful anything
    health = f"http://127.0.0.1:{stack_env['CATALOG_PORT']}/healthz"
    deadline = time.monotonic() + RESTART_TIMEOUT
    while not ((after := STACK.running_pid(stack_env, "catalog")) and after != before and healthy(health)):
        assert time.monotonic() < deadline, f"catalog not back {RESTART_TIMEOUT} s after kill -9"
        time.sleep(0.3)
    # And through the gateway: the API answers again (401: no token, but the catalog answered).
    gateway = f"http://127.0.0.1:{stack_env['GATEWAY_PORT']}/api/video/"
    assert requests.get(gateway, timeout=10).status_code == 401


def test_status_lists_every_process_with_its_uptime(stack_env):
    result = subprocess.run([sys.executable, "scripts/stack.py", "--profile", "test", "status"], cwd=ROOT,
                            env={**os.environ, **stack_env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert sorted(lines) == sorted(process.name for process in STACK.processes(stack_env))
    for name, line in lines.items():
        assert "RUNNING" in line and "uptime" in line, line
