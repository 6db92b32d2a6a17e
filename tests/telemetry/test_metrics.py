"""`/metrics`: read with the Prometheus text parser, the families move when a publication, a
purchase, an indexer run and downloads happen; access is refused off the host; label values
stay a fixed set whatever a client sends."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from registry.indexer import indexer_run
from tests.conftest import purchase

pytestmark = [pytest.mark.chain, pytest.mark.django_db]


def scrape(client: Client | None = None, **headers) -> dict[tuple[str, frozenset], float]:
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def names(samples) -> set[str]:
    return {name for name, _ in samples}


def test_families_move_with_a_publication_a_purchase_an_indexer_run_and_downloads(chain, live_version, make_party):
    before = scrape()  # live_version already published; the publication itself is checked below
    buyer = make_party("buyer", chain.keys[2])
    stranger = make_party("stranger", chain.keys[3])
    model = live_version.model
    url = f"/{model.repo_id}/resolve/main/model.gguf"

    refused = Client().get(url, HTTP_AUTHORIZATION=f"Bearer {stranger.token}")
    assert refused.status_code == 403
    purchase(chain, model.chain_model_id, buyer.key)
    run = indexer_run()
    assert run.events >= 1
    granted = Client().get(url, HTTP_AUTHORIZATION=f"Bearer {buyer.token}")
    assert granted.status_code == 200
    b"".join(granted.streaming_content)
    again = Client().get(url, HTTP_AUTHORIZATION=f"Bearer {buyer.token}")  # the grant kept by this process
    assert again.status_code == 200
    b"".join(again.streaming_content)
    after = scrape()

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("hallmark_downloads_total", outcome="refused", reason="GatedRepo") == 1
    assert moved("hallmark_downloads_total", outcome="granted", reason="ok") == 2
    assert moved("hallmark_licence_checks_total", source="chain", result="not_held") == 1
    assert moved("hallmark_licence_checks_total", result="held") == 2
    assert moved("hallmark_licence_checks_total", source="cache", result="held") == 1
    assert moved("hallmark_indexer_events_applied_total", event="LicensePurchased") == 1
    assert moved("hallmark_indexer_runs_total", outcome="ok") == 1
    assert moved("hallmark_http_requests_total", family="resolve", method="GET", status="200") == 2
    assert moved("hallmark_http_requests_total", family="resolve", method="GET", status="403") == 1
    assert moved("hallmark_http_request_duration_seconds_count", family="resolve") == 3
    assert moved("hallmark_http_requests_total", family="metrics", status="200") == 1  # the first scrape

    # read at scrape time: the indexer has reached the purchase's block; the outbox holds the
    # publication's two confirmed rows and the relayer paid for them
    assert value(after, "hallmark_indexer_lag_blocks") >= 0
    assert value(after, "hallmark_indexer_head_block") >= value(after, "hallmark_indexer_indexed_block") > 0
    assert value(after, "hallmark_indexer_lag_seconds") >= 0
    assert value(after, "hallmark_outbox_transactions", state="confirmed") >= 2
    assert value(after, "hallmark_outbox_oldest_pending_age_seconds") == 0
    assert value(after, "hallmark_relayer_gas_spent_wei_total") > 0
    assert value(after, "hallmark_relayer_balance_wei") > value(after, "hallmark_relayer_min_balance_wei") > 0
    assert value(after, "hallmark_relayer_funded") == 1
    assert value(after, "hallmark_ready") == 1
    assert value(after, "hallmark_readiness_check", check="chain") == 1
    assert value(after, "hallmark_celery_queue_length", queue="hallmark") >= 0
    assert "hallmark_celery_queue_length" in names(after)


@pytest.mark.django_db(transaction=True)  # counted once the change commits
def test_a_publication_counts_its_hashing_and_going_live(chain, vendor, gguf_file):
    from tests.conftest import publish

    before = scrape()
    publish(vendor, "counted", {"model.gguf": gguf_file.read_bytes()})
    after = scrape()
    assert value(after, "hallmark_versions_live_total") - value(before, "hallmark_versions_live_total") == 1
    assert (
        value(after, "hallmark_version_processing_seconds_count", outcome="ok")
        - value(before, "hallmark_version_processing_seconds_count", outcome="ok")
    ) == 1
    # createModel and publishVersion went through the relayer
    assert (
        value(after, "hallmark_relayer_transactions_total", outcome="confirmed")
        - value(before, "hallmark_relayer_transactions_total", outcome="confirmed")
    ) == 2


@pytest.mark.django_db(transaction=True)
def test_a_rejected_version_counts_its_code(chain, vendor):
    from marketplace import services
    from tests.conftest import publish_version

    model = services.model_anchor(model_id=_anchored_model(vendor).pk)
    before = scrape()
    with pytest.raises(Exception):  # noqa: B017 - the helper stops at the signature a rejected version lacks
        publish_version(vendor, model, {"model.gguf": b"GGUF" + b"\xff" * 60})
    after = scrape()
    rejected = value(after, "hallmark_version_rejections_total") - value(before, "hallmark_version_rejections_total")
    assert rejected == 1
    version = model.versions.get()
    assert value(after, "hallmark_version_rejections_total", code=version.error_code) >= 1


def _anchored_model(vendor):
    from hallmark import eip712
    from marketplace import services

    model = services.model_create(vendor=vendor.vendor, slug="broken", price_wei=10**15, license_duration=0)
    services.model_submit_signature(model=model, signature=eip712.sign_typed_data(model.typed_data, vendor.key))
    return model


def test_an_indexer_run_without_a_chain_counts_a_chain_failure(chain_down):
    from registry.chain import ChainUnavailable

    before = scrape()
    with pytest.raises(ChainUnavailable):
        indexer_run()
    after = scrape()
    assert value(after, "hallmark_indexer_runs_total", outcome="chain_unavailable") - value(
        before, "hallmark_indexer_runs_total", outcome="chain_unavailable"
    ) == 1
    assert value(after, "hallmark_chain_failures_total", operation="indexer") > value(
        before, "hallmark_chain_failures_total", operation="indexer"
    )
    # the scrape itself still answers, without the values it could not read
    assert "hallmark_indexer_head_block" not in names(after)
    assert value(after, "hallmark_ready") == 0


def test_label_values_never_come_from_the_request(chain):
    marker = uuid.uuid4().hex
    client = Client()
    client.get(f"/{marker}/{marker}/resolve/main/{marker}.gguf")
    client.get(f"/no/such/{marker}/page/at/all")
    client.generic("BREW", f"/api/v1/{marker}")
    samples = scrape()
    for name, labels in samples:
        for label, text in labels:
            assert marker not in text, (name, label)
    assert value(samples, "hallmark_http_requests_total", method="other") >= 1
    assert value(samples, "hallmark_http_requests_total", family="unmatched") >= 1


@pytest.mark.parametrize(
    ("remote", "headers", "allowed"),
    [
        ("127.0.0.1", {}, True),
        ("::1", {}, True),
        ("127.0.0.1", {"HTTP_X_FORWARDED_FOR": "203.0.113.9"}, False),  # a local nginx proxying the world
        ("127.0.0.1", {"HTTP_X_REAL_IP": "203.0.113.9"}, False),
        ("127.0.0.1", {"HTTP_FORWARDED": "for=203.0.113.9"}, False),
        ("203.0.113.9", {}, False),
        ("10.0.0.5", {}, False),
        ("not-an-address", {}, False),
    ],
)
def test_metrics_without_a_token_only_from_the_host_itself(settings, remote, headers, allowed):
    settings.METRICS_TOKEN = ""
    response = Client(REMOTE_ADDR=remote).get("/metrics", **headers)
    assert response.status_code == (200 if allowed else 404)
    if not allowed:
        assert b"hallmark_" not in response.content


def test_metrics_with_a_token_from_anywhere(settings):
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    settings.METRICS_ALLOW_LOOPBACK = False
    outside = Client(REMOTE_ADDR="203.0.113.9")
    assert outside.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token", HTTP_X_FORWARDED_FOR="1.2.3.4").status_code == 200
    assert outside.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    assert outside.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token" + "x").status_code == 404
    assert outside.get("/metrics").status_code == 404
    assert Client().get("/metrics").status_code == 404  # loopback switched off


def test_probes_answer_by_address_over_plain_http(settings):
    """A load balancer asks `http://10.0.3.7:8000/healthz`: no redirect, no DisallowedHost."""
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["hallmark.example.org"]
    response = Client().get("/healthz", HTTP_HOST="10.0.3.7:8000")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"].startswith("max-age=0")
    # every other path still goes through the host check
    assert Client().get("/models", HTTP_HOST="10.0.3.7:8000").status_code == 400
