"""The extra servers the delivery benchmarks compare against the real gateway.

Derived gateways are the real deploy/nginx.conf, rendered by gateway/render.sh for another port and
changed in exactly one place (segments through the streamer, no token check, no token cache), so every
other setting stays the production one. The reference servers are a plain static nginx and a Flask
`send_file` app behind nginx (bench/nginx.conf.template, bench/send_file_app.py).
"""
from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from shared.tests.seaweedfs import free_port_range

from .harness import ROOT, STACK, Stack, port_open, wait_until

BENCH_DIR = Path(__file__).resolve().parent
SEGMENT_LOCATION = "segment_"
PLAYLIST_LOCATION = "index\\.m3u8"
JWT_LOCATION = "location = /_video_access"  # the check on media routes
BRACE = re.compile(r"[{}]")


class Nginx:
    """An nginx of our own: prefix directory with nginx.conf, run in the foreground as our child."""

    def __init__(self, directory: Path, port: int, environment: dict[str, str] | None = None):
        self.directory, self.port, self.environment = directory, port, environment
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Nginx:
        with open(self.directory / "nginx.log", "ab") as log:
            self.process = subprocess.Popen(
                ["nginx", "-p", str(self.directory), "-c", str(self.directory / "nginx.conf"), "-g", "daemon off;"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=self.environment)
        wait_until(lambda: port_open(self.port) or self.process.poll() is not None, 15, what=f"nginx on {self.port}")
        if self.process.poll() is not None:
            raise RuntimeError((self.directory / "nginx.log").read_text()[-2000:])
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(15)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def block_span(text: str, opening: str) -> tuple[int, int]:
    """Start and end offsets of the inside of the one `{...}` block whose opening line contains `opening`."""
    lines = [match for match in re.finditer(r"^[ \t]*location\b[^\n]*\{[ \t]*$", text, re.MULTILINE)
             if opening in match.group(0)]
    assert len(lines) == 1, f"expected one location block matching {opening!r}, found {len(lines)}"
    start = position = lines[0].end()
    depth = 1
    while depth:
        brace = BRACE.search(text, position)
        depth += 1 if brace.group() == "{" else -1
        position = brace.end()
    return start, position - 1


def replace_block(text: str, opening: str, change: Callable[[str], str]) -> str:
    start, end = block_span(text, opening)
    inside = change(text[start:end])
    return text[:start] + inside + text[end:]


def segments_via_streamer(text: str) -> str:
    """(a') the segment location answered like the playlists: JWT check, then the streamer's X-Accel."""
    start, end = block_span(text, PLAYLIST_LOCATION)
    return replace_block(text, SEGMENT_LOCATION, lambda _: text[start:end])


def segments_without_check(text: str) -> str:
    """The segment location with the auth_request token check removed (everything else as deployed)."""
    return replace_block(text, SEGMENT_LOCATION, lambda inside: re.sub(r"^[ \t]*auth_request.*\n", "", inside,
                                                                       flags=re.MULTILINE))


def token_check_uncached(text: str) -> str:
    """The media check without its cache: RSA verification and the catalog's answer on every request."""
    return replace_block(text, JWT_LOCATION, lambda inside: re.sub(r"^[ \t]*proxy_cache.*\n", "", inside,
                                                                   flags=re.MULTILINE))


def derived_gateway(stack: Stack, name: str, port: int, change: Callable[[str], str] | None,
                    environment: dict[str, str] | None = None) -> Nginx:
    """`environment`: settings beyond the stack's, for render.sh and nginx (MEDIA_STORAGE=s3 and its own)."""
    directory = stack.var_dir / "bench" / name
    directory.mkdir(parents=True, exist_ok=True)
    # Its own stub_status listener too: the stack's gateway holds the configured one.
    environment = {**stack.env, **(environment or {}), "GATEWAY_PORT": str(port),
                   "GATEWAY_STATUS_PORT": str(free_port_range(1))}
    subprocess.run([str(ROOT / "gateway" / "render.sh"), str(directory)], cwd=ROOT, check=True, env=environment)
    if change:
        config = directory / "nginx.conf"
        original = config.read_text()
        changed = change(original)
        assert changed != original, f"{name}: the change did not apply"
        config.write_text(changed)
    return Nginx(directory, port, environment)


def segments_uncached(text: str) -> str:
    """(MEDIA_STORAGE=s3) the segment location without the media cache: every request a miss, to S3."""
    return replace_block(text, SEGMENT_LOCATION, lambda inside: re.sub(r"^[ \t]*proxy_cache.*\n", "", inside,
                                                                       flags=re.MULTILINE))


def reference_nginx(stack: Stack, static_port: int, flask_port: int, app_port: int) -> Nginx:
    """Plain static nginx on `static_port` and nginx -> Flask send_file (app on `app_port`) on `flask_port`."""
    directory = stack.var_dir / "bench" / "reference"
    (directory / "tmp").mkdir(parents=True, exist_ok=True)
    values = {"STATIC_PORT": static_port, "FLASK_PORT": flask_port, "APP_PORT": app_port,
              "MEDIA_DIR": stack.media_dir.resolve()}
    text = (BENCH_DIR / "nginx.conf.template").read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    (directory / "nginx.conf").write_text(text)
    return Nginx(directory, static_port)


class SendFileApp:
    """bench/send_file_app.py under gunicorn with the services' own gunicorn settings."""

    def __init__(self, stack: Stack, port: int):
        self.stack, self.port = stack, port
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> SendFileApp:
        env = {**self.stack.env, "PORT": str(self.port)}
        with open(self.stack.var_dir / "bench" / "send_file_app.log", "ab") as log:
            self.process = subprocess.Popen(
                ["gunicorn", "-c", "services/gunicorn.conf.py", "bench.send_file_app:create_app()"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if not STACK.wait_healthy(f"http://127.0.0.1:{self.port}/healthz", timeout=30):
            raise RuntimeError("the send_file app did not start")
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(30)
