from unittest import mock

import pytest


def test_healthz_answers_without_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_ok_when_database_answers(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"


@pytest.mark.django_db
def test_readyz_503_names_failed_database(client):
    with mock.patch("jewelia.core.health._check_database", side_effect=OSError("down")):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["database"]


@pytest.mark.django_db
def test_readyz_checks_cache_and_broker_when_configured(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with (
        mock.patch("jewelia.core.health._check_cache", side_effect=ConnectionError("no redis")),
        mock.patch("jewelia.core.health._check_broker"),
    ):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "cache": "unavailable", "broker": "ok"}


@pytest.mark.django_db
def test_unknown_api_url_is_404_with_error_shape(client):
    response = client.get("/api/nothing-here/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert response.json()["error"]["request_id"] == response["X-Request-ID"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/orders", "/api/orders/", "/api/integrations", "/api/integrations/"])
def test_api_routes_answer_with_or_without_trailing_slash(admin_client, path):
    assert admin_client.get(path).status_code == 200
