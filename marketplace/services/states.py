"""State changes of models and versions that the chain decides: one writer each, called by the
relayer path (services/catalog.py, services/versions.py) and the indexer projection
(marketplace/projections.py) alike, each owning its side effects.

The state diagrams are in the `Model` and `Version` docstrings (marketplace/models.py). The side
effects, in one place each:
- `cache_generation_bump()`: whatever a download's hot path may have cached is dropped once the
  change is committed (registry/caching.py); queryset updates send no `post_save`, so every
  function that updates bumps itself (adoption creates and deletes rows: the signal bumps);
- `model_catalog_refresh()`: the catalog columns of a model follow its latest live version;
- the reorg undo puts the outbox row and the anchor task back on the queue (on commit).

Updates keep their race guards: a conditional `filter(status=...).update(...)` is there because
the relayer and the indexer may reach the same row at once; each function says which guard it
keeps."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from registry.caching import cache_generation_bump
from registry.services import transaction_requeue
from telemetry import metrics

from ..models import Model, Version

logger = logging.getLogger(__name__)
MAX_CATALOG_PARAMETERS = 2**63 - 1  # Model.parameter_count is a (positive) bigint


def chain_mismatch_message(*, repo_id: str = "", number: int | None = None, chain_digest: str | None = None) -> str:
    """The one `chain_mismatch` message: what a vendor reads when the chain holds something else
    than their version. With `repo_id`, `number` and `chain_digest` (the chain's root digest under
    that number): the number went to a publication made outside Hallmark (their own wallet,
    another tool). Without: the relayer's own receipt recorded other values than the version's."""
    if not (repo_id and number and chain_digest):
        return "the chain recorded a different version or digest than this one"
    return (
        f"v{number} of {repo_id} was published on chain outside Hallmark (root digest {chain_digest}), so this "
        f"version was not published as v{number}; sign it again as a new version: it gets the next number"
    )


# -- models --------------------------------------------------------------------------------------


def model_mark_live(*, model_id: int) -> bool:
    """pending_chain (or awaiting_signature, failed: the vendor's own `createModel`) -> live,
    clearing any error. Made by the relayer (`model_anchor`), the indexer (`ModelCreated`) and
    the portal's receipt check (`model_register_from_tx`). A model already live is left as it
    is. Returns whether this call made it live."""
    changed = Model.objects.filter(pk=model_id).exclude(status=Model.Status.LIVE).update(
        status=Model.Status.LIVE, error_code="", error_message=""
    )
    if changed:
        cache_generation_bump()  # the repo now resolves
    return bool(changed)


def model_mark_failed(*, model_id: int, code: str, message: str) -> Model:
    """pending_chain -> failed with the relayer's final error (`model_anchor`: the transaction
    reverted). Only from pending_chain: if the indexer saw the model registered meanwhile (the
    same call landed another way), live stands."""
    Model.objects.filter(pk=model_id, status=Model.Status.PENDING_CHAIN).update(
        status=Model.Status.FAILED, error_code=code, error_message=message
    )
    cache_generation_bump()
    return Model.objects.get(pk=model_id)


def model_mark_pending_again(*, model_id: int) -> bool:
    """live -> pending_chain: a reorg took the `ModelCreated` away. The outbox row is queued
    again (the relayer resends it if the chain no longer holds it) and so is the anchor task, on
    commit. Only a model registered through the relayer has a row to resend: one registered from
    the vendor's own wallet stays live. Returns whether it went back."""
    from ..tasks import model_anchor_task

    model = Model.objects.filter(pk=model_id, status=Model.Status.LIVE).first()
    if model is None or not model.create_transaction_id:
        return False
    transaction_requeue(transaction_id=model.create_transaction_id)
    Model.objects.filter(pk=model_id).update(status=Model.Status.PENDING_CHAIN)
    cache_generation_bump()
    transaction.on_commit(lambda: model_anchor_task.delay(model_id))
    return True


# -- versions ------------------------------------------------------------------------------------


def version_mark_rejected(*, version_id: int, code: str, message: str) -> Version:
    """hashing -> rejected: a file failed hashing or inspection (`version_hash_and_inspect`), or
    its runs kept dying (`version_inspection_abandon`). Only from `hashing` (a finished run of a
    duplicate task never overwrites the outcome of the first)."""
    rejected = Version.objects.filter(pk=version_id, status=Version.Status.HASHING).update(
        status=Version.Status.REJECTED, error_code=code, error_message=message, updated_at=timezone.now()
    )
    if rejected:
        label = metrics.code_label(code)
        transaction.on_commit(lambda: metrics.VERSION_REJECTIONS.labels(code=label).inc())
    return Version.objects.get(pk=version_id)


def version_mark_live(*, version_id: int, block: int | None, signer: str | None = None) -> Version:
    """pending_chain -> live, anchored at `block`, clearing any error; its model's catalog
    follows and cached answers are dropped (`main` now names this version).

    Made by the relayer once the receipt is confirmed (`version_anchor`, no signer: it was
    recovered from the signature when it was taken) and by the indexer on `VersionPublished`
    (with the event's signer): whichever comes first. Only from pending_chain with a number (one
    failed meanwhile lost its number to a publication made elsewhere: it never goes live). A
    version already live keeps its state; the indexer still records the event's block and signer
    on it."""
    updates = {"status": Version.Status.LIVE, "published_block": block, "error_code": "", "error_message": ""}
    if signer is not None:
        updates["signer"] = signer
    changed = Version.objects.filter(pk=version_id, status=Version.Status.PENDING_CHAIN, number__isnull=False).update(**updates)
    if changed:
        transaction.on_commit(metrics.VERSIONS_LIVE.inc)
    if not changed and signer is not None:
        # what the chain says of a version we already hold as live (the relayer got there first)
        Version.objects.filter(pk=version_id, status=Version.Status.LIVE).update(published_block=block, signer=signer)
    version = Version.objects.get(pk=version_id)
    cache_generation_bump()
    model_catalog_refresh(model_id=version.model_id)
    return version


