"""Models: create with terms and lineage, signed by the vendor, registered through the relayer."""

from __future__ import annotations

import re
import time

from django.conf import settings
from django.db import transaction

from hallmark import eip712
from hallmark.errors import InvalidSignature
from registry import chain
from registry.chain import ChainError, ChainUnavailable
from registry.services import RelayerBudgetExceeded, TransactionFailed, transaction_enqueue, transaction_process

from ..cards import card_front_matter
from ..errors import Conflict, InvalidInput, TooManyRequests, Unavailable
from ..models import Model, Vendor
from .states import model_mark_failed, model_mark_live

SLUG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
MAX_UINT96 = 2**96 - 1


def _chain_unavailable(exc: Exception) -> Unavailable:
    return Unavailable(f"the chain cannot be reached right now ({exc}); nothing was saved, try again shortly")


def model_create(
    *,
    vendor: Vendor,
    slug: str,
    name: str = "",
    description: str = "",
    price_wei: int = 0,
    license_duration: int = 0,
    parent: Model | None = None,
    upstream_bps: int = 0,
    card: str = "",
) -> Model:
    """Draft a model and the `CreateModel` message the vendor signs to register it on chain."""
    if not SLUG_RE.match(slug or "") or ".." in slug:
        raise InvalidInput("a model name uses letters, digits, '.', '_' and '-' (at most 96)", code="invalid_slug")
    if isinstance(price_wei, bool) or not isinstance(price_wei, int) or not 0 <= price_wei <= MAX_UINT96:
        raise InvalidInput("price_wei is an integer number of wei between 0 and 2^96-1", code="invalid_price")
    if not isinstance(license_duration, int) or not 0 <= license_duration <= chain.PERPETUAL:  # uint64 max
        raise InvalidInput("license_duration is seconds (0 for perpetual)", code="invalid_duration")
    if not isinstance(upstream_bps, int) or not 0 <= upstream_bps <= 10_000:
        raise InvalidInput("upstream_bps is between 0 and 10000", code="invalid_upstream_bps")
    if parent is None and upstream_bps:
        raise InvalidInput("upstream_bps needs a parent model to pay", code="invalid_upstream_bps")
    if parent is not None and parent.status != Model.Status.LIVE:
        raise InvalidInput(f"the parent model {parent.repo_id} is not registered on chain yet", code="parent_not_live")
    if Model.objects.filter(vendor=vendor, slug=slug).exists():
        raise Conflict(f"you already have a model named {slug!r}", code="model_exists")

    try:
        contract = chain.registry_contract()
        with chain.chain_errors():
            nonce = contract.functions.nonces(vendor.address).call()
    except ChainUnavailable as exc:
        raise _chain_unavailable(exc) from exc
    typed_data = eip712.typed_data_create_model(
        chain_id=settings.CHAIN_ID,
        contract=contract.address,
        vendor=vendor.address,
        slug=slug,
        price_wei=price_wei,
        license_duration=license_duration,
        parent_id=parent.chain_model_id if parent else None,
        upstream_bps=upstream_bps,
        nonce=nonce,
        deadline=int(time.time()) + settings.SIGNATURE_TTL_SECONDS,
    )
    model = Model(
        vendor=vendor,
        slug=slug,
        name=name or slug,
        description=description,
        card=card,
        card_data=card_front_matter(card),
        chain_model_id=eip712.compute_model_id(vendor.address, slug),
        parent=parent,
        upstream_bps=upstream_bps,
        price_wei=price_wei,
        license_duration=license_duration,
        typed_data=typed_data,
    )
    model.full_clean()
    model.save()
    return model


def sponsored_enqueue(*, sponsor: str, **call) -> object:
    """Queue a relayed call paid for `sponsor` (a vendor's address); past their daily relayer
    budget, TooManyRequests (429 `relayer_budget_exceeded`) and nothing is queued."""
    try:
        return transaction_enqueue(sponsor=sponsor, **call)
    except RelayerBudgetExceeded as exc:
        raise TooManyRequests(str(exc), code=exc.code, retry_after=exc.retry_after) from exc


