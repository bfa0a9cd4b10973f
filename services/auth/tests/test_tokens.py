"""Login, token refresh, logout and CSRF."""
from __future__ import annotations

import statistics
import time
from http.cookies import SimpleCookie
from urllib.parse import quote

import pytest
from argon2 import PasswordHasher
from flask_jwt_extended import decode_token
from sqlalchemy import select, update

from services.auth.models import RefreshToken, User, db

from .conftest import STRONG_PASSWORD, unique_email

SESSION_COOKIES = {"access_token", "refresh_token", "csrftoken"}


def set_cookies(response) -> dict:
    """The Set-Cookie headers of a response, by cookie name (http.cookies Morsels)."""
    jar = SimpleCookie()
    for header in response.headers.getlist("Set-Cookie"):
        jar.load(header)
    return dict(jar)


def claims(app, token: str) -> dict:
    with app.app_context():
        return decode_token(token)


def cookie(client, name: str) -> str | None:
    found = client.get_cookie(name)
    return found.value if found else None


def test_login_sets_the_session_cookies_and_answers_as_the_contract_says(app, accounts, client):
    address = accounts.active_user()
    response = accounts.login(address)
    assert response.status_code == 200
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == address))
    assert response.json == {"detail": "Login successful", "user": {"id": user.id, "username": address, "is_admin": False}}

    cookies = set_cookies(response)
    assert set(cookies) == SESSION_COOKIES
    for name, morsel in cookies.items():
        assert morsel["path"] == "/" and morsel["samesite"] == "Lax" and not morsel["secure"]
        assert bool(morsel["httponly"]) == (name != "csrftoken")
    assert int(cookies["access_token"]["max-age"]) == 30 * 60
    assert int(cookies["refresh_token"]["max-age"]) == int(cookies["csrftoken"]["max-age"]) == 7 * 86400

    access, refresh = claims(app, cookies["access_token"].value), claims(app, cookies["refresh_token"].value)
    assert (access["type"], refresh["type"]) == ("access", "refresh")
    assert access["sub"] == refresh["sub"] == str(user.id)
    assert access["csrf"] == refresh["csrf"] == cookies["csrftoken"].value
    assert access["email"] == address and access["is_admin"] is False
    with app.app_context():
        recorded = db.session.get(RefreshToken, refresh["jti"])
    assert recorded.user_id == user.id and recorded.revoked_at is None


def test_each_login_has_its_own_csrf_value(app, accounts, make_app):
    address = accounts.active_user()
    first, second = accounts.login(address), accounts.login(address)
    assert set_cookies(first)["csrftoken"].value != set_cookies(second)["csrftoken"].value


def test_cookies_are_secure_when_configured(accounts, make_app, make_settings):
    address = accounts.active_user()
    secure_client = make_app(make_settings(COOKIE_SECURE="true")).test_client()
    cookies = set_cookies(accounts.login(address, client=secure_client))
    assert all(morsel["secure"] for morsel in cookies.values())


def test_wrong_password_and_unknown_email_look_the_same(accounts):
    address = accounts.active_user()
    wrong = accounts.login(address, "Wrong-Password-123")
    unknown = accounts.login(unique_email())
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json == unknown.json == {"detail": "Invalid email or password."}
    assert not set_cookies(wrong) and not set_cookies(unknown)


def test_wrong_password_and_unknown_email_take_similar_time(accounts):
    address = accounts.active_user()

    def median_seconds(email_address: str) -> float:
        durations = []
        for _ in range(5):
            started = time.perf_counter()
            accounts.login(email_address, "Wrong-Password-123")
            durations.append(time.perf_counter() - started)
        return statistics.median(durations)

    accounts.login(unique_email())  # the first unknown login computes the dummy hash
    known, unknown = median_seconds(address), median_seconds(unique_email())
    # Without the dummy hash an unknown address answers ~50x faster; allow noise of a shared machine.
    assert 1 / 3 < unknown / known < 3, (known, unknown)


def test_inactive_accounts_cannot_log_in(accounts):
    address = accounts.register()
    response = accounts.login(address)
    assert response.status_code == 401 and "activate" in response.json["detail"]
    assert not set_cookies(response)


@pytest.mark.parametrize("body, field", [
    ({}, "email"),
    ({"email": "a@example.com"}, "password"),
    ({"email": "a@example.com", "password": ""}, "password"),
    ({"email": "a@example.com", "password": 12345678}, "password"),
    ({"email": None, "password": "x"}, "email"),
    ({"email": "' OR 1=1 --", "password": "' OR 1=1 --"}, "email"),
    ([], "detail"),
])
def test_bad_login_bodies_get_field_errors(client, body, field):
    response = client.post("/api/login/", json=body)
    assert response.status_code == 400 and field in response.json


