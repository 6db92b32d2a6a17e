"""Licences read at the latest block are short-lived grants until the purchase is CONFIRMATIONS
deep: never mirrored before, so a purchase that a reorg removes grants nothing afterwards."""

from datetime import UTC, datetime

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from marketplace.models import Download
from registry import chain as chain_module
from registry.chain import to_bytes32
from royalties.models import License
from royalties.services import license_check
from tests.conftest import link_wallet, publish, purchase

pytestmark = pytest.mark.django_db
URL = "/acme/tiny/resolve/main/model.gguf"


@pytest.fixture
def buyer(chain, settings, live_version, make_party):
    """acme/tiny is live (published at CONFIRMATIONS=1); from now on a purchase needs 3 blocks."""
    settings.CONFIRMATIONS = 3
    return make_party("buyer", chain.keys[2])


def client_for(party) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {party.token}")
    return client


def confirm(party, tx_hash):
    return client_for(party).post("/api/v1/purchases", {"tx_hash": tx_hash}, format="json")


def test_a_purchase_reorged_out_grants_nothing_once_its_short_grant_ends(chain, settings, live_version, buyer):
    settings.LICENSE_UNCONFIRMED_GRANT_SECONDS = 0  # the short grant is over at once (no sleeping)
    model_id = live_version.model.chain_model_id
    receipt = purchase(chain, model_id, buyer.key)
    client = client_for(buyer)

    assert client.get(URL).status_code == 200  # usable seconds after the purchase is mined
    assert Download.objects.get(status_code=200).license_source == "unconfirmed"
    decision = license_check(model_id=model_id, wallets=[buyer.address])
    assert decision.granted and not decision.confirmed and decision.source == "unconfirmed" and decision.perpetual
    answer = confirm(buyer, receipt["transactionHash"].to_0x_hex())
    assert answer.status_code == 200
    body = answer.json()
    assert (body["status"], body["confirmed"], body["depth"], body["confirmations"]) == ("unconfirmed", False, 1, 3)
    assert body["licenses"][0]["licensee"] == buyer.address and body["licenses"][0]["perpetual"]
    assert not License.objects.exists()  # nothing mirrored while a reorg can still remove it

    chain.rpc("anvil_reorg", [1, []])  # the purchase's block is replaced by an empty one
    assert chain_module.registry_contract().functions.licenseExpiry(to_bytes32(model_id), buyer.address).call() == 0

    refused = client.get(URL)
    assert refused.status_code == 403 and refused["X-Error-Code"] == "GatedRepo"
    assert not license_check(model_id=model_id, wallets=[buyer.address]).granted
    assert confirm(buyer, receipt["transactionHash"].to_0x_hex()).status_code == 202  # gone from the chain
    assert not License.objects.exists()


def test_an_unconfirmed_grant_is_kept_at_most_the_short_grant_time(chain, settings, live_version, buyer):
    settings.LICENSE_UNCONFIRMED_GRANT_SECONDS = 15
    purchase(chain, live_version.model.chain_model_id, buyer.key)
    decision = license_check(model_id=live_version.model.chain_model_id, wallets=[buyer.address])
    assert not decision.confirmed and decision.grant_seconds(timezone.now()) == 15  # perpetual, yet 15 s
    chain.rpc("anvil_mine", [2])
    decision = license_check(model_id=live_version.model.chain_model_id, wallets=[buyer.address])
    assert decision.confirmed and decision.grant_seconds(timezone.now()) is None  # as long as caches keep anything


def test_a_purchase_confirmations_deep_is_mirrored_as_before(chain, live_version, buyer):
    model_id = live_version.model.chain_model_id
    receipt = purchase(chain, model_id, buyer.key)
    tx_hash = receipt["transactionHash"].to_0x_hex()
    assert confirm(buyer, tx_hash).json()["confirmed"] is False
    chain.rpc("anvil_mine", [2])  # the purchase is 3 blocks deep now

    decision = license_check(model_id=model_id, wallets=[buyer.address])
    assert decision.granted and decision.confirmed and decision.source == "chain"
    mirrored = License.objects.get(licensee=buyer.address)
    assert mirrored.perpetual and mirrored.source == License.Source.CHAIN_READ
    assert mirrored.observed_block == receipt["blockNumber"]  # the safe block
    body = confirm(buyer, tx_hash).json()
    assert (body["status"], body["confirmed"], body["depth"]) == ("confirmed", True, 3)
    assert License.objects.get(licensee=buyer.address).source == License.Source.EVENT
    assert client_for(buyer).get(URL).status_code == 200


