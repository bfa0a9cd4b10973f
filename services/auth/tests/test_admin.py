"""The admin site's accounts (/admin/users/) and its index (/admin/): admins only (token claim and
database), CSRF on every form, the account actions, and deleting an account with its videos (the
catalog's internal API, here a recording HTTP server on its port)."""
from __future__ import annotations

import dataclasses
import http.server
import json
import threading

import pytest
from sqlalchemy import select

from services.auth.models import RefreshToken, User, db

from .conftest import STRONG_PASSWORD, free_port, link_params, mail_text, unique_email


class CatalogDouble(http.server.ThreadingHTTPServer):
    """Answers DELETE /internal/videos/?owner_id=N like the catalog (or 503 when `down`)."""

    def __init__(self):
        self.requests: list[tuple[str, str]] = []
        self.down = False
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_DELETE(self):
                server.requests.append((self.path, self.headers.get("Authorization", "")))
                body = json.dumps({"deleted": 2}).encode()
                self.send_response(503 if server.down else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", free_port()), Handler)


@pytest.fixture(scope="module")
def catalog():
    server = CatalogDouble()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def admin_app(make_app, make_settings, app, catalog):
    """The auth app whose CATALOG_URL is the recording server (tables made by the `app` fixture)."""
    settings = dataclasses.replace(make_settings(), catalog_url=f"http://127.0.0.1:{catalog.server_port}")
    return make_app(settings)


@pytest.fixture
def admin_client(admin_app, catalog):
    catalog.requests.clear()
    catalog.down = False
    return admin_app.test_client()


def add_user(app, address: str | None = None, *, active=True, admin=False) -> User:
    from services.auth.credentials import hash_password

    with app.app_context():
        user = User(email=address or unique_email(), password_hash=hash_password(STRONG_PASSWORD),
                    is_active=active, is_admin=admin)
        db.session.add(user)
        db.session.commit()
        db.session.refresh(user)
        db.session.expunge(user)
        return user


def user(app, user_id: int) -> User | None:
    with app.app_context():
        found = db.session.get(User, user_id)
        if found:
            db.session.expunge(found)
        return found


def log_in(client, user: User):
    response = client.post("/api/login/", json={"email": user.email, "password": STRONG_PASSWORD})
    assert response.status_code == 200, response.json
    return client.get_cookie("csrftoken").value


def act(client, action: str, ids: list[int], csrf: str | None):
    data = {"action": action, "rowid": [str(i) for i in ids], "url": "/admin/users/"}
    if csrf is not None:
        data["csrf_token"] = csrf
    return client.post("/admin/users/action/", data=data)


def test_anonymous_is_sent_to_the_login_page_and_back(admin_client, admin_app):
    add_user(admin_app, "hidden-person@example.com")
    for path in ("/admin/", "/admin/users/"):
        response = admin_client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/pages/auth/login.html?next=%2Fadmin%2F")
        assert b"hidden-person" not in response.data


def test_a_user_who_is_no_admin_gets_403_and_no_data(admin_client, admin_app):
    add_user(admin_app, "hidden-person@example.com")
    log_in(admin_client, add_user(admin_app))
    for path in ("/admin/", "/admin/users/", "/admin/users/?search=hidden"):
        response = admin_client.get(path)
        assert response.status_code == 403, path
        assert b"403 Forbidden" in response.data and b"hidden-person" not in response.data


def test_an_admin_sees_the_index_and_searches_users(admin_client, admin_app):
    add_user(admin_app, "findable-person@example.com", active=False)
    add_user(admin_app, "other-person@example.com")
    log_in(admin_client, add_user(admin_app, admin=True))
    index = admin_client.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/users/"' in index and 'href="/admin/videos/"' in index
    found = admin_client.get("/admin/users/?search=findable").get_data(as_text=True)
    assert "findable-person@example.com" in found and "other-person@example.com" not in found


def test_an_admin_whose_right_was_revoked_is_refused_at_once(admin_client, admin_app):
    """The token still says is_admin until it expires; auth's own check asks the database."""
    admin = add_user(admin_app, admin=True)
    log_in(admin_client, admin)
    assert admin_client.get("/admin/users/").status_code == 200
    with admin_app.app_context():
        db.session.get(User, admin.id).is_admin = False
        db.session.commit()
    assert admin_client.get("/admin/users/").status_code == 403


def test_actions_need_the_csrf_token_of_the_login(admin_client, admin_app):
    target = add_user(admin_app)
    csrf = log_in(admin_client, add_user(admin_app, admin=True))
    for forged in (None, "", "not-the-token"):
        act(admin_client, "deactivate", [target.id], forged)
        assert user(admin_app, target.id).is_active, forged
    act(admin_client, "deactivate", [target.id], csrf)
    assert not user(admin_app, target.id).is_active


def test_deactivate_activate_grant_and_revoke(admin_client, admin_app, accounts):
    target = add_user(admin_app)
    assert accounts.login(target.email).status_code == 200  # a session to end
    csrf = log_in(admin_client, add_user(admin_app, admin=True))

    act(admin_client, "deactivate", [target.id], csrf)
    assert not user(admin_app, target.id).is_active
    with admin_app.app_context():
        sessions = db.session.scalars(select(RefreshToken).where(RefreshToken.user_id == target.id)).all()
        assert sessions and all(token.revoked_at for token in sessions)
    assert accounts.login(target.email).status_code == 401

    act(admin_client, "activate", [target.id], csrf)
    act(admin_client, "grant_admin", [target.id], csrf)
    assert (user(admin_app, target.id).is_active, user(admin_app, target.id).is_admin) == (True, True)
    assert accounts.login(target.email).json["user"]["is_admin"] is True
    act(admin_client, "revoke_admin", [target.id], csrf)
    assert not user(admin_app, target.id).is_admin


def test_an_admin_cannot_lock_themselves_out(admin_client, admin_app):
    admin = add_user(admin_app, admin=True)
    csrf = log_in(admin_client, admin)
    for action in ("deactivate", "revoke_admin"):
        response = act(admin_client, action, [admin.id], csrf)
        assert response.status_code == 302
    admin_client.post("/admin/users/delete/", data={"id": str(admin.id), "csrf_token": csrf})
    kept = user(admin_app, admin.id)
    assert kept and kept.is_active and kept.is_admin
    assert "You cannot" in admin_client.get("/admin/users/").get_data(as_text=True)


def test_resend_activation_mails_a_working_link(admin_client, admin_app, inbox, accounts):
    waiting = add_user(admin_app, active=False)
    csrf = log_in(admin_client, add_user(admin_app, admin=True))
    act(admin_client, "resend_activation", [waiting.id], csrf)
    uid, token = link_params(mail_text(inbox.wait_for(waiting.email)[0]), "activate.html")
    assert accounts.client.get(f"/api/activate/{uid}/{token}/").status_code == 200
    assert user(admin_app, waiting.id).is_active


def test_delete_removes_the_account_after_its_videos(admin_client, admin_app, catalog):
    target = add_user(admin_app)
    csrf = log_in(admin_client, add_user(admin_app, admin=True))
    admin_client.post("/admin/users/delete/", data={"id": str(target.id)})
    assert user(admin_app, target.id) is not None and catalog.requests == []

    response = admin_client.post("/admin/users/delete/", data={"id": str(target.id), "csrf_token": csrf})
    assert response.status_code == 302
    assert user(admin_app, target.id) is None
    token = admin_app.config["SETTINGS"].service_token()
    assert catalog.requests == [(f"/internal/videos/?owner_id={target.id}", f"Bearer {token}")]
    assert "and their 2 video(s)" in admin_client.get("/admin/users/").get_data(as_text=True)


def test_delete_keeps_the_account_when_the_catalog_fails(admin_client, admin_app, catalog):
    target = add_user(admin_app)
    csrf = log_in(admin_client, add_user(admin_app, admin=True))
    catalog.down = True
    admin_client.post("/admin/users/delete/", data={"id": str(target.id), "csrf_token": csrf})
    assert user(admin_app, target.id) is not None
    assert "was not deleted" in admin_client.get("/admin/users/").get_data(as_text=True)