def model_submit_signature(*, model: Model, signature: str) -> Model:
    """Check the vendor's `CreateModel` signature and queue its registration on chain."""
    from ..tasks import model_anchor_task

    with transaction.atomic():
        model = Model.objects.select_for_update().select_related("vendor").get(pk=model.pk)
        if model.status != Model.Status.AWAITING_SIGNATURE:
            raise Conflict(f"{model.repo_id} is {model.get_status_display()}, not waiting for a signature", code="invalid_state")
        message = model.typed_data["message"]
        if int(message["deadline"]) < time.time():
            raise Conflict("the message to sign has expired; create the model again", code="signature_expired")
        try:
            eip712.require_signer(model.typed_data, signature, model.vendor.address)
        except InvalidSignature as exc:
            raise InvalidInput(str(exc), code="invalid_signature") from exc
        tx = sponsored_enqueue(
            sponsor=model.vendor.address,
            idempotency_key=f"createModelBySig:{model.chain_model_id}",
            function="createModelBySig",
            args={
                "slugHash": message["slugHash"],
                "price": int(message["price"]),
                "licenseDuration": int(message["licenseDuration"]),
                "parentId": message["parentId"],
                "upstreamBps": int(message["upstreamBps"]),
                "vendor": message["vendor"],
                "deadline": int(message["deadline"]),
                "signature": signature,
            },
        )
        model.signature = signature
        model.create_transaction = tx
        model.status = Model.Status.PENDING_CHAIN
        model.save(update_fields=["signature", "create_transaction", "status", "updated_at"])
        transaction.on_commit(lambda: model_anchor_task.delay(model.pk))
    return model


def model_anchor(*, model_id: int) -> Model:
    """Relay the model's registration; retryable errors propagate (ChainUnavailable, pending)."""
    model = Model.objects.select_related("create_transaction").get(pk=model_id)
    tx = model.create_transaction
    if model.status == Model.Status.LIVE and tx is not None and tx.status in (tx.Status.QUEUED, tx.Status.SIGNED):
        transaction_process(transaction_id=tx.pk)  # the indexer saw it first: settle the outbox row too
        return model
    if model.status != Model.Status.PENDING_CHAIN:
        return model
    try:
        transaction_process(transaction_id=model.create_transaction_id)
    except TransactionFailed as exc:
        return model_mark_failed(model_id=model.pk, code=exc.error_code, message=str(exc))
    except ChainError as exc:
        if isinstance(exc, ChainUnavailable):
            raise
        # not a state change: still pending, the task retries; the vendor sees why meanwhile
        Model.objects.filter(pk=model.pk).update(error_code=exc.code, error_message=str(exc))
        raise
    model_mark_live(model_id=model.pk)
    return Model.objects.get(pk=model.pk)


def model_create_call(*, model: Model) -> dict[str, str] | None:
    """`{to, data}` of `createModel` with the terms of the model's `CreateModel` message, for a
    vendor who registers from their own wallet instead of signing for the relayer; None unless
    the model still waits for that."""
    if model.status != Model.Status.AWAITING_SIGNATURE:
        return None
    message = model.typed_data["message"]
    return chain.call_data(
        "createModel",
        chain.to_bytes32(message["slugHash"]),
        int(message["price"]),
        int(message["licenseDuration"]),
        chain.to_bytes32(message["parentId"]),
        int(message["upstreamBps"]),
    )


def model_terms_call(*, model: Model, price_wei: int, license_duration: int, listed: bool) -> dict[str, str]:
    """`{to, data, from}` of `setTerms` for the vendor's own wallet to send (terms change on
    chain; the indexer copies them here from `TermsChanged`)."""
    call = chain.call_data("setTerms", chain.to_bytes32(model.chain_model_id), price_wei, license_duration, listed)
    return {**call, "from": model.vendor.address}


def model_update(*, model: Model, name: str, description: str, card: str) -> Model:
    """Change what is said about a model (off chain); terms change on chain with `setTerms`."""
    model.name = name or model.slug
    model.description = description
    model.card = card
    model.card_data = card_front_matter(card)
    model.full_clean()
    model.save(update_fields=["name", "description", "card", "card_data", "updated_at"])
    return model


def model_register_from_tx(*, model: Model, tx_hash: str) -> Model:
    """The vendor sent `createModel` from their own wallet: check the receipt says so, then the
    model is live. Raises Unavailable while the chain cannot be read, Conflict while unmined."""
    from web3.exceptions import TransactionNotFound

    if model.status == Model.Status.LIVE:
        return model
    contract = chain.registry_contract()
    try:
        with chain.chain_errors():
            try:
                receipt = chain.web3().eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound as exc:
                raise Conflict("the transaction is not mined yet; try again in a moment", code="transaction_pending") from exc
    except ChainUnavailable as exc:
        raise _chain_unavailable(exc) from exc
    from web3.logs import DISCARD

    created = [
        e for e in contract.events.ModelCreated().process_receipt(receipt, errors=DISCARD)
        if e["address"] == contract.address and chain.hex0x(e["args"]["modelId"]) == model.chain_model_id
    ]
    if receipt["status"] != 1 or not created or created[0]["args"]["vendor"] != model.vendor.address:
        raise InvalidInput("that transaction did not register this model for your wallet", code="not_this_model")
    model_mark_live(model_id=model.pk)
    return Model.objects.get(pk=model.pk)
