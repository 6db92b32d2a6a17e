"""Public pages render: the home page, a model page, and a 404 for an unknown model."""

import pytest

pytestmark = pytest.mark.django_db


def test_home_page_lists_live_models(client, live_version):
    response = client.get("/")
    assert response.status_code == 200
    assert b"acme/tiny" in response.content


def test_model_page_shows_signer_and_digest(client, live_version):
    response = client.get("/acme/tiny")
    assert response.status_code == 200
    assert live_version.root_digest.encode() in response.content
    assert live_version.signer.encode() in response.content
    assert client.get("/acme/nothing").status_code == 404
