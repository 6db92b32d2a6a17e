"""Indexer projection: models and versions follow their on-chain events (and their rollback).

The chain is the source of truth: a version whose recorded digest disagrees with the chain is
marked failed with `chain_mismatch` and is never served. A `VersionPublished` the marketplace
never sent (the vendor's own wallet, another tool) is adopted: a live Version row with
`adopted=True`, the digests and signer from the event, and no files hosted here."""

from __future__ import annotations

from django.db import transaction

from registry.models import ChainEvent
from registry.services import transaction_requeue

from .models import Model, Version


def apply(events: list[ChainEvent]) -> None:
    for event in events:
        handler = _APPLY.get(event.name)
        if handler:
            handler(event)
    _refresh_catalog(events)


def rollback(events: list[ChainEvent]) -> None:
    for event in events:  # newest first
        handler = _ROLLBACK.get(event.name)
        if handler:
            handler(event)
    _refresh_catalog(events)


def _refresh_catalog(events: list[ChainEvent]) -> None:
    from .services import model_catalog_refresh

    touched = {e.args["modelId"].lower() for e in events if e.name in ("VersionPublished", "VersionRevoked")}
    for pk in Model.objects.filter(chain_model_id__in=touched).values_list("pk", flat=True):
        model_catalog_refresh(model_id=pk)


def _model(event: ChainEvent) -> Model | None:
    return Model.objects.filter(chain_model_id=event.args["modelId"].lower()).first()


def _model_created(event: ChainEvent) -> None:
    model = _model(event)
    if model and model.status != Model.Status.LIVE and model.vendor.address == event.args["vendor"]:
        Model.objects.filter(pk=model.pk).update(status=Model.Status.LIVE, error_code="", error_message="")


def _terms_changed(event: ChainEvent) -> None:
    Model.objects.filter(chain_model_id=event.args["modelId"].lower()).update(
        price_wei=int(event.args["price"]), license_duration=int(event.args["licenseDuration"]), listed=event.args["listed"]
    )


def _version_published(event: ChainEvent) -> None:
    model = _model(event)
    if model is None:
        return
    number = int(event.args["version"])
    chain_digest = event.args["rootDigest"].lower()
    version = model.versions.filter(number=number).first()
    if version is None or version.root_digest != chain_digest[2:]:
        if version is not None:
            # ours lost the number to a publication made elsewhere: it is not on chain, and never
            # will be under this number; the vendor signs it again for the next one
            from .services.versions import published_elsewhere_message

            Version.objects.filter(pk=version.pk).update(
                status=Version.Status.FAILED,
                number=None,
                error_code="chain_mismatch",
                error_message=published_elsewhere_message(model.repo_id, number, chain_digest),
            )
        _adopt(model, event)
        return
    updates = {"published_block": event.block_number, "signer": event.args["signer"]}
    if version.status == Version.Status.PENDING_CHAIN:
        updates.update(status=Version.Status.LIVE, error_code="", error_message="")
    Version.objects.filter(pk=version.pk).update(**updates)


def _adopt(model: Model, event: ChainEvent) -> None:
    """Mirror a version published on chain without this marketplace: shown (digests, signer,
    block, revocation) with no files hosted here; `main` never names it (selectors)."""
    Version.objects.create(
        model=model,
        number=int(event.args["version"]),
        status=Version.Status.LIVE,
        adopted=True,
        root_digest=event.args["rootDigest"].lower()[2:],
        metadata_digest=event.args["metadataDigest"].lower()[2:],
        signer=event.args["signer"],
        published_block=event.block_number,
    )


def _version_revoked(event: ChainEvent) -> None:
    model = _model(event)
    if model:
        model.versions.filter(number=int(event.args["version"])).update(revoked=True, revoked_reason=event.args["reason"])


def _undo_model_created(event: ChainEvent) -> None:
    from .tasks import model_anchor_task

    model = _model(event)
    if model and model.status == Model.Status.LIVE and model.create_transaction_id:
        transaction_requeue(transaction_id=model.create_transaction_id)
        Model.objects.filter(pk=model.pk).update(status=Model.Status.PENDING_CHAIN)
        transaction.on_commit(lambda: model_anchor_task.delay(model.pk))


def _undo_terms(event: ChainEvent) -> None:
    model_id = event.args["modelId"].lower()
    latest = (
        ChainEvent.objects.filter(name__in=["TermsChanged", "ModelCreated"], args__modelId=model_id)
        .order_by("-block_number", "-log_index")
        .first()
    )
    if latest is not None:
        listed = latest.args.get("listed", True)
        Model.objects.filter(chain_model_id=model_id).update(
            price_wei=int(latest.args["price"]), license_duration=int(latest.args["licenseDuration"]), listed=listed
        )


def _undo_version_published(event: ChainEvent) -> None:
    from .tasks import version_anchor_task

    model = _model(event)
    if model is None:
        return
    version = model.versions.filter(number=int(event.args["version"]), status=Version.Status.LIVE).first()
    if version is None:
        return
    if version.adopted:  # it came from this event alone
        version.delete()
        return
    if version.publish_transaction_id:
        transaction_requeue(transaction_id=version.publish_transaction_id)
    Version.objects.filter(pk=version.pk).update(status=Version.Status.PENDING_CHAIN, published_block=None)
    transaction.on_commit(lambda: version_anchor_task.delay(version.pk))


def _undo_version_revoked(event: ChainEvent) -> None:
    model = _model(event)
    if model:
        model.versions.filter(number=int(event.args["version"])).update(revoked=False, revoked_reason="")


_APPLY = {
    "ModelCreated": _model_created,
    "TermsChanged": _terms_changed,
    "VersionPublished": _version_published,
    "VersionRevoked": _version_revoked,
}
_ROLLBACK = {
    "ModelCreated": _undo_model_created,
    "TermsChanged": _undo_terms,
    "VersionPublished": _undo_version_published,
    "VersionRevoked": _undo_version_revoked,
}
