"""A poison event cannot stop the chain mirror: an event one projection cannot apply is recorded
(admin, `GET /api/v1/chain/status`) and skipped by that projection only; every other event and
projection still counts, the cursor moves on, and later runs go on normally.

This module is also the test-only projection: listed in INDEXER_PROJECTIONS, it does the licence
and ledger projection's real work and then raises on the transactions a test poisons, so a
failed batch has real writes of its own to undo."""

import logging

import pytest
from django.conf import settings as django_settings
from eth_utils import keccak

from marketplace.models import Model, Version
from registry import chain as chain_mod
from registry import indexer
from registry.chain import hex0x, to_bytes32
from registry.indexer import indexer_run
from registry.models import ChainEvent, IndexerCursor, SkippedEvent
from royalties import projections as royalty_projection
from royalties.ledger import ledger_balance
from royalties.models import LedgerEntry, LedgerLine, License
from tests.conftest import publish_version, purchase

from .kit import Registry

pytestmark = pytest.mark.django_db

POISONED_APPLY: set[str] = set()  # transaction hashes this projection refuses to apply
POISONED_ROLLBACK: set[str] = set()  # ... and to roll back
THIS = __name__


class PoisonError(Exception):
    pass


def apply(events):
    royalty_projection.apply(events)  # real writes first: the failed batch must leave none behind
    for event in events:
        if event.tx_hash in POISONED_APPLY:
            raise PoisonError(f"cannot apply {event} (node {django_settings.CHAIN_RPC_URL})")


def rollback(events):
    royalty_projection.rollback(events)
    for event in events:
        if event.tx_hash in POISONED_ROLLBACK:
            raise PoisonError(f"cannot roll back {event}")


@pytest.fixture
def indexed(chain, settings):
    settings.CONFIRMATIONS = 1
    settings.REGISTRY_DEPLOY_BLOCK = chain.deploy_block
    return chain


@pytest.fixture
def poisonable(indexed, settings):
    """The licence and ledger projection replaced by this module's poisonable copy of it."""
    settings.INDEXER_PROJECTIONS = [THIS, "marketplace.projections"]
    indexer._projections.cache_clear()
    POISONED_APPLY.clear()
    POISONED_ROLLBACK.clear()
    yield indexed
    POISONED_APPLY.clear()
    POISONED_ROLLBACK.clear()
    indexer._projections.cache_clear()


def chain_logs(anvil) -> set[tuple[str, int]]:
    logs = chain_mod.web3().eth.get_logs({"address": chain_mod.registry_address(), "fromBlock": anvil.deploy_block, "toBlock": "latest"})
    return {(hex0x(log["transactionHash"]), log["logIndex"]) for log in logs}


def mirror() -> set[tuple[str, int]]:
    return set(ChainEvent.objects.values_list("tx_hash", "log_index"))


def tx(receipt) -> str:
    return hex0x(receipt["transactionHash"])


def ledger_matches_chain(*addresses: str) -> bool:
    contract = chain_mod.registry_contract()
    return all(ledger_balance(address=a) == contract.functions.creditOf(a).call() for a in addresses)


def test_a_poison_event_between_purchases_and_a_revocation_is_skipped_and_everything_else_lands(
    poisonable, live_version, make_party, client
):
    first, second = make_party("first", poisonable.keys[2]), make_party("second", poisonable.keys[3])
    vendor = live_version.model.vendor.address
    fee_recipient = poisonable.account(9).address
    reg = Registry(poisonable)
    model_id = to_bytes32(live_version.model.chain_model_id)

    purchase(poisonable, live_version.model.chain_model_id, first.key)
    poison = reg.send(reg.f.setTerms(model_id, 2 * 10**15, 0, True), vendor)
    POISONED_APPLY.add(tx(poison))
    purchase(poisonable, live_version.model.chain_model_id, second.key)
    reg.send(reg.f.revokeVersion(model_id, 1, keccak(text="broken")), vendor)

    run = indexer_run()

    # every event is stored and the cursor passed the poison
    assert mirror() == chain_logs(poisonable) and run.events == len(mirror())
    assert IndexerCursor.objects.get().block_number >= poison["blockNumber"]
    # the poison is recorded, for the projection that could not apply it only
    skip = SkippedEvent.objects.get()
    assert (skip.event.tx_hash, skip.event.name, skip.projection) == (tx(poison), "TermsChanged", THIS)
    assert skip.error.startswith("PoisonError: cannot apply TermsChanged")
    # that projection applied everything else, exactly once (its failed batch left nothing behind)
    assert set(License.objects.values_list("licensee", flat=True)) == {first.address, second.address}
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.PURCHASE).count() == 2
    assert not LedgerEntry.objects.filter(tx_hash=tx(poison)).exists()
    assert ledger_matches_chain(vendor, fee_recipient)
    assert LedgerLine.objects.filter(account=f"wallet:{first.address}").count() == 1
    # and the other projection applied every event, the poison included
    version = Version.objects.get(pk=live_version.pk)
    assert version.revoked and version.revoked_reason == hex0x(keccak(text="broken"))
    assert Model.objects.get(pk=live_version.model_id).price_wei == 2 * 10**15

    # the health endpoint shows it, without the node's URL that was in the error
    response = client.get("/api/v1/chain/status")
    assert response.status_code == 200
    body = response.json()
    assert body["skipped_events"] == 1 and body["indexed_block"] == IndexerCursor.objects.get().block_number
    assert body["head"] == chain_mod.web3().eth.block_number and body["lag_blocks"] == body["head"] - body["indexed_block"]
    (shown,) = body["recent_skipped"]
    assert shown["event"] == "TermsChanged" and shown["tx_hash"] == tx(poison) and shown["projection"] == THIS
    assert shown["block_number"] == poison["blockNumber"] and shown["log_index"] == skip.event.log_index
    assert poisonable.rpc_url not in response.content.decode() and "<url>" in shown["error"]


