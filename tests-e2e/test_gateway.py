"""The gateway (nginx + jwt.js) in the running test stack: token check, segments, CORS, limits, errors.

Tokens are minted here with the test stack's own private key, so every forged variant differs from a
valid one in exactly the property under test. Segment tests publish a tiny fake HLS tree on disk.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import random
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import b64url, catalog_video, login, register_and_activate  # noqa: E402  (tests-e2e is on sys.path via rootdir)

ORIGIN = "http://127.0.0.1:5500"
SEGMENT_BYTES = bytes(range(256)) * 8


def raw_token(header: dict, payload: dict, signature: bytes) -> str:
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode()),
                     b64url(signature)])


@pytest.fixture
def video(media_storage):
    """A published fake video: hls/<id>/480p/segment_000.ts (+ index.m3u8) in the stack's media storage
    (MEDIA_DIR or the bucket), ready in the catalog (of another user than the tokens' "42"). Yields the id."""
    video_id = str(random.randint(10**9, 2**31 - 1))
    catalog_video(int(video_id), owner_id=7)
    media_storage.put_bytes(f"hls/{video_id}/480p/segment_000.ts", SEGMENT_BYTES)
    media_storage.put_bytes(f"hls/{video_id}/480p/index.m3u8", b"#EXTM3U\n")
    yield video_id
    media_storage.delete_prefix(f"hls/{video_id}/")


def source_address(client) -> str:
    return client.get_adapter("http://").address


def raw_request(gateway_url: str, path: str, client, headers: dict, method: str = "GET"):
    """Send `path` byte for byte (requests would normalise dot segments and encodings)."""
    url = urlsplit(gateway_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10,
                                            source_address=(source_address(client), 0))
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for name, value in {"Host": "127.0.0.1", **headers}.items():
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


def assert_json_error(response: requests.Response, status: int):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert isinstance(response.json()["detail"], str)


def test_healthz(gateway_url):
    response = requests.get(f"{gateway_url}/healthz", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["Server"] == "nginx"  # server_tokens off: no version


# --- segments: served by nginx from MEDIA_DIR after the token check -----------------------------------

def test_segment_served_from_disk(client, mint, video):
    client.cookies.set("access_token", mint())
    response = client.get(f"video/{video}/480p/segment_000.ts")
    assert response.status_code == 200
    assert response.content == SEGMENT_BYTES
    assert response.headers["Content-Type"] == "video/MP2T"
    assert response.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert response.headers["Accept-Ranges"] == "bytes"


def test_segment_with_trailing_slash_is_not_redirected(client, mint, video):
    client.cookies.set("access_token", mint())
    response = client.get(f"video/{video}/480p/segment_000.ts/", allow_redirects=False)
    assert response.status_code == 200
    assert response.content == SEGMENT_BYTES
    assert response.headers["Content-Type"] == "video/MP2T"


def test_segment_byte_range(client, mint, video):
    client.cookies.set("access_token", mint())
    response = client.get(f"video/{video}/480p/segment_000.ts", headers={"Range": "bytes=100-199"})
    assert response.status_code == 206
    assert response.content == SEGMENT_BYTES[100:200]
    assert response.headers["Content-Range"] == f"bytes 100-199/{len(SEGMENT_BYTES)}"


@pytest.mark.parametrize("path", [
    "video/{id}/480p/segment_001.ts",      # not written
    "video/{id}/720p/segment_000.ts",      # rung not published
    "video/1{id}/480p/segment_000.ts",     # unknown video
    "video/{id}/240p/segment_000.ts",      # not a rung
    "video/{id}/480p/segment_00.ts",       # not a segment name
    "video/{id}/480p/segment_000.TS",
    "video/{id}/480p/index.ts",
    "video/{id}/480p/",
    "video/{id}/480p",
    "video/0{id}/480p/segment_000.ts",     # ids have no leading zero
    "video/abc/",
    "video/{id}/comments/",
])
def test_unknown_video_paths_are_404_json(client, mint, video, path):
    client.cookies.set("access_token", mint())
    assert_json_error(client.get(path.format(id=video)), 404)


TRAVERSALS = [
    ("/api/video/{id}/480p/../../{id}/480p/segment_000.ts", 404),
    ("/api/video/{id}/480p/..%2f..%2f..%2fkeys%2fjwt_private.pem", 404),
    ("/api/video/{id}/480p/%2e%2e/%2e%2e/%2e%2e/keys/jwt_private.pem", 404),
    ("/api/video/{id}/480p/%2E%2E/index.m3u8", 404),
    ("/api/video/{id}/%252e%252e/480p/segment_000.ts", 404),
    ("/api/video/{id}/480p/segment_000.ts/..", 404),
    ("/api/video/{id}/480p//segment_000.ts", 404),
    ("/api/video/{id}/480p/..\\..\\..\\keys\\jwt_private.pem", 404),
    ("/api/video/{id}/480p/%5c..%5c..%5ckeys", 404),
    ("/api/video/{id}/480p/%2fetc%2fpasswd", 404),
    ("/api/video/{id}/./480p/segment_000.ts", 404),
    ("/api/video//etc/passwd", 404),
    ("/api/video/{id}/480p/%73egment_000.ts", 200),  # a harmless encoding is decoded, not refused
    ("/_media/hls/{id}/480p/segment_000.ts", 404),
    ("/_media/../keys/jwt_private.pem", 404),
    ("/hls/{id}/480p/segment_000.ts", 404),
    ("/api/video/{id}/480p/segment_000.ts%00.jpg", 400),  # nginx refuses NUL itself
    ("/../../../etc/passwd", 400),                        # and paths above the root
    ("http://127.0.0.1/../keys/jwt_private.pem", 400),
]


@pytest.mark.parametrize("path, status", TRAVERSALS)
def test_traversal_and_encoding_tricks_are_refused(gateway_url, client, mint, video, path, status):
    response, body = raw_request(gateway_url, path.format(id=video), client,
                                 {"Cookie": f"access_token={mint()}"})
    assert response.status == status, (response.status, body[:200])
    if status == 200:
        assert body == SEGMENT_BYTES
        return
    assert response.getheader("Content-Type").startswith("application/json")
    assert json.loads(body)["detail"]
    assert b"PRIVATE KEY" not in body and SEGMENT_BYTES[:64] not in body


def test_internal_api_is_never_routed(client, gateway_url):
    for path in ("/internal/videos/1", "/internal/videos/1/probe", "/openapi/openapi.json"):
        assert_json_error(client.get(gateway_url + path), 404)
    assert_json_error(client.post(f"{gateway_url}/internal/videos/1/failed", json={"reason": "x"}), 404)


# --- the token check: every video route, before any service sees the request -------------------------

def forged_tokens(mint, keys):
    now = int(time.time())
    claims = {"sub": "42", "type": "access", "iat": now, "exp": now + 600, "jti": "j", "csrf": "x"}
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    hs256_header = {"alg": "HS256", "typ": "JWT"}
    hs256_input = f"{b64url(json.dumps(hs256_header).encode())}.{b64url(json.dumps(claims).encode())}"
    hs256 = hmac.new(keys["public"].encode(), hs256_input.encode(), hashlib.sha256).digest()
    valid = mint()
    header, payload, signature = valid.split(".")
    tampered = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered["sub"] = "1"
    return {
        "garbage": "not-a-token",
        "empty parts": "..",
        "three garbage parts": "a.b.c",
        "expired": mint(exp=now - 5, iat=now - 700),
        "no exp": mint(exp=None),
        "exp not a number": mint(exp=str(now + 600)),
        "not yet valid": mint(nbf=now + 3600),
        "issued in the future": mint(iat=now + 3600),
        "other key": mint(key=other_key.decode()),
        "alg none": raw_token({"alg": "none", "typ": "JWT"}, claims, b""),
        "alg none with signature": raw_token({"alg": "none"}, claims, b"sig"),
        "HS256 with the public key as secret": f"{hs256_input}.{b64url(hs256)}",
        "RS512": mint(algorithm="RS512"),
        "refresh token": mint(type="refresh"),
        "no type": mint(type=None),
        "no sub": mint(sub=None),
        "numeric sub": mint(sub=42),
        "sub with a newline": mint(sub="42\nX-Admin: 1"),
        "tampered claims": f"{header}.{b64url(json.dumps(tampered).encode())}.{signature}",
        "truncated signature": valid[:-10],
        "critical header": mint(headers={"crit": ["exp"]}),
    }


@pytest.mark.parametrize("route", ["video/", "video/{id}/", "video/{id}/480p/index.m3u8",
                                   "video/{id}/master.m3u8", "video/{id}/thumbnail.jpg",
                                   "video/{id}/480p/segment_000.ts", "video/{id}/480p/segment_000.ts/"])
def test_forged_tokens_get_401_json(make_client, mint, keys, video, route):
    for name, token in forged_tokens(mint, keys).items():
        attacker = make_client()
        attacker.cookies.set("access_token", token)
        response = attacker.get(route.format(id=video), headers={"Origin": ORIGIN})
        assert response.status_code == 401, (name, response.status_code, response.text)
        assert response.json() == {"detail": "Authentication credentials were not provided or are invalid."}
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN, name
        assert SEGMENT_BYTES[:64] not in response.content


@pytest.mark.parametrize("method, route", [("GET", "video/"), ("GET", "video/1/"), ("DELETE", "video/1/"),
                                           ("POST", "video/upload/"), ("GET", "video/1/master.m3u8")])
def test_video_routes_without_cookie_get_401(client, method, route):
    response = client.request(method, route, headers={"X-User-Id": "1"})
    assert_json_error(response, 401)


def test_verified_token_is_cached_only_until_it_expires(client, mint, video):
    client.cookies.set("access_token", mint(exp=int(time.time()) + 3))
    for _ in range(3):
        assert client.get(f"video/{video}/480p/segment_000.ts").status_code == 200
    time.sleep(4.5)
    assert_json_error(client.get(f"video/{video}/480p/segment_000.ts"), 401)


def test_logged_in_user_lists_videos(logged_in_client):
    response = logged_in_client.get("video/", headers={"Origin": ORIGIN, "X-User-Id": "1"})
    assert response.status_code == 200, response.text
    assert isinstance(response.json(), list)
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Access-Control-Allow-Credentials"] == "true"


# --- CORS -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("route", ["login/", "register/", "logout/", "video/upload/", "video/",
                                   "video/1/480p/segment_000.ts"])
