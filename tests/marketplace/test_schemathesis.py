"""The API answers as its OpenAPI schema says: schemathesis generates requests for every operation
from the live schema (/api/schema/) and checks each answer: no 5xx, a documented status, a
documented content type, a body that conforms to the documented schema (errors included).

Requests go through the WSGI app in this process (same test database), on the real chain, as a
vendor with a real API token: about half of them name real objects (acme/tiny, its versions, its
file's digest), so operations are exercised beyond 401 and 404."""

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.django_db

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 15  # ~10 s for all; 100 each (~1 min) passed when this was written


def known_objects(live_version, buyer) -> dict:
    model = live_version.model
    return {
        "vendor": model.vendor.slug,
        "model": model.slug,
        "slug": model.slug,
        "version_id": live_version.pk,
        "revision": "main",
        "path": "model.gguf",
        "sha256": live_version.artifacts.get(path="model.gguf").sha256,
        "address": buyer.address.lower(),
    }


def test_every_operation_answers_as_its_schema_documents(chain, vendor, live_version, make_party, settings_override):
    buyer = make_party("buyer", chain.keys[3])
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    known = known_objects(live_version, buyer)
    auth = {"Authorization": f"Bearer {vendor.token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 29

    def name_known_objects(case):
        for name in case.path_parameters or {}:
            if name in known:
                case.path_parameters[name] = known[name]
        return case

    answered: dict[str, set[int]] = {}
    failures: list[str] = []
    for operation in operations:
        try:
            exercise(operation, name_known_objects, auth, answered)
        except Exception as exc:  # every operation is tried; all their failures are reported together
            failures.append(f"{operation.label}: {exc}")

    assert not failures, "\n\n".join(failures)

    # the token is real: every operation was exercised beyond "who are you?"
    only_unauthenticated = [label for label, statuses in answered.items() if statuses <= {401}]
    assert not only_unauthenticated, only_unauthenticated
    succeeded = [label for label, statuses in answered.items() if any(200 <= s < 300 for s in statuses)]
    assert len(succeeded) >= len(operations) // 2, answered


def exercise(operation, name_known_objects, headers: dict, answered: dict[str, set[int]]) -> None:
    """Send an operation generated requests (half of them naming real objects); check each answer."""
    strategy = operation.as_strategy()

    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,  # the same requests every run: a failure here is reproducible
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategy, strategy.map(name_known_objects)))
    def answers_as_documented(case):
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS)
        answered.setdefault(operation.label, set()).add(response.status_code)

    answers_as_documented()


@pytest.fixture
def settings_override(settings):
    # hundreds of requests from one account in a minute: the rate limit is not what is tested here
    settings.API_RATE_LIMIT = "100000/min"
    settings.DOWNLOAD_RATE_LIMIT = "100000/min"
    # the WSGI app runs inside the test's transaction: keep its connection open after each
    # request, as Django's own test client does
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield settings
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def test_every_operation_documents_its_errors_with_the_error_body(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert schema["components"]["schemas"]["Error"]["required"] == ["code", "message"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            errors = {status: answer for status, answer in operation["responses"].items() if status.startswith(("4", "5"))}
            assert {"401", "429"} <= set(errors), (method, path)
            if "{" in path:
                assert "404" in errors, (method, path)
            for answer in errors.values():
                assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, (method, path)
