"""A newcomer's first minute against a running stack, through the gateway only: the web app loads, a new
account registers, the mailed activation link works, the user logs in and sees the (empty) library.

    .venv/bin/python scripts/smoke.py [--gateway http://127.0.0.1:8000] [--mail-dir var/mail]

Used by `make test-fresh` inside a brand-new Debian root; exits non-zero with the step that failed.
"""
from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import PASSWORD, ApiSession, mail_link  # noqa: E402


def check(step: str, response, status: int = 200) -> None:
    if response.status_code != status:
        sys.exit(f"{step}: {response.request.method} {response.url} answered {response.status_code}, "
                 f"expected {status}: {response.text[:300]}")
    print(f"ok  {step}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--mail-dir", type=Path, default=ROOT / "var" / "mail")
    options = parser.parse_args()
    session = ApiSession(f"{options.gateway}/api/")

    page = session.get(f"{options.gateway}/")
    check("the web app", page)
    if "<html" not in page.text.lower():
        sys.exit("the web app: / is not an HTML page")
    asset = next((line.split('"')[1] for line in page.text.split() if '/assets/' in line and '"' in line), None)
    if asset:
        check("a web app asset", session.get(options.gateway + asset))

    address = f"newcomer-{uuid.uuid4().hex[:8]}@example.com"
    check("register", session.post("register/", json={
        "email": address, "password": PASSWORD, "confirmed_password": PASSWORD, "privacy_policy": "on"}), 201)
    uid, token = mail_link(options.mail_dir, address, "activate.html", timeout=60)
    print("ok  the activation mail arrived")
    check("activate with the mailed link", session.get(f"activate/{uid}/{token}/"))
    check("login", session.post("login/", json={"email": address, "password": PASSWORD}))
    library = session.get("video/")
    check("the library, logged in", library)
    check("the library refuses a stranger", ApiSession(f"{options.gateway}/api/").get("video/"), 401)
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
