"""Attacks on the running test stack: fuzzing every service's OpenAPI, forged tokens where the gateway is
bypassed or confused, traversal at the streamer itself, oversized and nested input, slow clients, CSRF
cookie tossing, link confusion and user enumeration by timing.

test_gateway.py already covers the forged-token set on the GET routes at the gateway, traversal at the
gateway, slow headers and rate limits; test_accounts.py covers link reuse, CSRF on logout and the login
answers. This file covers what they do not.
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import re
import socket
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import jwt
import pytest
import requests
import schemathesis
from conftest import (
    STACK,
    STORAGE,
    STRONG_PASSWORD,
    ApiClient,
    b64url,
    link_params,
    login,
    mail_text,
    new_source_address,
    register_and_activate,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error

from bench.harness import make_clip, wait_until
from bench.soak import soak

FUZZ_EXAMPLES = 30
TIMING_ROUNDS = 12
TIMING_FACTOR = 1.5       # medians of unknown vs known address must be within this factor ...
TIMING_SLACK_S = 0.015    # ... or closer than this (below network jitter)
TIMEOUT_MARGIN_S = 5
FLOOD_SECONDS = 20


def service_url(stack_env, name: str) -> str:
    return f"http://127.0.0.1:{stack_env[f'{name.upper()}_PORT']}"


def assert_json(response, *statuses: int) -> None:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers.get("Content-Type", "").startswith("application/json"), response.headers
    response.json()


@pytest.fixture(scope="module")
def victim(api_url, mail) -> ApiClient:
    """A logged-in user who owns one video (its file is not a video: nothing to transcode)."""
    client = ApiClient(api_url, new_source_address())
    client.email = register_and_activate(client, mail)
    login(client, client.email)
    response = client.post("video/upload/", data={"title": "mine", "description": "d", "category": "c"},
                           files={"file": ("notes.mp4", b"not a video at all", "video/mp4")})
    assert response.status_code == 201, response.text
    client.video_id = response.json()["id"]
    yield client
    client.close()


@pytest.fixture(scope="module")
def attacker(api_url, mail) -> ApiClient:
    client = ApiClient(api_url, new_source_address())
    client.email = register_and_activate(client, mail)
    login(client, client.email)
    yield client
    client.close()


# --- fuzzing: every operation of every service's OpenAPI, no 500 and only JSON errors ---------------

def only_json_errors(response, case) -> None:
    if response.status_code >= 400:
        content_type = response.headers.get("Content-Type", "")
        assert content_type.startswith("application/json"), \
            f"{response.status_code} answered as {content_type!r}: {response.text[:200]}"


def openapi(stack_env, name: str):
    base = service_url(stack_env, name)
    return schemathesis.from_uri(f"{base}/openapi/openapi.json", base_url=base,
                                 data_generation_methods=schemathesis.DataGenerationMethod.all())


@pytest.fixture(scope="module")
def auth_openapi(stack_env):
    return openapi(stack_env, "auth")


@pytest.fixture(scope="module")
def catalog_openapi(stack_env):
    return openapi(stack_env, "catalog")


@pytest.fixture(scope="module")
def streamer_openapi(stack_env):
    return openapi(stack_env, "streamer")


@pytest.fixture(scope="module")
def fuzz_credentials(attacker, stack_env) -> dict:
    """A real session and the service token, so generated requests get past authentication."""
    service_token = Path(stack_env["KEYS_DIR"], "service_token").read_text().strip()
    return {"cookies": dict(attacker.cookies),
            "headers": {"X-CSRFToken": attacker.cookies["csrftoken"], "Authorization": f"Bearer {service_token}"}}


FUZZ_SETTINGS = settings(max_examples=FUZZ_EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
                         suppress_health_check=list(HealthCheck))


def call_and_check(case, credentials) -> None:
    headers = {**credentials["headers"], **(case.headers or {})}
    response = case.call(headers=headers, cookies=credentials["cookies"], timeout=30)
    case.validate_response(response, checks=(not_a_server_error, only_json_errors))


@schemathesis.from_pytest_fixture("auth_openapi").parametrize()
@FUZZ_SETTINGS
def test_fuzz_auth(case, fuzz_credentials):
    call_and_check(case, fuzz_credentials)


@schemathesis.from_pytest_fixture("catalog_openapi").parametrize()
@FUZZ_SETTINGS
def test_fuzz_catalog(case, fuzz_credentials):
    call_and_check(case, fuzz_credentials)


@schemathesis.from_pytest_fixture("streamer_openapi").parametrize()
@FUZZ_SETTINGS
def test_fuzz_streamer(case, fuzz_credentials):
    call_and_check(case, fuzz_credentials)


# --- forged tokens where the gateway is bypassed or confused -----------------------------------------

@pytest.fixture(scope="module")
def forged(keys, mint) -> dict[str, str]:
    """Tokens that must never be accepted, each claiming an admin with user id 1."""
    public_pem, private_pem = keys["public"], keys["private"]

    def token(key: str, **claims) -> str:
        return mint(key=key, sub="1", is_admin=True, **claims)

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_pem = other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    other_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(other.public_key()))
    now = int(time.time())
    claims = {"sub": "1", "type": "access", "iat": now, "exp": now + 600, "csrf": "x", "is_admin": True}
    signing_input = f"{b64url(json.dumps({'alg': 'HS256'}).encode())}.{b64url(json.dumps(claims).encode())}"
    hs256 = hmac.new(public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    unsigned = f"{b64url(json.dumps({'alg': 'none'}).encode())}.{b64url(json.dumps(claims).encode())}."
    return {
        "alg none": unsigned,
        "alg None": unsigned.replace(b64url(b'{"alg": "none"}'), b64url(b'{"alg": "None"}')),
        "HS256 keyed with the public key": f"{signing_input}.{b64url(hs256)}",
        "other key": token(other_pem),
        "other key, its jwk embedded": token(other_pem, headers={"jwk": other_jwk}),
        "other key, jku to the attacker": token(other_pem, headers={"jku": "http://127.0.0.1:9/jwks.json"}),
        "other key, kid path": token(other_pem, headers={"kid": "../../../keys/jwt_public.pem"}),
        "expired": token(private_pem, exp=now - 60, iat=now - 700),
        "refresh token": token(private_pem, type="refresh"),
        "empty signature": token(private_pem).rsplit(".", 1)[0] + ".",
    }


def direct_routes(stack_env, video_id: int) -> list[tuple[str, str]]:
    catalog, streamer = service_url(stack_env, "catalog"), service_url(stack_env, "streamer")
    return [
        ("GET", f"{catalog}/api/video/"), ("GET", f"{catalog}/api/video/{video_id}/"),
        ("DELETE", f"{catalog}/api/video/{video_id}/"), ("POST", f"{catalog}/api/video/upload/"),
        ("GET", f"{streamer}/api/video/{video_id}/master.m3u8"),
        ("GET", f"{streamer}/api/video/{video_id}/480p/index.m3u8"),
        ("GET", f"{streamer}/api/video/{video_id}/480p/segment_000.ts"),
        ("GET", f"{streamer}/api/video/{video_id}/thumbnail.jpg"),
    ]


def test_services_verify_tokens_themselves_and_ignore_x_user_id(stack_env, victim, forged):
    """Someone who reaches a service port directly cannot get in with a forged token or a bare X-User-Id."""
    for method, url in direct_routes(stack_env, victim.video_id):
        for name, value in {"no token": None, **forged}.items():
            cookies = {"access_token": value, "csrftoken": "x"} if value else {}
            response = requests.request(method, url, cookies=cookies, timeout=10,
                                        headers={"X-User-Id": "1", "X-CSRFToken": "x"})
            assert response.status_code == 401, (name, method, url, response.status_code, response.text[:200])
            assert_json(response, 401)
    assert victim.get(f"video/{victim.video_id}/").status_code == 200  # nothing was deleted


@pytest.mark.parametrize("route", ["video/", "video/{id}/", "video/{id}/480p/segment_000.ts"])
def test_gateway_rejects_header_injected_keys(make_client, forged, victim, route):
    for name in ("other key, its jwk embedded", "other key, jku to the attacker", "other key, kid path", "alg None"):
        client = make_client()
        client.cookies.set("access_token", forged[name])
        response = client.get(route.format(id=victim.video_id))
        assert response.status_code == 401, (name, response.status_code, response.text[:200])


@pytest.mark.parametrize("method, route", [("POST", "video/upload/"), ("DELETE", "video/{id}/")])
def test_forged_tokens_change_nothing(make_client, forged, victim, method, route):
    for name, value in forged.items():
        client = make_client()
        client.cookies.set("access_token", value)
        client.cookies.set("csrftoken", "x")
        response = client.request(method, route.format(id=victim.video_id), headers={"X-CSRFToken": "x"},
                                  files={"file": ("a.mp4", b"x")} if method == "POST" else None,
                                  data={"title": "t", "description": "d", "category": "c"} if method == "POST" else None)
        assert response.status_code == 401, (name, response.status_code, response.text[:200])
        assert_json(response, 401)
    assert victim.get(f"video/{victim.video_id}/").status_code == 200


@pytest.mark.parametrize("order", ["valid first", "forged first"])
def test_two_access_cookies_do_not_confuse_gateway_and_service(api_url, attacker, victim, forged, order):
    """The gateway and the catalog must judge the same cookie: a valid token of the attacker next to a
    forged one naming the victim must not let the attacker delete the victim's video."""
    valid, fake = attacker.cookies["access_token"], forged["alg none"]
    pair = [valid, fake] if order == "valid first" else [fake, valid]
    csrf = attacker.cookies["csrftoken"]
    response = requests.delete(f"{api_url}video/{victim.video_id}/", timeout=10, headers={
        "Cookie": f"access_token={pair[0]}; access_token={pair[1]}; csrftoken={csrf}", "X-CSRFToken": csrf})
    assert response.status_code in (401, 403, 404), (response.status_code, response.text[:200])
    assert victim.get(f"video/{victim.video_id}/").status_code == 200


