"""The accounts' admin pages (Flask-Admin) at /admin/users/, and the admin site's index at /admin/.

List and search accounts; activate or deactivate, grant or revoke admin, resend the activation mail,
delete. Deleting an account deletes its videos first (the catalog owns them: an internal call with the
service token); when the catalog cannot be reached the account is kept and the admin sees why.
Deactivating an account or revoking its admin right also revokes its sessions (refresh tokens).
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request

from flask import Flask, current_app, flash
from flask_admin.actions import action
from flask_admin.contrib.sqla.filters import BooleanEqualFilter
from flask_jwt_extended import get_jwt
from videoflix_shared.admin import AdminModelView, init_admin

from .accounts import send_activation
from .models import User, db
from .tokens import revoke_refresh_tokens

CATALOG_TIMEOUT_SECONDS = 30


class CatalogUnavailable(Exception):
    pass


def delete_videos_of(user_id: int) -> int:
    """Ask the catalog to delete every video of `user_id`; the number deleted."""
    settings = current_app.config["SETTINGS"]
    request = urllib.request.Request(
        f"{settings.catalog_url}/internal/videos/?owner_id={user_id}", method="DELETE",
        headers={"Authorization": f"Bearer {settings.service_token()}", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=CATALOG_TIMEOUT_SECONDS) as response:
            return int(json.load(response)["deleted"])
    except (OSError, ValueError, KeyError) as error:  # URLError and HTTPError are OSErrors
        raise CatalogUnavailable(f"the catalog could not delete the account's videos ({error})") from error


def still_admin(claims: dict) -> bool:
    """The token says admin; auth owns the accounts, so it also asks the database (a revoked admin
    or a deactivated account loses the admin site at once, not when the token expires)."""
    user = db.session.get(User, int(claims["sub"]))
    return user is not None and user.is_active and user.is_admin


def current_admin_id() -> int:
    return int(get_jwt()["sub"])


class UserAdmin(AdminModelView):
    can_create = False  # accounts sign up themselves; `make admin` / ADMIN_EMAIL make admins
    can_edit = False  # the flags change through the actions below, which also revoke sessions
    column_list = ("id", "email", "is_active", "is_admin", "created_at")
    column_details_list = column_list
    column_labels = {"id": "ID", "is_active": "Active", "is_admin": "Admin", "created_at": "Signed up"}
    column_searchable_list = ("email",)
    column_filters = (BooleanEqualFilter(User.is_active, "Active"), BooleanEqualFilter(User.is_admin, "Admin"))
    column_default_sort = ("created_at", True)

    def __init__(self):
        super().__init__(User, db.session, name="Users", endpoint="users", url="users")

    def _others(self, ids: list[str], what: str) -> list[User]:
        """The selected accounts, without the admin's own (no admin locks themselves out)."""
        users = db.session.scalars(db.select(User).where(User.id.in_([int(i) for i in ids]))).all()
        if any(user.id == current_admin_id() for user in users):
            flash(f"You cannot {what} your own account.", "error")
        return [user for user in users if user.id != current_admin_id()]

    def _set(self, ids: list[str], what: str, **flags) -> None:
        users = self._others(ids, what)
        for user in users:
            for name, value in flags.items():
                setattr(user, name, value)
            if flags.get("is_active") is False or flags.get("is_admin") is False:
                revoke_refresh_tokens(user.id)
        db.session.commit()
        if users:
            flash(f"{what.capitalize()}: {', '.join(user.email for user in users)}.", "success")

    @action("activate", "Activate")
    def activate(self, ids):
        self._set(ids, "activate", is_active=True)

    @action("deactivate", "Deactivate", "Deactivate the selected accounts and end their sessions?")
    def deactivate(self, ids):
        self._set(ids, "deactivate", is_active=False)

    @action("grant_admin", "Grant admin", "Make the selected accounts admins?")
    def grant_admin(self, ids):
        self._set(ids, "grant admin to", is_admin=True)

    @action("revoke_admin", "Revoke admin", "Take the admin right from the selected accounts?")
    def revoke_admin(self, ids):
        self._set(ids, "revoke admin from", is_admin=False)

    @action("resend_activation", "Resend activation mail")
    def resend_activation(self, ids):
        users = db.session.scalars(db.select(User).where(User.id.in_([int(i) for i in ids]))).all()
        inactive = [user for user in users if not user.is_active]
        for user in inactive:
            send_activation(user)
        if inactive:
            flash(f"Activation mail sent to {', '.join(user.email for user in inactive)}.", "success")
        if len(inactive) < len(users):
            flash("Active accounts need no activation mail; none was sent to them.", "warning")

    def delete_model(self, model: User) -> bool:
        if model.id == current_admin_id():
            flash("You cannot delete your own account.", "error")
            return False
        try:
            deleted = delete_videos_of(model.id)
        except CatalogUnavailable as error:
            flash(f"{model.email} was not deleted: {error}.", "error")
            return False
        email = model.email
        if not super().delete_model(model):
            return False
        flash(f"Deleted {email} and their {deleted} video(s).", "success")
        return True


def init_admin_site(app: Flask) -> None:
    init_admin(app, "auth", [UserAdmin()], confirm=still_admin)
