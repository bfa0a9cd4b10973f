"""Accounts through the gateway: sign up, activation, login cookies, refresh, logout, reset, CSRF, bad input.

Runs against the test stack's real gateway, auth service, PostgreSQL and SMTP sink. Link expiry is
tested by aging the link's row in the test stack's auth database.
"""
from __future__ import annotations

import base64
import statistics
import time
from http.cookies import SimpleCookie
from pathlib import Path

import psycopg2
import pytest
from conftest import (
    STRONG_PASSWORD, ApiClient, link_params, login, mail_html, mail_text, register_and_activate, unique_email,
)

SESSION_COOKIES = {"access_token", "refresh_token", "csrftoken"}
NEW_PASSWORD = "Brand-New-Passphrase-7"
RESET_DETAIL = {"detail": "An email has been sent to reset your password."}
LOGOUT_DETAIL = {"detail": "Logout successful! All tokens will be deleted. Refresh token is now invalid."}


def set_cookies(response) -> dict:
    """Set-Cookie headers of a response by cookie name (http.cookies Morsels)."""
    jar = SimpleCookie()
    for header in response.raw.headers.getlist("Set-Cookie"):
        jar.load(header)
    return dict(jar)


def registration(address: str, password: str = STRONG_PASSWORD) -> dict:
    return {"email": address, "password": password, "confirmed_password": password, "privacy_policy": "on"}


def mailed_link(mail, address: str, page: str, count: int = 1) -> tuple[str, str]:
    """uid and token of the `page` link in the mails to `address` (waits for `count` mails; the
    Maildir does not keep their order, so with several links to the same page use the newest)."""
    messages = [m for m in mail.wait_for(address, count) if page in mail_text(m)]
    assert messages, f"no {page} mail to {address}"
    return link_params(mail_text(messages[0]), page)


def user_id(uid: str) -> int:
    return int(base64.urlsafe_b64decode(uid + "=" * (-len(uid) % 4)))


def age_links(stack_env, uid: str) -> None:
    """Make every link of the user of `uid` expired, as if its lifetime had passed."""
    with psycopg2.connect(stack_env["AUTH_DATABASE_URL"]) as connection, connection.cursor() as cursor:
        cursor.execute("UPDATE link_tokens SET expires_at = now() - interval '1 second' WHERE user_id = %s",
                       (user_id(uid),))
    connection.close()


def test_register_activate_login_refresh_logout(client, make_client, mail, stack_env):
    address = unique_email()
    response = client.post("register/", json=registration(address))
    assert response.status_code == 201
    assert response.json() == {"user": {"id": response.json()["user"]["id"], "email": address}}
    assert "token" not in response.text

    message = mail.wait_for(address)[0]
    frontend_link = f"{stack_env['FRONTEND_BASE_URL']}/pages/auth/activate.html?uid="
    assert frontend_link in mail_text(message) and frontend_link in mail_html(message)
    uid, token = link_params(mail_text(message), "activate.html")
    assert user_id(uid) == response.json()["user"]["id"]
    activated = client.get(f"activate/{uid}/{token}/")
    assert activated.status_code == 200 and activated.json() == {"message": "Account successfully activated."}

    logged_in = login(client, address)
    assert logged_in.json() == {"detail": "Login successful", "user": {"id": user_id(uid), "username": address, "is_admin": False}}
    cookies = set_cookies(logged_in)
    assert set(cookies) == SESSION_COOKIES
    for name, morsel in cookies.items():
        assert morsel["path"] == "/" and morsel["samesite"] == "Lax"
        assert bool(morsel["httponly"]) == (name != "csrftoken"), name
    old_refresh_cookie = client.cookies["refresh_token"]

    old_access_cookie = client.cookies["access_token"]
    time.sleep(1)  # a new token issued within the same second could equal the old one
    refreshed = client.post("token/refresh/", json={}, csrf=False)  # the frontend's timer sends no header
    assert refreshed.status_code == 200 and refreshed.json() == {"detail": "Token refreshed"}
    assert set(set_cookies(refreshed)) == SESSION_COOKIES  # a new refresh token with each refresh
    assert client.cookies["access_token"] != old_access_cookie
    assert client.cookies["refresh_token"] != old_refresh_cookie

    logged_out = client.post("logout/", json={})
    assert logged_out.status_code == 200 and logged_out.json() == LOGOUT_DETAIL
    assert set(set_cookies(logged_out)) == SESSION_COOKIES
    assert all(morsel.value == "" for morsel in set_cookies(logged_out).values())
    assert not SESSION_COOKIES & set(client.cookies.keys())

    replay = make_client()
    replay.cookies.set("refresh_token", old_refresh_cookie)
    replayed = replay.post("token/refresh/", json={})
    assert replayed.status_code == 401 and replayed.json() == {"detail": "Token has been revoked."}


