"""PostgreSQL restarts (down for a few seconds) while requests run: auth and catalog recover on their own.

Uses a private PostgreSQL cluster. During the outage a request may fail, but only with a JSON 5xx; from
RECOVERY_GRACE seconds after PostgreSQL is back every request succeeds again, and no service process was
restarted (the same gunicorn master and workers)."""
from __future__ import annotations

import threading
import time

import requests

from bench.harness import PASSWORD, process_tree, register_and_login

DOWNTIME = 3.0
RECOVERY_GRACE = 5.0
AFTER_RECOVERY = 8.0


def test_services_recover_from_a_postgres_restart_by_themselves(make_stack, private_postgres,
                                                                 private_postgres_env):
    stack = make_stack(**private_postgres_env)
    session = register_and_login(stack)
    auth_login = f"{stack.service_url('auth')}/api/login/"
    calls = {
        "catalog list": lambda: session.get("video/", timeout=10),
        "token refresh": lambda: session.post("token/refresh/", json={}, timeout=10),
        "login": lambda: requests.post(auth_login, json={"email": session.email, "password": PASSWORD}, timeout=10),
    }
    processes_before = {name: sorted(process_tree(stack.pid(name))) for name in ("auth", "catalog")}
    results: list[tuple[float, str, int, str]] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            for name, call in calls.items():
                try:
                    response = call()
                    results.append((time.monotonic(), name, response.status_code,
                                    response.headers.get("Content-Type", "")))
                except requests.RequestException as error:
                    results.append((time.monotonic(), name, 0, repr(error)))
            time.sleep(0.05)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    time.sleep(2)
    went_down = time.monotonic()
    private_postgres.restart(DOWNTIME)
    back_up = time.monotonic()
    time.sleep(RECOVERY_GRACE + AFTER_RECOVERY)
    stop.set()
    worker.join(30)

    before = [r for r in results if r[0] < went_down]
    during = [r for r in results if went_down <= r[0] < back_up + RECOVERY_GRACE]
    after = [r for r in results if r[0] >= back_up + RECOVERY_GRACE]
    assert before and all(status == 200 for _, _, status, _ in before), before[:5]
    assert {name for _, name, _, _ in after} == set(calls), "every kind of request ran after recovery"
    failed_after = [r for r in after if r[2] != 200]
    assert not failed_after, f"{len(failed_after)} of {len(after)} requests failed after recovery: {failed_after[:5]}"
    assert any(r[2] != 200 for r in during), "no request noticed the outage: the restart was not exercised"
    unclean = [r for r in during if r[2] != 200 and not (r[2] >= 500 and r[3].startswith("application/json"))]
    assert not unclean, f"during the outage, failures must be JSON 5xx: {unclean[:5]}"
    processes_after = {name: sorted(process_tree(stack.pid(name))) for name in ("auth", "catalog")}
    assert processes_after == processes_before, "a service process was restarted"
