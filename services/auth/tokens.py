"""Sessions: login, access-token refresh and logout, all carried in cookies.

A login issues an access and a refresh token (RS256 JWTs) that carry the same random `csrf` claim,
whose value is also set as the readable `csrftoken` cookie for double-submit CSRF protection.
Refresh tokens are recorded by jti so that logout and password resets revoke them for good.
"""
from __future__ import annotations

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
    claims = _claims(user, csrf)
    jti = str(uuid.uuid4())
    refresh_token = create_refresh_token(identity=str(user.id), additional_claims={**claims, "jti": jti})
    db.session.add(RefreshToken(
        jti=jti, user_id=user.id, expires_at=utcnow() + current_app.config["JWT_REFRESH_TOKEN_EXPIRES"],
    ))
    db.session.commit()
    access_token = create_access_token(identity=str(user.id), additional_claims=claims)

    @after_this_request
    def set_cookies(response: Response) -> Response:
        refresh_seconds = _seconds("JWT_REFRESH_TOKEN_EXPIRES")
        set_access_cookies(response, access_token, max_age=_seconds("JWT_ACCESS_TOKEN_EXPIRES"))
        set_refresh_cookies(response, refresh_token, max_age=refresh_seconds)
        response.set_cookie(CSRF_COOKIE, csrf, max_age=refresh_seconds, path="/",
                            secure=current_app.config["JWT_COOKIE_SECURE"], httponly=False, samesite="Lax")
        return response

    return {"detail": "Login successful", "user": {"id": user.id, "username": user.email, "is_admin": user.is_admin}}


@blp.post("/token/refresh/")
@blp.response(200, DetailSchema)
@blp.alt_response(400, schema=ApiErrorSchema, description="No refresh cookie.")
@blp.alt_response(401, schema=ApiErrorSchema, description="Refresh token invalid, expired or revoked.")
def refresh():
    """Set a new `access_token` cookie from the `refresh_token` cookie (no CSRF header needed)."""
    claims = _verified_refresh_claims()
    user = db.session.get(User, int(claims["sub"]))
    access_token = create_access_token(identity=claims["sub"], additional_claims=_claims(user, claims["csrf"]))

    @after_this_request
    def set_cookie(response: Response) -> Response:
        set_access_cookies(response, access_token, max_age=_seconds("JWT_ACCESS_TOKEN_EXPIRES"))
        return response

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
    db.session.execute(update(RefreshToken).where(RefreshToken.jti == claims["jti"]).values(revoked_at=utcnow()))
    db.session.commit()

    @after_this_request
    def delete_cookies(response: Response) -> Response:
        unset_jwt_cookies(response)
        response.delete_cookie(CSRF_COOKIE, path="/", secure=current_app.config["JWT_COOKIE_SECURE"],
                               samesite="Lax")
        return response

    return {"detail": LOGOUT_DETAIL}


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


def _claims(user: User, csrf: str) -> dict:
    return {"csrf": csrf, "email": user.email, "is_admin": user.is_admin}


def _seconds(lifetime_setting: str) -> int:
    """Cookies live exactly as long as the token they hold."""
    return int(current_app.config[lifetime_setting].total_seconds())


def _verified_refresh_claims() -> dict:
    if not request.cookies.get(current_app.config["JWT_REFRESH_COOKIE_NAME"]):
        raise ApiError(400, "Refresh token missing.")
    verify_jwt_in_request(refresh=True)
    return get_jwt()