def test_the_access_cookie_opens_the_video_api_until_logout(logged_in_client):
    assert logged_in_client.get("video/").status_code == 200
    assert logged_in_client.post("logout/", json={}).status_code == 200
    assert logged_in_client.get("video/").status_code == 401


def wait_until_refused(client: ApiClient, access_token: str, paths: list[str], seconds: float) -> float:
    """Seconds until every path answers 401 to `access_token`; fails after `seconds`."""
    started = time.monotonic()
    client.cookies.set("access_token", access_token)
    while True:
        statuses = [client.get(path).status_code for path in paths]
        if set(statuses) == {401}:
            return time.monotonic() - started
        assert time.monotonic() - started < seconds, f"still accepted after {seconds}s: {statuses}"
        time.sleep(0.5)


# The test stack rechecks every GATEWAY_TOKEN_RECHECK_SECONDS (3 s; 60 s in a deployment).
VIDEO_PATHS = ["video/", "video/999999/480p/index.m3u8", "video/999999/480p/segment_000.ts"]


def test_a_logged_out_access_token_stops_opening_videos_at_the_gateway(logged_in_client, make_client, stack_env):
    access_token = logged_in_client.cookies["access_token"]
    # Accepted at the gateway: the list answers, the media of a video that does not exist are 404.
    assert [logged_in_client.get(path).status_code for path in VIDEO_PATHS] == [200, 404, 404]
    assert logged_in_client.post("logout/", json={}).status_code == 200
    recheck = float(stack_env["GATEWAY_TOKEN_RECHECK_SECONDS"])
    wait_until_refused(make_client(), access_token, VIDEO_PATHS, recheck + 10)


def test_a_password_reset_ends_the_access_tokens_of_every_session(logged_in_client, make_client, mail,
                                                                  stack_env):
    access_token = logged_in_client.cookies["access_token"]
    assert logged_in_client.get(VIDEO_PATHS[2]).status_code == 404
    assert logged_in_client.post("password_reset/", json={"email": logged_in_client.email}).status_code == 200
    uid, token = mailed_link(mail, logged_in_client.email, "confirm_password.html", 2)
    new_password = "Brand-New-Passphrase-7"
    confirmed = make_client().post(f"password_confirm/{uid}/{token}/", json={
        "new_password": new_password, "confirm_password": new_password})
    assert confirmed.status_code == 200
    recheck = float(stack_env["GATEWAY_TOKEN_RECHECK_SECONDS"])
    wait_until_refused(make_client(), access_token, VIDEO_PATHS, recheck + 10)


def test_a_reused_refresh_token_ends_every_session(logged_in_client, make_client, stack_env):
    access_token, stolen = logged_in_client.cookies["access_token"], logged_in_client.cookies["refresh_token"]
    assert logged_in_client.post("token/refresh/", json={}, csrf=False).status_code == 200
    thief = make_client()
    thief.cookies.set("refresh_token", stolen)
    assert thief.post("token/refresh/", json={}).status_code == 401
    # The owner's rotated refresh token is revoked too, and so are the access tokens of the session.
    assert logged_in_client.post("token/refresh/", json={}, csrf=False).status_code == 401
    recheck = float(stack_env["GATEWAY_TOKEN_RECHECK_SECONDS"])
    wait_until_refused(make_client(), access_token, VIDEO_PATHS, recheck + 10)


def test_login_before_activation_fails(client, mail):
    address = unique_email()
    assert client.post("register/", json=registration(address)).status_code == 201
    response = client.post("login/", json={"email": address, "password": STRONG_PASSWORD})
    assert response.status_code == 401 and "detail" in response.json()
    assert not set_cookies(response) and not client.cookies


def test_activation_link_works_once(client, mail):
    address = unique_email()
    client.post("register/", json=registration(address))
    uid, token = mailed_link(mail, address, "activate.html")
    assert client.get(f"activate/{uid}/{token}/").status_code == 200
    again = client.get(f"activate/{uid}/{token}/")
    assert again.status_code == 400 and again.json() == {"detail": "This link has already been used."}


