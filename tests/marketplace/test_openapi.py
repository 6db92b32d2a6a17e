"""The OpenAPI schema builds and the docs page serves its assets locally (no CDN)."""

import pytest

pytestmark = pytest.mark.django_db


def test_schema_lists_the_api(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ("/api/v1/models", "/api/v1/auth/siwe", "/api/v1/purchases", "/api/v1/provenance/sha256/{sha256}"):
        assert path in paths, path


def test_docs_page_uses_local_assets(client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html and "cdn." not in html and "jsdelivr" not in html