# --- path traversal at the streamer itself (the gateway's set is in test_gateway.py) ------------------

STREAMER_TRAVERSALS = [
    "/api/video/{id}/480p/..%2f..%2f..%2fkeys%2fjwt_private.pem",
    "/api/video/{id}/480p/%2e%2e%2f%2e%2e%2f%2e%2e%2fkeys%2fjwt_private.pem",
    "/api/video/{id}/480p/%252e%252e%252f%252e%252e%252fkeys%252fjwt_private.pem",
    "/api/video/{id}/%2e%2e/{id}/480p/index.m3u8",
    "/api/video/{id}/480p/%c0%ae%c0%ae%c0%af%c0%ae%c0%ae%c0%afkeys%c0%afjwt_private.pem",
    "/api/video/{id}/480p/..%5c..%5c..%5ckeys%5cjwt_private.pem",
    "/api/video/{id}/480p/%2fetc%2fpasswd",
    "/api/video/{id}/480p//etc/passwd",
    "/api/video/{id}/480p/segment_000.ts%00.m3u8",
    "/api/video/{id}/480p/index.m3u8%00",
    "/api/video/{id}/..%2f480p/index.m3u8",
    "/api/video/{id}/480p/../../../../keys/jwt_private.pem",
    "/api/video/-1/480p/index.m3u8",
    "/api/video/{id}/480p/segment_-01.ts",
    "/api/video/{id}/480p%00/index.m3u8",
    "/api/video/{id}/%2e%2e%2f%2e%2e%2fkeys/thumbnail.jpg",
]


