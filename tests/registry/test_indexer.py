"""The event indexer: every event once, bounded ranges, confirmations, and reorg rollback until
the mirror equals the chain (a real reorg made by anvil's own RPC)."""

import pytest
from eth_utils import keccak

from marketplace.models import Version
from registry import chain as chain_mod
from registry.chain import hex0x, to_bytes32
from registry.indexer import indexer_run
from registry.models import ChainEvent, IndexerCursor
from royalties.models import License
from tests.conftest import free_port, purchase, reset_chain_caches, start_anvil, stop_process

from .kit import Registry

pytestmark = pytest.mark.django_db


def chain_logs(anvil) -> set[tuple[str, int]]:
    """What the chain itself says, read from scratch."""
    w3 = chain_mod.web3()
    logs = w3.eth.get_logs({"address": chain_mod.registry_address(), "fromBlock": anvil.deploy_block, "toBlock": "latest"})
    return {(hex0x(log["transactionHash"]), log["logIndex"]) for log in logs}


def mirror() -> set[tuple[str, int]]:
    return set(ChainEvent.objects.values_list("tx_hash", "log_index"))


@pytest.fixture
def indexed(chain, settings):
    settings.CONFIRMATIONS = 1
    settings.REGISTRY_DEPLOY_BLOCK = chain.deploy_block
    return chain


def test_every_event_is_mirrored_once_and_projections_follow(indexed, live_version, make_party):
    buyer = make_party("buyer", indexed.keys[2])
    purchase(indexed, live_version.model.chain_model_id, buyer.key)
    reg = Registry(indexed)
    model_id = to_bytes32(live_version.model.chain_model_id)
    reg.send(reg.f.revokeVersion(model_id, 1, keccak(text="broken")), live_version.model.vendor.address)

    run = indexer_run()
    assert run.events == len(chain_logs(indexed)) and mirror() == chain_logs(indexed)
    assert indexer_run().events == 0 and mirror() == chain_logs(indexed)  # applied once
    assert License.objects.get(licensee=buyer.address).source == "event"
    version = Version.objects.get(pk=live_version.pk)
    assert version.revoked and version.revoked_reason == hex0x(keccak(text="broken"))
    names = set(ChainEvent.objects.values_list("name", flat=True))
    assert {"ModelCreated", "VersionPublished", "LicensePurchased", "RoyaltyCredited", "VersionRevoked"} <= names


def test_small_ranges_give_the_same_mirror(indexed, live_version, make_party):
    buyer = make_party("buyer", indexed.keys[2])
    purchase(indexed, live_version.model.chain_model_id, buyer.key)
    while True:
        run = indexer_run(max_range=1, max_ranges=3)
        if run.to_block >= chain_mod.web3().eth.block_number:
            break
    assert mirror() == chain_logs(indexed)


def test_only_blocks_confirmations_deep_are_indexed(indexed, settings, live_version, make_party):
    settings.CONFIRMATIONS = 3
    head = chain_mod.web3().eth.block_number
    indexer_run()
    assert IndexerCursor.objects.get().block_number == head - 2
    buyer = make_party("buyer", indexed.keys[2])
    receipt = purchase(indexed, live_version.model.chain_model_id, buyer.key)
    indexer_run()
    assert not ChainEvent.objects.filter(block_number=receipt["blockNumber"]).exists()
    indexed.rpc("anvil_mine", [2])
    indexer_run()
    assert ChainEvent.objects.filter(block_number=receipt["blockNumber"], name="LicensePurchased").exists()


def test_a_reorg_rolls_the_mirror_back_and_it_ends_equal_to_the_chain(indexed, live_version, make_party):
    buyer = make_party("buyer", indexed.keys[2])
    reg = Registry(indexed)
    model_id = to_bytes32(live_version.model.chain_model_id)
    indexer_run()
    before_reorg = mirror()

    purchase(indexed, live_version.model.chain_model_id, buyer.key)
    reg.send(reg.f.revokeVersion(model_id, 1, keccak(text="oops")), live_version.model.vendor.address)
    indexer_run()
    assert License.objects.filter(licensee=buyer.address).exists()
    assert Version.objects.get(pk=live_version.pk).revoked

    # anvil replaces the last two blocks (the purchase and the revocation) with empty ones
    indexed.rpc("anvil_reorg", [2, []])
    assert not reg.f.hasLicense(model_id, buyer.address).call()
    run = indexer_run()
    assert run.rolled_back_to is not None and run.removed >= 2
    assert mirror() == chain_logs(indexed) == before_reorg
    assert not License.objects.filter(licensee=buyer.address).exists()
    assert not Version.objects.get(pk=live_version.pk).revoked


