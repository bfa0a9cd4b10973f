"""The admin site and the mail inbox in a real browser against the test stack.

An admin opens /admin/, is sent to our login page and back, finds a user's video and renames it; our
web app shows admins the Admin link. The inbox (maildev) shows a new account's activation mail.
"""
from __future__ import annotations

import re

import videoflix_e2e as e2e  # tests-e2e/conftest.py, loaded by this directory's conftest
from playwright.sync_api import Page, expect


def uploaded_video(title: str) -> int:
    """A user's upload through the API (the transcoder's verdict does not matter to the admin site)."""
    client = e2e.ApiClient(f"{e2e.GATEWAY}/api/", e2e.new_source_address())
    address = e2e.register_and_activate(client, e2e.Mailbox(e2e.Path(e2e.STACK_ENV["MAIL_DIR"])))
    e2e.login(client, address)
    response = client.post("video/upload/", data={"title": title, "description": "For the admin.", "category": "Misc"},
                           files={"file": ("clip.mp4", b"not really a video " * 10)})
    client.close()
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_admin_logs_in_and_renames_a_video(page: Page, shoot):
    video_id = uploaded_video("Title before the admin")
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/pages/auth/login\.html\?next="))
    page.get_by_label("Email address", exact=True).fill(e2e.STACK_ENV["ADMIN_EMAIL"])
    page.get_by_label("Password", exact=True).fill(e2e.STACK_ENV["ADMIN_PASSWORD"])
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    shoot(page, "20-admin-index")

    page.get_by_role("link", name="Videos", exact=True).first.click()
    expect(page).to_have_url(re.compile(r"/admin/videos/"))
    row = page.locator("tr", has_text="Title before the admin")
    expect(row).to_be_visible()
    shoot(page, "21-admin-videos")
    page.goto(f"/admin/videos/edit/?id={video_id}")
    page.locator("input#title").fill("Title the admin chose")
    shoot(page, "22-admin-edit-video")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page).to_have_url(re.compile(r"/admin/videos/"))
    expect(page.locator("tr", has_text="Title the admin chose")).to_be_visible()
    detail = page.evaluate("id => fetch(`/api/video/${id}/`).then(response => response.json())", video_id)
    assert detail["title"] == "Title the admin chose"

    page.goto("/")
    admin_link = page.locator(".site-header").get_by_role("link", name="Admin")
    expect(admin_link).to_be_visible()
    shoot(page, "23-library-admin-link")


def test_a_user_sees_no_admin_link(logged_in_page: Page):
    logged_in_page.goto("/")
    expect(logged_in_page.locator(".site-header").get_by_role("link", name="Library")).to_be_visible()
    expect(logged_in_page.locator(".site-header").get_by_role("link", name="Admin")).to_be_hidden()


def test_the_inbox_shows_the_activation_mail(page: Page, shoot, new_email):
    client = e2e.ApiClient(f"{e2e.GATEWAY}/api/", e2e.new_source_address())
    response = client.post("register/", json={"email": new_email, "password": e2e.STRONG_PASSWORD,
                                              "confirmed_password": e2e.STRONG_PASSWORD, "privacy_policy": "on"})
    client.close()
    assert response.status_code == 201
    page.goto(f"http://127.0.0.1:{e2e.STACK_ENV['INBOX_PORT']}/")
    message = page.get_by_text(new_email).first
    expect(message).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Videoflix: Activate your account").first).to_be_visible()
    message.click()
    # The opened mail: its HTML part in maildev's frame, with the activation link.
    link = page.frame_locator("iframe").first.locator("a[href*='/pages/auth/activate.html?uid=']").first
    expect(link).to_be_visible(timeout=30_000)
    shoot(page, "24-inbox-activation-mail")