def raw_request(url: str, path: str, headers: dict[str, str], method: str = "GET") -> tuple[int, dict, bytes]:
    """Send `path` byte for byte (requests would normalise dot segments and encodings)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=15)
    connection.putrequest(method, path, skip_accept_encoding=True)
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


@pytest.mark.parametrize("path", STREAMER_TRAVERSALS)
def test_streamer_refuses_traversal_on_its_own(stack_env, attacker, victim, path):
    status, headers, body = raw_request(service_url(stack_env, "streamer"), path.format(id=victim.video_id),
                                        {"Cookie": f"access_token={attacker.cookies['access_token']}"})
    assert status in (400, 404), (status, body[:200])
    assert headers.get("content-type", "").startswith("application/json"), headers
    assert b"PRIVATE KEY" not in body and b"root:" not in body and b"X-Accel" not in body
    assert "x-accel-redirect" not in headers


@pytest.mark.parametrize("path", ["/api/activate/..%2f..%2f/x/", "/api/activate/%2e%2e/%2e%2e/",
                                  "/api/activate/MQ/%00/", "/api/password_confirm/..%2fMQ/x/"])
def test_auth_link_routes_refuse_traversal(stack_env, path):
    status, headers, body = raw_request(service_url(stack_env, "auth"), path, {},
                                        "POST" if "confirm" in path else "GET")
    assert status in (400, 404), (status, body[:200])
    assert headers.get("content-type", "").startswith("application/json"), headers


# --- oversized and hostile input at the gateway -------------------------------------------------------

@pytest.mark.parametrize("headers", [
    {"X-Padding": "a" * 16 * 1024},
    {"Cookie": "access_token=" + "a" * 64 * 1024},
    {f"X-Many-{n}": "b" * 40 for n in range(150)},  # each small: nginx passes them on to gunicorn
], ids=["one 16 KiB header", "64 KiB cookie", "150 headers"])
def test_oversized_headers_get_a_json_4xx(gateway_url, headers):
    response = requests.post(f"{gateway_url}/api/login/", json={"email": "a@example.com", "password": "x"},
                             headers=headers, timeout=10)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:200])
    assert_json(response, response.status_code)


def test_overlong_url_gets_a_json_414_or_404(gateway_url):
    response = requests.get(f"{gateway_url}/api/video/1/{'a' * 12 * 1024}/index.m3u8", timeout=10)
    assert_json(response, 400, 404, 414)


def test_chunked_json_body_over_1_mb_gets_413(api_url):
    def chunks():
        yield b'{"email": "a@example.com", "password": "'
        for _ in range(40):
            yield b"x" * 64 * 1024
        yield b'"}'

    response = requests.post(f"{api_url}login/", data=chunks(), timeout=30,
                             headers={"Content-Type": "application/json"})
    assert_json(response, 413)


def test_chunked_upload_over_the_limit_is_refused_and_leaves_nothing(victim, stack_env, media_storage):
    before = {item.key for item in media_storage.list("originals/")}
    limit = int(stack_env.get("MAX_UPLOAD_BYTES", 2 * 1024**3))
    boundary = uuid.uuid4().hex

    def body():
        for name, value in {"title": "big", "description": "d", "category": "c"}.items():
            yield f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'.encode()
        block = bytes(1024 * 1024)
        for _ in range(limit // len(block) + 3):
            yield block
        yield f"\r\n--{boundary}--\r\n".encode()

    try:
        response = victim.post("video/upload/", data=body(), timeout=120,
                               headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert_json(response, 413)
    except requests.ConnectionError:
        pass  # nginx may cut the connection while the body is still being sent: also a refusal
    time.sleep(1)
    after = {item.key for item in media_storage.list("originals/")}
    assert after == before, f"an over-limit upload left files: {after - before}"


def test_huge_form_field_in_an_upload_is_400(victim):
    response = victim.post("video/upload/", files={"file": ("a.mp4", b"x" * 100)},
                           data={"title": "t" * 600_000, "description": "d", "category": "c"})
    assert_json(response, 400, 413)


@pytest.mark.parametrize("path", ["login/", "register/", "password_reset/"])
def test_deeply_nested_json_is_a_400(client, path):
    depth = 100_000
    response = client.post(path, data="[" * depth + "]" * depth, headers={"Content-Type": "application/json"})
    assert_json(response, 400)


# --- slow clients: the gateway's timeouts cut them off ------------------------------------------------

def configured_seconds(stack_env, directive: str) -> int:
    config = (Path(stack_env["VAR_DIR"]) / "gateway" / "nginx.conf").read_text()
    return int(re.search(rf"^\s*{directive}\s+(\d+)s;", config, re.MULTILINE).group(1))


def seconds_until_closed(gateway_url: str, first_bytes: bytes, trickle: bytes = b"", every: float = 1.0,
                         limit: float = 120) -> tuple[float, bytes]:
    """Send `first_bytes`, then one byte of `trickle` every `every` seconds; time until the server closes."""
    host, port = gateway_url.removeprefix("http://").split(":")
    received = b""
    with socket.create_connection((host, int(port)), timeout=limit) as connection:
        connection.sendall(first_bytes)
        started = time.monotonic()
        connection.settimeout(every if trickle else limit)
        while time.monotonic() - started < limit:
            try:
                chunk = connection.recv(4096)
            except TimeoutError:
                try:
                    connection.sendall(trickle[:1])
                except OSError:
                    break
                trickle = trickle[1:] or trickle
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        return time.monotonic() - started, received


def test_slow_clients_are_cut_off_within_the_configured_timeouts(gateway_url, stack_env, victim):
    header_timeout = configured_seconds(stack_env, "client_header_timeout")
    body_timeout = configured_seconds(stack_env, "client_body_timeout")
    cookie = "; ".join(f"{k}={v}" for k, v in victim.cookies.items())
    login_head = (b"POST /api/login/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{\"email\": ")
    upload_head = (f"POST /api/video/upload/ HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n"
                   f"X-CSRFToken: {victim.cookies['csrftoken']}\r\n"
                   f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n"
                   f"--b\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nslow").encode()
    with ThreadPoolExecutor(3) as pool:
        trickled_headers = pool.submit(seconds_until_closed, gateway_url, b"GET /api/video/ HTTP/1.1\r\n",
                                       b"X-Slow: " + b"a" * 200, 1.0, header_timeout * 3)
        stalled_login = pool.submit(seconds_until_closed, gateway_url, login_head, limit=body_timeout * 3)
        stalled_upload = pool.submit(seconds_until_closed, gateway_url, upload_head, limit=body_timeout * 3)
    for name, future, timeout in [("trickled headers", trickled_headers, header_timeout),
                                  ("stalled login body", stalled_login, body_timeout),
                                  ("stalled upload body", stalled_upload, body_timeout)]:
        seconds, received = future.result()
        assert timeout - 1 <= seconds <= timeout + TIMEOUT_MARGIN_S, (name, seconds, received[:200])
        if received:
            assert b" 408 " in received.split(b"\r\n", 1)[0] and b"application/json" in received, received[:300]


# --- slow uploads: held at the gateway, bounded per user; the catalog and its internal API answer -----

SLOW_UPLOADERS = 4        # users, each with UPLOADS_PER_USER uploads trickling in: 8 connections
UPLOADS_PER_USER = 2
TRICKLE_INTERVAL_S = 2


def upload_head(token: str, length: int = 100000) -> bytes:
    return (f"POST /api/video/upload/ HTTP/1.1\r\nHost: x\r\nCookie: access_token={token}; csrftoken=x\r\n"
            f"X-CSRFToken: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {length}\r\n\r\n"
            f"--b\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nslow").encode()


def test_slow_uploads_starve_neither_the_catalog_nor_its_internal_api(gateway_url, stack_env, mint):
    url = urlsplit(gateway_url)
    tokens = [mint(sub=str(8000000 + user), csrf="x") for user in range(SLOW_UPLOADERS)]
    connections = []
    for token in tokens:
        for _ in range(UPLOADS_PER_USER):
            connection = socket.create_connection((url.hostname, url.port), timeout=10,
                                                  source_address=(new_source_address(), 0))
            connection.sendall(upload_head(token))
            connections.append(connection)
    stop = threading.Event()

    def trickle():  # a byte per connection every few seconds: never long enough apart to be cut off
        while not stop.wait(TRICKLE_INTERVAL_S):
            for connection in connections:
                try:
                    connection.sendall(b"x")
                except OSError:
                    pass

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        time.sleep(TRICKLE_INTERVAL_S * 2)  # every slow upload is in: at the catalog, unless held
        # One more upload by a user who has two under way: refused before a byte of its body is read.
        with socket.create_connection((url.hostname, url.port), timeout=10) as third:
            third.sendall(upload_head(tokens[0]))
            answer = third.recv(4096)
        assert answer.startswith(b"HTTP/1.1 429 "), answer[:300]
        assert b'{"detail": "Too many requests. Please try again later."}' in answer
        viewer = requests.Session()
        viewer.cookies.set("access_token", mint(sub="8000100"))
        service_token = (Path(stack_env["KEYS_DIR"]) / "service_token").read_text().strip()
        for _ in range(3):
            listed = viewer.get(f"{gateway_url}/api/video/", timeout=10)
            assert listed.status_code == 200, listed.text
            internal = requests.get(f"{stack_env['CATALOG_URL']}/internal/videos/1", timeout=10,
                                    headers={"Authorization": f"Bearer {service_token}"})
            assert_json(internal, 200, 404)
    finally:
        stop.set()
        trickler.join()
        for connection in connections:
            connection.close()


# --- a flood of viewers: every byte served, memory flat (the 2-minute version is in tests-faults) -----

def test_twenty_concurrent_viewers_get_every_byte(victim, stack_env):
    with open(make_clip(4, 640, 360), "rb") as handle:
        response = victim.post("video/upload/", data={"title": "flood", "description": "d", "category": "c"},
                               files={"file": ("flood.mp4", handle, "video/mp4")})
    assert response.status_code == 201, response.text
    video_id = response.json()["id"]
    wait_until(lambda: victim.get(f"video/{video_id}/").json()["status"] == "ready", 180, what="a ready video")
    watched = {name: STACK.running_pid(stack_env, name) for name in ("gateway", "streamer")}
    result = soak(victim.base, victim.cookies, video_id, f"hls/{video_id}/360p", FLOOD_SECONDS, 20, watched,
                  storage=STORAGE)
    assert not result.errors, f"{len(result.errors)} errors, first: {result.errors[:5]}"
    assert result.requests["segment"] >= 20 * FLOOD_SECONDS, result.requests
    assert all(value < 32 * 1024**2 for value in result.growth().values()), result.report()


# --- CSRF: the header must match the cookie AND the token's own value --------------------------------

def test_csrf_cookie_tossing_does_not_pass(victim):
    """An attacker who can plant a csrftoken cookie (a sibling subdomain) and send the same value as the
    header still fails: the value must equal the `csrf` claim inside the signed access token."""
    video = f"video/{victim.video_id}/"
    real = victim.cookies["csrftoken"]
    tossed = "attacker-chosen-value"
    attempts = [
        ("delete, no header", lambda: victim.delete(video, csrf=False)),
        ("delete, tossed cookie + header", lambda: victim.delete(video, csrf=False, headers={
            "X-CSRFToken": tossed, "Cookie": cookie_string(victim, csrftoken=tossed)})),
        ("upload, tossed cookie + header", lambda: victim.post("video/upload/", csrf=False, headers={
            "X-CSRFToken": tossed, "Cookie": cookie_string(victim, csrftoken=tossed)},
            files={"file": ("a.mp4", b"x")}, data={"title": "t", "description": "d", "category": "c"})),
        ("logout, tossed cookie + header", lambda: victim.post("logout/", csrf=False, json={}, headers={
            "X-CSRFToken": tossed, "Cookie": cookie_string(victim, csrftoken=tossed)})),
        ("delete, right header, no csrftoken cookie", lambda: victim.delete(video, csrf=False, headers={
            "X-CSRFToken": real, "Cookie": cookie_string(victim, csrftoken=None)})),
    ]
    for name, attempt in attempts:
        response = attempt()
        assert response.status_code == 403, (name, response.status_code, response.text[:200])
        assert response.json() == {"detail": "CSRF token missing or incorrect."}, name
    assert victim.get(video).status_code == 200
    assert victim.post("token/refresh/", json={}).status_code == 200  # still logged in


def cookie_string(client: ApiClient, **overrides) -> str:
    """The client's cookies as one header, some replaced (None drops one); the jar itself is not sent."""
    values = {**dict(client.cookies), **overrides}
    return "; ".join(f"{name}={value}" for name, value in values.items() if value is not None)


