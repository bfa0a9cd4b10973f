"""The admin site through the gateway (/admin/, /admin/users/, /admin/videos/) and the mail inbox.

The test stack makes its first admin from ADMIN_EMAIL/ADMIN_PASSWORD as `make up` does; the tests log
in as it. Everyone else gets the login page or a 403 page, never the data.
"""
from __future__ import annotations

import time

import pytest
import requests

from conftest import STRONG_PASSWORD, login, register_and_activate, unique_email

STATUS_TIMEOUT = 120


@pytest.fixture
def admin(make_client, stack_env):
    client = make_client()
    login(client, stack_env["ADMIN_EMAIL"], stack_env["ADMIN_PASSWORD"])
    return client


def upload_junk(client, title: str) -> int:
    """An upload that is no media: the transcoder fails it, with a reason the admin site shows."""
    response = client.post("video/upload/", data={"title": title, "description": "Not a video.", "category": "Junk"},
                           files={"file": ("junk.mp4", b"this is not a video " * 50)})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def wait_for_failed(client, video_id: int) -> dict:
    deadline = time.monotonic() + STATUS_TIMEOUT
    while time.monotonic() < deadline:
        detail = client.get(f"video/{video_id}/").json()
        if detail["status"] == "failed":
            return detail
        time.sleep(0.5)
    raise AssertionError(f"video {video_id} not failed: {detail}")


def test_anonymous_gets_the_login_page(client, gateway_url):
    for path in ("/admin/", "/admin/users/", "/admin/videos/", "/admin/videos/edit/?id=1"):
        response = client.get(f"{gateway_url}{path}", allow_redirects=False)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/pages/auth/login.html?next=/admin/")


def test_a_user_who_is_no_admin_gets_403_and_never_the_data(logged_in_client, gateway_url, make_client, mail):
    other = make_client()
    other_address = register_and_activate(other, mail)
    for path in ("/admin/", f"/admin/users/?search={other_address}", "/admin/videos/", "/admin/static/admin/js/helpers.js"):
        response = logged_in_client.get(f"{gateway_url}{path}")
        assert response.status_code == 403, path
        assert "403 Forbidden" in response.text and other_address not in response.text
    post = logged_in_client.post(f"{gateway_url}/admin/users/action/", data={"action": "grant_admin"})
    assert post.status_code == 403


def test_admin_sees_users_and_videos_and_edits_only_with_csrf(admin, logged_in_client, gateway_url):
    index = admin.get(f"{gateway_url}/admin/")
    assert index.status_code == 200
    assert 'href="/admin/users/"' in index.text and 'href="/admin/videos/"' in index.text
    users = admin.get(f"{gateway_url}/admin/users/", params={"search": logged_in_client.email})
    assert users.status_code == 200 and logged_in_client.email in users.text
    # Flask-Admin's own stylesheet comes through the gateway too.
    assert admin.get(f"{gateway_url}/admin/static/bootstrap/bootstrap4/css/bootstrap.min.css").status_code == 200

    video_id = upload_junk(logged_in_client, "Junk for the admin")
    reason = wait_for_failed(logged_in_client, video_id)["failure_reason"]
    listed = admin.get(f"{gateway_url}/admin/videos/", params={"search": "Junk for the admin"})
    assert listed.status_code == 200
    for text in ("Junk for the admin", "failed", reason, "1000 B"):
        assert text in listed.text, text

    form = {"title": "Renamed by the admin", "description": "Edited.", "category": "Edited"}
    edit_url = f"{gateway_url}/admin/videos/edit/?id={video_id}"
    forged = admin.post(edit_url, data={**form, "csrf_token": "guessed"}, allow_redirects=False)
    assert forged.status_code == 200 and "Failed to save record." in forged.text
    assert logged_in_client.get(f"video/{video_id}/").json()["title"] == "Junk for the admin"
    saved = admin.post(edit_url, data={**form, "csrf_token": admin.cookies["csrftoken"]}, allow_redirects=False)
    assert saved.status_code == 302
    assert logged_in_client.get(f"video/{video_id}/").json()["title"] == "Renamed by the admin"


def test_deleting_a_user_deletes_their_videos(admin, make_client, mail, gateway_url):
    owner = make_client()
    address = register_and_activate(owner, mail)
    user_id = login(owner, address).json()["user"]["id"]
    video_id = upload_junk(owner, "Goes with its owner")
    response = admin.post(f"{gateway_url}/admin/users/delete/",
                          data={"id": str(user_id), "csrf_token": admin.cookies["csrftoken"]}, allow_redirects=False)
    assert response.status_code == 302
    assert admin.get(f"video/{video_id}/").status_code == 404  # an admin sees every video that exists
    assert owner.post("login/", json={"email": address, "password": STRONG_PASSWORD}).status_code in (400, 401)


def test_the_inbox_shows_the_activation_mail(client, stack_env, mail):
    address = unique_email("inbox")
    response = client.post("register/", json={"email": address, "password": STRONG_PASSWORD,
                                              "confirmed_password": STRONG_PASSWORD, "privacy_policy": "on"})
    assert response.status_code == 201
    mail.wait_for(address)  # the file under MAIL_DIR
    inbox = requests.get(f"http://127.0.0.1:{stack_env['INBOX_PORT']}/email", timeout=30).json()
    mine = [message for message in inbox if any(to["address"] == address for to in message["to"])]
    assert [message["subject"] for message in mine] == ["Videoflix: Activate your account"]
    assert "/pages/auth/activate.html?uid=" in mine[0]["text"]
