"""A private Videoflix stack for the benchmarks and the fault tests, and the client steps both repeat.

`Stack(slot, **overrides)` runs exactly what `make test` runs (scripts/stack.py) on the ports of
TEST_SLOT=slot, from a fresh state, with optional environment overrides (a private Redis or PostgreSQL,
a larger upload limit). Processes are inspected through /proc: RSS and CPU time of a process and all its
descendants (rq work horses and ffmpeg included).
"""
from __future__ import annotations

import email
import email.policy
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import requests

ROOT = Path(__file__).resolve().parents[1]
BENCH_MEDIA = ROOT / "var" / "bench-media"
PASSWORD = "Bench-Horse-Battery-9!"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _load_stack_module():
    spec = importlib.util.spec_from_file_location("videoflix_stack", ROOT / "scripts" / "stack.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


STACK = _load_stack_module()
STACK_RUNNER = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("videoflix_stack", "scripts/stack.py")
stack = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = stack
spec.loader.exec_module(stack)
env, (action, name) = json.load(sys.stdin), sys.argv[1:]
if action == "start":
    stack.start(env, next(p for p in stack.processes(env) if p.name == name))
elif action == "stop":
    stack.stop(env, name)
else:
    sys.exit(getattr(stack, action)(env))
"""


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.25, what: str = "condition"):
    """Poll until `predicate()` is truthy and return its value; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


# --- processes ----------------------------------------------------------------------------------

def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    return children


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (found by parent pid: rq work horses start their own session)."""
    children = _children_map()
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def pss_bytes(pid: int) -> int:
    """Proportional set size: shared pages (a gunicorn master's, forked into its workers) counted once."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system time of the process and of its children it has already waited for."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def tree_rss_bytes(pid: int) -> int:
    return sum(rss_bytes(member) for member in process_tree(pid))


def tree_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(member) for member in process_tree(pid))


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> list[int]:
    members = process_tree(pid)
    for member in members:
        try:
            os.kill(member, sig)
        except ProcessLookupError:
            pass
    return members


# --- the stack ----------------------------------------------------------------------------------

class Stack:
    """One test stack of scripts/stack.py on TEST_SLOT=`slot`, with environment overrides."""

    def __init__(self, slot: int, **overrides: str):
        # Overrides are settings like any other: what build_env derives from them (MEDIA_STORAGE=s3: the
        # stack's own SeaweedFS and its keys) follows them.
        with mock.patch.dict(os.environ, {"TEST_SLOT": str(slot), **overrides}):
            self.env = STACK.build_env("test")
        self.env.update(overrides)
        self.slot = slot

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.env['GATEWAY_PORT']}"

    @property
    def api_url(self) -> str:
        return f"{self.gateway_url}/api/"

    def service_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.env[f'{name.upper()}_PORT']}"

    @property
    def var_dir(self) -> Path:
        return Path(self.env["VAR_DIR"])

    @property
    def media_dir(self) -> Path:
        return Path(self.env["MEDIA_DIR"])

    def psql(self, database_url: str, sql: str) -> str:
        """Run SQL with psql against one of the stack's databases; returns psql's unaligned output."""
        result = subprocess.run(["psql", database_url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql],
                                capture_output=True, text=True, check=True)
        return result.stdout

    def reset(self) -> None:
        """A fresh state, as scripts/test.sh makes one: databases, Redis db and var dir of this slot."""
        if self._stack_action("reset") != 0:
            raise RuntimeError(f"stack of slot {self.slot} could not be reset")

    def _stack_action(self, action: str, name: str = "") -> int:
        """Run scripts/stack.py's `action` with our environment in a short-lived child process, so the
        services it starts are orphaned and reaped by init like after `stack.py up`, never our zombies."""
        return subprocess.run([sys.executable, "-c", STACK_RUNNER, action, name], cwd=ROOT,
                              input=json.dumps(self.env), text=True, check=False).returncode

    def up(self) -> None:
        if self._stack_action("up") != 0:
            raise RuntimeError(f"stack of slot {self.slot} did not come up:\n{self.log_tail()}")

    def down(self) -> None:
        self._stack_action("down")

    def log_tail(self, lines: int = 15) -> str:
        parts = []
        for log in sorted((self.var_dir / "log").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(tail))
        return "\n".join(parts)

    def process_names(self) -> list[str]:
        return [process.name for process in STACK.processes(self.env)]

    def pid(self, name: str) -> int | None:
        return STACK.running_pid(self.env, name)

    def start(self, name: str) -> None:
        """(Re)start one process of the stack, as a supervisor would after a crash."""
        process = next(p for p in STACK.processes(self.env) if p.name == name)
        self._stack_action("start", name)
        if process.health_url and not STACK.wait_healthy(process.health_url, timeout=30):
            raise RuntimeError(f"{name} did not become healthy:\n{self.log_tail()}")
        if name == "maildev":
            wait_until(lambda: port_open(int(self.env["SMTP_PORT"])), 15, what="the SMTP sink")

    def stop(self, name: str) -> None:
        self._stack_action("stop", name)

    def transcoder_names(self) -> list[str]:
        return [name for name in self.process_names() if name.startswith("transcoder")]


