"""Download receipts (issue 18, server side), on the real stack: PostgreSQL, the relayer on a real
anvil, the shared library hallmark.receipts. Every granted GET of a file gets a receipt (full,
ranged, the S3 redirect), a HEAD or a refused GET none; batches close by size and by time; their
roots are anchored through the outbox, once, after a chain outage too; the endpoint hands a proof
that checks against the root the chain holds, to those who may read it."""

from __future__ import annotations

import time

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client

from hallmark import receipts as hallmark_receipts
from marketplace import services
from marketplace.models import Artifact, Download, Receipt, ReceiptBatch
from registry import chain as chain_module
from registry.models import ChainTransaction
from tests.conftest import free_port, publish, purchase, reset_chain_caches
from tests.marketplace.test_s3_storage import s3  # noqa: F401 (the moto S3 fixture)

pytestmark = pytest.mark.django_db

URL = "/acme/tiny/resolve/main/model.gguf"
LATER = 10**12  # a `now` after any batch is due: closing by time without waiting


def bearer(token: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def download(token: str, **headers):
    response = bearer(token).get(URL, **headers)
    if response.streaming:
        b"".join(response.streaming_content)  # the test client closes the response at the end
    return response


@pytest.fixture
def buyer(chain, live_version, make_party):
    party = make_party("buyer", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, party.key)
    return party


def test_a_full_and_a_ranged_download_get_receipts_a_head_and_a_refusal_none(chain, live_version, buyer, make_party):
    artifact = Artifact.objects.get(version=live_version, path="model.gguf")

    full = download(buyer.token)
    assert full.status_code == 200
    receipt = hallmark_receipts.decode_header(full["X-Hallmark-Receipt"])
    stored = Receipt.objects.get(receipt_id="0x" + receipt.receipt_id.hex())
    assert receipt == services.receipts.receipt_value(stored)  # the header is the stored receipt
    # the server encodes its own values without re-validating them: byte for byte the library's header
    assert full["X-Hallmark-Receipt"] == hallmark_receipts.encode_header(receipt)
    assert receipt.model_id.hex() == live_version.model.chain_model_id[2:]
    assert receipt.version == 1 and receipt.root_digest.hex() == live_version.root_digest
    assert receipt.file_sha256.hex() == artifact.sha256
    assert receipt.licensee == buyer.address and receipt.device == hallmark_receipts.ZERO_ADDRESS
    assert (receipt.range_start, receipt.range_end) == (0, artifact.size)
    assert abs(receipt.served_at - time.time()) < 3600
    assert stored.download == Download.objects.get(user=buyer.user, method="GET", status_code=200)
    assert stored.batch is None and stored.leaf == ""  # the leaf waits for the batch: one INSERT here

    ranged = download(buyer.token, HTTP_RANGE="bytes=10-19")
    assert ranged.status_code == 206
    part = hallmark_receipts.decode_header(ranged["X-Hallmark-Receipt"])
    assert (part.range_start, part.range_end) == (10, 20) and part.receipt_id != receipt.receipt_id

    head = bearer(buyer.token).head(URL)
    refused = download(make_party("stranger", chain.keys[3]).token)
    unsatisfiable = download(buyer.token, HTTP_RANGE=f"bytes={artifact.size + 5}-")
    assert head.status_code == 200 and refused.status_code == 403 and unsatisfiable.status_code == 416
    for response in (head, refused, unsatisfiable):
        assert "X-Hallmark-Receipt" not in response
    assert Receipt.objects.count() == 2


@pytest.fixture(params=["one_statement", "one_transaction"])
def insert_path(request, monkeypatch):
    """PostgreSQL writes the receipt and the bytes sent in one statement; other databases (SQLite,
    `make run`) in one transaction of two: both are run here, on PostgreSQL."""
    built = services.receipts._statements(connection.vendor)
    assert built.combined is not None and built.combined.startswith("WITH sent AS (UPDATE ")
    if request.param == "one_transaction":
        from dataclasses import replace

        monkeypatch.setattr(services.receipts, "_statements", lambda vendor: replace(built, combined=None))
    return request.param


def test_the_receipt_and_the_bytes_sent_are_written_together(chain, live_version, buyer, insert_path):
    ranged = download(buyer.token, HTTP_RANGE="bytes=10-19")
    assert ranged.status_code == 206
    row = Download.objects.get(user=buyer.user, method="GET")
    assert (row.bytes_sent, row.range_start, row.status_code) == (10, 10, 206)
    stored = Receipt.objects.get(download=row)
    assert (stored.range_start, stored.range_end) == (10, 20)
    assert services.receipts.receipt_value(stored) == hallmark_receipts.decode_header(ranged["X-Hallmark-Receipt"])

    # a receipt that cannot be inserted (its id taken) leaves the Download row as it was
    twin = Receipt.objects.get(pk=stored.pk)
    twin.pk = None
    with pytest.raises(IntegrityError), transaction.atomic():
        services.receipts.receipt_insert(twin, download_pk=row.pk, bytes_sent=5, range_start=0)
    row.refresh_from_db()
    assert (row.bytes_sent, row.range_start) == (10, 10) and Receipt.objects.count() == 1


def test_the_s3_redirect_carries_a_receipt(s3, chain, make_party, gguf_file):  # noqa: F811
    vendor = make_party("vendor", chain.keys[1], vendor_slug="acme")
    publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes()})
    redirect = bearer(vendor.token).get(URL)
    assert redirect.status_code == 302
    receipt = hallmark_receipts.decode_header(redirect["X-Hallmark-Receipt"])
    assert receipt.licensee == vendor.address  # the vendor's own download: the vendor's address
    assert Receipt.objects.get().range_end == Artifact.objects.get().size


