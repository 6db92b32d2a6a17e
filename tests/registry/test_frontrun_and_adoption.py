"""Versions the marketplace did not send: a relayed publication copied from the mempool and
mined first still counts; a version the vendor published from their own wallet is adopted
(shown, no files here) and the next number comes from the contract, never from the database."""

import hashlib
import io

import pytest
from eth_account import Account
from hexbytes import HexBytes

from hallmark import eip712
from marketplace import selectors, services
from marketplace.errors import Conflict, Unavailable
from marketplace.models import Version
from registry import chain as chain_mod
from registry.chain import hex0x, to_bytes32
from registry.indexer import indexer_run
from registry.models import ChainTransaction
from registry.services import TransactionPending, transaction_process
from tests.conftest import free_port, reset_chain_caches

pytestmark = pytest.mark.django_db(transaction=True)


def awaiting_signature(model, files: dict[str, bytes]) -> Version:
    version = services.version_create(model=model)
    for name, data in files.items():
        services.artifact_upload(version=version, path=name, stream=io.BytesIO(data))
    services.version_finalize(version=version)
    version = services.version_hash_and_inspect(version_id=version.pk)
    assert version.status == Version.Status.AWAITING_SIGNATURE
    return version


def sign(version: Version, key: str) -> str:
    return eip712.sign_typed_data(Version.objects.get(pk=version.pk).typed_data, key)


def send(key: str, call, **fees) -> dict:
    w3 = chain_mod.web3()
    account = Account.from_key(key)
    tx = call.build_transaction({"from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending"), **fees})
    return w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)


def publish_from_own_wallet(vendor, model, label: bytes) -> bytes:
    """The vendor calls `publishVersion` from their own wallet, outside the marketplace."""
    root = hashlib.sha256(b"root:" + label).digest()
    call = chain_mod.registry_contract().functions.publishVersion(
        to_bytes32(model.chain_model_id), root, hashlib.sha256(b"meta:" + label).digest()
    )
    receipt = chain_mod.web3().eth.wait_for_transaction_receipt(send(vendor.key, call))
    assert receipt["status"] == 1
    return root


def test_a_relayed_publication_copied_from_the_mempool_and_mined_first_still_goes_live(chain, vendor, live_version, gguf_file, settings):
    model = live_version.model
    version = awaiting_signature(model, {"model.gguf": gguf_file.read_bytes(), "README.md": b"v2"})
    version = services.version_submit_signature(version=version, signature=sign(version, vendor.key))
    row = ChainTransaction.objects.get(pk=version.publish_transaction_id)
    chain.rpc("evm_setAutomine", [False])
    try:
        settings.RECEIPT_TIMEOUT = 0
        with pytest.raises(TransactionPending):
            transaction_process(transaction_id=row.pk)  # signed and broadcast: it waits in the pool
        row.refresh_from_db()
        assert row.status == "signed"
        ours = row.tx_hash
        # anyone can read the pending call's arguments and send them first, with a higher tip
        args = row.args
        copied = chain_mod.registry_contract().functions.publishVersionBySig(
            to_bytes32(args["modelId"]), int(args["version"]), to_bytes32(args["rootDigest"]),
            to_bytes32(args["metadataDigest"]), int(args["deadline"]), HexBytes(args["signature"]),
        )
        theirs = send(chain.keys[5], copied, maxPriorityFeePerGas=50 * 10**9, maxFeePerGas=100 * 10**9, gas=300_000)
        chain.rpc("evm_mine")
    finally:
        chain.rpc("evm_setAutomine", [True])
    w3 = chain_mod.web3()
    assert w3.eth.get_transaction_receipt(theirs)["status"] == 1
    assert w3.eth.get_transaction_receipt(ours)["status"] == 0  # ours came second and reverted

    settings.RECEIPT_TIMEOUT = 30
    version = services.version_anchor(version_id=version.pk)
    assert version.status == Version.Status.LIVE and version.number == 2 and not version.error_code
    row.refresh_from_db()
    assert row.status == "confirmed" and row.tx_hash == hex0x(theirs)
    assert ours in row.replaced_hashes and row.fee_wei > 0  # what our reverted copy cost is counted


def test_a_version_published_from_the_vendors_own_wallet_is_adopted_and_the_next_one_follows_it(chain, vendor, live_version, gguf_file, client):
    model = live_version.model
    root = publish_from_own_wallet(vendor, model, b"elsewhere")
    indexer_run()

    adopted = model.versions.get(number=2)
    assert adopted.adopted and adopted.status == Version.Status.LIVE and adopted.root_digest == root.hex()
    assert adopted.signer == vendor.address and adopted.published_block and not adopted.artifacts.exists()
    # `main` is the latest live version with files hosted here; v2 still names the adopted one
    assert selectors.version_resolve(model=model, revision="main").number == 1
    assert selectors.version_resolve(model=model, revision="v2").pk == adopted.pk
    model.refresh_from_db()  # the catalog still describes v1, the version a buyer can download here
    assert model.latest_version_number == 1 and model.architecture == "llama" and ",gguf," in model.file_formats
    tree = client.get("/api/models/acme/tiny/tree/main?recursive=true")
    assert tree.status_code == 200 and [f["path"] for f in tree.json()] == ["model.gguf"]
    page = client.get("/acme/tiny")
    assert page.status_code == 200 and "Published on chain outside Hallmark" in page.content.decode()

    following = awaiting_signature(model, {"model.gguf": gguf_file.read_bytes(), "README.md": b"v3"})
    services.version_submit_signature(version=following, signature=sign(following, vendor.key))
    following = services.version_anchor(version_id=following.pk)
    assert following.status == Version.Status.LIVE and following.number == 3
    assert selectors.version_resolve(model=model, revision="main").pk == following.pk


