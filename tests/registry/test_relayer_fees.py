"""What the relayer spends: a transaction stuck below the fee market is replaced (same nonce,
higher fees) and confirmed; the fee paid is recorded; one vendor cannot make it spend more than
RELAYER_DAILY_GAS_LIMIT_WEI a day (429 `relayer_budget_exceeded`, nothing queued)."""

import io

import pytest
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes
from rest_framework.test import APIClient

from hallmark import eip712
from marketplace import services
from marketplace.errors import TooManyRequests
from marketplace.models import Model, Version
from registry import chain as chain_mod
from registry.models import ChainTransaction
from registry.services import TransactionPending, transaction_enqueue, transaction_process
from tests.registry.test_relayer import create_model_call

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fee_market(chain):
    """The session chain, with its base fee and an empty pool given back afterwards (neither is
    part of an evm_snapshot)."""
    base_fee = chain_mod.web3().eth.get_block("latest")["baseFeePerGas"]
    yield chain
    chain.rpc("evm_setAutomine", [True])
    chain.rpc("anvil_dropAllTransactions")
    chain.rpc("anvil_setNextBlockBaseFeePerGas", [hex(base_fee)])


def fees_of(row: ChainTransaction) -> dict:
    return TypedTransaction.from_bytes(HexBytes(row.raw_transaction)).as_dict()


def strand_below_the_fee_market(chain, settings, row: ChainTransaction, blocks: int) -> ChainTransaction:
    """Sign and broadcast `row`, then let the base fee jump far above what it was signed for and
    `blocks` blocks pass without it (anvil keeps such a transaction pending)."""
    chain.rpc("evm_setAutomine", [False])
    try:
        settings.RECEIPT_TIMEOUT = 0
        with pytest.raises(TransactionPending):
            transaction_process(transaction_id=row.pk)
        row.refresh_from_db()
        assert row.status == "signed" and row.sent_block is not None
        chain.rpc("anvil_setNextBlockBaseFeePerGas", [hex(fees_of(row)["maxFeePerGas"] * 100)])
        chain.rpc("anvil_mine", [hex(blocks)])
    finally:
        chain.rpc("evm_setAutomine", [True])
    assert chain_mod.web3().eth.get_transaction_count(row.from_address) == row.nonce  # still unmined
    return row


def test_a_transaction_stuck_below_the_fee_market_is_replaced_with_bumped_fees_and_confirmed(fee_market, settings):
    chain = fee_market
    settings.RELAYER_REPLACE_AFTER_BLOCKS = 3
    settings.RELAYER_FEE_BUMP_PERCENT = 20
    row = transaction_enqueue(idempotency_key="stuck", function="createModelBySig", args=create_model_call(chain.keys[1], "stuck"))
    row = strand_below_the_fee_market(chain, settings, row, blocks=3)
    stuck_hash, old = row.tx_hash, fees_of(row)

    settings.RECEIPT_TIMEOUT = 15
    done = transaction_process(transaction_id=row.pk)
    assert done.status == "confirmed" and done.nonce == row.nonce and done.replaced_hashes == [stuck_hash]
    assert done.tx_hash != stuck_hash
    new = fees_of(done)
    assert new["maxFeePerGas"] >= old["maxFeePerGas"] * 12 // 10 and new["maxPriorityFeePerGas"] >= old["maxPriorityFeePerGas"] * 12 // 10
    receipt = chain_mod.web3().eth.get_transaction_receipt(done.tx_hash)
    assert receipt["status"] == 1 and done.fee_wei == receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert chain_mod.model_on_chain(eip712.compute_model_id(chain.account(1).address, "stuck")).vendor == chain.account(1).address


