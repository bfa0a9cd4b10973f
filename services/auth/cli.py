"""`flask --app services.auth.app create-admin EMAIL --password PASSWORD` and
`flask --app services.auth.app prune-tokens [--every SECONDS]`."""
from __future__ import annotations

import logging
import time

import click
from flask import Flask
from flask.cli import with_appcontext
from marshmallow import ValidationError
from sqlalchemy import delete
from sqlalchemy.exc import SQLAlchemyError

from .credentials import hash_password, password_problems, verify_password
from .models import LinkToken, RefreshToken, User, db, random_user_id, user_by_email, utcnow
from .schemas import EmailSchema
from .tokens import revoke_refresh_tokens


@click.command("create-admin")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@with_appcontext
def create_admin(email: str, password: str) -> None:
    """Create an active admin, or make the existing account of EMAIL one with this password.

    Idempotent: the compose stack runs it on every start. Sessions are revoked only when the
    password actually changes.
    """
    try:
        email = EmailSchema().load({"email": email})["email"]
    except ValidationError as error:
        raise click.BadParameter(" ".join(error.messages["email"]), param_hint="EMAIL") from None
    problems = password_problems(password, email)
    if problems:
        raise click.BadParameter(" ".join(problems), param_hint="--password")
    user = user_by_email(email)
    if user is None:
        user = User(id=random_user_id(), email=email, password_hash=hash_password(password))
        db.session.add(user)
        action = "created"
    else:
        if not verify_password(user.password_hash, password):
            user.password_hash = hash_password(password)
            revoke_refresh_tokens(user.id)
        action = "updated"
    user.is_active = True
    user.is_admin = True
    db.session.commit()
    click.echo(f"admin {email} {action} (id {user.id})")


log = logging.getLogger(__name__)


def prune_expired_tokens() -> tuple[int, int]:
    """Delete expired link and refresh tokens; returns (links, refresh tokens) deleted.

    Only expired ones: a used or revoked refresh token that has not expired yet must stay, so that
    presenting it again is recognised as reuse.
    """
    now = utcnow()
    links = db.session.execute(delete(LinkToken).where(LinkToken.expires_at <= now)).rowcount
    refresh_tokens = db.session.execute(delete(RefreshToken).where(RefreshToken.expires_at <= now)).rowcount
    db.session.commit()
    return links, refresh_tokens


@click.command("prune-tokens")
@click.option("--every", type=float, default=None, metavar="SECONDS",
              help="Keep running, one pass every SECONDS (default: one pass, then exit).")
@with_appcontext
def prune_tokens(every: float | None) -> None:
    """Delete expired activation/reset link tokens and expired refresh tokens."""
    while True:
        try:
            links, refresh_tokens = prune_expired_tokens()
            log.info("pruned %s link tokens and %s refresh tokens", links, refresh_tokens,
                     extra={"fields": {"link_tokens": links, "refresh_tokens": refresh_tokens}})
            if every is None:
                click.echo(f"pruned {links} link tokens, {refresh_tokens} refresh tokens")
        except SQLAlchemyError as error:
            if every is None:
                raise click.ClickException(str(error))
            log.warning("prune pass failed, retrying in %ss: %s", every, error)
        finally:
            db.session.remove()
        if every is None:
            return
        time.sleep(every)


def register_commands(app: Flask) -> None:
    app.cli.add_command(create_admin)
    app.cli.add_command(prune_tokens)