def test_a_renewal_not_yet_confirmed_is_not_mirrored_over_the_confirmed_expiry(chain, settings, vendor, gguf_file, make_party):
    settings.CONFIRMATIONS = 1
    timed = publish(vendor, "timed", {"model.gguf": gguf_file.read_bytes()}, price=10**15, duration=3600)
    settings.CONFIRMATIONS = 3
    buyer = make_party("buyer", chain.keys[2])
    model_id = timed.model.chain_model_id
    first = purchase(chain, model_id, buyer.key)
    chain.rpc("anvil_mine", [2])
    purchase(chain, model_id, buyer.key)  # renewal: one block deep

    decision = license_check(model_id=model_id, wallets=[buyer.address])
    mined_at = chain_module.web3().eth.get_block(first["blockNumber"])["timestamp"]
    confirmed_expiry = datetime.fromtimestamp(mined_at + 3600, tz=UTC)
    assert decision.confirmed and decision.expires_at == confirmed_expiry
    assert License.objects.get(licensee=buyer.address).expires_at == confirmed_expiry


def test_a_confirmed_licence_of_any_wallet_wins_over_an_unconfirmed_one(chain, live_version, buyer):
    second = chain.account(3).address
    link_wallet(buyer.user, chain.keys[3])
    model_id = live_version.model.chain_model_id
    purchase(chain, model_id, chain.keys[3])
    chain.rpc("anvil_mine", [2])
    purchase(chain, model_id, buyer.key)  # the first wallet's purchase is one block deep

    decision = license_check(model_id=model_id, wallets=[buyer.address, second])
    assert decision.confirmed and decision.source == "chain" and decision.licensee == second
    assert list(License.objects.values_list("licensee", flat=True)) == [second]


def test_a_licence_read_from_blocks_a_deeper_reorg_removed_is_forgotten(chain, settings, live_version, buyer):
    """A reorg deeper than CONFIRMATIONS is outside what the setting promises, yet the mirror
    must not keep a licence it read from the contract at a block that left the chain: when the
    indexer rolls back, licences read from above the common ancestor are forgotten."""
    from registry.indexer import indexer_run

    settings.REGISTRY_DEPLOY_BLOCK = chain.deploy_block
    model_id = live_version.model.chain_model_id
    chain.rpc("anvil_mine", [5])  # empty blocks: the reorg below removes the purchase, not the publication
    indexer_run()  # the mirror's cursor sits at the head before the purchase
    purchase(chain, model_id, buyer.key)
    chain.rpc("anvil_mine", [2])  # 3 deep: confirmed
    assert license_check(model_id=model_id, wallets=[buyer.address]).confirmed
    row = License.objects.get(licensee=buyer.address)
    assert row.source == License.Source.CHAIN_READ
    indexer_run()  # the cursor passes the purchase's block (the event is mirrored too)

    chain.rpc("anvil_reorg", [4, []])  # deeper than CONFIRMATIONS: the purchase is gone
    assert chain_module.registry_contract().functions.licenseExpiry(to_bytes32(model_id), buyer.address).call() == 0
    run = indexer_run()
    assert run.rolled_back_to is not None
    assert not License.objects.filter(licensee=buyer.address).exists()
    refused = client_for(buyer).get(URL)
    assert refused.status_code == 403 and refused["X-Error-Code"] == "GatedRepo"


@pytest.mark.parametrize("written_by", ["contract_read", "purchase_receipt"])
def test_a_licence_written_ahead_of_the_indexer_from_a_block_a_deep_reorg_replaced_is_forgotten(
    chain, settings, live_version, buyer, written_by,
):
    """The indexer's cursor is below the purchase when a reorg deeper than CONFIRMATIONS removes
    it: the cursor's block is still canonical, so no rollback happens, yet the row read from the
    contract (or from the receipt) at the replaced block must not survive the indexer passing it."""
    from registry.indexer import indexer_run

    settings.REGISTRY_DEPLOY_BLOCK = chain.deploy_block
    model_id = live_version.model.chain_model_id
    chain.rpc("anvil_mine", [5])
    indexer_run()  # the cursor sits 2 blocks below the head
    cursor_block = indexer_run().to_block
    receipt = purchase(chain, model_id, buyer.key)
    chain.rpc("anvil_mine", [2])  # 3 deep: confirmed
    if written_by == "contract_read":
        assert license_check(model_id=model_id, wallets=[buyer.address]).confirmed
    else:
        assert confirm(buyer, receipt["transactionHash"].to_0x_hex()).json()["confirmed"] is True
    row = License.objects.get(licensee=buyer.address)
    assert row.observed_block == receipt["blockNumber"] and row.observed_block_hash == receipt["blockHash"].to_0x_hex()
    assert cursor_block < receipt["blockNumber"] - 1  # the reorg below leaves the cursor's block alone

    chain.rpc("anvil_reorg", [4, []])  # deeper than CONFIRMATIONS, above the cursor: the purchase is gone
    assert chain_module.registry_contract().functions.licenseExpiry(to_bytes32(model_id), buyer.address).call() == 0
    run = indexer_run()
    assert run.rolled_back_to is None and run.to_block >= receipt["blockNumber"]
    assert not License.objects.filter(licensee=buyer.address).exists()
    refused = client_for(buyer).get(URL)
    assert refused.status_code == 403 and refused["X-Error-Code"] == "GatedRepo"


