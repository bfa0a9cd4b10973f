"""deploy/nginx.conf as rendered by gateway/render.sh, run by a real nginx in front of a fake upstream.

The fake upstream only echoes what it received: the thing under test is what nginx forwards, strips,
answers itself and serves from disk. (The e2e suite covers the same gateway in the full stack.)
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
import requests
from videoflix_shared.keys import generate

ROOT = Path(__file__).resolve().parents[2]
RENDER = ROOT / "gateway" / "render.sh"
RECHECK_SECONDS = 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def render(directory: Path, **env: str) -> Path:
    subprocess.run([str(RENDER), str(directory)], env={"PATH": os.environ["PATH"], **env}, check=True)
    return directory / "nginx.conf"


def nginx_test(prefix: Path, user: str | None = None) -> subprocess.CompletedProcess:
    command = ["nginx", "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf")]
    if user:
        command = ["runuser", "-u", user, "--", *command]
    # stdout: /dev/null, which any user may open (the access log is /dev/stdout).
    return subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def workdir():
    # nginx workers run as `nobody` when the master is root: the tree must be readable by them.
    directory = Path(tempfile.mkdtemp(prefix="videoflix-gateway-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


class EchoUpstream(BaseHTTPRequestHandler):
    """Answers with what it received; `.../master.m3u8` answers like the streamer does behind nginx, and
    `/internal/sessions/<sid>` like auth does: 204 (live), 404 (in `revoked`), 503 for "auth-down"."""

    revoked: set[str] = set()
    session_checks: list[str] = []

    def handle_any(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/internal/sessions/"):
            session_id = self.path.rsplit("/", 1)[1]
            self.session_checks.append(session_id)
            status = 503 if session_id == "auth-down" else 404 if session_id in self.revoked else 204
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.endswith("/master.m3u8"):
            video_id = self.path.split("/")[3]
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.apple.mpegurl")
            self.send_header("Cache-Control", "private, max-age=5")
            self.send_header("X-Accel-Redirect", f"/_media/hls/{video_id}/master.m3u8")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        echo = json.dumps({"path": self.path, "headers": self.headers.items(), "body_length": len(body)})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(echo)))
        self.send_header("X-Request-Id", "set-by-upstream")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(echo.encode())

    do_GET = do_POST = do_DELETE = handle_any

    def log_message(self, *args):
        pass


class CatalogStub(BaseHTTPRequestHandler):
    """The catalog as the gateway's media check sees it: video 5 is visible, every other id is not (404).

    Anything else gets no answer (a 502 at the gateway), as if the catalog were down.
    """

    VISIBLE = {"5"}

    def do_GET(self):
        parts = self.path.split("/")
        if self.command == "GET" and len(parts) == 5 and parts[1:3] == ["api", "video"] and parts[3].isdigit() \
                and parts[4] == "":
            visible = parts[3] in self.VISIBLE and "access_token=" in (self.headers.get("Cookie") or "")
            self.send_response(200 if visible else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.close_connection = True

    do_POST = do_DELETE = do_GET

    def log_message(self, *args):
        pass


class Gateway:
    def __init__(self, directory: Path, **environment: str):
        """`environment`: render.sh's and nginx's own (MEDIA_STORAGE=s3 and its S3 settings, say)."""
        self.environment = environment
        self.keys = directory / "keys"
        self.media = directory / "media"
        self.prefix = directory / "gateway"
        self.frontend = directory / "frontend"
        generate(self.keys)
        self.frontend.mkdir()
        (self.frontend / "index.html").write_text("<!doctype html><title>Videoflix</title>")
        self.upstream = ThreadingHTTPServer(("127.0.0.1", 0), EchoUpstream)
        self.catalog = ThreadingHTTPServer(("127.0.0.1", 0), CatalogStub)
        for server in (self.upstream, self.catalog):
            threading.Thread(target=server.serve_forever, daemon=True).start()
        for _ in range(3):  # a free port may be taken by someone else before nginx binds it
            if self.start(free_port()):
                return
        raise RuntimeError(self.process.stderr.read().decode())

    def start(self, port: int) -> bool:
        echo = f"127.0.0.1:{self.upstream.server_address[1]}"
        self.url = f"http://127.0.0.1:{port}"
        render(self.prefix, GATEWAY_PORT=str(port), AUTH_UPSTREAM=echo, STREAMER_UPSTREAM=echo,
               CATALOG_UPSTREAM=f"127.0.0.1:{self.catalog.server_address[1]}",
               MEDIA_DIR=str(self.media), KEYS_DIR=str(self.keys), FRONTEND_DIR=str(self.frontend),
               CORS_ORIGINS="http://127.0.0.1:5500", MAX_UPLOAD_BYTES=str(3 * 1024 * 1024),
               GATEWAY_TOKEN_RECHECK_SECONDS=str(RECHECK_SECONDS), GATEWAY_STATUS_PORT=str(free_port()),
               **self.environment)
        self.access_log = self.prefix / "access.log"  # nginx logs requests to its stdout
        with open(self.access_log, "ab") as log:
            self.process = subprocess.Popen(["nginx", "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"),
                                             "-g", "daemon off;"], stdout=log, stderr=subprocess.PIPE,
                                            env={**os.environ, **self.environment})
        return self.wait_healthy()

    def wait_healthy(self) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return True
            except requests.RequestException:  # not listening yet, or a busy machine
                time.sleep(0.05)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        return False

    def token(self, **claims) -> str:
        now = int(time.time())
        payload = {"sub": "42", "type": "access", "iat": now, "exp": now + 600, "sid": uuid.uuid4().hex, **claims}
        payload = {name: value for name, value in payload.items() if value is not None}
        return jwt.encode(payload, (self.keys / "jwt_private.pem").read_text(), algorithm="RS256")

    def stop_upstream(self):
        self.upstream.shutdown()
        self.upstream.server_close()

    def stop(self):
        self.process.terminate()
        self.process.wait(10)
        self.upstream.shutdown()
        self.catalog.shutdown()


@pytest.fixture
def gateway(workdir):
    running = Gateway(workdir)
    yield running
    running.stop()


# --- rendering -----------------------------------------------------------------------------------------

def test_rendered_config_passes_nginx_t(workdir):
    generate(workdir / "keys")
    render(workdir / "gateway", KEYS_DIR=str(workdir / "keys"))
    result = nginx_test(workdir / "gateway")
    assert result.returncode == 0, result.stderr
    assert not re.findall(r"\$\{[A-Z_]+\}", (workdir / "gateway" / "nginx.conf").read_text())


def test_rendered_config_runs_as_an_ordinary_user(workdir):
    """Pid, temp files, cache and socket all live under the prefix: no root-only path is needed."""
    render(workdir / "gateway", KEYS_DIR=str(workdir / "keys"))
    subprocess.run(["chown", "-R", "nobody", str(workdir / "gateway")], check=True)
    result = nginx_test(workdir / "gateway", user="nobody")
    assert result.returncode == 0, result.stderr


def test_cors_origins_become_map_entries(workdir):
    config = render(workdir, CORS_ORIGINS="http://a.example:5500, https://b.example/  http://[::1]:8000 "
                                          'bad"origin ftp://c.example http://d.example/$x').read_text()
    entries = [line.strip() for line in config.splitlines() if line.strip().startswith('"http')]
    assert entries == ['"http://a.example:5500" "http://a.example:5500";',
                       '"https://b.example" "https://b.example";',
                       '"http://[::1]:8000" "http://[::1]:8000";']


def test_trusted_proxies_become_real_ip_sources(workdir):
    config = render(workdir, TRUSTED_PROXIES="10.0.0.0/8, 192.0.2.7 2001:db8::/32 bad;x $y").read_text()
    assert re.findall(r"set_real_ip_from (.+);", config) == ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]
    geo = config[config.index("geo $realip_remote_addr"):]
    assert re.findall(r"^ +(\S+) 1;$", geo[:geo.index("}")], re.MULTILINE) == [
        "10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]
    assert "set_real_ip_from" not in render(workdir, TRUSTED_PROXIES="").read_text()


def test_upload_limit_is_max_upload_bytes_plus_multipart_slack(workdir):
    config = render(workdir, MAX_UPLOAD_BYTES="1000").read_text()
    assert f"client_max_body_size {1000 + 1024 * 1024};" in config
    assert "client_max_body_size 1m;" in config


def test_upstreams_are_taken_as_given(workdir):
    config = render(workdir, AUTH_UPSTREAM="auth:8000", CATALOG_UPSTREAM="catalog:8000",
                    STREAMER_UPSTREAM="streamer:8000").read_text()
    for name in ("auth", "catalog", "streamer"):
        assert f"server {name}:8000;" in config



def test_the_gateway_closes_idle_upstream_connections_before_gunicorn_does(workdir):
    """Otherwise gunicorn may close a kept-alive connection just as nginx sends a request on it, and a
    POST lost that way is not retried: a 502 for the client."""
    config = render(workdir).read_text()
    blocks = re.findall(r"upstream (\w+) \{(.*?)\}", config, re.S)
    assert {name for name, _ in blocks} == {"auth", "catalog", "streamer"}
    gunicorn: dict = {}
    exec((ROOT / "services" / "gunicorn.conf.py").read_text(), gunicorn)  # noqa: S102 (our own settings file)
    for name, block in blocks:
        assert re.search(r"^\s*keepalive \d+;", block, re.M), name
        timeout = re.search(r"keepalive_timeout (\d+)s;", block)
        assert timeout and int(timeout.group(1)) < gunicorn["keepalive"], name

# --- what reaches the services ----------------------------------------------------------------------

def test_only_the_verified_user_id_reaches_upstream(gateway):
    response = requests.get(f"{gateway.url}/api/video/5/480p/index.m3u8", cookies={"access_token": gateway.token()},
                            headers={"X-User-Id": "7", "X_User_Id": "9"})
    assert response.status_code == 200, response.text
    headers = response.json()["headers"]
    assert [value for name, value in headers if name.lower() == "x-user-id"] == ["42"]
    assert not [name for name, _ in headers if name.lower() == "x_user_id"]


def test_account_routes_get_no_user_id(gateway):
    response = requests.post(f"{gateway.url}/api/login/", json={}, headers={"X-User-Id": "7"})
    names = {name.lower() for name, _ in response.json()["headers"]}
    assert "x-user-id" not in names


def test_internal_headers_from_clients_are_replaced(gateway):
    response = requests.post(f"{gateway.url}/api/login/", json={}, headers={
        "X-Sendfile-Type": "none", "X-Accel-Redirect": "/_media/../keys/jwt_private.pem",
        "X-Accel-Buffering": "no", "X-Accel-Limit-Rate": "1", "X-Forwarded-For": "10.0.0.1",
        "X-Forwarded-Host": "evil.example", "Forwarded": "for=10.0.0.1", "X-Request-Id": "trace-1"})
    headers = dict(response.json()["headers"])
    assert headers["X-Sendfile-Type"] == "X-Accel-Redirect"
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Request-Id"] == "trace-1"
    for name in ("X-Accel-Redirect", "X-Accel-Buffering", "X-Accel-Limit-Rate", "X-Forwarded-Host", "Forwarded"):
        assert name not in headers
    # The gateway alone answers CORS and X-Request-Id.
    assert response.headers["X-Request-Id"] == "trace-1"
    assert "Access-Control-Allow-Origin" not in response.headers


def test_streamer_redirect_is_served_from_media_dir(gateway):
    (gateway.media / "hls" / "5").mkdir(parents=True)
    (gateway.media / "hls" / "5" / "master.m3u8").write_text("#EXTM3U\n#EXT-X-VERSION:3\n")
    response = requests.get(f"{gateway.url}/api/video/5/master.m3u8", cookies={"access_token": gateway.token()})
    assert response.status_code == 200
    assert response.text == "#EXTM3U\n#EXT-X-VERSION:3\n"
    assert response.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert response.headers["Cache-Control"] == "private, max-age=5"  # the streamer's, once


def test_redirect_to_a_missing_file_is_404_json(gateway):
    response = requests.get(f"{gateway.url}/api/video/6/master.m3u8", cookies={"access_token": gateway.token()})
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_upload_body_is_passed_on_beyond_the_json_limit(gateway):
    body = b"x" * (2 * 1024 * 1024)
    response = requests.post(f"{gateway.url}/api/video/upload/", data=body, cookies={"access_token": gateway.token()})
    assert response.status_code == 502  # the catalog is down in this setup: the body got past nginx's limit
    response = requests.post(f"{gateway.url}/api/login/", data=body)
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body too large."}


def test_service_down_is_502_json(gateway):
    response = requests.get(f"{gateway.url}/api/video/", cookies={"access_token": gateway.token()},
                            headers={"Origin": "http://127.0.0.1:5500"})
    assert response.status_code == 502
    assert response.json() == {"detail": "Service unavailable. Please try again later."}
    assert response.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:5500"


def test_verified_tokens_are_cached_until_they_expire(gateway):
    token = gateway.token()
    assert requests.get(f"{gateway.url}/api/video/5/480p/index.m3u8", cookies={"access_token": token}).ok
    cached = [path for path in (gateway.prefix / "cache").rglob("*") if path.is_file()]
    assert len(cached) == 1
    assert b"5 " + token.encode() in cached[0].read_bytes()  # keyed by the video and the token itself


def test_a_token_stops_working_once_its_session_is_revoked(gateway):
    session_id = uuid.uuid4().hex
    url, cookies = f"{gateway.url}/api/video/5/480p/index.m3u8", {"access_token": gateway.token(sid=session_id)}
    for _ in range(5):
        assert requests.get(url, cookies=cookies).ok
    assert EchoUpstream.session_checks.count(session_id) == 1  # cached: one auth call, not one per request
    EchoUpstream.revoked.add(session_id)
    deadline = time.monotonic() + RECHECK_SECONDS + 5
    while requests.get(url, cookies=cookies).ok:
        assert time.monotonic() < deadline, "a revoked session still opens videos after the recheck period"
        time.sleep(0.2)
    response = requests.get(url, cookies=cookies)
    assert response.status_code == 401 and response.json()["detail"]


def test_a_token_without_a_session_is_401(gateway):
    response = requests.get(f"{gateway.url}/api/video/5/", cookies={"access_token": gateway.token(sid=None)})
    assert response.status_code == 401


def test_a_session_check_that_cannot_answer_fails_closed(gateway):
    response = requests.get(f"{gateway.url}/api/video/5/", cookies={"access_token": gateway.token(sid="auth-down")})
    assert response.status_code == 500 and response.json() == {"detail": "Internal server error."}


def test_missing_public_key_fails_closed(gateway):
    (gateway.keys / "jwt_public.pem").unlink()
    response = requests.get(f"{gateway.url}/api/video/5/480p/index.m3u8", cookies={"access_token": gateway.token()})
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error."}


def test_a_new_render_starts_with_an_empty_token_cache(workdir):
    render(workdir, KEYS_DIR=str(workdir / "keys"))
    (workdir / "cache" / "jwt").mkdir(parents=True)
    (workdir / "cache" / "jwt" / "entry").write_text("verified under the old key")
    render(workdir, KEYS_DIR=str(workdir / "keys"))
    assert not any((workdir / "cache").iterdir())


def test_link_tokens_are_masked_in_the_access_log(gateway):
    secret = "s3cret-link-token_42"
    for path in (f"/api/activate/MTIz/{secret}/", f"/api/password_confirm/MTIz/{secret}/",
                 f"/pages/auth/activate.html?uid=MTIz&token={secret}",
                 f"/pages/auth/confirm_password.html?token={secret}&uid=MTIz"):
        requests.get(f"{gateway.url}{path}")
    deadline = time.monotonic() + 5
    while gateway.access_log.read_text().count("/pages/auth/") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    logged = gateway.access_log.read_text()
    paths = [json.loads(line)["path"] for line in logged.splitlines() if "/healthz" not in line]
    assert paths == ["/api/activate/MTIz/***/", "/api/password_confirm/MTIz/***/",
                     "/pages/auth/activate.html?uid=MTIz&token=***",
                     "/pages/auth/confirm_password.html?token=***&uid=MTIz"], logged
    assert secret not in logged


def test_link_tokens_stay_out_of_the_error_log(workdir):
    """nginx quotes the request line in its error lines: an unreachable auth must not log a link token."""
    gateway = Gateway(workdir)
    try:
        gateway.stop_upstream()
        secret = "s3cret-link-token_43"
        assert requests.get(f"{gateway.url}/api/activate/MTIz/{secret}/").status_code == 502
        assert requests.get(f"{gateway.url}/api/register/").status_code == 502  # logged as usual
    finally:
        gateway.process.terminate()
        _, errors = gateway.process.communicate(timeout=10)
    assert "/api/register/" in errors.decode()
    assert secret not in errors.decode()


# --- a video's media is served only to those the catalog shows the video to ------------------------------

@pytest.mark.parametrize("path", ["480p/segment_000.ts", "480p/segment_000.ts/", "480p/index.m3u8",
                                  "master.m3u8", "thumbnail.jpg"])
def test_media_of_a_hidden_video_is_404_like_a_missing_one(gateway, path):
    for video_id in ("5", "6"):
        rung = gateway.media / "hls" / video_id / "480p"
        rung.mkdir(parents=True, exist_ok=True)
        (rung / "segment_000.ts").write_bytes(b"segment of " + video_id.encode())
        (rung.parent / "master.m3u8").write_text("#EXTM3U\n")
    token = gateway.token()
    visible = requests.get(f"{gateway.url}/api/video/5/{path}", cookies={"access_token": token})
    assert visible.status_code == 200, visible.text
    for video_id in ("6", "7"):  # hidden from this user by the catalog; unknown
        response = requests.get(f"{gateway.url}/api/video/{video_id}/{path}", cookies={"access_token": token})
        assert response.status_code == 404, response.text
        assert response.json() == {"detail": "Not found."}


# --- the admin site ----------------------------------------------------------------------------------

def test_admin_site_without_a_valid_token_redirects_to_the_login_page(gateway):
    for cookies in ({}, {"access_token": gateway.token(exp=int(time.time()) - 60)}):
        response = requests.get(f"{gateway.url}/admin/users/", cookies=cookies, allow_redirects=False)
        assert response.status_code == 302
        assert response.headers["Location"] == "/pages/auth/login.html?next=/admin/users/"


def test_admin_site_refuses_a_non_admin_at_the_gateway(gateway):
    for claims in ({}, {"is_admin": False}, {"is_admin": "true"}):
        response = requests.get(f"{gateway.url}/admin/users/", cookies={"access_token": gateway.token(**claims)})
        assert response.status_code == 403, claims
        assert response.headers["Content-Type"].startswith("text/html")
        assert "403 Forbidden" in response.text and "headers" not in response.text  # the upstream never saw it


def test_admin_site_passes_an_admin_with_the_verified_flags(gateway):
    token = gateway.token(is_admin=True)
    response = requests.get(f"{gateway.url}/admin/users/?search=a", cookies={"access_token": token},
                            headers={"X-User-Admin": "forged", "X-User-Id": "7"})
    assert response.status_code == 200
    echo = response.json()
    assert echo["path"] == "/admin/users/?search=a"
    headers = {name.lower(): value for name, value in echo["headers"]}
    assert (headers["x-user-id"], headers["x-user-admin"]) == ("42", "true")
    # Flask-Admin's inline handlers are allowed on its pages only.
    assert "script-src 'self' 'unsafe-inline'" in response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in requests.get(f"{gateway.url}/").headers["Content-Security-Policy"]
    # A client's own X-User-Admin never reaches a service.
    plain = requests.get(f"{gateway.url}/api/login/", headers={"X-User-Admin": "true"}).json()
    assert "x-user-admin" not in {name.lower() for name, _ in plain["headers"]}
