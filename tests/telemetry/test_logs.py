"""Structured logs and the request id (issue 15): every response names its request, the JSON lines
carry that id and the user, a task queued by the request logs under the same id, and no token,
password or key reaches the output. Lines are read from a real handler with the JsonFormatter on
the root logger (caplog would skip the formatter)."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from django.http import HttpResponse
from django.test import Client
from django.urls import include, path
from eth_account import Account
from rest_framework.test import APIClient

from telemetry.logs import ContextFilter, JsonFormatter, PlainFormatter, bound
from tests.conftest import wait_for

GENERATED = re.compile(r"^[0-9a-f]{32}$")
TX_HASH = "0x" + "ab" * 32
PRIVATE_KEY = "0x" + "4c" * 32


def _explode(request):
    raise RuntimeError(f"cannot use {request.GET.get('t', '')} with {request.GET.get('u', '')}")


def _ok(request):
    return HttpResponse("ok")


# a URLconf of the real one plus a view that fails, for the 500 path (settings.ROOT_URLCONF below)
urlpatterns = [path("test-explode", _explode), path("test-ok", _ok), path("", include("config.urls"))]


class Lines:
    """What a JsonFormatter handler on the root logger wrote, one parsed object per line."""

    def __init__(self, stream: io.StringIO):
        self.stream = stream

    @property
    def raw(self) -> str:
        return self.stream.getvalue()

    def all(self) -> list[dict]:
        return [json.loads(line) for line in self.raw.splitlines()]

    def access(self) -> list[dict]:
        return [line for line in self.all() if line["logger"] == "hallmark.access"]


def _capture(formatter: logging.Formatter):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return stream, handler, level


@pytest.fixture
def json_lines():
    stream, handler, level = _capture(JsonFormatter())
    yield Lines(stream)
    logging.getLogger().removeHandler(handler)
    logging.getLogger().setLevel(level)


@pytest.fixture
def plain_text():
    stream, handler, level = _capture(PlainFormatter("%(asctime)s %(levelname)s %(name)s %(context)s%(message)s"))
    yield stream
    logging.getLogger().removeHandler(handler)
    logging.getLogger().setLevel(level)


@pytest.fixture
def token_user(django_user_model):
    from marketplace import services

    user = django_user_model.objects.create_user(username="reader", password=None)
    _, plaintext = services.api_token_create(user=user, name="logs")
    return user, plaintext


# ------------------------------------------------------------------------------ the header


@pytest.mark.django_db
def test_every_response_carries_a_generated_request_id(client):
    first, second = client.get("/api/v1/models"), client.get("/api/v1/models")
    assert first.status_code == 200
    assert GENERATED.match(first["X-Request-ID"]) and GENERATED.match(second["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]


@pytest.mark.django_db
def test_a_safe_client_request_id_is_echoed(client):
    assert client.get("/api/v1/models", HTTP_X_REQUEST_ID="support-ticket:42_a.b-c")["X-Request-ID"] == "support-ticket:42_a.b-c"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "hostile",
    ["a" * 65, "abc\ndef", "abc\n", "caf\u00e9", "", "two words", "<script>", "id\r\nSet-Cookie: x=1"],
    ids=["too-long", "newline", "trailing-newline", "non-ascii", "empty", "space", "markup", "header-injection"],
)
def test_a_hostile_request_id_is_replaced(client, json_lines, hostile):
    response = client.get("/api/v1/models", HTTP_X_REQUEST_ID=hostile)
    assert GENERATED.match(response["X-Request-ID"])
    assert hostile not in json_lines.raw or hostile == ""
    assert json_lines.access()[-1]["request_id"] == response["X-Request-ID"]


@pytest.mark.django_db
def test_error_responses_carry_the_request_id_too(client, settings, json_lines):
    settings.ROOT_URLCONF = __name__
    api_404 = client.get("/api/v1/models/nobody/nothing", HTTP_X_REQUEST_ID="r-api-404")
    assert api_404.status_code == 404 and api_404.json()["code"] and api_404["X-Request-ID"] == "r-api-404"
    page_404 = client.get("/no-such-page", HTTP_X_REQUEST_ID="r-page-404")
    assert page_404.status_code == 404 and page_404["X-Request-ID"] == "r-page-404"

    failing = Client(raise_request_exception=False)
    crash = failing.get(
        "/test-explode", {"t": "hm_0123abcd_SECRETSECRETSECRETSECRET", "u": "https://alice:hunter2@rpc.example"},
        HTTP_X_REQUEST_ID="r-500",
    )
    assert crash.status_code == 500 and crash["X-Request-ID"] == "r-500"
    error = next(line for line in json_lines.all() if line["logger"] == "django.request" and line.get("request_id") == "r-500")
    assert "RuntimeError" in error["exc"] and "Traceback" in error["exc"] and error["request"] == "GET /test-explode"
    assert "hm_0123abcd_[redacted]" in error["exc"] and "https://***@rpc.example" in error["exc"]
    assert "SECRETSECRET" not in json_lines.raw and "hunter2" not in json_lines.raw
    assert [line["status"] for line in json_lines.access()] == [404, 404, 500]


# ----------------------------------------------------------------------------- JSON lines


@pytest.mark.django_db
def test_an_authenticated_api_call_logs_one_json_line_with_its_request_id_and_user(token_user, json_lines):
    user, token = token_user
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.get("/api/v1/auth/tokens?token=also-secret&page=2")
    assert response.status_code == 200

    lines = json_lines.all()
    assert len(lines) == len(json_lines.raw.splitlines()) >= 1  # one object per line
    (access,) = json_lines.access()
    assert access["request_id"] == response["X-Request-ID"] and access["user_id"] == user.pk
    assert access["method"] == "GET" and access["path"] == "/api/v1/auth/tokens" and access["status"] == 200
    assert access["bytes"] == len(response.content) and access["duration_ms"] >= 0
    assert access["level"] == "INFO" and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", access["ts"])
    assert "vendor_id" not in access  # not a vendor
    assert token not in json_lines.raw and "also-secret" not in json_lines.raw


VENDOR_BY_USER = re.compile(r'FROM "marketplace_vendor" WHERE "marketplace_vendor"."user_id" =')


@pytest.mark.django_db
def test_the_vendor_is_named_where_the_request_loaded_it_and_never_queried_for(
    make_party, json_lines, settings, django_assert_num_queries, django_assert_max_num_queries
):
    party = make_party("seller", Account.create().key.hex(), vendor_slug="seller")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {party.token}")
    assert client.get("/api/v1/vendor/models").status_code == 200  # the vendor permission loads it
    vendor_line = json_lines.access()[-1]
    assert vendor_line["user_id"] == party.user.pk and vendor_line["vendor_id"] == party.vendor.pk

    # a fresh token (the process keeps live ones, with the user they loaded) on a view that never
    # needs the vendor: the access line names the user and does not query for a vendor
    from marketplace import services

    client.credentials(HTTP_AUTHORIZATION=f"Bearer {services.api_token_create(user=party.user, name='second')[1]}")
    with django_assert_max_num_queries(4) as counted:  # the token with its user, its last use, the list
        assert client.get("/api/v1/auth/tokens").status_code == 200
    assert not any(VENDOR_BY_USER.search(query["sql"]) for query in counted.captured_queries)
    tokens_line = json_lines.access()[-1]
    assert tokens_line["user_id"] == party.user.pk and "vendor_id" not in tokens_line

    # a signed-in browser on a page that never looks at the user: the access line loads nothing
    settings.ROOT_URLCONF = __name__
    session = Client()
    session.force_login(party.user)
    with django_assert_num_queries(0):
        assert session.get("/test-ok").status_code == 200
    assert "user_id" not in json_lines.access()[-1]


@pytest.mark.django_db
def test_a_long_path_is_bounded_and_control_characters_escaped(client, json_lines):
    client.get("/" + "a" * 2000)
    client.get("/x%0Afake%20line")
    long, injected = json_lines.access()
    assert len(long["path"]) == 512
    assert injected["path"] == "/x\\x0afake line"


# ------------------------------------------------------------------------------- redaction


def test_tokens_passwords_and_keys_never_reach_the_output(json_lines, plain_text, token_user):
    _, token = token_user
    logger = logging.getLogger("tests.telemetry")
    with bound(request_id="r-redact"):
        logger.warning(
            "calling with %s via https://alice:hunter2@rpc.example/v1?apikey=k3y&chain=1 private_key=%s password: 'pa ss' tx %s",
            token, PRIVATE_KEY, TX_HASH,
            extra={"private_key": PRIVATE_KEY, "relayer": {"password": "pw1", "tx_hash": TX_HASH}, "tx_hash": TX_HASH,
                   "auth_header": f"Bearer {token}", "api_token": token},
        )
        try:
            raise ValueError(f"Authorization: Bearer {token}")
        except ValueError:
            logger.exception("request failed, headers %s", {"HTTP_AUTHORIZATION": f"Bearer {token}"})

    for output in (json_lines.raw, plain_text.getvalue()):
        for secret in (token, token.split("_", 2)[2], "hunter2", "k3y", PRIVATE_KEY, "pa ss", "pw1"):
            assert secret not in output
        assert TX_HASH in output  # transaction hashes are what operators search for
        assert "r-redact" in output
    warning, error = json_lines.all()
    assert warning["private_key"] == "[redacted]" and warning["api_token"] == "[redacted]"
    assert warning["relayer"] == {"password": "[redacted]", "tx_hash": TX_HASH} and warning["tx_hash"] == TX_HASH
    assert warning["auth_header"] == "Bearer [redacted]"
    assert "https://***@rpc.example/v1?apikey=[redacted]&chain=1" in warning["message"]
    assert f"hm_{token.split('_')[1]}_[redacted]" in warning["message"]  # the public prefix names the token
    assert "ValueError: Authorization: [redacted]" in error["exc"]


def test_an_unserializable_extra_or_bad_arguments_still_make_a_line(json_lines):
    class NoRepr:
        def __repr__(self):
            raise RuntimeError("no")

    logger = logging.getLogger("tests.telemetry")
    logger.info("odd extras", extra={"thing": object(), "broken": NoRepr(), "ratio": float("nan"), "raw": b"\x00\xff",
                                     "deep": [[[[[[["bottom"]]]]]]], "items": {1, 2}})
    (odd,) = json_lines.all()
    assert odd["message"] == "odd extras" and odd["thing"].startswith("<object object at")
    assert odd["broken"] == "<unrepresentable NoRepr>" and odd["ratio"] == "nan" and odd["raw"] == "b'\\x00\\xff'"
    assert "bottom" in json.dumps(odd["deep"]) and sorted(odd["items"]) == [1, 2]
    # arguments that do not fit the format (pytest's own handler would raise on it: format it directly)
    record = logging.LogRecord("tests.telemetry", logging.INFO, __file__, 1, "%d items", ("not a number",), None)
    bad_args = json.loads(JsonFormatter().format(record))
    assert bad_args["message"].startswith("'%d items'") and "could not format" in bad_args["message"]


# ---------------------------------------------------------------------------------- celery


@pytest.mark.chain
def test_a_task_queued_during_a_request_logs_with_the_same_request_id(chain, vendor, gguf_file, celery_worker, json_lines):
    from marketplace import services
    from marketplace.models import Version
    from tests.marketplace.test_hostile_files import registered_model

    model = registered_model(vendor, "traced")
    version = services.version_create(model=model)
    services.artifact_upload(version=version, path="model.gguf", stream=io.BytesIO(gguf_file.read_bytes()))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {vendor.token}")
    response = client.post(f"/api/v1/vendor/models/traced/versions/{version.pk}/finalize", HTTP_X_REQUEST_ID="ticket-7")
    assert response.status_code == 202 and response["X-Request-ID"] == "ticket-7"

    wait_for(lambda: Version.objects.get(pk=version.pk).status != Version.Status.HASHING, message="the version hashed")

    def task_lines():
        return [line for line in json_lines.all() if line.get("task") == "marketplace.version_hash"]

    lines = wait_for(task_lines, message="the task's log lines")
    assert {line["request_id"] for line in lines} == {"ticket-7"}
    assert all(line["task_id"] for line in lines)
    assert "user_id" not in lines[0]  # the worker knows the request, not who sent it


@pytest.mark.django_db
def test_an_eager_task_logs_under_its_request_and_leaves_the_context_as_it_was(json_lines):
    from marketplace.tasks import purge_expired_task

    with bound(request_id="r-eager", user_id=7):
        purge_expired_task.apply()  # how tasks run without a broker (`make run`): inside the request
        logging.getLogger("tests.telemetry").info("after the task")
    *during, after = json_lines.all()
    task_lines = [line for line in during if line.get("task") == "marketplace.purge_expired"]
    assert task_lines and {line["request_id"] for line in task_lines} == {"r-eager"}
    assert after["message"] == "after the task" and after["request_id"] == "r-eager" and after["user_id"] == 7
    assert "task" not in after and "task_id" not in after


@pytest.mark.chain
def test_a_download_with_a_token_names_its_user_in_the_access_line(live_version, vendor, json_lines):
    # the resolve view is a plain Django view: the user comes from the bearer parser, not DRF
    response = Client().head("/acme/tiny/resolve/main/model.gguf", HTTP_AUTHORIZATION=f"Bearer {vendor.token}")
    assert response.status_code == 200
    access = json_lines.access()[-1]
    assert access["path"] == "/acme/tiny/resolve/main/model.gguf" and access["method"] == "HEAD"
    assert access["user_id"] == vendor.user.pk and access["request_id"] == response["X-Request-ID"]
    assert vendor.token not in json_lines.raw
