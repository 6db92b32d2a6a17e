"""The relayer refuses work it cannot pay for: below RELAYER_MIN_BALANCE_WEI a queued outbox row
is left queued (nothing signed, no nonce taken, nothing failed), the portal's version page says
the operator must fund the relayer, and once the wallet is funded again the same retries (the
periodic `resume_pending_chain`) send it and the version goes live. A row already signed is
still sent and awaited: it is paid for. The balance is moved with anvil's `anvil_setBalance`."""

import contextlib
import io
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from prometheus_client import REGISTRY

from hallmark import eip712
from marketplace import services
from marketplace.models import Version
from registry import chain as chain_mod
from registry import selectors
from registry.models import ChainTransaction
from registry.selectors import relayer_funding
from registry.services import RelayerUnfunded, TransactionPending, transaction_enqueue, transaction_process
from tests.conftest import wait_for
from tests.registry.test_relayer import create_model_call

pytestmark = pytest.mark.django_db(transaction=True)

MINIMUM = 5 * 10**15
NOTICE = "Waiting for the operator to fund the relayer: your signed publication is kept and will be sent as soon as it is funded."


def refusals() -> float:
    return REGISTRY.get_sample_value("hallmark_relayer_funding_refusals_total") or 0.0


def balance_of(address: str) -> int:
    return int(chain_mod.web3().eth.get_balance(address))


@contextlib.contextmanager
def relayer_balance(chain, wei: int):
    """The relayer's wallet holds exactly `wei` inside the block; its balance before, after it
    (the session's chain is shared: evm_revert restores it too, this does not rely on that)."""
    address = chain_mod.relayer_account().address
    original = balance_of(address)
    chain.rpc("anvil_setBalance", [address, hex(wei)])
    try:
        yield address
    finally:
        chain.rpc("anvil_setBalance", [address, hex(original)])


@pytest.fixture(autouse=True)
def _minimum(chain, settings):
    settings.RELAYER_MIN_BALANCE_WEI = MINIMUM
    cache.delete(selectors._funding_key(chain_mod.relayer_account().address))  # no reading left by another test
    yield


def queued_row(chain, slug: str) -> ChainTransaction:
    return transaction_enqueue(idempotency_key=slug, function="createModelBySig", args=create_model_call(chain.keys[1], slug))


def test_below_the_minimum_a_queued_row_stays_queued_and_nothing_is_signed(chain):
    row = queued_row(chain, "unfunded")
    before = refusals()
    with relayer_balance(chain, MINIMUM - 1) as relayer:
        nonce_before = chain_mod.web3().eth.get_transaction_count(relayer)
        with pytest.raises(RelayerUnfunded) as caught:
            transaction_process(transaction_id=row.pk)
        assert isinstance(caught.value, TransactionPending)  # the tasks retry it, nothing is marked failed
        assert caught.value.balance_wei == MINIMUM - 1 and caught.value.required_wei == MINIMUM
        assert "waiting for the operator to fund the relayer" in str(caught.value)
        row.refresh_from_db()
        assert row.status == ChainTransaction.Status.QUEUED
        assert (row.tx_hash, row.raw_transaction, row.nonce, row.attempts, row.error_code) == ("", "", None, 0, "")
        assert chain_mod.web3().eth.get_transaction_count(relayer) == nonce_before
        assert refusals() == before + 1

        funding = relayer_funding()
        assert (funding.address, funding.balance_wei, funding.min_balance_wei, funding.funded) == (relayer, MINIMUM - 1, MINIMUM, False)

        # the exact boundary: a balance equal to the minimum is funded, and the row goes out
        chain.rpc("anvil_setBalance", [relayer, hex(MINIMUM)])
        done = transaction_process(transaction_id=row.pk)
        assert done.status == ChainTransaction.Status.CONFIRMED and done.tx_hash
        assert relayer_funding().funded is True
    assert refusals() == before + 1