def test_a_message_signed_for_a_number_taken_elsewhere_is_refreshed_with_the_contracts_next_number(chain, vendor, live_version, gguf_file):
    model = live_version.model
    version = awaiting_signature(model, {"model.gguf": gguf_file.read_bytes(), "README.md": b"late"})
    assert int(version.typed_data["message"]["version"]) == 2
    publish_from_own_wallet(vendor, model, b"first")  # v2 is taken on chain; the indexer has not run

    with pytest.raises(Conflict) as caught:
        services.version_submit_signature(version=version, signature=sign(version, vendor.key))
    assert caught.value.code == "stale_signature_request" and "version 3" in str(caught.value)
    version.refresh_from_db()
    assert int(version.typed_data["message"]["version"]) == 3 and version.status == Version.Status.AWAITING_SIGNATURE
    assert not ChainTransaction.objects.filter(function="publishVersionBySig", args__version="2").exclude(pk=live_version.publish_transaction_id).exists()

    services.version_submit_signature(version=version, signature=sign(version, vendor.key))
    version = services.version_anchor(version_id=version.pk)
    assert version.status == Version.Status.LIVE and version.number == 3


def test_a_pending_version_that_loses_its_number_to_the_vendors_wallet_fails_with_chain_mismatch(chain, vendor, live_version, gguf_file):
    model = live_version.model
    ours = awaiting_signature(model, {"model.gguf": gguf_file.read_bytes(), "README.md": b"ours"})
    services.version_submit_signature(version=ours, signature=sign(ours, vendor.key))
    root = publish_from_own_wallet(vendor, model, b"theirs")  # lands before the relayer sends ours

    ours = services.version_anchor(version_id=ours.pk)
    assert ours.status == Version.Status.FAILED and ours.number is None and ours.error_code == "chain_mismatch"
    assert "v2 of acme/tiny was published on chain outside Hallmark" in ours.error_message and root.hex() in ours.error_message
    indexer_run()
    assert model.versions.get(number=2).adopted

    again = awaiting_signature(model, {"model.gguf": gguf_file.read_bytes(), "README.md": b"ours"})
    services.version_submit_signature(version=again, signature=sign(again, vendor.key))
    assert services.version_anchor(version_id=again.pk).number == 3


def test_the_indexer_fails_our_pending_version_whose_number_was_published_elsewhere(chain, vendor, live_version, gguf_file):
    model = live_version.model
    ours = awaiting_signature(model, {"model.gguf": gguf_file.read_bytes(), "README.md": b"ours"})
    services.version_submit_signature(version=ours, signature=sign(ours, vendor.key))
    publish_from_own_wallet(vendor, model, b"theirs")
    indexer_run()  # before the relayer looks at ours

    ours.refresh_from_db()
    assert ours.status == Version.Status.FAILED and ours.number is None and ours.error_code == "chain_mismatch"
    assert "sign it again as a new version" in ours.error_message
    assert model.versions.get(number=2).adopted


def test_a_stale_message_cannot_be_rebuilt_while_the_chain_is_unreachable_503_and_nothing_saved(chain, vendor, live_version, gguf_file, settings):
    settings.SIGNATURE_TTL_SECONDS = -60  # the message is out of date as soon as it is built
    version = awaiting_signature(live_version.model, {"model.gguf": gguf_file.read_bytes(), "README.md": b"down"})
    signature = sign(version, vendor.key)
    settings.CHAIN_RPC_URL = f"http://127.0.0.1:{free_port()}"
    reset_chain_caches()
    with pytest.raises(Unavailable) as caught:
        services.version_submit_signature(version=version, signature=signature)
    assert caught.value.status == 503 and caught.value.code == "chain_unavailable" and caught.value.headers["Retry-After"]
    assert "next version number" in str(caught.value)
    version.refresh_from_db()
    assert version.status == Version.Status.AWAITING_SIGNATURE and version.number is None
    assert ChainTransaction.objects.filter(function="publishVersionBySig").count() == 1  # v1's only


def test_a_version_the_indexer_made_live_first_still_gets_its_outbox_row_settled(chain, vendor, live_version, gguf_file):
    from datetime import timedelta

    from registry.services import _broadcast, _sign

    model = live_version.model
    version = awaiting_signature(model, {"model.gguf": gguf_file.read_bytes(), "README.md": b"v2"})
    version = services.version_submit_signature(version=version, signature=sign(version, vendor.key))
    row = _sign(ChainTransaction.objects.get(pk=version.publish_transaction_id))
    _broadcast(row)  # sent and mined, then the worker is lost before it saw the receipt
    indexer_run()
    version.refresh_from_db()
    assert version.status == Version.Status.LIVE
    assert ChainTransaction.objects.get(pk=row.pk).status == ChainTransaction.Status.SIGNED

    assert services.pending_chain_resume(older_than=timedelta(0)) >= 1  # the sweeper finds the row
    services.version_anchor(version_id=version.pk)  # what the queued task does
    settled = ChainTransaction.objects.get(pk=row.pk)
    assert settled.status == ChainTransaction.Status.CONFIRMED and settled.block_number and settled.fee_wei > 0
