"""Accounts, the one-time links mailed to them, and the refresh tokens handed out at login."""
from __future__ import annotations

import secrets
from datetime import datetime, timezone

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, String, false, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ACTIVATION = "activation"
PASSWORD_RESET = "password_reset"
# Random ids rather than a sequence: an id in the register answer must not tell an earlier account
# from a new one, and ids must not reveal how many accounts exist. Below 2**31: fits any INTEGER column.
MAX_USER_ID = 2**31 - 1


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def random_user_id() -> int:
    return secrets.randbelow(MAX_USER_ID) + 1


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False, default=random_user_id)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # always stored lower-case
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    def __repr__(self) -> str:
        return f"<User {self.id}>"


class LinkToken(db.Model):
    """A single-use activation or password-reset link; only the SHA-256 of the token is stored."""

    __tablename__ = "link_tokens"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RefreshToken(db.Model):
    """Every refresh token issued, by jti, so logout and password resets can revoke it.

    A login starts a session (`family`, also the `sid` claim of its access tokens); every refresh
    marks the presented token used and issues the next one of the same family. A used token that comes
    back was copied: every session of the user is revoked.
    """

    __tablename__ = "refresh_tokens"

    jti: Mapped[str] = mapped_column(String(36), primary_key=True)
    family: Mapped[str] = mapped_column(String(36), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def user_by_email(email: str) -> User | None:
    return db.session.scalar(db.select(User).where(User.email == email))
