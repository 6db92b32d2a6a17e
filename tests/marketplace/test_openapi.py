"""The OpenAPI schema builds, documents every operation's answers (success and errors) under its own
component names, and the docs page serves its assets locally (no CDN); errors have one shape."""

import json

import pytest

from marketplace.api.errors import error_response

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


def test_every_operation_documents_its_success_body(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            successes = {status: answer for status, answer in operation["responses"].items() if status.startswith("2")}
            assert successes, (method, path)
            for status, answer in successes.items():
                if status == "204":
                    continue
                assert answer.get("description") != "Unspecified response body", (method, path)
                assert answer["content"], (method, path)


def test_views_nested_serializers_get_their_own_component_names(client):
    components = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["components"]["schemas"]
    assert {"ModelDetail", "ModelListPage", "VendorModel", "VendorVersion", "PurchaseTransactionOutput", "Error"} <= set(components)
    assert not {"Output", "Input", "OutputSerializer"} & set(components)


def test_errors_have_one_shape_in_the_api_the_hugging_face_endpoints_and_tus(client):
    api = client.get("/api/v1/models/nobody/nothing")
    resolve = client.get("/nobody/nothing/resolve/main/model.gguf")
    tus = client.post("/api/v1/vendor/models/nothing/versions/1/uploads")  # no Tus-Resumable header
    for response, status, code in ((api, 404, "RepoNotFound"), (resolve, 404, "RepoNotFound"), (tus, 412, "tus_version")):
        assert response.status_code == status
        assert response["Content-Type"] == "application/json"
        assert set(response.json()) == {"code", "message"} and response.json()["code"] == code
        assert response["X-Error-Code"] == code
        assert response["X-Error-Message"] == response.json()["message"]


def test_an_error_message_over_several_lines_still_fits_in_its_header():
    # a parser's message can quote the input it refused, newlines included
    response = error_response("siwe_malformed", "not a Sign-In with Ethereum message:\nline 2\r\nX-Injected: 1 ünïcode", 400)
    assert json.loads(response.content)["message"].endswith("X-Injected: 1 ünïcode")
    assert response["X-Error-Message"] == "not a Sign-In with Ethereum message:?line 2??X-Injected: 1 ?n?code"
    assert not response.has_header("X-Injected")


def test_a_price_in_non_ascii_digits_is_invalid_input_not_a_server_error(chain, live_version, client):
    response = client.get("/api/v1/models/acme/tiny/royalties", {"price_wei": "²"})
    assert response.status_code == 400 and response.json()["code"] == "invalid_price"