def test_the_selector_reads_the_chain_when_nothing_is_cached(chain):
    with relayer_balance(chain, MINIMUM) as relayer:
        funding = relayer_funding()
        assert (funding.address, funding.balance_wei, funding.funded) == (relayer, MINIMUM, True)
    with relayer_balance(chain, 0):
        cache.delete(selectors._funding_key(relayer))
        assert relayer_funding().funded is False


def test_a_transaction_costing_more_than_the_balance_is_refused_even_without_a_minimum(chain, settings):
    settings.RELAYER_MIN_BALANCE_WEI = 0
    row = queued_row(chain, "costly")
    with relayer_balance(chain, 10**9):  # far below any gas limit x max fee
        with pytest.raises(RelayerUnfunded) as caught:
            transaction_process(transaction_id=row.pk)
        assert caught.value.required_wei > 10**9 == caught.value.balance_wei
    row.refresh_from_db()
    assert row.status == ChainTransaction.Status.QUEUED and row.nonce is None and not row.tx_hash


def test_a_signed_row_is_still_sent_and_awaited_while_unfunded(chain, settings):
    row = queued_row(chain, "signed")
    chain.rpc("evm_setAutomine", [False])
    try:
        settings.RECEIPT_TIMEOUT = 0
        with pytest.raises(TransactionPending):
            transaction_process(transaction_id=row.pk)  # signed and broadcast while funded: it waits in the pool
        row.refresh_from_db()
        assert row.status == ChainTransaction.Status.SIGNED
        before = refusals()
        # below the minimum, yet still enough to pay what was already signed
        with relayer_balance(chain, MINIMUM - 1):
            chain.rpc("evm_mine")
            settings.RECEIPT_TIMEOUT = 30
            done = transaction_process(transaction_id=row.pk)
        assert done.status == ChainTransaction.Status.CONFIRMED and done.tx_hash == row.tx_hash
        assert refusals() == before
    finally:
        chain.rpc("evm_setAutomine", [True])


def test_publication_waits_for_funding_and_resumes_by_itself(chain, vendor, live_version, gguf_file, celery_worker):
    model = live_version.model
    version = services.version_create(model=model)
    services.artifact_upload(version=version, path="model.gguf", stream=io.BytesIO(gguf_file.read_bytes()))
    services.artifact_upload(version=version, path="README.md", stream=io.BytesIO(b"v2"))
    services.version_finalize(version=version)
    version = services.version_hash_and_inspect(version_id=version.pk)
    assert version.status == Version.Status.AWAITING_SIGNATURE
    client = Client()
    client.force_login(vendor.user)
    page = f"/portal/models/{model.slug}/versions/{version.pk}"
    assert NOTICE not in client.get(page).content.decode()

    before = refusals()
    with relayer_balance(chain, MINIMUM - 1):
        # the signature queues the row and, on commit, the anchor task: the worker refuses it
        services.version_submit_signature(version=version, signature=eip712.sign_typed_data(version.typed_data, vendor.key))
        wait_for(lambda: refusals() > before, message="the relayer to refuse the row")
        version.refresh_from_db()
        row = ChainTransaction.objects.get(pk=version.publish_transaction_id)
        assert version.status == Version.Status.PENDING_CHAIN and not version.error_code
        assert row.status == ChainTransaction.Status.QUEUED and not row.tx_hash and not row.error_code
        assert relayer_funding().funded is False
        response = client.get(page)
        assert response.status_code == 200 and NOTICE in response.content.decode()
    # funded again (the original balance): the periodic resume sends it, and the version goes live
    services.pending_chain_resume(older_than=timedelta(0))
    wait_for(lambda: Version.objects.get(pk=version.pk).status == Version.Status.LIVE, message="the version to go live")
    row.refresh_from_db()
    assert row.status == ChainTransaction.Status.CONFIRMED and row.tx_hash
    assert NOTICE not in client.get(page).content.decode()