def test_login_rehashes_a_password_hashed_with_weaker_parameters(app, accounts):
    address = accounts.active_user()
    weak_hash = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(STRONG_PASSWORD)
    with app.app_context():
        db.session.execute(update(User).where(User.email == address).values(password_hash=weak_hash))
        db.session.commit()
    assert accounts.login(address).status_code == 200
    with app.app_context():
        new_hash = db.session.scalar(select(User.password_hash).where(User.email == address))
    assert new_hash != weak_hash and new_hash.startswith("$argon2id$v=19$m=65536")
    assert accounts.login(address).status_code == 200


@pytest.fixture
def logged_in(accounts, client):
    client.email = accounts.active_user()
    accounts.login(client.email)
    return client


def test_refresh_sets_new_tokens_of_the_same_session_with_the_same_csrf_value(app, logged_in):
    old_access, old_refresh = cookie(logged_in, "access_token"), cookie(logged_in, "refresh_token")
    old_csrf = cookie(logged_in, "csrftoken")
    time.sleep(1)  # a token issued in the same second could be identical
    response = logged_in.post("/api/token/refresh/", json={})  # no X-CSRFToken: the frontend sends none
    assert response.status_code == 200 and response.json == {"detail": "Token refreshed"}
    assert set(set_cookies(response)) == SESSION_COOKIES
    new_access, new_refresh = cookie(logged_in, "access_token"), cookie(logged_in, "refresh_token")
    assert new_access != old_access and new_refresh != old_refresh
    assert cookie(logged_in, "csrftoken") == old_csrf
    assert claims(app, new_access)["csrf"] == claims(app, new_refresh)["csrf"] == old_csrf
    assert claims(app, new_access)["sub"] == claims(app, old_access)["sub"]
    session_id = claims(app, old_access)["sid"]
    assert claims(app, new_access)["sid"] == claims(app, new_refresh)["sid"] == session_id
    assert claims(app, new_refresh)["jti"] != claims(app, old_refresh)["jti"]


def test_a_refresh_whose_commit_fails_sets_no_cookie_and_the_old_token_still_works(app, logged_in, monkeypatch):
    """PostgreSQL gone at the commit (a restart): the answer is the JSON 503 and carries no token that
    was never stored; the client keeps its refresh token, which works once the database is back."""
    from sqlalchemy.exc import OperationalError

    from services.auth import tokens

    old_refresh = cookie(logged_in, "refresh_token")
    commit = tokens.db.session.commit

    def lost(*args, **kwargs):
        tokens.db.session.rollback()
        raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(tokens.db.session, "commit", lost)
    failed = logged_in.post("/api/token/refresh/", json={})
    assert failed.status_code == 503 and failed.is_json and not set_cookies(failed)
    assert cookie(logged_in, "refresh_token") == old_refresh
    monkeypatch.setattr(tokens.db.session, "commit", commit)
    assert logged_in.post("/api/token/refresh/", json={}).status_code == 200


def test_every_refresh_token_works_once_and_a_reused_one_revokes_every_session(app, accounts, logged_in):
    other_device = app.test_client()
    assert accounts.login(logged_in.email, client=other_device).status_code == 200
    stolen = cookie(logged_in, "refresh_token")
    assert logged_in.post("/api/token/refresh/").status_code == 200
    assert logged_in.post("/api/token/refresh/").status_code == 200  # the next one works, once

    thief = app.test_client()
    thief.set_cookie("refresh_token", stolen)
    reused = thief.post("/api/token/refresh/")
    assert reused.status_code == 401 and reused.json == {"detail": "Token has been revoked."}
    assert not set_cookies(reused)
    # Reuse means a copy exists somewhere: every refresh token of the user is revoked.
    assert logged_in.post("/api/token/refresh/").status_code == 401
    assert other_device.post("/api/token/refresh/").status_code == 401
    with app.app_context():
        assert db.session.scalar(select(RefreshToken.jti).where(RefreshToken.revoked_at.is_(None))) is None


def session_live(client, app, access_token: str) -> bool:
    response = client.get(f"/internal/sessions/{claims(app, access_token)['sid']}")
    assert response.status_code in (204, 404), response.json
    return response.status_code == 204