def test_a_licence_read_ahead_of_the_indexer_from_a_block_that_stays_is_kept_and_becomes_the_event(
    chain, settings, live_version, buyer,
):
    from registry.indexer import indexer_run

    settings.REGISTRY_DEPLOY_BLOCK = chain.deploy_block
    model_id = live_version.model.chain_model_id
    indexer_run()
    receipt = purchase(chain, model_id, buyer.key)
    chain.rpc("anvil_mine", [2])
    assert license_check(model_id=model_id, wallets=[buyer.address]).source == "chain"
    assert License.objects.get(licensee=buyer.address).source == License.Source.CHAIN_READ

    indexer_run()
    row = License.objects.get(licensee=buyer.address)
    assert (row.source, row.observed_block) == (License.Source.EVENT, receipt["blockNumber"])
    assert row.observed_block_hash == receipt["blockHash"].to_0x_hex()
    assert client_for(buyer).get(URL).status_code == 200


def test_a_licence_mirrored_before_block_hashes_were_kept_is_read_again_once_the_indexer_reaches_it(
    chain, live_version, buyer,
):
    """A row without a hash (written before hashes were kept) cannot be checked: the indexer
    forgets it when it reaches its block, and the next check mirrors it again, with its hash."""
    from royalties import projections

    model_id = live_version.model.chain_model_id
    receipt = purchase(chain, model_id, buyer.key)
    chain.rpc("anvil_mine", [2])
    license_check(model_id=model_id, wallets=[buyer.address])
    License.objects.filter(licensee=buyer.address).update(observed_block_hash="")
    block, block_hash = receipt["blockNumber"], receipt["blockHash"].to_0x_hex()

    assert projections.observed_blocks(block, block) == [block]
    projections.confirm_observed(block, block, {block: block_hash})
    assert not License.objects.filter(licensee=buyer.address).exists()
    assert license_check(model_id=model_id, wallets=[buyer.address]).source == "chain"
    assert License.objects.get(licensee=buyer.address).observed_block_hash == block_hash


def test_a_read_from_a_block_the_indexer_already_applied_is_mirrored_only_with_the_hash_it_indexed(chain, settings, live_version, buyer):
    """A contract read (or a receipt) that commits after the indexer passed its block would never
    be checked by it: the mirror then takes it only if the block's hash is the one indexed."""
    from registry.indexer import indexer_run
    from royalties.services import license_mirror_ahead

    settings.REGISTRY_DEPLOY_BLOCK = chain.deploy_block
    model_id = live_version.model.chain_model_id
    receipt = purchase(chain, model_id, buyer.key)
    chain.rpc("anvil_mine", [3])
    indexer_run()  # past the purchase's block, whose hash it keeps (the block has a registry log)
    License.objects.all().delete()
    fields = dict(model_id=model_id, licensee=buyer.address, expiry=2**64 - 1, block=receipt["blockNumber"],
                  source=License.Source.CHAIN_READ, seats=1)
    assert license_mirror_ahead(block_hash="0x" + "ab" * 32, **fields) is None  # a fork the indexer did not follow
    assert not License.objects.exists()
    assert license_mirror_ahead(block_hash=receipt["blockHash"].to_0x_hex(), **fields) is not None
    assert License.objects.get(licensee=buyer.address).observed_block_hash == receipt["blockHash"].to_0x_hex()
    License.objects.all().delete()
    assert license_mirror_ahead(**{**fields, "block": receipt["blockNumber"] + 1}, block_hash="0x" + "cd" * 32) is None  # not remembered


@pytest.mark.django_db(transaction=True)
def test_nothing_is_mirrored_ahead_of_the_indexer_while_it_holds_its_cursor(chain, settings, live_version, make_party):
    import threading

    from django.db import connection, transaction

    from registry.indexer import indexer_run
    from registry.models import IndexerCursor
    from royalties.services import license_mirror_ahead

    settings.REGISTRY_DEPLOY_BLOCK = chain.deploy_block
    indexer_run()
    cursor = IndexerCursor.objects.get()
    holding, release = threading.Event(), threading.Event()

    def indexer_applying_a_range():
        with transaction.atomic():
            IndexerCursor.objects.select_for_update().get(pk=cursor.pk)
            holding.set()
            release.wait(30)
        connection.close()

    thread = threading.Thread(target=indexer_applying_a_range)
    thread.start()
    try:
        assert holding.wait(30)
        fields = dict(model_id=live_version.model.chain_model_id, licensee=chain.account(2).address, expiry=2**64 - 1,
                      block=cursor.block_number + 1, source=License.Source.CHAIN_READ, seats=1, block_hash="0x" + "ee" * 32)
        assert license_mirror_ahead(**fields) is None and not License.objects.exists()
    finally:
        release.set()
        thread.join()
    assert license_mirror_ahead(**fields) is not None  # the lock is free again: mirrored, checked by the indexer later
