"""The shared package: settings, keys, JSON errors, health, CSRF."""
from __future__ import annotations

import json
import os
import stat

import pytest
from flask import Flask
from flask_jwt_extended import create_access_token, jwt_required
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from videoflix_shared import Settings
from videoflix_shared.errors import ApiError
from videoflix_shared.flask import init_service
from videoflix_shared.keys import generate, write_seaweedfs_identities
from videoflix_shared.security import configure_jwt, require_csrf


class Payload(Schema):
    email = fields.Email(required=True)
    age = fields.Integer(required=True)


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys")
    generate(directory)
    return directory


@pytest.fixture
def app(keys_dir):
    settings = Settings.from_env({"KEYS_DIR": str(keys_dir), "VAR_DIR": str(keys_dir.parent)})
    app = Flask("videoflix_shared.tests.app")
    app.testing = True
    api = init_service(app, settings, "test", {"ok": lambda: None})
    configure_jwt(app, settings, signing=True)
    blp = Blueprint("things", __name__)

    @blp.route("/things/", methods=["POST"])
    @blp.arguments(Payload)
    def create(payload):
        return payload

    @blp.route("/boom/")
    def boom():
        raise RuntimeError("secret internals")

    @blp.route("/teapot/")
    def teapot():
        raise ApiError(418, "I am a teapot.")

    @blp.route("/protected/", methods=["POST"])
    @jwt_required()
    def protected():
        require_csrf()
        return {"ok": True}

    api.register_blueprint(blp)
    return app


def test_settings_defaults_make_a_local_stack():
    settings = Settings.from_env({})
    assert settings.access_token_minutes > 20  # the frontend refreshes every 20 minutes
    assert settings.auth_database_url.endswith("/videoflix_auth")
    assert settings.keys_dir == settings.var_dir / "keys"


def test_settings_read_lists_and_flags():
    settings = Settings.from_env({"CORS_ORIGINS": "http://a, http://b", "COOKIE_SECURE": "true"})
    assert settings.cors_origins == ["http://a", "http://b"]
    assert settings.cookie_secure is True


def test_generate_keeps_existing_files_and_protects_secrets(tmp_path):
    created = generate(tmp_path)
    assert {path.name for path in created} == {"jwt_private.pem", "jwt_public.pem", "service_token"}
    private_before = (tmp_path / "jwt_private.pem").read_bytes()
    assert generate(tmp_path) == []
    assert (tmp_path / "jwt_private.pem").read_bytes() == private_before
    assert stat.S_IMODE(os.stat(tmp_path / "jwt_private.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "service_token").st_mode) == 0o600


def test_seaweedfs_identities_come_from_the_settings_key_pairs(tmp_path, monkeypatch):
    """The compose S3 mode's seaweedfs-config job: S3_* may write the bucket, GATEWAY_S3_* only read it."""
    for name, value in {"S3_BUCKET": "media", "S3_ACCESS_KEY_ID": "RW", "S3_SECRET_ACCESS_KEY": "rw-secret",
                        "GATEWAY_S3_ACCESS_KEY_ID": "RO", "GATEWAY_S3_SECRET_ACCESS_KEY": "ro-secret"}.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "s3.json"
    path.write_text("old keys")
    write_seaweedfs_identities(path)
    identities = {i["credentials"][0]["accessKey"]: i for i in json.loads(path.read_text())["identities"]}
    assert identities["RW"]["credentials"][0]["secretKey"] == "rw-secret"
    assert "Write:media" in identities["RW"]["actions"]
    assert identities["RO"]["actions"] == ["Read:media"]
    monkeypatch.setenv("GATEWAY_S3_SECRET_ACCESS_KEY", "")
    with pytest.raises(SystemExit, match="GATEWAY_S3_"):
        write_seaweedfs_identities(path)


def test_validation_errors_are_400_field_lists(app):
    response = app.test_client().post("/things/", json={"email": "nope"})
    assert response.status_code == 400
    body = response.get_json()
    assert body["email"] == ["Not a valid email address."]
    assert body["age"] == ["Missing data for required field."]


@pytest.mark.parametrize("data", ["{not json", "[1, 2]", "null"])
def test_malformed_or_wrong_shaped_json_is_a_clear_400(app, data):
    response = app.test_client().post("/things/", data=data, content_type="application/json")
    assert response.status_code == 400
    assert response.is_json and response.get_json()


def test_unexpected_errors_never_leak_internals(app):
    response = app.test_client().get("/boom/")
    assert response.status_code == 500
    assert response.get_json() == {"detail": "Internal server error."}


def test_api_error_and_404_and_405_are_json(app):
    client = app.test_client()
    assert client.get("/teapot/").get_json() == {"detail": "I am a teapot."}
    missing = client.get("/nowhere/")
    assert missing.status_code == 404 and "detail" in missing.get_json()
    wrong_method = client.delete("/things/")
    assert wrong_method.status_code == 405 and "detail" in wrong_method.get_json()


def test_bodies_over_one_megabyte_are_413_json(app):
    response = app.test_client().post("/things/", data=b"x" * (1024 * 1024 + 1), content_type="application/json")
    assert response.status_code == 413
    assert response.get_json() == {"detail": "Request body too large."}


def test_healthz_and_request_id(app):
    response = app.test_client().get("/healthz", headers={"X-Request-Id": "abc123"})
    assert response.get_json() == {"status": "ok", "checks": {"ok": "ok"}}
    assert response.headers["X-Request-Id"] == "abc123"


def _logged_in_client(app, csrf="s3cret"):
    with app.app_context():
        token = create_access_token(identity="7", additional_claims={"csrf": csrf})
    client = app.test_client()
    client.set_cookie("access_token", token)
    client.set_cookie("csrftoken", csrf)
    return client


@pytest.mark.parametrize("header, status", [(None, 403), ("wrong", 403), ("s3cret", 200)])
def test_csrf_header_must_match_cookie_and_token(app, header, status):
    client = _logged_in_client(app)
    headers = {"X-CSRFToken": header} if header else {}
    assert client.post("/protected/", headers=headers).status_code == status


def test_csrf_cookie_swapped_by_an_attacker_is_rejected(app):
    client = _logged_in_client(app)
    client.set_cookie("csrftoken", "attacker")
    assert client.post("/protected/", headers={"X-CSRFToken": "attacker"}).status_code == 403


def test_missing_or_garbage_token_is_401_json(app):
    client = app.test_client()
    assert client.post("/protected/").status_code == 401
    client.set_cookie("access_token", "garbage.token.here")
    response = client.post("/protected/")
    assert response.status_code == 401 and response.get_json() == {"detail": "Token is invalid."}