def version_mark_failed(
    *, version_id: int, code: str, message: str, expected_status: str | None = Version.Status.PENDING_CHAIN
) -> Version:
    """-> failed with `code`, freeing the number (the chain's version of that number, if any, is
    adopted by the indexer). By default only from pending_chain (the relayer's final failure:
    the indexer may have made it live meanwhile); `expected_status=None` whatever its state,
    where the chain itself says it holds something else under this number (`chain_mismatch`)."""
    versions = Version.objects.filter(pk=version_id)
    if expected_status is not None:
        versions = versions.filter(status=expected_status)
    versions.update(status=Version.Status.FAILED, number=None, error_code=code, error_message=message)
    version = Version.objects.get(pk=version_id)
    cache_generation_bump()
    model_catalog_refresh(model_id=version.model_id)
    return version


def version_mark_pending_again(*, version_id: int) -> bool:
    """live -> pending_chain: a reorg took its `VersionPublished` away. Its outbox row is queued
    again (resent if the chain no longer holds it) and so is the anchor task, on commit; the
    catalog and cached answers stop naming it. Returns whether it went back."""
    from ..tasks import version_anchor_task

    version = Version.objects.filter(pk=version_id, status=Version.Status.LIVE).first()
    if version is None:
        return False
    if version.publish_transaction_id:
        transaction_requeue(transaction_id=version.publish_transaction_id)
    Version.objects.filter(pk=version_id).update(status=Version.Status.PENDING_CHAIN, published_block=None)
    cache_generation_bump()
    model_catalog_refresh(model_id=version.model_id)
    transaction.on_commit(lambda: version_anchor_task.delay(version_id))
    return True


def version_adopt(*, model: Model, number: int, root_digest: str, metadata_digest: str, signer: str, block: int) -> Version:
    """(none) -> live, adopted: mirror a version published on chain without this marketplace
    (the vendor's own wallet, another tool), from its `VersionPublished`: digests (hex, no 0x),
    signer and block, no files hosted here; `main` never names it (selectors).

    Side effects: none of its own. Creating the row bumps the cache generation (the save signal,
    marketplace/signals.py) and the catalog never counts an adopted version, so nothing more is
    written per adoption (a vendor publishing many versions from their wallet is indexed at the
    pace of inserts)."""
    return Version.objects.create(
        model=model,
        number=number,
        status=Version.Status.LIVE,
        adopted=True,
        root_digest=root_digest,
        metadata_digest=metadata_digest,
        signer=signer,
        published_block=block,
    )


def version_adoption_undo(*, version_id: int) -> None:
    """live, adopted -> (none): a reorg took away the event it was adopted from. As for
    `version_adopt`, the delete signal bumps the cache generation and the catalog is unaffected."""
    Version.objects.filter(pk=version_id, adopted=True).delete()


def version_mark_revoked(*, model: Model, number: int, reason: str) -> None:
    """Version `number` of `model` revoked on chain (`VersionRevoked`, `reason` as the event
    gives it): never served again, and no longer `main`."""
    model.versions.filter(number=number).update(revoked=True, revoked_reason=reason)
    cache_generation_bump()
    model_catalog_refresh(model_id=model.pk)


def version_mark_unrevoked(*, model: Model, number: int) -> None:
    """A reorg took the `VersionRevoked` away: served again."""
    model.versions.filter(number=number).update(revoked=False, revoked_reason="")
    cache_generation_bump()
    model_catalog_refresh(model_id=model.pk)


# -- the catalog: what a model's search columns say follows its versions' states ------------------


def model_catalog_refresh(*, model_id: int) -> None:
    """Copy the latest live, unrevoked version's facts onto the model, for search. A version
    adopted from the chain (published outside Hallmark) has no files or facts here: the catalog
    describes the latest version a buyer can download from us, as `main` does."""
    latest = (
        Version.objects.filter(model_id=model_id, status=Version.Status.LIVE, revoked=False, adopted=False)
        .order_by("-number")
        .first()
    )
    meta = (latest.metadata or {}) if latest else {}
    if not isinstance(meta, dict):
        meta = {}
    # the metadata comes from the vendor's files: a value the catalog columns cannot hold is left
    # out (and logged), never written, since this runs inside the chain indexer's transaction
    formats = meta.get("formats") or []
    formats = [f for f in formats if isinstance(f, str) and f] if isinstance(formats, list) else []
    file_formats = ("," + ",".join(dict.fromkeys(formats)) + ",") if formats else ""
    parameters = meta.get("parameter_count")
    if parameters is not None and (isinstance(parameters, bool) or not isinstance(parameters, int) or not 0 <= parameters <= MAX_CATALOG_PARAMETERS):
        logger.warning("model %s v%s: parameter count %.60r is out of the catalog's range; not listed", model_id, latest.number, parameters)
        parameters = None
    if len(file_formats) > 64:
        logger.warning("model %s v%s: file formats %.80r do not fit the catalog; not listed", model_id, latest.number, file_formats)
        file_formats = ""
    Model.objects.filter(pk=model_id).update(
        latest_version_number=latest.number if latest else None,
        architecture=_catalog_text(meta.get("architecture")),
        quantization=_catalog_text(meta.get("quantization")),
        file_formats=file_formats,
        parameter_count=parameters,
    )


def _catalog_text(value) -> str:
    return value[:64] if isinstance(value, str) else ""
