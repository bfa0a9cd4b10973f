"""Sign up and account activation."""
from __future__ import annotations

from flask import current_app
from videoflix_shared.blueprint import Blueprint
from sqlalchemy.exc import IntegrityError
from videoflix_shared.errors import ApiError

from . import links, mail
from .credentials import hash_password
from .models import ACTIVATION, PASSWORD_RESET, User, db, random_user_id, user_by_email
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
    an active one is mailed a notice that someone tried to sign up again; a still-inactive one is
    handled as `POST /api/activation/resend/` is. The password of a second registration is never
    stored: only the first registration's activation link activates a password typed at sign-up.
    """
    password_hash = hash_password(data["password"])
    user, created = _create_inactive_user(data["email"], password_hash)
    if created:
        send_activation(user)
    elif user.is_active:
        mail.send(user.email, "Someone tried to sign up with your address", "already_registered")
    else:
        send_choose_password(user)
    return {"user": {"id": user.id, "email": user.email}}


@blp.post("/activation/resend/")
@blp.arguments(EmailSchema, error_status_code=400)
@blp.response(200, DetailSchema, description="Always the same answer, whether or not the address exists.")
@blp.alt_response(400, schema=ApiErrorSchema, description="Invalid email or bad body.")
def resend_activation(data):
    """Mail a link to finish the sign-up to an account that is not activated yet (the first mail was lost).

    The mail's link opens the password page: whoever reads the mailbox chooses the password there, and
    that activates the account. Every earlier link of the account stops working. The work happens in
    the background, so the answer takes as long whether or not the address has an account.
    """
    mail.in_background(_resend, data["email"])
    return {"detail": RESEND_DETAIL}


@blp.get("/activate/<uidb64>/<token>/")
@blp.response(200, MessageSchema)
@blp.alt_response(400, schema=ApiErrorSchema, description="Invalid, used or expired link.")
def activate(uidb64, token):
    """Activate the account of a mailed link, with the password chosen at sign-up; the link works once."""
    link = links.find(uidb64, token, ACTIVATION)
    user = db.session.get(User, link.user_id)
    if user.is_active:
        raise ApiError(400, "This account is already activated.")
    links.redeem(link)
    user.is_active = True
    db.session.commit()
    return {"message": "Account successfully activated."}


def send_activation(user: User) -> None:
    link = links.issue(user, ACTIVATION)
    db.session.commit()
    mail.send(user.email, "Activate your account", "activation", link=link,
              expires_in=mail.describe(current_app.config["ACTIVATION_LINK_LIFETIME"]))


def send_choose_password(user: User) -> None:
    """Void the pending account's open links and mail it a link to choose its password.

    Someone signed up (again) with an address that has an account waiting for activation: that may be
    its owner, or someone who wants the owner to activate a password they chose. Neither registration's
    password is activated by a click; the mailbox owner types the password on the link's page.
    """
    links.void_open(user)
    link = links.issue(user, PASSWORD_RESET)
    db.session.commit()
    mail.send(user.email, "Finish signing up", "finish_signup", link=link,
              expires_in=mail.describe(current_app.config["RESET_LINK_LIFETIME"]))


def _resend(email: str) -> None:
    user = user_by_email(email)
    if user and not user.is_active:
        send_choose_password(user)


def _create_inactive_user(email: str, password_hash: str) -> tuple[User, bool]:
    """(account, created): a new committed account, or the existing one of the address."""
    existing = user_by_email(email)
    if existing:
        return existing, False
    for _ in range(3):  # a random id can collide, with odds of one in millions
        user = User(id=random_user_id(), email=email, password_hash=password_hash, is_active=False)
        db.session.add(user)
        try:
            db.session.commit()
            return user, True
        except IntegrityError:  # a concurrent registration of the address committed first
            db.session.rollback()
            existing = user_by_email(email)
            if existing:
                return existing, False
    raise RuntimeError("could not pick a free user id")