def test_after_a_reorg_that_replaces_events_the_new_ones_are_mirrored(indexed, live_version, make_party):
    first, second = make_party("first", indexed.keys[2]), make_party("second", indexed.keys[3])
    snapshot = indexed.rpc("evm_snapshot")
    purchase(indexed, live_version.model.chain_model_id, first.key)
    indexer_run()
    assert License.objects.filter(licensee=first.address).exists()

    indexed.rpc("evm_revert", [snapshot])  # a competing branch: another purchase wins the block
    purchase(indexed, live_version.model.chain_model_id, second.key)
    indexed.rpc("anvil_mine", [2])
    run = indexer_run()
    assert run.rolled_back_to is not None
    assert mirror() == chain_logs(indexed)
    assert not License.objects.filter(licensee=first.address).exists()
    assert License.objects.filter(licensee=second.address).exists()


def test_a_node_whose_head_is_behind_the_cursor_is_waited_for_not_taken_for_a_reorg(indexed, settings, live_version, make_party):
    first, second = make_party("first", indexed.keys[2]), make_party("second", indexed.keys[3])
    fork_block = chain_mod.web3().eth.block_number
    purchase(indexed, live_version.model.chain_model_id, first.key)
    indexed.rpc("anvil_mine", [3])
    indexer_run()
    cursor = IndexerCursor.objects.get()
    indexed_events = mirror()
    assert License.objects.filter(licensee=first.address).exists()

    # a second node, the same chain up to fork_block, that has not seen the later blocks yet
    port = free_port()
    lagging = start_anvil(port, "--fork-url", indexed.rpc_url, "--fork-block-number", str(fork_block))
    try:
        settings.CHAIN_RPC_URL = f"http://127.0.0.1:{port}"
        reset_chain_caches()
        assert chain_mod.web3().eth.block_number == fork_block < cursor.block_number
        run = indexer_run()
        assert run.rolled_back_to is None and run.events == 0
        assert IndexerCursor.objects.get().block_hash == cursor.block_hash and mirror() == indexed_events
        assert License.objects.filter(licensee=first.address).exists()
    finally:
        settings.CHAIN_RPC_URL = indexed.rpc_url
        reset_chain_caches()
        stop_process(lagging)

    purchase(indexed, live_version.model.chain_model_id, second.key)  # the real node goes on
    run = indexer_run()
    assert run.rolled_back_to is None and run.events > 0 and mirror() == chain_logs(indexed)
    assert set(License.objects.values_list("licensee", flat=True)) == {first.address, second.address}


def test_a_digest_that_disagrees_with_the_chain_is_never_served(indexed, live_version, client):
    Version.objects.filter(pk=live_version.pk).update(root_digest="00" * 32)
    indexer_run()
    version = Version.objects.get(pk=live_version.pk)
    assert version.status == Version.Status.FAILED and version.error_code == "chain_mismatch"
    assert client.get("/acme/tiny/resolve/main/model.gguf").status_code == 404


def test_index_chain_command_runs_the_indexer_once(indexed, live_version):
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command("index_chain", stdout=out)
    assert "indexed to block" in out.getvalue() and mirror() == chain_logs(indexed)


def test_indexing_a_purchase_keeps_the_hot_path_caches(indexed, live_version, make_party, django_capture_on_commit_callbacks):
    """A purchase only adds a licence and credits (LicensePurchased, RoyaltyCredited,
    PlatformFeeCredited): nothing a cache keeps can be made wrong by it, so every process keeps
    its caches; a revocation clears them."""
    from registry.models import CacheGeneration

    with django_capture_on_commit_callbacks(execute=True):  # the bump runs after the commit
        indexer_run()  # the publication itself does clear them
    before = CacheGeneration.objects.get(pk=1).value
    buyer = make_party("buyer", indexed.keys[2])
    purchase(indexed, live_version.model.chain_model_id, buyer.key)
    with django_capture_on_commit_callbacks(execute=True):
        indexer_run()
    names = set(ChainEvent.objects.filter(name__in=["LicensePurchased", "RoyaltyCredited", "PlatformFeeCredited"]).values_list("name", flat=True))
    assert names == {"LicensePurchased", "RoyaltyCredited", "PlatformFeeCredited"}
    assert CacheGeneration.objects.get(pk=1).value == before

    Registry(indexed).send(
        chain_mod.registry_contract().functions.revokeVersion(to_bytes32(live_version.model.chain_model_id), 1, b"\x01" * 32),
        live_version.model.vendor.address,
    )
    with django_capture_on_commit_callbacks(execute=True):
        indexer_run()
    assert CacheGeneration.objects.get(pk=1).value > before
