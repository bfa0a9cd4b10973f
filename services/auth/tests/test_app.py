"""The factory: health check, OpenAPI, JSON errors."""
from __future__ import annotations

from .conftest import free_port


def test_healthz_checks_the_database(client, make_app, make_settings):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok", "checks": {"database": "ok"}}
    no_database = make_app(make_settings(AUTH_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/x"))
    response = no_database.test_client().get("/healthz")
    assert response.status_code == 503 and response.json["checks"] == {"database": "failing"}


def test_openapi_documents_every_account_route(client):
    spec = client.get("/openapi/openapi.json").json
    assert set(spec["paths"]) == {
        "/api/register/", "/api/activation/resend/", "/api/activate/{uidb64}/{token}/", "/api/login/",
        "/api/token/refresh/", "/api/logout/", "/api/password_reset/", "/api/password_confirm/{uidb64}/{token}/",
        "/internal/sessions/{session_id}",
    }
    assert "403" in spec["paths"]["/api/logout/"]["post"]["responses"]


def test_unknown_routes_and_methods_answer_json(client):
    missing = client.get("/api/nope/")
    assert missing.status_code == 404 and "detail" in missing.json
    wrong_method = client.get("/api/login/")
    assert wrong_method.status_code == 405 and "detail" in wrong_method.json
