"""JWT verification (RS256, public key) and double-submit CSRF, the same in every service."""
from __future__ import annotations

import hmac
from datetime import timedelta

from flask import Flask, jsonify, request
from flask_jwt_extended import JWTManager, get_jwt, get_jwt_identity
from jwt.exceptions import PyJWTError

from .config import Settings
from .errors import ApiError
from .keys import load_private_key, load_public_key

CSRF_COOKIE = "csrftoken"
CSRF_HEADER = "X-CSRFToken"


def configure_jwt(app: Flask, settings: Settings, signing: bool = False) -> JWTManager:
    """Verify tokens with the public key; only auth (signing=True) also loads the private key."""
    app.config.update(
        JWT_ALGORITHM="RS256",
        JWT_DECODE_ALGORITHMS=["RS256"],
        JWT_PUBLIC_KEY=load_public_key(settings.public_key_file),
        JWT_TOKEN_LOCATION=["cookies"],
        JWT_ACCESS_COOKIE_NAME="access_token",
        JWT_REFRESH_COOKIE_NAME="refresh_token",
        JWT_ACCESS_COOKIE_PATH="/",
        JWT_REFRESH_COOKIE_PATH="/",
        # CSRF is checked by require_csrf(): the frontend sends X-CSRFToken matching a readable
        # `csrftoken` cookie, a scheme flask-jwt-extended's own CSRF cookies cannot express.
        JWT_COOKIE_CSRF_PROTECT=False,
        JWT_COOKIE_SAMESITE="Lax",
        JWT_COOKIE_SECURE=settings.cookie_secure,
        JWT_SESSION_COOKIE=False,
        JWT_ACCESS_TOKEN_EXPIRES=timedelta(minutes=settings.access_token_minutes),
        JWT_REFRESH_TOKEN_EXPIRES=timedelta(days=settings.refresh_token_days),
    )
    if signing:
        app.config["JWT_PRIVATE_KEY"] = load_private_key(settings.private_key_file)
    jwt = JWTManager(app)

    def unauthorized(message: str):
        return jsonify(detail=message), 401

    jwt.unauthorized_loader(lambda reason: unauthorized("Authentication credentials were not provided."))
    jwt.invalid_token_loader(lambda reason: unauthorized("Token is invalid."))
    jwt.expired_token_loader(lambda header, payload: unauthorized("Token has expired."))
    jwt.revoked_token_loader(lambda header, payload: unauthorized("Token has been revoked."))
    jwt.token_verification_failed_loader(lambda header, payload: unauthorized("Token is invalid."))
    app.register_error_handler(PyJWTError, lambda error: unauthorized("Token is invalid."))
    return jwt


def require_csrf(claims: dict | None = None) -> None:
    """Reject a cookie-authenticated state change unless header, cookie and token agree.

    Call after the token was verified; `claims` defaults to the verified token's claims.
    """
    claims = get_jwt() if claims is None else claims
    # As bytes: compare_digest refuses str with non-ASCII characters, and a header can hold any byte.
    header = _bytes(request.headers.get(CSRF_HEADER, ""))
    cookie = _bytes(request.cookies.get(CSRF_COOKIE, ""))
    expected = _bytes(str(claims.get("csrf", "")))
    if not (header and expected and hmac.compare_digest(header, cookie) and hmac.compare_digest(header, expected)):
        raise ApiError(403, "CSRF token missing or incorrect.")


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def current_user_id() -> int:
    return int(get_jwt_identity())


def current_user_is_admin() -> bool:
    return bool(get_jwt().get("is_admin", False))