def test_the_session_of_an_access_token_is_live_until_logout(app, accounts, logged_in):
    first_access = cookie(logged_in, "access_token")
    assert session_live(logged_in, app, first_access)
    assert logged_in.post("/api/token/refresh/").status_code == 200
    assert session_live(logged_in, app, first_access) and session_live(logged_in, app, cookie(logged_in, "access_token"))
    other_device = app.test_client()
    assert accounts.login(logged_in.email, client=other_device).status_code == 200

    csrf = cookie(logged_in, "csrftoken")
    assert logged_in.post("/api/logout/", json={}, headers={"X-CSRFToken": csrf}).status_code == 200
    assert not session_live(other_device, app, first_access)
    assert session_live(other_device, app, cookie(other_device, "access_token"))  # another login lives on
    assert app.test_client().get("/internal/sessions/no-such-session").status_code == 404


def test_a_reused_refresh_token_ends_every_session_of_the_user(app, logged_in):
    access = cookie(logged_in, "access_token")
    stolen = cookie(logged_in, "refresh_token")
    assert logged_in.post("/api/token/refresh/").status_code == 200
    thief = app.test_client()
    thief.set_cookie("refresh_token", stolen)
    assert thief.post("/api/token/refresh/").status_code == 401
    assert not session_live(thief, app, access)


def test_refresh_without_cookie_is_400_and_with_a_bad_one_401(client):
    response = client.post("/api/token/refresh/")
    assert response.status_code == 400 and response.json == {"detail": "Refresh token missing."}
    client.set_cookie("refresh_token", "not.a.jwt")
    response = client.post("/api/token/refresh/")
    assert response.status_code == 401 and response.json == {"detail": "Token is invalid."}


def test_an_access_token_is_no_refresh_token(logged_in):
    logged_in.set_cookie("refresh_token", cookie(logged_in, "access_token"))
    assert logged_in.post("/api/token/refresh/").status_code == 401


def test_refresh_fails_once_the_user_is_deactivated(app, logged_in):
    with app.app_context():
        db.session.execute(update(User).values(is_active=False))
        db.session.commit()
    response = logged_in.post("/api/token/refresh/")
    assert response.status_code == 401 and response.json == {"detail": "Token has been revoked."}


def test_logout_revokes_the_refresh_token_and_deletes_the_cookies(app, logged_in):
    refresh_token = cookie(logged_in, "refresh_token")
    response = logged_in.post("/api/logout/", json={}, headers={"X-CSRFToken": cookie(logged_in, "csrftoken")})
    assert response.status_code == 200
    assert response.json == {"detail": "Logout successful! All tokens will be deleted. Refresh token is now invalid."}
    deleted = set_cookies(response)
    assert set(deleted) == SESSION_COOKIES
    for morsel in deleted.values():
        assert morsel.value == "" and morsel["expires"] == "Thu, 01 Jan 1970 00:00:00 GMT" and morsel["path"] == "/"
    assert all(cookie(logged_in, name) is None for name in SESSION_COOKIES)
    with app.app_context():
        assert db.session.get(RefreshToken, claims(app, refresh_token)["jti"]).revoked_at is not None

    logged_in.set_cookie("refresh_token", refresh_token)  # replay the old cookie
    replay = logged_in.post("/api/token/refresh/")
    assert replay.status_code == 401 and replay.json == {"detail": "Token has been revoked."}


def test_logout_without_refresh_cookie_is_400(client):
    response = client.post("/api/logout/", json={})
    assert response.status_code == 400 and response.json == {"detail": "Refresh token missing."}


@pytest.mark.parametrize("tamper", ["no header", "wrong header", "cookie and header agree, token does not"])
def test_logout_without_a_matching_csrf_token_is_403(app, logged_in, tamper):
    headers = {}
    if tamper == "wrong header":
        headers["X-CSRFToken"] = "guessed"
    elif tamper != "no header":
        logged_in.set_cookie("csrftoken", "forged")
        headers["X-CSRFToken"] = "forged"
    response = logged_in.post("/api/logout/", json={}, headers=headers)
    assert response.status_code == 403 and response.json == {"detail": "CSRF token missing or incorrect."}
    assert not set_cookies(response)
    assert logged_in.post("/api/token/refresh/").status_code == 200  # still logged in


@pytest.mark.parametrize("session_id", ["a\x00b", "%00", "x" * 65, "é", "a.b"])
def test_a_session_id_that_cannot_be_one_is_a_404_not_a_500(client, session_id):
    response = client.get(f"/internal/sessions/{quote(session_id)}")
    assert response.status_code == 404 and response.json == {"detail": "Session not found."}
