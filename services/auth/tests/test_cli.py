"""`flask create-admin EMAIL --password PASSWORD`."""
from __future__ import annotations

from datetime import timedelta

from flask_jwt_extended import decode_token
from sqlalchemy import func, select, update

from services.auth.models import PASSWORD_RESET, LinkToken, RefreshToken, User, db, utcnow

from .conftest import STRONG_PASSWORD, unique_email

ADMIN_PASSWORD = "Admin-Passphrase-2024"


def create_admin(app, email_address: str, password: str = ADMIN_PASSWORD):
    return app.test_cli_runner().invoke(args=["create-admin", email_address, "--password", password])


def admin_row(app, email_address: str) -> User:
    with app.app_context():
        return db.session.scalar(select(User).where(User.email == email_address))


def test_create_admin_creates_an_active_admin_who_can_log_in(app, accounts):
    address = unique_email("admin")
    result = create_admin(app, address.upper())
    assert result.exit_code == 0, result.output
    assert f"admin {address} created" in result.output
    user = admin_row(app, address)
    assert user.is_active and user.is_admin
    response = accounts.login(address, ADMIN_PASSWORD)
    assert response.status_code == 200
    with app.app_context():
        assert decode_token(accounts.client.get_cookie("access_token").value)["is_admin"] is True


def test_create_admin_is_idempotent_and_keeps_sessions_while_the_password_is_unchanged(app, accounts, client):
    address = unique_email("admin")
    create_admin(app, address)
    accounts.login(address, ADMIN_PASSWORD)
    result = create_admin(app, address)
    assert result.exit_code == 0 and "updated" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User).where(User.email == address)) == 1
    assert client.post("/api/token/refresh/").status_code == 200

    assert create_admin(app, address, "Changed-Admin-Passphrase").exit_code == 0
    assert client.post("/api/token/refresh/").status_code == 401
    assert accounts.login(address, ADMIN_PASSWORD).status_code == 401
    assert accounts.login(address, "Changed-Admin-Passphrase").status_code == 200


def test_create_admin_promotes_an_existing_inactive_user(app, accounts):
    address = accounts.register()
    assert create_admin(app, address).exit_code == 0
    user = admin_row(app, address)
    assert user.is_active and user.is_admin
    assert accounts.login(address, ADMIN_PASSWORD).status_code == 200
    assert accounts.login(address, STRONG_PASSWORD).status_code == 401


def test_create_admin_rejects_bad_input(app):
    weak = create_admin(app, unique_email(), "12345678")
    assert weak.exit_code == 2 and "entirely numeric" in weak.output
    invalid = create_admin(app, "not-an-address")
    assert invalid.exit_code == 2 and "Enter a valid email address." in invalid.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_prune_tokens_deletes_expired_link_and_refresh_tokens_only(app, accounts):
    address = accounts.active_user()  # one used activation link, still within its lifetime
    assert accounts.login(address).status_code == 200
    accounts.client.post("/api/password_reset/", json={"email": address})
    accounts.inbox.wait_for(address, 2)
    accounts.login(address)  # a second session
    past = utcnow() - timedelta(seconds=1)
    with app.app_context():
        user_id = db.session.scalar(select(User.id).where(User.email == address))
        expired_link = db.session.scalar(select(LinkToken.id).where(LinkToken.purpose == PASSWORD_RESET))
        db.session.execute(update(LinkToken).where(LinkToken.id == expired_link).values(expires_at=past))
        jtis = db.session.scalars(select(RefreshToken.jti).order_by(RefreshToken.created_at)).all()
        db.session.execute(update(RefreshToken).where(RefreshToken.jti == jtis[0]).values(expires_at=past))
        db.session.commit()

    result = app.test_cli_runner().invoke(args=["prune-tokens"])
    assert result.exit_code == 0, result.output
    assert "pruned 1 link tokens, 1 refresh tokens" in result.output
    with app.app_context():
        assert db.session.scalars(select(LinkToken.id).where(LinkToken.user_id == user_id)).all() != []
        assert db.session.get(LinkToken, expired_link) is None
        assert db.session.scalars(select(RefreshToken.jti)).all() == jtis[1:]
    again = app.test_cli_runner().invoke(args=["prune-tokens"])
    assert "pruned 0 link tokens, 0 refresh tokens" in again.output
