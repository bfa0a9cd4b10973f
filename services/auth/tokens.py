"""Sessions: login, access-token refresh and logout, all carried in cookies.

A login issues an access and a refresh token (RS256 JWTs) that carry the same random `csrf` claim,
whose value is also set as the readable `csrftoken` cookie for double-submit CSRF protection, and the
same `sid` (session id: the refresh token family). Refresh tokens are recorded by jti and rotate on
every use, so logout, password resets and reuse detection revoke them for good; the gateway asks
`/internal/sessions/<sid>` whether an access token's session is still live.
"""
from __future__ import annotations

import logging
import re
import secrets
import uuid

from flask import Response, after_this_request, current_app, request
from flask_jwt_extended import (
    JWTManager, create_access_token, create_refresh_token, get_jwt, set_access_cookies,
    set_refresh_cookies, unset_jwt_cookies, verify_jwt_in_request,
)
from videoflix_shared.blueprint import Blueprint
from sqlalchemy import select, update
from videoflix_shared.errors import ApiError
from videoflix_shared.security import CSRF_COOKIE, require_csrf

from .credentials import hash_password, needs_rehash, verify_password
from .models import RefreshToken, User, db, user_by_email, utcnow
from .schemas import ApiErrorSchema, DetailSchema, LoginResultSchema, LoginSchema

blp = Blueprint("tokens", __name__, url_prefix="/api", description="Login, token refresh and logout.")
internal_blp = Blueprint("sessions", __name__, url_prefix="/internal/sessions",
                         description="Gateway -> auth: is a login session still live?")
log = logging.getLogger(__name__)

# Session ids are UUIDs (older refresh tokens: their jti); anything else is not looked up.
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
LOGOUT_DETAIL = "Logout successful! All tokens will be deleted. Refresh token is now invalid."


@blp.post("/login/")
@blp.arguments(LoginSchema, error_status_code=400)
@blp.response(200, LoginResultSchema)
@blp.alt_response(400, schema=ApiErrorSchema, description="Invalid email or bad body.")
@blp.alt_response(401, schema=ApiErrorSchema, description="Wrong email or password, or account not activated.")
def login(data):
    """Log in: sets the `access_token` and `refresh_token` (HttpOnly) and `csrftoken` (readable) cookies.

    An unknown address and a wrong password get the same answer after the same work (a dummy hash is
    verified when the address is unknown).
    """
    user = user_by_email(data["email"])
    if not verify_password(user.password_hash if user else None, data["password"]):
        raise ApiError(401, "Invalid email or password.")
    if not user.is_active:
        raise ApiError(401, "Please activate your account first: follow the link in the activation email.")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(data["password"])
    csrf = secrets.token_urlsafe(32)
    _issue_session_cookies(user, csrf, session_id=str(uuid.uuid4()))
    db.session.commit()
    return {"detail": "Login successful", "user": {"id": user.id, "username": user.email, "is_admin": user.is_admin}}


@blp.post("/token/refresh/")
@blp.response(200, DetailSchema)
@blp.alt_response(400, schema=ApiErrorSchema, description="No refresh cookie.")
@blp.alt_response(401, schema=ApiErrorSchema, description="Refresh token invalid, expired, revoked or used before.")
def refresh():
    """Set new `access_token` and `refresh_token` cookies from the `refresh_token` cookie (no CSRF header).

    Every refresh token works once: the answer carries the next one. A refresh token presented a second
    time was copied (or stolen), so every session of its user is revoked and the answer is 401.
    """
    claims = _verified_refresh_claims()
    rotated = db.session.execute(update(RefreshToken).where(
        RefreshToken.jti == claims["jti"], RefreshToken.used_at.is_(None), RefreshToken.revoked_at.is_(None),
    ).values(used_at=utcnow())).rowcount
    if not rotated:
        revoke_refresh_tokens(int(claims["sub"]))
        db.session.commit()
        log.warning("refresh token used twice: every session of the user revoked",
                    extra={"fields": {"user": claims["sub"]}})
        raise ApiError(401, "Token has been revoked.")
    user = db.session.get(User, int(claims["sub"]))
    _issue_session_cookies(user, claims["csrf"], session_id=claims.get("sid") or claims["jti"])
    db.session.commit()
    return {"detail": "Token refreshed"}


