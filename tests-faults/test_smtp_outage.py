"""SMTP down during registration: the account is kept, and the mail can be re-requested once SMTP is back."""
from __future__ import annotations

import time
import uuid
from pathlib import Path

from bench.harness import PASSWORD, ApiSession, mail_link


def mails_to(mail_dir: Path, address: str) -> int:
    return sum(address in path.read_text(errors="replace") for path in mail_dir.glob("*.eml"))


def test_registration_while_smtp_is_down_keeps_the_account(stack):
    mail_dir = Path(stack.env["MAIL_DIR"])
    address = f"smtp-outage-{uuid.uuid4().hex[:8]}@example.com"
    client = ApiSession(stack.api_url)
    stack.stop("maildev")
    try:
        started = time.monotonic()
        response = client.post("register/", json={"email": address, "password": PASSWORD,
                                                  "confirmed_password": PASSWORD})
        answer_seconds = time.monotonic() - started
        assert response.status_code == 201, response.text
        assert answer_seconds < 5, f"a dead SMTP server held the sign-up for {answer_seconds:.1f} s"
        time.sleep(2)  # the background send has failed by now
        assert mails_to(mail_dir, address) == 0
        stored = stack.psql(stack.env["AUTH_DATABASE_URL"],
                            f"SELECT is_active FROM users WHERE email = '{address}'")
        assert stored.strip() == "f", "the account of a sign-up whose mail failed was not kept (inactive)"
        refused = client.post("login/", json={"email": address, "password": PASSWORD})
        assert refused.status_code in (400, 401), refused.text
    finally:
        stack.start("maildev")

    # The resend mails the "finish signing up" link: the mailbox owner chooses the password there
    # (docs/security.md, the re-registration rule), which activates the account.
    resend = client.post("activation/resend/", json={"email": address})
    assert resend.status_code == 200, resend.text
    uid, token = mail_link(mail_dir, address, "confirm_password.html", timeout=30)
    chosen = "Chosen-After-The-Outage-9"
    confirmed = client.post(f"password_confirm/{uid}/{token}/", json={
        "new_password": chosen, "confirm_password": chosen})
    assert confirmed.status_code == 200, confirmed.text
    login = client.post("login/", json={"email": address, "password": chosen})
    assert login.status_code == 200, login.text