def test_activation_link_expires(client, mail, stack_env):
    address = unique_email()
    client.post("register/", json=registration(address))
    uid, token = mailed_link(mail, address, "activate.html")
    age_links(stack_env, uid)
    expired = client.get(f"activate/{uid}/{token}/")
    assert expired.status_code == 400
    assert expired.json() == {"detail": "This link has expired. Please request a new one."}

    # A new link can be requested for the still-inactive account: the mailbox owner chooses the
    # password on its page, which activates the account.
    resent = client.post("activation/resend/", json={"email": address})
    assert resent.status_code == 200
    uid, token = mailed_link(mail, address, "confirm_password.html", 2)
    chosen = client.post(f"password_confirm/{uid}/{token}/", json={
        "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert chosen.status_code == 200
    login(client, address, NEW_PASSWORD)


def test_a_second_registration_cannot_choose_the_password_of_a_pending_account(client, make_client, mail):
    """An attacker signs up with an address whose owner signed up but has not clicked yet."""
    address, attacker_password = unique_email(), "Attacker-Chose-This-1"
    assert client.post("register/", json=registration(address)).status_code == 201
    attacker = make_client()
    assert attacker.post("register/", json=registration(address, attacker_password)).status_code == 201
    # The owner clicks whatever the mails offer: the first link is void, the second lets them choose.
    uid, token = mailed_link(mail, address, "activate.html", 2)
    assert client.get(f"activate/{uid}/{token}/").status_code == 400
    uid, token = mailed_link(mail, address, "confirm_password.html", 2)
    owner_password = "Owner-Chose-This-2"
    assert client.post(f"password_confirm/{uid}/{token}/", json={
        "new_password": owner_password, "confirm_password": owner_password}).status_code == 200
    assert attacker.post("login/", json={"email": address, "password": attacker_password}).status_code == 401
    login(client, address, owner_password)


def test_password_reset(logged_in_client, make_client, mail):
    client, address = logged_in_client, logged_in_client.email
    old_refresh_cookie = client.cookies["refresh_token"]
    unknown = client.post("password_reset/", json={"email": unique_email()})
    known = client.post("password_reset/", json={"email": address})
    assert unknown.status_code == known.status_code == 200
    assert unknown.json() == known.json() == RESET_DETAIL

    message = next(m for m in mail.wait_for(address, 2) if "confirm_password.html" in mail_text(m))
    uid, token = link_params(mail_text(message), "confirm_password.html")
    assert link_params(mail_html(message), "confirm_password.html") == (uid, token)
    stranger = make_client()  # the link is all it takes: no session, no CSRF header
    mismatch = stranger.post(f"password_confirm/{uid}/{token}/",
                             json={"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD + "x"})
    assert mismatch.status_code == 400 and "confirm_password" in mismatch.json()
    confirmed = stranger.post(f"password_confirm/{uid}/{token}/",
                              json={"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert confirmed.status_code == 200
    assert confirmed.json() == {"detail": "Your Password has been successfully reset."}
    reused = stranger.post(f"password_confirm/{uid}/{token}/",
                           json={"new_password": "Third-Passphrase-99", "confirm_password": "Third-Passphrase-99"})
    assert reused.status_code == 400 and reused.json() == {"detail": "This link has already been used."}

    old_password = stranger.post("login/", json={"email": address, "password": STRONG_PASSWORD})
    assert old_password.status_code == 401
    replay = make_client()
    replay.cookies.set("refresh_token", old_refresh_cookie)
    assert replay.post("token/refresh/", json={}).status_code == 401
    assert client.post("token/refresh/", json={}).status_code == 401  # the session of before the reset
    login(stranger, address, NEW_PASSWORD)
    assert stranger.post("token/refresh/", json={}).status_code == 200


def test_reset_link_expires(logged_in_client, mail, stack_env):
    address = logged_in_client.email
    logged_in_client.post("password_reset/", json={"email": address})
    uid, token = mailed_link(mail, address, "confirm_password.html", 2)
    age_links(stack_env, uid)
    response = logged_in_client.post(f"password_confirm/{uid}/{token}/",
                                     json={"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert response.status_code == 400
    assert response.json() == {"detail": "This link has expired. Please request a new one."}
    assert logged_in_client.post("token/refresh/", json={}).status_code == 200  # nothing changed


@pytest.mark.parametrize("headers", [{}, {"X-CSRFToken": "forged"}], ids=["no header", "wrong header"])
def test_logout_needs_a_matching_csrf_header(logged_in_client, headers):
    response = logged_in_client.post("logout/", json={}, headers=headers, csrf=False)
    assert response.status_code == 403 and response.json() == {"detail": "CSRF token missing or incorrect."}
    assert logged_in_client.post("token/refresh/", json={}).status_code == 200  # still logged in


def test_logout_without_a_refresh_cookie_is_400(client):
    response = client.post("logout/", json={})
    assert response.status_code == 400 and response.json() == {"detail": "Refresh token missing."}


def test_refresh_without_a_cookie_is_400_and_with_a_forged_one_401(client, make_client):
    assert client.post("token/refresh/", json={}).status_code == 400
    forged = make_client()
    forged.cookies.set("refresh_token", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIiwidHlwZSI6InJlZnJlc2gifQ.")
    assert forged.post("token/refresh/", json={}).status_code == 401


def test_duplicate_registration_is_indistinguishable(client, make_client, mail):
    existing = register_and_activate(client, mail)
    pending = unique_email()
    assert client.post("register/", json=registration(pending)).status_code == 201
    prober = make_client()

    def attempt(address: str):
        started = time.perf_counter()
        response = prober.post("register/", json=registration(address, "Prober-Passphrase-1"))
        return response, time.perf_counter() - started

    answers = {name: attempt(address) for name, address in
               [("new", unique_email()), ("active", existing), ("inactive", pending)]}
    for name, (response, _) in answers.items():
        assert response.status_code == 201, name
        assert set(response.json()) == {"user"} and set(response.json()["user"]) == {"id", "email"}
        assert isinstance(response.json()["user"]["id"], int)
    header_names = [set(response.headers) for response, _ in answers.values()]
    assert header_names[0] == header_names[1] == header_names[2]
    assert answers["active"][0].json()["user"]["email"] == existing
    durations = [seconds for _, seconds in answers.values()]
    assert max(durations) < 3 * min(durations) + 0.2, durations  # all three hash a password
    # The address owner hears about it; the prober's password changed nothing.
    assert any("already has an active account" in mail_text(m) for m in mail.wait_for(existing, 2))
    login(client, existing)


def test_login_answers_the_same_for_unknown_addresses_and_wrong_passwords(logged_in_client, make_client):
    prober = make_client()

    def attempt(address: str):
        started = time.perf_counter()
        response = prober.post("login/", json={"email": address, "password": "Wrong-Password-1"})
        return response, time.perf_counter() - started

    wrong = [attempt(logged_in_client.email) for _ in range(3)]
    unknown = [attempt(unique_email()) for _ in range(3)]
    assert {(r.status_code, r.text) for r, _ in wrong + unknown} == {(401, wrong[0][0].text)}
    ratio = statistics.median(s for _, s in unknown) / statistics.median(s for _, s in wrong)
    assert 1 / 3 < ratio < 3, ratio


VALID = registration("someone@example.com")
BAD_INPUT = [
    # (endpoint, body or raw string, expected status, a key the JSON error must have)
    ("register/", '{"email": "a@example.com",', 400, "detail"),
    ("register/", "[1, 2, 3]", 400, "detail"),
    ("register/", {}, 400, "email"),
    ("register/", {"email": "a@example.com"}, 400, "password"),
    ("register/", {**VALID, "email": 12345}, 400, "email"),
    ("register/", {**VALID, "password": ["x"] * 10}, 400, "password"),
    ("register/", {**VALID, "email": "not-an-email"}, 400, "email"),
    ("register/", {**VALID, "email": "ünïcödé@exämple.com"}, 400, "email"),
    ("register/", {**VALID, "email": "'; DROP TABLE users; --"}, 400, "email"),
    ("register/", {**VALID, "email": "admin@example.com' OR '1'='1"}, 400, "email"),
    ("register/", {**VALID, "password": "short1!", "confirmed_password": "short1!"}, 400, "password"),
    ("register/", {**VALID, "password": "31415926535", "confirmed_password": "31415926535"}, 400, "password"),
    ("register/", {**VALID, "password": "password123", "confirmed_password": "password123"}, 400, "password"),
    ("register/", {**VALID, "confirmed_password": "Something-Else-1"}, 400, "confirmed_password"),
    ("register/", {**VALID, "email": '"quoted local"@example.com'}, 400, "email"),
    ("register/", {**VALID, "email": "someone@[127.0.0.1]"}, 400, "email"),
    ("register/", {**VALID, "password": "Corr3ct\u0000Horse!", "confirmed_password": "Corr3ct\u0000Horse!"},
     400, "password"),
    ("register/", {**VALID, "password": "e\u0301" * 4, "confirmed_password": "e\u0301" * 4}, 400, "password"),
    ("login/", {"email": "a@example.com", "password": "x\u0000"}, 400, "password"),
    ("password_reset/", {"email": "a\u0000@example.com"}, 400, "email"),
    ("login/", "not json at all", 400, "detail"),
    ("login/", {"email": "a@example.com"}, 400, "password"),
    ("login/", {"email": {"$gt": ""}, "password": "x"}, 400, "email"),
    ("login/", {"email": "' OR 1=1 --", "password": "' OR 1=1 --"}, 400, "email"),
    ("login/", {"email": "ünï@example.com", "password": "Пароль-123456"}, 400, "email"),
    ("password_reset/", {}, 400, "email"),
    ("password_reset/", {"email": None}, 400, "email"),
    ("password_reset/", {"email": "x@example.com; DROP TABLE users"}, 400, "email"),
    ("activation/resend/", {"email": 3.14}, 400, "email"),
    ("password_confirm/MQ/abc/", {"new_password": NEW_PASSWORD}, 400, "confirm_password"),
    ("password_confirm/MQ/abc/", {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}, 400, "detail"),
    ("password_confirm/%27%20OR%201%3D1/x/", {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
     400, "detail"),
]


@pytest.mark.parametrize("path, body, status, key", BAD_INPUT, ids=[f"{p}-{i}" for i, (p, *_) in enumerate(BAD_INPUT)])
def test_bad_input_gets_a_clear_json_error(client, path, body, status, key):
    if isinstance(body, str):
        response = client.post(path, data=body, headers={"Content-Type": "application/json"})
    else:
        response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert key in response.json() and response.json()[key]


@pytest.mark.parametrize("path", ["register/", "login/", "password_reset/"])
def test_a_1_mb_body_is_a_413_json_error(client, path):
    response = client.post(path, json={**VALID, "padding": "x" * (1024 * 1024)})
    assert response.status_code == 413
    assert response.headers["Content-Type"].startswith("application/json") and "detail" in response.json()


@pytest.mark.parametrize("path", ["activate/MQ/nope/", "activate/%F0%9F%98%80/%27%3B--/", "activate/w6k/x/"])
def test_bad_activation_links_are_a_400(client, path):
    response = client.get(path)
    assert response.status_code == 400 and response.json() == {"detail": "This link is invalid."}


def test_link_tokens_never_reach_the_logs(client, make_client, mail, stack_env):
    """An activation and a password reset through the gateway: neither token is in any log."""
    address = unique_email()
    assert client.post("register/", json=registration(address)).status_code == 201
    uid, activation_token = link_params(mail_text(mail.wait_for(address)[0]), "activate.html")
    gateway = client.base.rsplit("/api/", 1)[0]
    assert client.get(f"{gateway}/pages/auth/activate.html?uid={uid}&token={activation_token}").status_code == 200
    assert client.get(f"activate/{uid}/{activation_token}/").status_code == 200
    assert client.post("password_reset/", json={"email": address}).status_code == 200
    uid, reset_token = mailed_link(mail, address, "confirm_password.html", 2)
    confirmed = make_client().post(f"password_confirm/{uid}/{reset_token}/", json={
        "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert confirmed.status_code == 200

    logs = Path(stack_env["VAR_DIR"]) / "log"
    masked = f"/api/password_confirm/{uid}/***/"
    deadline = time.monotonic() + 20  # nginx and the services write their lines after answering
    while not all(masked in (logs / name).read_text() for name in ("gateway.log", "auth.log")) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    for log in logs.glob("*.log"):
        text = log.read_text(errors="replace")
        assert activation_token not in text and reset_token not in text, log.name
    assert masked in (logs / "gateway.log").read_text()
    assert masked in (logs / "auth.log").read_text()