def test_batches_close_by_size_then_by_time(chain, live_version, vendor, settings):
    settings.RECEIPT_BATCH_SIZE, settings.RECEIPT_BATCH_SECONDS = 2, 60
    headers = [download(vendor.token)["X-Hallmark-Receipt"] for _ in range(5)]

    by_size = services.receipt_batches_close(now=time.time())
    assert [b.count for b in by_size] == [2, 2]  # the fifth is neither a full batch nor 60 s old
    assert Receipt.objects.filter(batch__isnull=True).count() == 1
    by_time = services.receipt_batches_close(now=time.time() + 61)
    assert [b.count for b in by_time] == [1]
    assert services.receipt_batches_close(now=LATER) == []  # nothing left: no empty batch

    leaves = {hallmark_receipts.leaf_hash(hallmark_receipts.decode_header(h)) for h in headers}
    for batch in ReceiptBatch.objects.all():
        rows = list(batch.receipts.all())
        assert {bytes.fromhex(r.leaf[2:]) for r in rows} <= leaves
        assert batch.root == "0x" + hallmark_receipts.build_tree([bytes.fromhex(r.leaf[2:]) for r in rows]).root.hex()
        # queued in the outbox in the same transaction as the batch closed, under the batch's key
        assert batch.state == ReceiptBatch.State.ANCHORING
        assert batch.transaction.function == "anchorReceipts" and batch.transaction.idempotency_key == f"receipts:{batch.pk}:1"