# --- clients ------------------------------------------------------------------------------------

class ApiSession(requests.Session):
    """A browser-like client of the gateway: keeps cookies, sends X-CSRFToken on state changes."""

    def __init__(self, api_url: str):
        super().__init__()
        self.api_url = api_url

    def request(self, method, url, *args, **kwargs):
        if not url.startswith("http"):
            url = self.api_url + url.lstrip("/")
        headers = kwargs.pop("headers", None) or {}
        token = self.cookies.get("csrftoken")
        if token and method.upper() not in {"GET", "HEAD", "OPTIONS"}:
            headers.setdefault("X-CSRFToken", token)
        kwargs.setdefault("timeout", 60)
        return super().request(method, url, *args, headers=headers, **kwargs)

    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())


def mail_link(mail_dir: Path, address: str, page: str, timeout: float = 30) -> tuple[str, str]:
    """uid and token from the newest mail to `address` linking to `page` (activate.html, ...)."""
    pattern = re.compile(re.escape(page) + r"\?uid=([A-Za-z0-9_\-]+)&(?:amp;)?token=([A-Za-z0-9_\-.:]+)")

    def find():
        found = None
        for path in sorted(mail_dir.glob("*.eml"), key=lambda p: p.stat().st_mtime):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if address.lower() in str(message["To"]).lower():
                match = pattern.search(message.get_body(preferencelist=("plain",)).get_content())
                found = match.groups() if match else found
        return found

    return wait_until(find, timeout, what=f"a {page} mail to {address}")


def register_and_login(stack: Stack, address: str | None = None) -> ApiSession:
    """A new activated user, logged in through the gateway."""
    address = address or f"bench-{uuid.uuid4().hex[:10]}@example.com"
    session = ApiSession(stack.api_url)
    response = session.post("register/", json={"email": address, "password": PASSWORD,
                                               "confirmed_password": PASSWORD, "privacy_policy": "on"})
    response.raise_for_status()
    uid, token = mail_link(Path(stack.env["MAIL_DIR"]), address, "activate.html")
    session.get(f"activate/{uid}/{token}/").raise_for_status()
    session.post("login/", json={"email": address, "password": PASSWORD}).raise_for_status()
    session.email = address
    return session


# --- media --------------------------------------------------------------------------------------

def make_clip(seconds: int, width: int, height: int, audio: bool = True, fps: int = 30) -> Path:
    """A generated test clip (testsrc2 + sine), H.264/AAC in MP4; cached under var/bench-media."""
    path = BENCH_MEDIA / f"clip-{seconds}s-{height}p{'-audio' if audio else ''}.mp4"
    if path.exists():
        return path
    BENCH_MEDIA.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.part.mp4")
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y",
               "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}"]
    if audio:
        command += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
                    "-c:a", "aac", "-b:a", "128k"]
    command += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
                "-movflags", "+faststart", "-shortest", str(partial)]
    subprocess.run(command, check=True)
    partial.rename(path)  # atomic: a concurrent run sees the whole clip or none
    return path


def upload(session: ApiSession, path: Path, title: str = "bench clip") -> dict:
    with path.open("rb") as handle:
        response = session.post("video/upload/", files={"file": (path.name, handle, "video/mp4")},
                                data={"title": title, "description": "generated", "category": "bench"},
                                timeout=600)
    assert response.status_code == 201, f"upload answered {response.status_code}: {response.text[:300]}"
    return response.json()


def video(session: ApiSession, video_id: int) -> dict:
    response = session.get(f"video/{video_id}/")
    response.raise_for_status()
    return response.json()


def wait_for_ladder(session: ApiSession, video_id: int, timeout: float,
                    on_poll: Callable[[dict], None] | None = None) -> dict:
    """Poll the video until every planned rung is published; returns the final detail."""
    def ladder_done():
        detail = video(session, video_id)
        if on_poll:
            on_poll(detail)
        if detail["status"] == "failed" or detail.get("renditions_failed"):
            raise AssertionError(f"video {video_id} failed: {detail}")
        done = detail["status"] == "ready" and not detail.get("renditions_pending")
        return detail if done else None

    return wait_until(ladder_done, timeout, interval=0.2, what=f"video {video_id}'s whole ladder")
