"""Single-use links mailed to users: `?uid=<urlsafe base64 of the user id>&token=<random>`.

Only the SHA-256 of a token is stored (a token has 256 random bits, so a fast hash is enough), with its
purpose, expiry and the time it was used. Using a link voids every other open link of that account.
"""
from __future__ import annotations

import base64
import hashlib
import secrets

from flask import current_app
from sqlalchemy import select, update
from videoflix_shared.errors import ApiError

from .models import ACTIVATION, PASSWORD_RESET, LinkToken, User, db, utcnow

LIFETIME_SETTING = {ACTIVATION: "ACTIVATION_LINK_LIFETIME", PASSWORD_RESET: "RESET_LINK_LIFETIME"}
PAGES = {ACTIVATION: "activate.html", PASSWORD_RESET: "confirm_password.html"}


def encode_uid(user_id: int) -> str:
    return base64.urlsafe_b64encode(str(user_id).encode()).decode().rstrip("=")


def decode_uid(uidb64: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(uidb64 + "=" * (-len(uidb64) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and len(text) <= 10 else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(user: User, purpose: str) -> str:
    """Add a new link token for `user` to the session (the caller commits) and return its URL."""
    token = secrets.token_urlsafe(32)
    db.session.add(LinkToken(
        user_id=user.id, purpose=purpose, token_hash=_digest(token),
        expires_at=utcnow() + current_app.config[LIFETIME_SETTING[purpose]],
    ))
    base = current_app.config["FRONTEND_BASE_URL"]
    return f"{base}/pages/auth/{PAGES[purpose]}?uid={encode_uid(user.id)}&token={token}"


def find(uidb64: str, token: str, purpose: str) -> LinkToken:
    """The open link token for these URL parts, or a 400 saying why the link cannot be used."""
    user_id = decode_uid(uidb64)
    link = user_id and db.session.scalar(select(LinkToken).where(
        LinkToken.token_hash == _digest(token), LinkToken.purpose == purpose, LinkToken.user_id == user_id,
    ))
    if not link:
        raise ApiError(400, "This link is invalid.")
    if link.used_at is not None:
        raise ApiError(400, "This link has already been used.")
    if link.expires_at <= utcnow():
        raise ApiError(400, "This link has expired. Please request a new one.")
    return link


def redeem(link: LinkToken) -> None:
    """Mark the link used (exactly once, even under concurrent clicks) and void the account's other links."""
    now = utcnow()
    claimed = db.session.execute(
        update(LinkToken).where(LinkToken.id == link.id, LinkToken.used_at.is_(None)).values(used_at=now)
    ).rowcount
    if not claimed:
        db.session.rollback()
        raise ApiError(400, "This link has already been used.")
    void_open(link.user_id, now)


def void_open(user_or_id: User | int, now=None) -> None:
    """Mark every open link of an account used (the caller commits)."""
    user_id = user_or_id.id if isinstance(user_or_id, User) else user_or_id
    db.session.execute(update(LinkToken).where(
        LinkToken.user_id == user_id, LinkToken.used_at.is_(None),
    ).values(used_at=now or utcnow()))