def test_a_batch_is_anchored_through_the_relayer_and_its_proof_checks_against_the_chain(chain, live_version, buyer):
    headers = [download(buyer.token)["X-Hallmark-Receipt"] for _ in range(3)]
    receipt = hallmark_receipts.decode_header(headers[1])
    path = f"/api/v1/receipts/0x{receipt.receipt_id.hex()}"
    waiting = bearer(buyer.token).get(path).json()
    assert waiting["anchored"] is False and waiting["proof"] is None and waiting["batch"] is None
    assert waiting["receipt"] == receipt.to_json()

    run = services.receipt_batches_run(now=LATER)
    assert (run.closed, run.anchored, run.waiting) == (1, 1, 0)

    answer = bearer(buyer.token).get(path).json()
    assert answer["anchored"] is True and answer["batch"]["count"] == 3
    on_chain_root, count, _ = chain_module.registry_contract().functions.receiptBatch(answer["batch"]["batch_id"]).call()
    assert count == 3 and "0x" + bytes(on_chain_root).hex() == answer["batch"]["root"]
    tx = ChainTransaction.objects.get(function="anchorReceipts")
    assert answer["batch"]["tx_hash"] == tx.tx_hash and answer["batch"]["block"] == tx.block_number
    proof = hallmark_receipts.proof_from_hex(answer["proof"])
    leaf = hallmark_receipts.leaf_hash(hallmark_receipts.Receipt.from_json(answer["receipt"]))
    assert hallmark_receipts.verify_proof(proof, bytes(on_chain_root), leaf)
    # a receipt altered by one byte does not check against the same proof and root
    forged = dict(answer["receipt"], range_end=answer["receipt"]["range_end"] - 1)
    assert not hallmark_receipts.verify_proof(proof, bytes(on_chain_root), hallmark_receipts.leaf_hash(hallmark_receipts.Receipt.from_json(forged)))


def test_a_batch_closed_while_the_chain_is_down_is_anchored_once_after_it_is_back(chain, live_version, vendor, settings):
    download(vendor.token)
    settings.CHAIN_RPC_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    reset_chain_caches()
    run = services.receipt_batches_run(now=LATER)
    batch = ReceiptBatch.objects.get()
    assert (run.closed, run.anchored, run.waiting) == (1, 0, 1)
    assert batch.state == ReceiptBatch.State.ANCHORING and batch.transaction.status == ChainTransaction.Status.QUEUED

    settings.CHAIN_RPC_URL = chain.rpc_url
    reset_chain_caches()
    first = services.receipt_batches_run(now=LATER)
    second = services.receipt_batches_run(now=LATER)
    assert (first.anchored, second.anchored, second.waiting) == (1, 0, 0)
    batch.refresh_from_db()
    contract = chain_module.registry_contract()
    assert batch.state == ReceiptBatch.State.ANCHORED and contract.functions.receiptBatchCount().call() == 1
    assert "0x" + bytes(contract.functions.receiptBatch(batch.batch_id).call()[0]).hex() == batch.root
    assert ChainTransaction.objects.filter(function="anchorReceipts").count() == 1


def test_a_reorg_that_removes_an_anchor_anchors_the_batch_again_under_the_id_the_chain_gives_it(
    chain, live_version, vendor, settings, django_capture_on_commit_callbacks
):
    from registry.indexer import indexer_run
    from tests.marketplace.test_state_changes import reorg_from

    settings.CONFIRMATIONS = 1
    settings.REGISTRY_DEPLOY_BLOCK = chain.deploy_block
    download(vendor.token)
    assert services.receipt_batches_run(now=LATER).anchored == 1
    batch = ReceiptBatch.objects.get()
    indexer_run()
    reorg_from(chain, batch.block_number)  # the anchoring transaction's block leaves the chain

    with django_capture_on_commit_callbacks(execute=True):
        assert indexer_run().rolled_back_to is not None
    batch.refresh_from_db()
    assert batch.state == ReceiptBatch.State.ANCHORING and batch.batch_id is None and batch.block_number is None
    assert batch.transaction.status == ChainTransaction.Status.SIGNED  # its same bytes go out again
    contract = chain_module.registry_contract()
    assert contract.functions.receiptBatchCount().call() == 0

    again = services.receipt_batches_run(now=LATER)
    batch.refresh_from_db()
    assert (again.anchored, again.waiting) == (1, 0)
    assert batch.state == ReceiptBatch.State.ANCHORED and batch.batch_id == contract.functions.receiptBatchCount().call() == 1
    assert "0x" + bytes(contract.functions.receiptBatch(batch.batch_id).call()[0]).hex() == batch.root
    assert ChainTransaction.objects.filter(function="anchorReceipts").count() == 1  # one row, broadcast again


