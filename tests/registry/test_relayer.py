"""The transaction outbox: nonces never reused by concurrent relayers; idempotent re-runs."""

import threading

import pytest
from django.db import connection
from eth_account import Account

from hallmark import eip712
from registry import chain as chain_mod
from registry.models import ChainTransaction
from registry.services import TransactionFailed, transaction_enqueue, transaction_process

pytestmark = pytest.mark.django_db(transaction=True)


def create_model_call(key: str, slug: str, nonce: int = 0) -> dict:
    vendor = Account.from_key(key).address
    typed = eip712.typed_data_create_model(
        chain_id=31337, contract=chain_mod.registry_address(), vendor=vendor, slug=slug, price_wei=1000,
        license_duration=0, parent_id=None, upstream_bps=0, nonce=nonce, deadline=2**40,
    )
    message = typed["message"]
    return {
        "slugHash": message["slugHash"], "price": 1000, "licenseDuration": 0, "parentId": message["parentId"],
        "upstreamBps": 0, "vendor": vendor, "deadline": 2**40, "signature": eip712.sign_typed_data(typed, key),
    }


def test_two_relayers_at_once_never_reuse_a_nonce(chain):
    rows = [
        transaction_enqueue(idempotency_key=f"t{i}", function="createModelBySig", args=create_model_call(chain.keys[1 + i], f"m{i}"))
        for i in range(6)
    ]
    errors = []

    def relay(ids):
        try:
            for pk in ids:
                transaction_process(transaction_id=pk)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=relay, args=([r.pk for r in rows[i::2]],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    done = list(ChainTransaction.objects.order_by("nonce"))
    assert all(t.status == "confirmed" for t in done)
    nonces = [t.nonce for t in done]
    assert len(set(nonces)) == 6 and nonces == list(range(nonces[0], nonces[0] + 6))


def test_processing_again_after_success_changes_nothing(chain):
    row = transaction_enqueue(idempotency_key="once", function="createModelBySig", args=create_model_call(chain.keys[1], "once"))
    first = transaction_process(transaction_id=row.pk)
    again = transaction_process(transaction_id=row.pk)
    assert first.status == again.status == "confirmed" and first.tx_hash == again.tx_hash


def test_a_call_already_applied_on_chain_is_recognised_not_resent(chain):
    args = create_model_call(chain.keys[1], "dup")
    first = transaction_process(transaction_id=transaction_enqueue(idempotency_key="a", function="createModelBySig", args=args).pk)
    # the same registration queued again (e.g. a crash lost the first row's status): no second send
    second = transaction_process(transaction_id=transaction_enqueue(idempotency_key="b", function="createModelBySig", args=args).pk)
    assert second.status == "confirmed" and second.tx_hash == first.tx_hash and second.nonce is None


def test_a_call_that_would_revert_fails_without_taking_a_nonce(chain):
    args = create_model_call(chain.keys[1], "bad")
    args["signature"] = create_model_call(chain.keys[2], "bad")["signature"]  # someone else's signature
    row = transaction_enqueue(idempotency_key="bad", function="createModelBySig", args=args)
    with pytest.raises(TransactionFailed) as caught:
        transaction_process(transaction_id=row.pk)
    assert caught.value.error_code == "InvalidSigner"
    row.refresh_from_db()
    assert row.status == "failed" and row.nonce is None and "InvalidSigner" in row.error_message


def test_two_workers_on_the_same_row_send_one_transaction(chain):
    row = transaction_enqueue(idempotency_key="same", function="createModelBySig", args=create_model_call(chain.keys[1], "same"))
    relayer = chain_mod.relayer_account().address
    before = chain_mod.web3().eth.get_transaction_count(relayer)
    results, errors = [], []

    def relay():
        try:
            results.append(transaction_process(transaction_id=row.pk))
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=relay) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert {r.status for r in results} == {"confirmed"} and len({r.tx_hash for r in results}) == 1
    assert chain_mod.web3().eth.get_transaction_count(relayer) == before + 1
