"""Sign up, activation and activation resend."""
from __future__ import annotations

import base64
import hashlib
import logging
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from services.auth.models import ACTIVATION, LinkToken, User, db, utcnow

from .conftest import STRONG_PASSWORD, free_port, link_params, mail_html, mail_text, unique_email


def user_row(app, address: str) -> User | None:
    with app.app_context():
        return db.session.scalar(select(User).where(User.email == address))


def test_register_creates_an_inactive_user_and_mails_an_activation_link(app, client, inbox):
    address = unique_email()
    response = client.post("/api/register/", json={
        "email": address, "password": STRONG_PASSWORD, "confirmed_password": STRONG_PASSWORD,
        "privacy_policy": "on",
    })
    assert response.status_code == 201
    user = user_row(app, address)
    assert response.json == {"user": {"id": user.id, "email": address}}
    assert not user.is_active and not user.is_admin
    assert user.password_hash.startswith("$argon2id$") and STRONG_PASSWORD not in user.password_hash

    message = inbox.wait_for(address)[0]
    assert message["Subject"] == "Videoflix: Activate your account"
    uid, token = link_params(mail_text(message), "activate.html")
    assert link_params(mail_html(message), "activate.html") == (uid, token)
    assert base64.urlsafe_b64decode(uid + "=" * (-len(uid) % 4)) == str(user.id).encode()
    with app.app_context():
        link = db.session.scalar(select(LinkToken).where(LinkToken.user_id == user.id))
    assert link.purpose == ACTIVATION and link.used_at is None
    assert link.token_hash == hashlib.sha256(token.encode()).hexdigest()  # the token itself is not stored
    assert abs(link.expires_at - (utcnow() + timedelta(hours=24))) < timedelta(minutes=1)


def test_activation_link_activates_once(app, accounts):
    address = accounts.register()
    assert accounts.login(address).status_code == 401  # not before activation
    uid, token = accounts.link(address, "activate.html")

    first = accounts.client.get(f"/api/activate/{uid}/{token}/")
    assert first.status_code == 200 and first.json == {"message": "Account successfully activated."}
    assert user_row(app, address).is_active
    again = accounts.client.get(f"/api/activate/{uid}/{token}/")
    assert again.status_code == 400 and again.json == {"detail": "This link has already been used."}
    assert accounts.login(address).status_code == 200


def test_email_is_trimmed_and_lower_cased(app, client, accounts):
    address = unique_email()
    accounts.register(f"  {address.upper()} ")
    assert user_row(app, address) is not None
    assert accounts.activate(address).status_code == 200
    assert accounts.login(address.upper()).status_code == 200