@blp.post("/logout/")
@blp.response(200, DetailSchema)
@blp.alt_response(400, schema=ApiErrorSchema, description="No refresh cookie.")
@blp.alt_response(401, schema=ApiErrorSchema, description="Refresh token invalid, expired or revoked.")
@blp.alt_response(403, schema=ApiErrorSchema, description="X-CSRFToken header missing or not matching.")
def logout():
    """Revoke the refresh token for good and delete all three cookies. Needs the X-CSRFToken header."""
    claims = _verified_refresh_claims()
    require_csrf(claims)
    revoke_session(claims.get("sid") or claims["jti"])
    db.session.commit()

    @after_this_request
    def delete_cookies(response: Response) -> Response:
        unset_jwt_cookies(response)
        response.delete_cookie(CSRF_COOKIE, path="/", secure=current_app.config["JWT_COOKIE_SECURE"],
                               samesite="Lax")
        return response

    return {"detail": LOGOUT_DETAIL}


@internal_blp.get("/<session_id>")
@internal_blp.response(204, description="The session is live: not logged out, not revoked, its user active.")
@internal_blp.alt_response(404, schema=ApiErrorSchema, description="No such live session.")
def session_status(session_id):
    """The gateway's revocation check for an access token's `sid` (never routed by the gateway).

    No service token: the answer is only whether a random session id, found in a signed token, is
    still live. The gateway caches a live answer for GATEWAY_TOKEN_RECHECK_SECONDS.
    """
    if not SESSION_ID.fullmatch(session_id):  # never a session (and a NUL would fail the query)
        raise ApiError(404, "Session not found.")
    live = db.session.scalar(select(RefreshToken.jti).join(User).where(
        RefreshToken.family == session_id, RefreshToken.revoked_at.is_(None), RefreshToken.used_at.is_(None),
        RefreshToken.expires_at > utcnow(), User.is_active,
    ).limit(1))
    if live is None:
        raise ApiError(404, "Session not found.")
    return None


def revoke_session(session_id: str) -> None:
    """Revoke every refresh token of one login session (the caller commits)."""
    db.session.execute(update(RefreshToken).where(
        RefreshToken.family == session_id, RefreshToken.revoked_at.is_(None),
    ).values(revoked_at=utcnow()))


def revoke_refresh_tokens(user_id: int) -> None:
    """Revoke every refresh token of a user (the caller commits)."""
    db.session.execute(update(RefreshToken).where(
        RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None),
    ).values(revoked_at=utcnow()))


def init_revocation(jwt: JWTManager) -> None:
    """A refresh token counts only while its row is unrevoked and its user active."""

    @jwt.token_in_blocklist_loader
    def is_revoked(header: dict, payload: dict) -> bool:
        if payload.get("type") != "refresh":
            return False
        live = db.session.scalar(select(RefreshToken.jti).join(User).where(
            RefreshToken.jti == payload["jti"], RefreshToken.revoked_at.is_(None), User.is_active,
        ))
        return live is None


def _claims(user: User, csrf: str, session_id: str) -> dict:
    return {"csrf": csrf, "email": user.email, "is_admin": user.is_admin, "sid": session_id}


def _issue_session_cookies(user: User, csrf: str, session_id: str) -> None:
    """Record a new refresh token of the session (the caller commits) and set both token cookies."""
    claims = _claims(user, csrf, session_id)
    jti = str(uuid.uuid4())
    refresh_token = create_refresh_token(identity=str(user.id), additional_claims={**claims, "jti": jti})
    db.session.add(RefreshToken(
        jti=jti, family=session_id, user_id=user.id,
        expires_at=utcnow() + current_app.config["JWT_REFRESH_TOKEN_EXPIRES"],
    ))
    access_token = create_access_token(identity=str(user.id), additional_claims=claims)

    @after_this_request
    def set_cookies(response: Response) -> Response:
        # Only with a successful answer: a commit that failed (PostgreSQL restarting) stored no token, and
        # a client holding one would be taken for a thief at its next refresh (every session revoked).
        if response.status_code >= 400:
            return response
        refresh_seconds = _seconds("JWT_REFRESH_TOKEN_EXPIRES")
        set_access_cookies(response, access_token, max_age=_seconds("JWT_ACCESS_TOKEN_EXPIRES"))
        set_refresh_cookies(response, refresh_token, max_age=refresh_seconds)
        response.set_cookie(CSRF_COOKIE, csrf, max_age=refresh_seconds, path="/",
                            secure=current_app.config["JWT_COOKIE_SECURE"], httponly=False, samesite="Lax")
        return response


def _seconds(lifetime_setting: str) -> int:
    """Cookies live exactly as long as the token they hold."""
    return int(current_app.config[lifetime_setting].total_seconds())


def _verified_refresh_claims() -> dict:
    if not request.cookies.get(current_app.config["JWT_REFRESH_COOKIE_NAME"]):
        raise ApiError(400, "Refresh token missing.")
    verify_jwt_in_request(refresh=True)
    return get_jwt()
