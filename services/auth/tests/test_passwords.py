"""Password reset by mailed link."""
from __future__ import annotations

import random
import statistics
import time
from datetime import timedelta

import pytest
from flask_jwt_extended import decode_token
from sqlalchemy import select

from services.auth.models import User, db

from .conftest import STRONG_PASSWORD, link_params, mail_html, mail_text, unique_email

RESET_DETAIL = {"detail": "An email has been sent to reset your password."}
NEW_PASSWORD = "Brand-New-Passphrase-7"


def new_password(password: str = NEW_PASSWORD, confirm: str | None = None) -> dict:
    return {"new_password": password, "confirm_password": password if confirm is None else confirm}


def test_reset_answers_the_same_for_unknown_addresses_and_mails_only_real_ones(accounts, client, inbox):
    address, unknown = accounts.active_user(), unique_email()
    for email_address in (unknown, address.upper()):
        response = client.post("/api/password_reset/", json={"email": email_address})
        assert response.status_code == 200 and response.json == RESET_DETAIL
    message = inbox.wait_for(address, 2)[1]
    assert message["Subject"] == "Videoflix: Reset your password"
    assert link_params(mail_text(message), "confirm_password.html") == \
        link_params(mail_html(message), "confirm_password.html")
    time.sleep(0.3)
    assert inbox.to(unknown) == []


def test_reset_link_sets_the_new_password_once_and_signs_out_everywhere(accounts, client):
    address = accounts.active_user()
    assert accounts.login(address).status_code == 200
    with client.application.app_context():
        session_id = decode_token(client.get_cookie("access_token").value)["sid"]
    assert client.get(f"/internal/sessions/{session_id}").status_code == 204
    client.post("/api/password_reset/", json={"email": address})
    uid, token = accounts.link(address, "confirm_password.html", 2)
    url = f"/api/password_confirm/{uid}/{token}/"

    # Rejected bodies leave the link usable.
    mismatch = client.post(url, json=new_password(confirm=NEW_PASSWORD + "!"))
    assert mismatch.status_code == 400 and mismatch.json == {"confirm_password": ["Passwords do not match."]}
    weak = client.post(url, json=new_password("12345678"))
    assert weak.status_code == 400 and "new_password" in weak.json
    similar = client.post(url, json=new_password(address))
    assert similar.status_code == 400 and "new_password" in similar.json

    response = client.post(url, json=new_password())
    assert response.status_code == 200 and response.json == {"detail": "Your Password has been successfully reset."}
    again = client.post(url, json=new_password("Yet-Another-Passphrase-8"))
    assert again.status_code == 400 and again.json == {"detail": "This link has already been used."}

    assert client.post("/api/token/refresh/").status_code == 401  # the old session's refresh token
    assert client.get(f"/internal/sessions/{session_id}").status_code == 404  # its access tokens too
    assert accounts.login(address).status_code == 401
    assert accounts.login(address, NEW_PASSWORD).status_code == 200
    assert client.post("/api/token/refresh/").status_code == 200  # a new session works


def test_reset_link_expires(accounts, make_app):
    short_lived = make_app(RESET_LINK_LIFETIME=timedelta(seconds=1)).test_client()
    address = accounts.active_user()
    short_lived.post("/api/password_reset/", json={"email": address})
    uid, token = accounts.link(address, "confirm_password.html", 2)
    time.sleep(1.2)
    response = short_lived.post(f"/api/password_confirm/{uid}/{token}/", json=new_password())
    assert response.status_code == 400
    assert response.json == {"detail": "This link has expired. Please request a new one."}
    assert accounts.login(address).status_code == 200


def test_a_reset_link_also_activates_an_account_that_never_was(app, accounts, client):
    address = accounts.register()
    client.post("/api/password_reset/", json={"email": address})
    uid, token = accounts.link(address, "confirm_password.html", 2)
    assert client.post(f"/api/password_confirm/{uid}/{token}/", json=new_password()).status_code == 200
    assert accounts.login(address, NEW_PASSWORD).status_code == 200
    # The pending activation link must not undo the new password.
    assert accounts.activate(address).status_code == 400
    assert accounts.login(address, NEW_PASSWORD).status_code == 200


def test_links_only_work_for_their_purpose(accounts, client):
    address = accounts.register()
    client.post("/api/password_reset/", json={"email": address})
    activation = accounts.link(address, "activate.html", 1)
    reset = accounts.link(address, "confirm_password.html", 2)
    assert client.get("/api/activate/{}/{}/".format(*reset)).status_code == 400
    assert client.post("/api/password_confirm/{}/{}/".format(*activation), json=new_password()).status_code == 400


@pytest.mark.parametrize("body, field", [
    ({}, "email"),
    ({"email": "not an email"}, "email"),
    ({"email": 7}, "email"),
    ({"email": "x@example.com' OR '1'='1"}, "email"),
    (["x@example.com"], "detail"),
])
def test_bad_reset_requests_get_field_errors(client, body, field):
    response = client.post("/api/password_reset/", json=body)
    assert response.status_code == 400 and field in response.json


@pytest.mark.parametrize("body, field", [
    ({}, "new_password"),
    ({"new_password": NEW_PASSWORD}, "confirm_password"),
    ({"new_password": 12345678, "confirm_password": 12345678}, "new_password"),
])
def test_bad_confirm_bodies_get_field_errors(client, body, field):
    response = client.post("/api/password_confirm/MTIz/whatever/", json=body)
    assert response.status_code == 400 and field in response.json


def test_an_unknown_reset_link_is_400(client):
    response = client.post("/api/password_confirm/MTIz/whatever/", json=new_password())
    assert response.status_code == 400 and response.json == {"detail": "This link is invalid."}


def test_password_hash_changes_on_reset(app, accounts, client):
    address = accounts.active_user()
    with app.app_context():
        before = db.session.scalar(select(User.password_hash).where(User.email == address))
    client.post("/api/password_reset/", json={"email": address})
    uid, token = accounts.link(address, "confirm_password.html", 2)
    client.post(f"/api/password_confirm/{uid}/{token}/", json=new_password())
    with app.app_context():
        after = db.session.scalar(select(User.password_hash).where(User.email == address))
    assert after != before and after.startswith("$argon2id$") and STRONG_PASSWORD not in after


def test_reset_takes_as_long_for_known_and_unknown_addresses(accounts, client, inbox):
    """Interleaved in random order, so load on the machine hits both kinds alike."""
    known = [accounts.active_user() for _ in range(3)]
    durations = {"known": [], "unknown": []}
    kinds = ["known", "unknown"] * 40
    random.Random(9).shuffle(kinds)
    for index, kind in enumerate(kinds):
        address = known[index % 3] if kind == "known" else unique_email()
        started = time.perf_counter()
        response = client.post("/api/password_reset/", json={"email": address})
        durations[kind].append(time.perf_counter() - started)
        assert response.status_code == 200
        time.sleep(0.01)  # let the background mail of a known address go out between requests
    known_median, unknown_median = (statistics.median(durations[kind]) for kind in ("known", "unknown"))
    # Doing the work in the request made known addresses ~3-5x slower; allow noise of a shared machine.
    assert known_median < unknown_median * 1.5 + 0.001, (known_median, unknown_median)
    for number, address in enumerate(known):  # every mail is out before the tables are emptied
        resets = sum(1 for index, kind in enumerate(kinds) if kind == "known" and index % 3 == number)
        inbox.wait_for(address, 1 + resets, timeout=60)
