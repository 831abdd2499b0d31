import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db


def test_schema_validates_and_documents_error_shape(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    validate(schema)
    error = schema["components"]["schemas"]["Error"]["properties"]["error"]
    sent = client.get("/api/no-such-endpoint/").json()["error"]  # a real error body has every required key
    assert set(error["required"]) == set(sent) == set(error["properties"])
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                assert "400" in operation["responses"] and "500" in operation["responses"], (path, method)


def test_docs_page_serves_assets_locally(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower()


def test_schema_generates_without_warnings(tmp_path):
    """Warnings mean an endpoint the schema cannot describe correctly (a missing serializer, a clashing name)."""
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