def test_preflight_is_answered_by_the_gateway(client, route):
    response = client.options(route, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-csrftoken"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    methods = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "DELETE"} <= methods
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "x-csrftoken"} <= allowed
    assert "Origin" in response.headers["Vary"]


def test_cors_on_success_and_error(client, mint, video):
    client.cookies.set("access_token", mint())
    for path, status in [(f"video/{video}/480p/segment_000.ts", 200), (f"video/{video}/480p/segment_009.ts", 404),
                         ("nothing-here/", 404)]:
        response = client.get(path, headers={"Origin": "http://localhost:5500"})
        assert response.status_code == status
        assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:5500"
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
    response = client.post("login/", json={"email": "not-an-email", "password": "x"}, headers={"Origin": ORIGIN})
    assert response.status_code == 400
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers.get("Access-Control-Allow-Origin", "") .count(ORIGIN) == 1


def test_other_origins_get_no_cors(client):
    for origin in ("http://evil.example", "null", "http://127.0.0.1:5500.evil.example"):
        response = client.options("login/", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "Access-Control-Allow-Credentials" not in response.headers


# --- rate limits ------------------------------------------------------------------------------------

def test_login_brute_force_gets_429(client, make_client, mail):
    address = register_and_activate(client, mail)
    attacker = make_client()

    def guess(number: int) -> requests.Response:
        return attacker.post("login/", json={"email": address, "password": f"guess-{number}"},
                             headers={"Origin": ORIGIN})

    responses = []
    with ThreadPoolExecutor(max_workers=4) as pool:  # in parallel, as an attacker would
        while len(responses) < 200 and not any(r.status_code == 429 for r in responses[-4:]):
            responses += pool.map(guess, range(len(responses), len(responses) + 8))
    limited = [response for response in responses if response.status_code == 429]
    assert limited, [response.status_code for response in responses]
    assert {response.status_code for response in responses} <= {401, 429}
    assert limited[-1].json() == {"detail": "Too many requests. Please try again later."}
    assert limited[-1].headers["Access-Control-Allow-Origin"] == ORIGIN
    # Another address is not affected.
    login(make_client(), address)


@pytest.mark.parametrize("route, body", [
    ("register/", {"email": "x", "password": "x", "confirmed_password": "y"}),
    ("password_reset/", {"email": "nobody@example.com"}),
    ("activation/resend/", {"email": "nobody@example.com"}),
])
def test_account_routes_are_rate_limited(client, route, body):
    statuses = {client.post(route, json=body).status_code for _ in range(60)}
    assert 429 in statuses


# --- headers, sizes, errors -------------------------------------------------------------------------

def test_request_id_is_created_echoed_and_sanitised(client):
    created = client.get("video/")
    assert len(created.headers["X-Request-Id"]) == 32
    echoed = client.post("login/", json={}, headers={"X-Request-Id": "trace-123.abc"})
    assert echoed.headers["X-Request-Id"] == "trace-123.abc"
    assert "," not in echoed.headers["X-Request-Id"]  # the upstream's copy is not added twice
    replaced = client.get("video/", headers={"X-Request-Id": "bad id\twith spaces"})
    assert replaced.headers["X-Request-Id"] != "bad id\twith spaces"
    assert len(replaced.headers["X-Request-Id"]) == 32


def test_json_bodies_over_1_mb_get_413(client):
    response = client.post("login/", data=b"{" + b" " * (1024 * 1024 + 10) + b"}",
                           headers={"Content-Type": "application/json"})
    assert_json_error(response, 413)


def test_upload_over_the_limit_gets_413(gateway_url, client, stack_env, mint):
    too_big = int(stack_env.get("MAX_UPLOAD_BYTES", 2 * 1024**3)) + 2 * 1024 * 1024
    response, body = raw_request(gateway_url, "/api/video/upload/", client, method="POST", headers={
        "Cookie": f"access_token={mint()}", "Content-Length": str(too_big),
        "Content-Type": "multipart/form-data; boundary=x"})
    assert response.status == 413
    assert json.loads(body) == {"detail": "Request body too large."}


def test_oversized_cookie_gets_400_json(client):
    client.cookies.set("access_token", "a" * 64 * 1024)
    assert_json_error(client.get("video/"), 400)


def test_methods_nginx_refuses_get_json(client, mint, video):
    client.cookies.set("access_token", mint())
    assert_json_error(client.put(f"video/{video}/480p/segment_000.ts", data=b"x"), 405)
    assert_json_error(client.request("TRACE", "login/"), 405)


@pytest.mark.parametrize("token", ["garbage", None])
def test_bodies_to_video_routes_without_valid_token_get_401(client, token):
    if token:
        client.cookies.set("access_token", token)
    response = client.post("video/upload/", files={"file": ("a.mp4", b"x" * 5000)}, data={"title": "t"})
    assert_json_error(response, 401)


def test_unknown_pages_are_404_json(client, gateway_url):
    assert_json_error(client.get(f"{gateway_url}/no/such/page.html"), 404)
    assert_json_error(client.get(f"{gateway_url}/assets/none/app.js"), 404)


def test_web_app_is_served_with_cache_headers(client, stack_env, gateway_url):
    frontend = Path(stack_env["FRONTEND_DIR"])
    if not (frontend / "index.html").exists():
        pytest.skip("the web app is not built")
    page = client.get(gateway_url + "/")
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Cache-Control"] == "no-cache"
    asset = next(path for path in (frontend / "assets").rglob("*.css"))
    response = client.get(f"{gateway_url}/{asset.relative_to(frontend).as_posix()}")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_slow_headers_are_cut_off(gateway_url):
    url = urlsplit(gateway_url)
    with socket.create_connection((url.hostname, url.port), timeout=20) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        assert connection.recv(1024) == b""  # closed by the server, nothing answered
        assert time.monotonic() - started < 15


# --- ranges, every nginx error as JSON, security headers ---------------------------------------------

def test_a_multi_range_request_is_answered_whole(client, mint, video):
    client.cookies.set("access_token", mint())
    response = client.get(f"video/{video}/480p/segment_000.ts", headers={"Range": "bytes=0-0,2-2,4-4"})
    assert response.status_code == 200
    assert response.content == SEGMENT_BYTES
    assert "multipart" not in response.headers["Content-Type"]


@pytest.mark.parametrize("headers, status", [
    ({"Transfer-Encoding": "gzip"}, 501),       # a coding nginx does not implement
    ({"Content-Length": "1", "Transfer-Encoding": "chunked, gzip"}, 501),
])
def test_every_nginx_error_is_json(gateway_url, client, headers, status):
    response, body = raw_request(gateway_url, "/api/login/", client, {**headers}, method="POST")
    assert response.status == status, (response.status, body[:200])
    assert response.getheader("Content-Type").startswith("application/json")
    assert json.loads(body)["detail"]


CSP_REQUIRED = ["script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"]


def test_security_headers_on_pages_api_and_media(client, mint, video, gateway_url):
    client.cookies.set("access_token", mint())
    for url in (f"{gateway_url}/", f"{gateway_url}/pages/auth/login.html", f"{gateway_url}/api/video/",
                f"{gateway_url}/api/video/{video}/480p/segment_000.ts", f"{gateway_url}/no/such/page",
                f"{gateway_url}/api/login/"):
        response = client.get(url)
        assert response.headers["X-Content-Type-Options"] == "nosniff", url
        assert response.headers["Referrer-Policy"] == "no-referrer", url
        policy = response.headers["Content-Security-Policy"]
        assert all(directive in policy for directive in CSP_REQUIRED), (url, policy)
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "Strict-Transport-Security" not in response.headers, url  # plain HTTP, no TLS proxy


# --- behind a TLS proxy: the test stack trusts 127.0.0.252 (TRUSTED_PROXIES) ------------------------

TRUSTED_PROXY, UNTRUSTED_SOURCE = "127.0.0.252", "127.0.0.253"


def gateway_log_entry(stack_env, request_id: str) -> dict:
    log = Path(stack_env["VAR_DIR"]) / "log" / "gateway.log"
    for _ in range(50):
        for line in log.read_text(errors="replace").splitlines():
            if f'"request_id":"{request_id}"' in line:
                return json.loads(line)
        time.sleep(0.1)
    raise AssertionError(f"{request_id} not in {log}")


def through(make_client, source: str, forwarded_for: str, proto: str = "https"):
    session = make_client(source)
    session.headers.update({"X-Forwarded-For": forwarded_for, "X-Forwarded-Proto": proto})
    return session


def test_the_client_behind_a_trusted_proxy_is_what_logs_and_limits_see(make_client, stack_env):
    suffix = random.randint(1, 250)
    clients = {"trusted proxy": through(make_client, TRUSTED_PROXY, f"198.51.100.{suffix}"),
               "untrusted source": through(make_client, UNTRUSTED_SOURCE, f"203.0.113.{suffix}")}
    expected_remote = {"trusted proxy": f"198.51.100.{suffix}", "untrusted source": UNTRUSTED_SOURCE}
    for name, session in clients.items():
        request_id = f"realip-{uuid.uuid4().hex}"
        response = session.get(f"{session.base}video/", headers={"X-Request-Id": request_id})
        assert gateway_log_entry(stack_env, request_id)["remote"] == expected_remote[name], name
        hsts = response.headers.get("Strict-Transport-Security", "")
        assert ("max-age=" in hsts) == (name == "trusted proxy"), (name, hsts)
    # Plain HTTP through the proxy: no HSTS.
    plain = through(make_client, TRUSTED_PROXY, f"198.51.100.{suffix}", proto="http").get("video/")
    assert "Strict-Transport-Security" not in plain.headers


def login_attempts_until_429(session, limit: int = 80) -> int:
    for attempt in range(1, limit + 1):
        if session.post("login/", json={"email": "nobody@example.com", "password": "x"}).status_code == 429:
            return attempt
    return 0


def test_rate_limits_count_the_client_behind_a_trusted_proxy(make_client):
    suffix = random.randint(1, 250)
    first = through(make_client, TRUSTED_PROXY, f"192.0.2.{suffix}")
    assert login_attempts_until_429(first)
    # A made-up address in front of what the proxy appended does not escape the limit ...
    spoofed = through(make_client, TRUSTED_PROXY, f"10.9.9.9, 192.0.2.{suffix}")
    assert spoofed.post("login/", json={"email": "nobody@example.com", "password": "x"}).status_code == 429
    # ... while another client behind the same proxy has a bucket of its own,
    other = through(make_client, TRUSTED_PROXY, f"192.0.2.{suffix % 250 + 1}")
    assert other.post("login/", json={"email": "nobody@example.com", "password": "x"}).status_code != 429
    # and from an untrusted source a made-up X-Forwarded-For changes nothing.
    spoofer = make_client(UNTRUSTED_SOURCE)
    statuses = [spoofer.post("login/", json={"email": "nobody@example.com", "password": "x"},
                             headers={"X-Forwarded-For": f"10.{n}.0.1"}).status_code for n in range(80)]
    assert 429 in statuses