def test_a_stuck_transaction_is_not_replaced_above_the_max_fee_cap(fee_market, settings):
    chain = fee_market
    settings.RELAYER_REPLACE_AFTER_BLOCKS = 2
    row = transaction_enqueue(idempotency_key="capped", function="createModelBySig", args=create_model_call(chain.keys[1], "capped"))
    row = strand_below_the_fee_market(chain, settings, row, blocks=2)
    settings.RELAYER_MAX_FEE_PER_GAS = fees_of(row)["maxFeePerGas"]  # no room left for a bump

    settings.RECEIPT_TIMEOUT = 1
    with pytest.raises(TransactionPending):
        transaction_process(transaction_id=row.pk)
    again = ChainTransaction.objects.get(pk=row.pk)
    assert again.status == "signed" and again.tx_hash == row.tx_hash and again.replaced_hashes == []


def create_and_anchor(party, slug: str) -> Model:
    model = services.model_create(vendor=party.vendor, slug=slug, price_wei=10**15)
    services.model_submit_signature(model=model, signature=eip712.sign_typed_data(model.typed_data, party.key))
    return services.model_anchor(model_id=model.pk)


def test_a_vendor_past_the_daily_relayer_budget_gets_429_and_nothing_is_queued(chain, vendor, make_party, gguf_file, settings):
    settings.RELAYER_DAILY_GAS_LIMIT_WEI = 10**9  # far below what one registration costs
    first = create_and_anchor(vendor, "first")
    assert first.status == Model.Status.LIVE
    row = ChainTransaction.objects.get(pk=first.create_transaction_id)
    assert row.sponsor == vendor.address and row.fee_wei > settings.RELAYER_DAILY_GAS_LIMIT_WEI

    second = services.model_create(vendor=vendor.vendor, slug="second", price_wei=10**15)
    signature = eip712.sign_typed_data(second.typed_data, vendor.key)
    with pytest.raises(TooManyRequests) as caught:
        services.model_submit_signature(model=second, signature=signature)
    assert caught.value.code == "relayer_budget_exceeded" and caught.value.status == 429
    assert 86_000 < int(caught.value.headers["Retry-After"]) <= 86_401
    assert "RELAYER_DAILY_GAS_LIMIT_WEI" in str(caught.value)

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {vendor.token}")
    refused = client.post("/api/v1/vendor/models/second/signature", {"signature": signature}, format="json")
    assert refused.status_code == 429 and refused.json()["code"] == "relayer_budget_exceeded" and int(refused["Retry-After"]) > 0
    second.refresh_from_db()
    assert second.status == Model.Status.AWAITING_SIGNATURE and second.create_transaction_id is None
    assert ChainTransaction.objects.filter(sponsor=vendor.address).count() == 1

    version = services.version_create(model=first)
    services.artifact_upload(version=version, path="model.gguf", stream=io.BytesIO(gguf_file.read_bytes()))
    services.version_finalize(version=version)
    version = services.version_hash_and_inspect(version_id=version.pk)
    with pytest.raises(TooManyRequests) as caught:
        services.version_submit_signature(version=version, signature=eip712.sign_typed_data(version.typed_data, vendor.key))
    assert caught.value.code == "relayer_budget_exceeded"
    version.refresh_from_db()
    assert version.status == Version.Status.AWAITING_SIGNATURE and version.number is None and version.publish_transaction_id is None
    assert ChainTransaction.objects.filter(sponsor=vendor.address).count() == 1

    other = make_party("other", chain.keys[2], vendor_slug="other")  # the cap is per vendor
    assert create_and_anchor(other, "theirs").status == Model.Status.LIVE


def test_a_pending_relayed_call_counts_against_the_budget_before_it_is_mined(chain, vendor, settings):
    settings.RELAYER_DAILY_GAS_LIMIT_WEI = 10**12
    model = services.model_create(vendor=vendor.vendor, slug="queued", price_wei=10**15)
    services.model_submit_signature(model=model, signature=eip712.sign_typed_data(model.typed_data, vendor.key))
    # not relayed yet: its estimate (gas guess x the going max fee) already uses the budget up
    other = services.model_create(vendor=vendor.vendor, slug="next", price_wei=10**15)
    with pytest.raises(TooManyRequests):
        services.model_submit_signature(model=other, signature=eip712.sign_typed_data(other.typed_data, vendor.key))
