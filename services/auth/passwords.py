"""Forgotten passwords: a mailed single-use link to choose a new one."""
from __future__ import annotations

from flask import current_app
from videoflix_shared.blueprint import Blueprint
from videoflix_shared.errors import ApiError

from . import links, mail
from .credentials import hash_password, password_problems
from .models import PASSWORD_RESET, User, db, user_by_email
from .schemas import ApiErrorSchema, DetailSchema, EmailSchema, NewPasswordSchema
from .tokens import revoke_refresh_tokens

blp = Blueprint("passwords", __name__, url_prefix="/api", description="Password reset by mailed link.")


@blp.post("/password_reset/")
@blp.arguments(EmailSchema, error_status_code=400)
@blp.response(200, DetailSchema, description="Always the same answer, whether or not the address exists.")
@blp.alt_response(400, schema=ApiErrorSchema, description="Invalid email or bad body.")
def request_reset(data):
    """Mail a password-reset link to the address if it has an account.

    The look-up, the link and the mail happen in the background, so the answer takes as long whether
    or not the address has an account.
    """
    mail.in_background(_send_reset_link, data["email"])
    return {"detail": "An email has been sent to reset your password."}


def _send_reset_link(email: str) -> None:
    user = user_by_email(email)
    if user:
        link = links.issue(user, PASSWORD_RESET)
        db.session.commit()
        mail.send(email, "Reset your password", "password_reset", link=link,
                  expires_in=mail.describe(current_app.config["RESET_LINK_LIFETIME"]))


@blp.post("/password_confirm/<uidb64>/<token>/")
@blp.arguments(NewPasswordSchema, error_status_code=400)
@blp.response(200, DetailSchema)
@blp.alt_response(400, schema=ApiErrorSchema, description="Invalid, used or expired link; weak or mismatched password.")
def confirm_reset(data, uidb64, token):
    """Set the new password (the link works once) and sign the user out everywhere.

    The link proves the mailbox, so it also activates an account that was never activated.
    """
    link = links.find(uidb64, token, PASSWORD_RESET)
    user = db.session.get(User, link.user_id)
    problems = password_problems(data["new_password"], user.email)
    if problems:
        raise ApiError(400, fields={"new_password": problems})
    password_hash = hash_password(data["new_password"])
    links.redeem(link)
    user.password_hash = password_hash
    user.is_active = True
    revoke_refresh_tokens(user.id)
    db.session.commit()
    return {"detail": "Your Password has been successfully reset."}
