"""The admin site's common part (Flask-Admin): admins only, CSRF tied to the login, one menu for all.

Each service serves the admin pages of its own tables under /admin/<family>/ (auth: users, catalog:
videos); auth also serves the /admin/ index and Flask-Admin's static files. The gateway lets only
tokens with the `is_admin` claim through to /admin/; every view here checks the token again, so a
service reached around the gateway serves nothing to anyone else either.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Callable

from urllib.parse import urlencode

from flask import Flask, Response, current_app, redirect, request
from flask_admin import Admin, AdminIndexView
from flask_admin.contrib.sqla import ModelView
from flask_admin.form import BaseForm
from flask_admin.menu import MenuLink
from flask_jwt_extended import get_jwt, verify_jwt_in_request
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt.exceptions import PyJWTError
from wtforms.csrf.core import CSRF
from wtforms.validators import ValidationError

ADMIN_URL = "/admin"
LOGIN_PAGE = "/pages/auth/login.html"
# Every service's admin families (view url: menu title), for the shared menu: each service mounts its
# own views, the others' appear as links.
SECTIONS = {"users": "Users", "videos": "Videos"}

FORBIDDEN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>403 Forbidden - Videoflix admin</title></head>
<body><h1>403 Forbidden</h1><p>The admin site is for administrators only.</p>
<p><a href="/">Back to Videoflix</a></p></body></html>
"""


def verified_claims() -> dict | None:
    """The claims of the request's valid access token, or None (no token, expired, forged...)."""
    try:
        verify_jwt_in_request(optional=True)
    except (JWTExtendedException, PyJWTError):
        return None
    claims = get_jwt()
    return claims or None


def is_admin_request() -> bool:
    """A valid access token with the is_admin claim (and, where the service asks, still an admin)."""
    claims = verified_claims()
    if not (claims and claims.get("type") == "access" and claims.get("is_admin") is True):
        return False
    confirm = current_app.extensions.get("admin_confirm")
    return confirm is None or confirm(claims)


def refused() -> Response:
    """Not logged in (or the token expired): the login page, back here after. Others: a 403 page."""
    if verified_claims() is None:
        return redirect(f"{LOGIN_PAGE}?{urlencode({'next': request.full_path.rstrip('?')})}")
    return Response(FORBIDDEN_PAGE, status=403, mimetype="text/html")


class LoginBoundCsrf(CSRF):
    """The hidden `csrf_token` of every admin form is the `csrf` claim of the admin's access token.

    Another site can neither read it (the token is an HttpOnly cookie, the csrftoken cookie is
    same-origin) nor guess it, and it changes at every login. It is the same secret the API's
    X-CSRFToken double submit checks, so no server-side session or extra secret key is needed.
    """

    def generate_csrf_token(self, csrf_token_field) -> str:
        return str(get_jwt().get("csrf", ""))

    def validate_csrf_token(self, form, field) -> None:
        expected = self.generate_csrf_token(field)
        if not (expected and isinstance(field.data, str) and hmac.compare_digest(field.data, expected)):
            raise ValidationError("CSRF token missing or incorrect.")


class SecureForm(BaseForm):
    """Flask-Admin's form base with the login-bound CSRF token (create, edit, delete and action forms)."""

    class Meta:
        csrf = True
        csrf_class = LoginBoundCsrf


class AdminOnly:
    """Mixin for every admin view: admins' valid access tokens only."""

    def is_accessible(self) -> bool:
        return is_admin_request()

    def inaccessible_callback(self, name, **kwargs):
        return refused()


class AdminIndex(AdminOnly, AdminIndexView):
    pass


class AdminModelView(AdminOnly, ModelView):
    form_base_class = SecureForm
    page_size = 50
    can_view_details = True
    can_set_page_size = True


def init_admin(app: Flask, name: str, views: list[ModelView], confirm: Callable[[dict], bool] | None = None) -> Admin:
    """Mount this service's admin views; the other services' sections appear as menu links.

    `confirm(claims)`: a further check of an admin's token (auth asks its database).
    """
    if confirm:
        app.extensions["admin_confirm"] = confirm
    settings = app.config["SETTINGS"]
    # Flask-Admin's flash messages ride in Flask's signed session cookie, one per service, admin pages
    # only. Its key derives from the service token: no new secret to configure, the same in every
    # process of a service, and a new key pair (`make keys`) replaces it.
    app.secret_key = hashlib.sha256(b"videoflix admin session\0" + settings.service_token().encode()).digest()
    app.config.update(SESSION_COOKIE_NAME=f"admin_session_{name}", SESSION_COOKIE_PATH=f"{ADMIN_URL}/",
                      SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=settings.cookie_secure)
    admin = Admin(app, name="Videoflix admin", url=ADMIN_URL, index_view=AdminIndex(url=ADMIN_URL))
    own = {view.url: view for view in views}
    if set(own) - set(SECTIONS):
        raise ValueError(f"add {sorted(set(own) - set(SECTIONS))} to SECTIONS")
    for section, title in SECTIONS.items():  # the same menu, in the same order, in every service
        if section in own:
            admin.add_view(own[section])
        else:
            admin.add_menu_item(MenuLink(name=title, url=f"{ADMIN_URL}/{section}/"))
    admin.add_link(MenuLink(name="Back to Videoflix", url="/"))
    return admin
