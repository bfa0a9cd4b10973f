"""GET /healthz: database and Redis."""


def test_health_reports_database_and_redis(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_health_names_redis_when_it_is_down(make_app):
    response = make_app(redis_url="redis://127.0.0.1:1/0").test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["checks"] == {"database": "ok", "redis": "failing"}
