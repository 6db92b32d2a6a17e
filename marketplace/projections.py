"""Indexer projection: models and versions follow their on-chain events (and their rollback);
a receipt batch whose `ReceiptsAnchored` a reorg removed is anchored again.

The chain is the source of truth: a version whose recorded digest disagrees with the chain is
marked failed with `chain_mismatch` and is never served. A `VersionPublished` the marketplace
never sent (the vendor's own wallet, another tool) is adopted: a live Version row with
`adopted=True`, the digests and signer from the event, and no files hosted here.

Every state change goes through its one writer in services/states.py (the relayer path calls
the same functions), which owns the side effects: cache generation, catalog refresh, re-queued
anchor tasks."""

from __future__ import annotations

from registry.models import ChainEvent

from .models import Model, Version
from .services.receipts import receipt_batch_unanchor
from .services.states import (
    chain_mismatch_message,
    model_mark_live,
    model_mark_pending_again,
    version_adopt,
    version_adoption_undo,
    version_mark_failed,
    version_mark_live,
    version_mark_pending_again,
    version_mark_revoked,
    version_mark_unrevoked,
)

QUERY_CHUNK = 500  # model ids per `IN (...)` list


def apply(events: list[ChainEvent]) -> None:
    """Apply a batch: the models the events name are read once (one query per 500 ids), with the
    versions the `VersionPublished` events number; an event of a model this marketplace does
    not hold costs nothing more. A state change goes through its one writer, per event."""
    relevant = [event for event in events if event.name in _APPLY]
    if not relevant:
        return
    models = _models_of(relevant)
    versions = _versions_of(relevant, models)
    for event in relevant:
        model = models.get(event.args["modelId"].lower())
        if model is not None:
            _APPLY[event.name](event, model, versions)


def rollback(events: list[ChainEvent]) -> None:
    for event in events:  # newest first
        handler = _ROLLBACK.get(event.name)
        if handler:
            handler(event)


def _model(event: ChainEvent) -> Model | None:
    return Model.objects.filter(chain_model_id=event.args["modelId"].lower()).first()


def _models_of(events: list[ChainEvent]) -> dict[str, Model]:
    ids = sorted({event.args["modelId"].lower() for event in events})
    models: dict[str, Model] = {}
    for i in range(0, len(ids), QUERY_CHUNK):
        for model in Model.objects.filter(chain_model_id__in=ids[i : i + QUERY_CHUNK]).select_related("vendor"):
            models[model.chain_model_id] = model
    return models


def _versions_of(events: list[ChainEvent], models: dict[str, Model]) -> dict[tuple[int, int], Version]:
    """The versions of held models that the batch's `VersionPublished` events number, by (model, number)."""
    wanted: dict[int, set[int]] = {}
    for event in events:
        model = models.get(event.args["modelId"].lower())
        if event.name == "VersionPublished" and model is not None:
            wanted.setdefault(model.pk, set()).add(int(event.args["version"]))
    found: dict[tuple[int, int], Version] = {}
    pks = sorted(wanted)
    numbers = sorted(set().union(*wanted.values()))
    for i in range(0, len(pks), QUERY_CHUNK):
        for version in Version.objects.filter(model_id__in=pks[i : i + QUERY_CHUNK], number__in=numbers):
            if version.number in wanted[version.model_id]:
                found.setdefault((version.model_id, version.number), version)
    return found


def _model_created(event: ChainEvent, model: Model, versions) -> None:
    if model.status != Model.Status.LIVE and model.vendor.address == event.args["vendor"]:
        model_mark_live(model_id=model.pk)


def _terms_changed(event: ChainEvent, model: Model, versions) -> None:
    Model.objects.filter(pk=model.pk).update(
        price_wei=int(event.args["price"]), license_duration=int(event.args["licenseDuration"]), listed=event.args["listed"]
    )


def _version_published(event: ChainEvent, model: Model, versions: dict[tuple[int, int], Version]) -> None:
    number = int(event.args["version"])
    chain_digest = event.args["rootDigest"].lower()
    version = versions.get((model.pk, number))
    if version is None or version.root_digest != chain_digest[2:]:
        if version is not None:
            # ours lost the number to a publication made elsewhere: it is not on chain, and never
            # will be under this number; the vendor signs it again for the next one
            version_mark_failed(
                version_id=version.pk,
                code="chain_mismatch",
                message=chain_mismatch_message(repo_id=model.repo_id, number=number, chain_digest=chain_digest),
                expected_status=None,
            )
        version_adopt(
            model=model,
            number=number,
            root_digest=chain_digest[2:],
            metadata_digest=event.args["metadataDigest"].lower()[2:],
            signer=event.args["signer"],
            block=event.block_number,
        )
        return
    version_mark_live(version_id=version.pk, block=event.block_number, signer=event.args["signer"])


def _version_revoked(event: ChainEvent, model: Model, versions) -> None:
    version_mark_revoked(model=model, number=int(event.args["version"]), reason=event.args["reason"])


def _undo_model_created(event: ChainEvent) -> None:
    model = _model(event)
    if model:
        model_mark_pending_again(model_id=model.pk)


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
    model = _model(event)
    if model is None:
        return
    version = model.versions.filter(number=int(event.args["version"]), status=Version.Status.LIVE).first()
    if version is None:
        return
    if version.adopted:  # it came from this event alone
        version_adoption_undo(version_id=version.pk)
    else:
        version_mark_pending_again(version_id=version.pk)


def _undo_version_revoked(event: ChainEvent) -> None:
    model = _model(event)
    if model:
        version_mark_unrevoked(model=model, number=int(event.args["version"]))


def _undo_receipts_anchored(event: ChainEvent) -> None:
    receipt_batch_unanchor(root=str(event.args["root"]), batch_id=int(event.args["batchId"]))


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
    "ReceiptsAnchored": _undo_receipts_anchored,
}
