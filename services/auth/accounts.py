"""Sign up and account activation."""
from __future__ import annotations

from flask import current_app
from videoflix_shared.blueprint import Blueprint
from sqlalchemy.exc import IntegrityError
from videoflix_shared.errors import ApiError

from . import links, mail
from .credentials import hash_password
from .models import ACTIVATION, User, db, random_user_id, user_by_email
from .schemas import (
    ApiErrorSchema, DetailSchema, EmailSchema, MessageSchema, RegisteredSchema, RegisterSchema,
)

blp = Blueprint("accounts", __name__, url_prefix="/api", description="Sign up and account activation.")

RESEND_DETAIL = "If this address has an account that is not activated yet, a new activation email has been sent."


@blp.post("/register/")
@blp.arguments(RegisterSchema, error_status_code=400)
@blp.response(201, RegisteredSchema)
@blp.alt_response(400, schema=ApiErrorSchema, description="Invalid email, weak or mismatched password, bad body.")
def register(data):
    """Create an inactive account and mail it an activation link.

    An address that already has an account gets the same answer, so nothing reveals that it exists:
    a still-inactive account is mailed a fresh activation link, an active one a notice that someone
    tried to sign up again. An activation link sets the password of the registration that asked for it.
    """
    password_hash = hash_password(data["password"])
    user = user_by_email(data["email"]) or _create_inactive_user(data["email"], password_hash)
    if user.is_active:
        mail.send(user.email, "Someone tried to sign up with your address", "already_registered")
    else:
        send_activation(user, password_hash)
    return {"user": {"id": user.id, "email": user.email}}


@blp.post("/activation/resend/")
@blp.arguments(EmailSchema, error_status_code=400)
@blp.response(200, DetailSchema, description="Always the same answer, whether or not the address exists.")
@blp.alt_response(400, schema=ApiErrorSchema, description="Invalid email or bad body.")
def resend_activation(data):
    """Mail a new activation link to an account that is not activated yet (e.g. the first mail was lost)."""
    user = user_by_email(data["email"])
    if user and not user.is_active:
        send_activation(user)
    return {"detail": RESEND_DETAIL}


@blp.get("/activate/<uidb64>/<token>/")
@blp.response(200, MessageSchema)
@blp.alt_response(400, schema=ApiErrorSchema, description="Invalid, used or expired link.")
def activate(uidb64, token):
    """Activate the account of a mailed link; the link works once."""
    link = links.find(uidb64, token, ACTIVATION)
    user = db.session.get(User, link.user_id)
    if user.is_active:
        raise ApiError(400, "This account is already activated.")
    links.redeem(link)
    if link.password_hash:
        user.password_hash = link.password_hash
    user.is_active = True
    db.session.commit()
    return {"message": "Account successfully activated."}


def send_activation(user: User, password_hash: str | None = None) -> None:
    link = links.issue(user, ACTIVATION, password_hash)
    db.session.commit()
    mail.send(user.email, "Activate your account", "activation", link=link,
              expires_in=mail.describe(current_app.config["ACTIVATION_LINK_LIFETIME"]))


def _create_inactive_user(email: str, password_hash: str) -> User:
    """Commit a new account, or return the one a concurrent registration of the address committed."""
    for _ in range(3):  # a random id can collide, with odds of one in millions
        user = User(id=random_user_id(), email=email, password_hash=password_hash, is_active=False)
        db.session.add(user)
        try:
            db.session.commit()
            return user
        except IntegrityError:
            db.session.rollback()
            existing = user_by_email(email)
            if existing:
                return existing
    raise RuntimeError("could not pick a free user id")
