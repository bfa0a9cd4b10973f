"""Hostile input the shared package answers for every service: control characters in any field of
any location, and arbitrary bytes in every request header the services read."""
from __future__ import annotations

import io
import logging

import pytest
from flask import Flask
from flask_jwt_extended import create_access_token, jwt_required
from hypothesis import HealthCheck, given, settings, strategies as st
from marshmallow import Schema, fields
from videoflix_shared import Settings
from videoflix_shared.blueprint import Blueprint
from videoflix_shared.flask import init_service
from videoflix_shared.keys import generate
from videoflix_shared.logs import JsonFormatter, masked_path
from videoflix_shared.security import CSRF_HEADER, configure_jwt, require_csrf


class Thing(Schema):
    title = fields.String(required=True)
    description = fields.String(load_default="")
    tags = fields.List(fields.String(), load_default=list)


class Search(Schema):
    q = fields.String(load_default="")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    keys_dir = tmp_path_factory.mktemp("keys")
    generate(keys_dir)
    settings_ = Settings.from_env({"KEYS_DIR": str(keys_dir), "VAR_DIR": str(keys_dir.parent)})
    app = Flask("videoflix_shared.tests.input")
    app.testing = True
    api = init_service(app, settings_, "test")
    configure_jwt(app, settings_, signing=True)
    blp = Blueprint("things", __name__)

    @blp.route("/things/", methods=["POST"])
    @blp.arguments(Thing)
    def create(thing):
        return thing

    @blp.route("/upload/", methods=["POST"])
    @blp.arguments(Thing, location="multipart")
    def upload(thing):
        return thing

    @blp.route("/search/")
    @blp.arguments(Search, location="query")
    def search(query):
        return query

    @blp.route("/protected/", methods=["POST"])
    @jwt_required()
    def protected():
        require_csrf()
        return {"ok": True}

    api.register_blueprint(blp)
    return app


@pytest.mark.parametrize("body, field", [
    ({"title": "a\x00b"}, "title"),
    ({"title": "ok", "description": "line\x07bell"}, "description"),
    ({"title": "ok", "tags": ["fine", "\x1b[31m"]}, "tags"),
    ({"title": "ok", "description": "\x85 next line (C1)"}, "description"),
    ({"title": "\ud800 lone surrogate"}, "title"),
])
def test_control_characters_in_json_are_a_400_naming_the_field(app, body, field):
    response = app.test_client().post("/things/", json=body)
    assert response.status_code == 400, response.get_json()
    assert response.get_json() == {field: ["Control characters are not allowed."]}


def test_control_characters_in_a_json_key_or_a_bare_string_are_a_400(app):
    client = app.test_client()
    for body in ({"title": "ok", "x\x00": 1}, "\x00"):
        response = client.post("/things/", json=body)
        assert response.status_code == 400 and "detail" in response.get_json()


def test_tabs_and_line_breaks_are_text(app):
    body = {"title": "a\tb", "description": "one\r\ntwo\nthree"}
    response = app.test_client().post("/things/", json=body)
    assert response.status_code == 200 and response.get_json()["description"] == body["description"]


def test_control_characters_in_form_fields_query_and_file_names_are_a_400(app):
    client = app.test_client()
    upload = client.post("/upload/", data={"title": "clip\x00", "file": (io.BytesIO(b"x"), "a.mp4")},
                         content_type="multipart/form-data")
    assert upload.status_code == 400 and upload.get_json() == {"title": ["Control characters are not allowed."]}
    named = client.post("/upload/", data={"title": "clip", "file": (io.BytesIO(b"x"), "a\x01.mp4")},
                        content_type="multipart/form-data")
    assert named.status_code == 400 and named.get_json() == {"file": ["Control characters are not allowed."]}
    search = client.get("/search/?q=a%00b")
    assert search.status_code == 400 and search.get_json() == {"q": ["Control characters are not allowed."]}


def _client_with_session(app, csrf="s3cret"):
    with app.app_context():
        token = create_access_token(identity="7", additional_claims={"csrf": csrf})
    client = app.test_client()
    client.set_cookie("access_token", token)
    client.set_cookie("csrftoken", csrf)
    return client


@pytest.mark.parametrize("header", ["s3crét", "\u00ff" * 40, "s3cret\u00e9", "\x00"])
def test_a_non_ascii_csrf_header_is_a_403(app, header):
    response = _client_with_session(app).post("/protected/", headers={CSRF_HEADER: header})
    assert response.status_code == 403 and response.get_json() == {"detail": "CSRF token missing or incorrect."}


# Any byte but CR and LF (which cannot be in a header); WSGI hands non-ASCII bytes over as latin-1.
HEADER_VALUES = st.text(st.characters(min_codepoint=0, max_codepoint=0xFF, blacklist_characters="\r\n"),
                        max_size=64)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(csrf_header=HEADER_VALUES, csrf_cookie=HEADER_VALUES, request_id=HEADER_VALUES,
       access_token=HEADER_VALUES)
def test_fuzzed_headers_and_cookies_are_never_a_server_error(app, csrf_header, csrf_cookie, request_id,
                                                             access_token):
    for client in (_client_with_session(app), app.test_client()):
        if access_token:
            client.set_cookie("access_token", access_token)
        client.set_cookie("csrftoken", csrf_cookie)
        response = client.post("/protected/", headers={CSRF_HEADER: csrf_header, "X-Request-Id": request_id})
        assert response.status_code in (200, 401, 403), (response.status_code, response.get_data())
        assert response.is_json


def test_request_logs_mask_link_tokens(app, caplog):
    with caplog.at_level(logging.INFO, logger="access"):
        app.test_client().get("/api/activate/MTIzNA/s3cret-link-token/")
        app.test_client().post("/api/password_confirm/MTIzNA/0ther-s3cret/", json={})
    lines = [JsonFormatter("test").format(record) for record in caplog.records]
    assert len(lines) == 2
    assert not any("s3cret-link-token" in line or "0ther-s3cret" in line for line in lines), lines
    assert masked_path("/api/activate/MTIzNA/abc/") == "/api/activate/MTIzNA/***/"
    assert masked_path("/api/video/12/") == "/api/video/12/"