@pytest.mark.parametrize("uid, token", [
    ("MTIz", "not-a-token"),  # a well-formed uid, unknown token
    ("%%%", "x"),  # not base64
    ("AAAA", "x"),  # base64 of bytes that are no number
    ("w6k", "x"),  # base64 of non-ASCII
    ("OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "x"),  # a number too large for any id
])
def test_malformed_activation_links_are_rejected(client, uid, token):
    response = client.get(f"/api/activate/{uid}/{token}/")
    assert response.status_code == 400 and response.json == {"detail": "This link is invalid."}


def test_activation_token_of_one_user_does_not_work_with_another_uid(accounts):
    first, second = accounts.register(), accounts.register()
    uid_first, _ = accounts.link(first, "activate.html")
    _, token_second = accounts.link(second, "activate.html")
    assert accounts.client.get(f"/api/activate/{uid_first}/{token_second}/").status_code == 400


def test_activation_link_expires(app, make_app, make_settings, inbox):
    short_lived = make_app(ACTIVATION_LINK_LIFETIME=timedelta(seconds=1)).test_client()
    address = unique_email()
    short_lived.post("/api/register/", json={
        "email": address, "password": STRONG_PASSWORD, "confirmed_password": STRONG_PASSWORD})
    message = inbox.wait_for(address)[0]
    assert "expires in 0 minutes" in mail_text(message)
    uid, token = link_params(mail_text(message), "activate.html")
    time.sleep(1.2)
    response = short_lived.get(f"/api/activate/{uid}/{token}/")
    assert response.status_code == 400
    assert response.json == {"detail": "This link has expired. Please request a new one."}
    assert not user_row(app, address).is_active


def follow_latest_mail(accounts, address: str, count: int, password: str):
    """What the mailbox owner does with the newest mail: click an activation link, or choose
    `password` on the page a password link opens."""
    text = mail_text(accounts.inbox.wait_for(address, count)[count - 1])
    if "activate.html" in text:
        uid, token = link_params(text, "activate.html")
        return accounts.client.get(f"/api/activate/{uid}/{token}/")
    uid, token = link_params(text, "confirm_password.html")
    return accounts.client.post(f"/api/password_confirm/{uid}/{token}/", json={
        "new_password": password, "confirm_password": password})


ATTACKER_PASSWORD = "Attacker-Chose-This-1"
OWNER_PASSWORD = "Owner-Chose-This-2"


def test_a_second_registration_of_a_pending_address_never_sets_its_password(app, accounts, client):
    """The owner signs up, an attacker signs up with the same address before the owner clicked: the
    owner's next click must not activate the attacker's password."""
    address = unique_email()
    body = {"email": address, "password": OWNER_PASSWORD, "confirmed_password": OWNER_PASSWORD}
    first = client.post("/api/register/", json=body)
    second = client.post("/api/register/", json={
        **body, "password": ATTACKER_PASSWORD, "confirmed_password": ATTACKER_PASSWORD})
    assert (first.status_code, first.json) == (second.status_code, second.json) == (201, first.json)

    first_link = accounts.link(address, "activate.html", 1)
    # The second registration voided the first link and mailed a link to choose the password.
    assert client.get("/api/activate/{}/{}/".format(*first_link)).status_code == 400
    assert accounts.login(address, ATTACKER_PASSWORD).status_code == 401
    assert follow_latest_mail(accounts, address, 2, OWNER_PASSWORD).status_code == 200
    assert accounts.login(address, ATTACKER_PASSWORD).status_code == 401
    assert accounts.login(address, OWNER_PASSWORD).status_code == 200


def test_an_attacker_who_signed_up_first_cannot_have_the_owner_activate_his_password(accounts, client):
    address = accounts.register(password=ATTACKER_PASSWORD)  # the attacker, before the owner
    accounts.register(address, OWNER_PASSWORD)  # the owner signs up, gets a mail
    # The attacker asks for another mail, so the owner's newest mail is the one he caused.
    assert client.post("/api/activation/resend/", json={"email": address}).status_code == 200
    assert follow_latest_mail(accounts, address, 3, OWNER_PASSWORD).status_code == 200
    assert accounts.login(address, ATTACKER_PASSWORD).status_code == 401
    assert accounts.login(address, OWNER_PASSWORD).status_code == 200


def test_duplicate_registration_of_an_active_address_looks_the_same_and_changes_nothing(accounts, client, inbox):
    address = accounts.active_user()
    fresh_address = unique_email()
    other_password = "Totally-Different-42"
    new = client.post("/api/register/", json={
        "email": fresh_address, "password": other_password, "confirmed_password": other_password})
    duplicate = client.post("/api/register/", json={
        "email": address, "password": other_password, "confirmed_password": other_password})
    assert new.status_code == duplicate.status_code == 201
    assert new.json.keys() == duplicate.json.keys() and new.json["user"].keys() == duplicate.json["user"].keys()
    assert duplicate.json["user"]["email"] == address

    notice = inbox.wait_for(address, 2)[1]
    assert "already has an active account" in mail_text(notice) and "activate.html" not in mail_text(notice)
    assert "already has an active account" in mail_html(notice)
    assert accounts.login(address, other_password).status_code == 401
    assert accounts.login(address).status_code == 200


VALID = {"email": "someone@example.com", "password": STRONG_PASSWORD, "confirmed_password": STRONG_PASSWORD}


@pytest.mark.parametrize("body, field", [
    ({}, "email"),
    ({"password": STRONG_PASSWORD, "confirmed_password": STRONG_PASSWORD}, "email"),
    ({"email": "a@example.com"}, "password"),
    ({**VALID, "confirmed_password": None}, "confirmed_password"),
    ({**VALID, "email": 42}, "email"),
    ({**VALID, "email": ["a@example.com"]}, "email"),
    ({**VALID, "password": {"$ne": ""}}, "password"),
    ({**VALID, "email": "not-an-email"}, "email"),
    ({**VALID, "email": "a@b"}, "email"),
    ({**VALID, "email": "jürgen@example.com"}, "email"),
    ({**VALID, "email": "jurgen@exämple.com"}, "email"),
    ({**VALID, "email": "' OR '1'='1"}, "email"),
    ({**VALID, "email": "x@example.com'; DROP TABLE users;--"}, "email"),
    ({**VALID, "email": "a" * 250 + "@example.com"}, "email"),
    ({**VALID, "email": "a\x00b@example.com"}, "email"),
    ({**VALID, "email": '"john doe"@example.com'}, "email"),
    ({**VALID, "email": '"a@b"@example.com'}, "email"),
    ({**VALID, "email": "a@[127.0.0.1]"}, "email"),
    ({**VALID, "email": "a@[IPv6:::1]"}, "email"),
    ({**VALID, "email": "a@127.0.0.1"}, "email"),
    ({**VALID, "password": "Corr3ct-Horse\x00!", "confirmed_password": "Corr3ct-Horse\x00!"}, "password"),
    ({**VALID, "password": "Corr3ct-\x1bHorse!", "confirmed_password": "Corr3ct-\x1bHorse!"}, "password"),
    ({**VALID, "privacy_policy": "on\x00"}, "privacy_policy"),
    ({**VALID, "password": "e\u0301" * 4, "confirmed_password": "e\u0301" * 4}, "password"),
    ({**VALID, "password": "Sh0rt!", "confirmed_password": "Sh0rt!"}, "password"),
    ({**VALID, "password": "1234567890123", "confirmed_password": "1234567890123"}, "password"),
    ({**VALID, "password": "password123", "confirmed_password": "password123"}, "password"),
    ({**VALID, "password": "aaaaaaaaaaaa", "confirmed_password": "aaaaaaaaaaaa"}, "password"),
    ({**VALID, "password": "someone@example.com", "confirmed_password": "someone@example.com"}, "password"),
    ({**VALID, "password": "x" * 100 + "someone1", "confirmed_password": "x" * 100 + "someone1"}, "password"),
    ({**VALID, "password": "Ab1!" * 40, "confirmed_password": "Ab1!" * 40}, "password"),
    ({**VALID, "confirmed_password": STRONG_PASSWORD + "x"}, "confirmed_password"),
    ([VALID], "detail"),
    ("just a string", "detail"),
])
def test_bad_registrations_get_field_errors(app, client, body, field):
    response = client.post("/api/register/", json=body)
    assert response.status_code == 400, response.json
    assert field in response.json and response.json[field]
    with app.app_context():
        assert db.session.scalar(select(User.id)) is None


def test_unicode_passwords_are_fine(accounts):
    address = accounts.active_user(password="Ünïcødé-пароль-密码")
    assert accounts.login(address, "Ünïcødé-пароль-密码").status_code == 200


def test_quotes_in_a_valid_address_are_stored_as_they_are(app, accounts):
    address = f"o'brien-{unique_email()}"
    accounts.active_user(address)
    assert user_row(app, address).email == address


@pytest.mark.parametrize("data", ['{"email": "a@example.com", ', "\xff\xfe", "{'email': 1}", "NaN]"])
def test_malformed_json_is_a_400(client, data):
    response = client.post("/api/register/", data=data, content_type="application/json")
    assert response.status_code == 400 and response.json == {"detail": "Invalid JSON body."}


@pytest.mark.parametrize("data, content_type", [
    ("", "application/json"),  # no body at all: every field is missing
    ({"email": "a@example.com"}, None),  # a form post is not JSON
])
def test_bodies_without_json_miss_every_field(client, data, content_type):
    response = client.post("/api/register/", data=data, content_type=content_type)
    assert response.status_code == 400 and set(response.json) == {"email", "password", "confirmed_password"}


def test_a_1_mb_body_is_a_413(client):
    response = client.post("/api/register/", json={**VALID, "privacy_policy": "x" * (1024 * 1024)})
    assert response.status_code == 413 and response.json == {"detail": "Request body too large."}


def test_signup_survives_a_dead_mail_server_and_the_link_can_be_requested_again(
        app, make_app, make_settings, accounts, caplog):
    no_mail = make_app(make_settings(SMTP_PORT=str(free_port()))).test_client()
    address = unique_email()
    with caplog.at_level(logging.ERROR, logger="services.auth.mail"):
        accounts.register(address, client=no_mail)
        deadline = time.monotonic() + 10
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.05)
    assert caplog.records and caplog.records[0].fields["smtp_failed"]
    assert user_row(app, address) is not None

    response = accounts.client.post("/api/activation/resend/", json={"email": address})
    assert response.status_code == 200
    assert follow_latest_mail(accounts, address, 1, OWNER_PASSWORD).status_code == 200
    assert accounts.login(address, OWNER_PASSWORD).status_code == 200


def test_resend_answers_the_same_for_unknown_active_and_inactive_addresses(accounts, client, inbox):
    active, inactive, unknown = accounts.active_user(), accounts.register(), unique_email()
    answers = [client.post("/api/activation/resend/", json={"email": address})
               for address in (active, inactive, unknown)]
    assert {(answer.status_code, answer.json["detail"]) for answer in answers} == {(200, answers[0].json["detail"])}
    inbox.wait_for(inactive, 2)
    time.sleep(0.5)
    assert len(inbox.to(active)) == 1 and inbox.to(unknown) == []


def test_resend_rejects_bad_addresses(client):
    response = client.post("/api/activation/resend/", json={"email": "nope"})
    assert response.status_code == 400 and response.json == {"email": ["Enter a valid email address."]}