def test_who_may_read_a_receipt_and_a_vendors_counts(chain, live_version, vendor, buyer, make_party):
    receipt = hallmark_receipts.decode_header(download(buyer.token)["X-Hallmark-Receipt"])
    path = f"/api/v1/receipts/0x{receipt.receipt_id.hex()}"
    stranger = make_party("stranger", chain.keys[3])
    assert bearer(buyer.token).get(path).status_code == 200  # the licensee
    assert bearer(vendor.token).get(path).status_code == 200  # the model's vendor
    other = bearer(stranger.token).get(path)
    assert other.status_code == 404 and other.json()["code"] == "receipt_not_found"
    assert bearer(buyer.token).get("/api/v1/receipts/0x" + "ab" * 32).status_code == 404
    assert bearer(buyer.token).get("/api/v1/receipts/not-an-id").status_code == 404
    assert Client().get(path).status_code == 401

    services.receipt_batches_run(now=LATER)
    download(vendor.token)  # not yet anchored: counted, not covered
    counts = bearer(vendor.token).get("/api/v1/vendor/models/tiny/receipts")
    assert counts.status_code == 200
    body = counts.json()
    assert (body["model"], body["count"], body["anchored"]) == ("acme/tiny", 2, 1)
    assert [b["in_period"] for b in body["batches"]] == [1] and body["batches"][0]["root"] == ReceiptBatch.objects.get().root
    empty = bearer(vendor.token).get("/api/v1/vendor/models/tiny/receipts", {"from": "2020-01-01", "to": "2020-01-31"}).json()
    assert (empty["count"], empty["batches"]) == (0, [])
    assert bearer(vendor.token).get("/api/v1/vendor/models/tiny/receipts", {"from": "2020-01-01", "to": "2022-01-01"}).status_code == 400
    assert bearer(buyer.token).get("/api/v1/vendor/models/tiny/receipts").status_code == 403  # not a vendor
    assert bearer(stranger.token).get(path.replace("0x", "0X", 1)).status_code == 404

    portal = Client()
    portal.force_login(vendor.user)
    page = portal.get("/portal/models/tiny").content.decode()
    assert "Download receipts" in page and "2 downloads with a receipt, 1 under a root anchored on chain" in page
    assert ReceiptBatch.objects.get().root[:10] in page


def test_the_scrape_reports_receipts_waiting_for_an_anchor(chain, live_version, vendor, client, settings):
    settings.METRICS_ALLOW_LOOPBACK = True
    download(vendor.token)
    text = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert "hallmark_receipts_unanchored 1.0" in text
    services.receipt_batches_run(now=LATER)
    text = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert "hallmark_receipts_unanchored 0.0" in text and "hallmark_receipts_oldest_unanchored_age_seconds 0.0" in text


def test_receipts_off_is_the_benchs_baseline(chain, live_version, vendor, settings):
    settings.RECEIPTS_ENABLED = False
    assert "X-Hallmark-Receipt" not in download(vendor.token) and not Receipt.objects.exists()


def test_beat_runs_the_task_that_closes_and_anchors(chain, live_version, vendor, settings):
    from django.conf import settings as django_settings

    from marketplace.tasks import close_receipt_batches_task

    assert any(entry["task"] == "marketplace.close_receipt_batches" for entry in django_settings.CELERY_BEAT_SCHEDULE.values())
    settings.RECEIPT_BATCH_SECONDS = 0
    download(vendor.token)
    assert close_receipt_batches_task.apply().get() == 1
    assert ReceiptBatch.objects.get().state == ReceiptBatch.State.ANCHORED