# --- mailed links: no confusion between purposes or users --------------------------------------------

def new_link(mail, address: str, page: str, known: set, trigger) -> tuple[str, str]:
    trigger()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        links = {link_params(mail_text(m), page) for m in mail.messages_to(address) if page in mail_text(m)}
        if links - known:
            return (links - known).pop()
        time.sleep(0.2)
    raise AssertionError(f"no new {page} mail to {address}")


def test_links_only_work_for_their_purpose_and_user(make_client, mail):
    first, second = make_client(), make_client()
    pending = [f"links-{uuid.uuid4().hex[:8]}@example.com" for _ in range(2)]
    registration = {"password": STRONG_PASSWORD, "confirmed_password": STRONG_PASSWORD}
    links = [new_link(mail, address, "activate.html", set(),
                      lambda a=address: first.post("register/", json={"email": a, **registration}))
             for address in pending]
    (uid_a, token_a), (uid_b, _) = links
    new_password = {"new_password": "Other-Passphrase-77", "confirm_password": "Other-Passphrase-77"}
    assert_json(second.post(f"password_confirm/{uid_a}/{token_a}/", json=new_password), 400)
    assert_json(second.get(f"activate/{uid_b}/{token_a}/"), 400)  # A's token with B's uid
    assert second.post("login/", json={"email": pending[1], "password": STRONG_PASSWORD}).status_code == 401
    assert second.get(f"activate/{uid_a}/{token_a}/").status_code == 200  # unharmed by the attempts

    reset = new_link(mail, pending[0], "confirm_password.html", set(),
                     lambda: first.post("password_reset/", json={"email": pending[0]}))
    assert_json(second.get(f"activate/{reset[0]}/{reset[1]}/"), 400)