def test_after_a_skip_later_runs_index_normally(poisonable, live_version, make_party):
    first, later = make_party("first", poisonable.keys[2]), make_party("later", poisonable.keys[3])
    POISONED_APPLY.add(tx(purchase(poisonable, live_version.model.chain_model_id, first.key)))
    indexer_run()
    assert SkippedEvent.objects.filter(event__name="LicensePurchased").exists()
    assert not License.objects.filter(licensee=first.address).exists()

    purchase(poisonable, live_version.model.chain_model_id, later.key)
    run = indexer_run()
    assert run.events >= 2 and mirror() == chain_logs(poisonable)
    assert License.objects.filter(licensee=later.address).exists()
    assert set(SkippedEvent.objects.values_list("event__tx_hash", flat=True)) == POISONED_APPLY  # nothing new
    assert indexer_run().events == 0


def test_reapply_skipped_applies_them_once_the_fault_is_fixed(poisonable, live_version, make_party):
    import io

    from django.core.management import call_command

    buyer = make_party("buyer", poisonable.keys[2])
    POISONED_APPLY.add(tx(purchase(poisonable, live_version.model.chain_model_id, buyer.key)))
    indexer_run()
    with pytest.raises(SystemExit):  # still poison: kept, with its error
        call_command("reapply_skipped", stdout=io.StringIO())
    assert SkippedEvent.objects.exists() and not License.objects.filter(licensee=buyer.address).exists()

    POISONED_APPLY.clear()  # the fault is fixed
    out = io.StringIO()
    call_command("reapply_skipped", stdout=out)
    assert "still skipped" in out.getvalue() and not SkippedEvent.objects.exists()
    assert License.objects.filter(licensee=buyer.address).exists()
    assert ledger_matches_chain(live_version.model.vendor.address, poisonable.account(9).address)
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.PURCHASE).count() == 1


def test_a_reorg_rolls_every_other_event_back_when_one_rollback_fails(poisonable, live_version, make_party, caplog):
    buyer = make_party("buyer", poisonable.keys[2])
    reg = Registry(poisonable)
    model_id = to_bytes32(live_version.model.chain_model_id)
    indexer_run()
    before_reorg = mirror()
    purchase(poisonable, live_version.model.chain_model_id, buyer.key)
    revoke = reg.send(reg.f.revokeVersion(model_id, 1, keccak(text="oops")), live_version.model.vendor.address)
    indexer_run()
    assert License.objects.filter(licensee=buyer.address).exists() and Version.objects.get(pk=live_version.pk).revoked

    POISONED_ROLLBACK.add(tx(revoke))
    poisonable.rpc("anvil_reorg", [2, []])  # the purchase and the revocation leave the chain
    with caplog.at_level(logging.ERROR, logger="registry.indexer"):
        run = indexer_run()
    assert run.rolled_back_to is not None and mirror() == chain_logs(poisonable) == before_reorg
    assert not License.objects.filter(licensee=buyer.address).exists()
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.PURCHASE).exists()
    assert not Version.objects.get(pk=live_version.pk).revoked  # the other projection rolled back all
    assert any("could not roll back VersionRevoked" in r.getMessage() for r in caplog.records)


def test_a_version_whose_catalog_values_overflow_cannot_poison_the_mirror(indexed, live_version, vendor, make_party, gguf_file):
    """The issue's realistic poison: a version claiming 2^80 parameters made the catalog refresh
    overflow the bigint column inside the indexer's transaction, on every run."""
    first, second = make_party("first", indexed.keys[2]), make_party("second", indexed.keys[3])
    v2 = publish_version(vendor, live_version.model, {"model.gguf": gguf_file.read_bytes()})
    assert v2.status == Version.Status.LIVE
    Version.objects.filter(pk=v2.pk).update(metadata={**v2.metadata, "parameter_count": 2**80, "architecture": ["x"]})
    reg = Registry(indexed)
    model_id = to_bytes32(live_version.model.chain_model_id)
    purchase(indexed, live_version.model.chain_model_id, first.key)
    purchase(indexed, live_version.model.chain_model_id, second.key)
    reg.send(reg.f.revokeVersion(model_id, 1, keccak(text="broken")), vendor.address)

    indexer_run()
    assert mirror() == chain_logs(indexed) and not SkippedEvent.objects.exists()
    assert set(License.objects.values_list("licensee", flat=True)) == {first.address, second.address}
    assert ledger_matches_chain(vendor.address, indexed.account(9).address)
    assert Version.objects.get(pk=live_version.pk).revoked
    model = Model.objects.get(pk=live_version.model_id)
    assert model.latest_version_number == 2 and model.parameter_count is None and model.architecture == ""


def test_chain_status_says_the_head_is_unknown_while_the_chain_is_down(chain_down, settings, client):
    settings.REGISTRY_DEPLOY_BLOCK = chain_down.deploy_block
    body = client.get("/api/v1/chain/status").json()
    assert body["head"] is None and body["lag_blocks"] is None
    assert body["chain_id"] == 31337 and body["skipped_events"] == 0 and body["recent_skipped"] == []


def test_the_admin_lists_skipped_events(poisonable, live_version, admin_client):
    POISONED_APPLY.add(live_version.publish_transaction.tx_hash)
    indexer_run()
    skip = SkippedEvent.objects.get()
    page = admin_client.get("/admin/registry/skippedevent/").content.decode()
    assert skip.event.tx_hash in page and "VersionPublished" in page and THIS in page and "PoisonError" in page
    assert admin_client.get(f"/admin/registry/skippedevent/{skip.pk}/change/").status_code == 200
