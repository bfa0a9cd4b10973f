"""`flask --app services.auth.app create-admin EMAIL --password PASSWORD` (or the password in ADMIN_PASSWORD)."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext
from marshmallow import ValidationError

from .credentials import hash_password, password_problems, verify_password
from .models import User, db, random_user_id, user_by_email
from .schemas import EmailSchema
from .tokens import revoke_refresh_tokens


@click.command("create-admin")
@click.argument("email")
# The environment keeps the password off the command line (and out of `ps`): `make up` passes it so.
@click.option("--password", envvar="ADMIN_PASSWORD", prompt=True, hide_input=True, confirmation_prompt=True)
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


def register_commands(app: Flask) -> None:
    app.cli.add_command(create_admin)