def test_older_reset_links_die_when_the_password_changes(make_client, mail):
    client = make_client()
    address = register_and_activate(client, mail)

    def request_reset():
        client.post("password_reset/", json={"email": address})

    older = new_link(mail, address, "confirm_password.html", set(), request_reset)
    newer = new_link(mail, address, "confirm_password.html", {older}, request_reset)
    changed = {"new_password": "Fresh-Passphrase-31", "confirm_password": "Fresh-Passphrase-31"}
    assert client.post(f"password_confirm/{newer[0]}/{newer[1]}/", json=changed).status_code == 200
    hijack = {"new_password": "Hijack-Passphrase-13", "confirm_password": "Hijack-Passphrase-13"}
    assert_json(client.post(f"password_confirm/{older[0]}/{older[1]}/", json=hijack), 400)
    login(client, address, "Fresh-Passphrase-31")


# --- user enumeration by timing (straight at auth: no rate limit, no gateway jitter) -----------------

def seconds(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


@pytest.mark.parametrize("route", ["login/", "password_reset/"])
def test_known_and_unknown_addresses_take_as_long(stack_env, victim, route):
    url = f"{service_url(stack_env, 'auth')}/api/{route}"
    session = requests.Session()

    def attempt(address: str):
        body = {"email": address, "password": "Wrong-Password-123"} if route == "login/" else {"email": address}
        return lambda: session.post(url, json=body, timeout=15)

    for _ in range(2):  # warm up both paths
        attempt(victim.email)(), attempt(f"nobody-{uuid.uuid4().hex[:8]}@example.com")()
    known, unknown = [], []
    for _ in range(TIMING_ROUNDS):  # interleaved, so load on the machine hits both alike
        known.append(seconds(attempt(victim.email)))
        unknown.append(seconds(attempt(f"nobody-{uuid.uuid4().hex[:8]}@example.com")))
    known_median, unknown_median = statistics.median(known), statistics.median(unknown)
    factor = max(known_median, unknown_median) / min(known_median, unknown_median)
    assert factor <= TIMING_FACTOR or abs(known_median - unknown_median) < TIMING_SLACK_S, \
        f"{route}: known {known_median * 1000:.1f} ms vs unknown {unknown_median * 1000:.1f} ms"
