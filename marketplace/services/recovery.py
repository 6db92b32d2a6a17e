"""Recovery: put back on the queue whatever waits for the chain or for hashing without a task."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from registry.models import ChainTransaction

from ..models import Model, Version
from .versions import inspection_limits, version_inspection_abandon

STALE_AFTER = timedelta(minutes=2)
# past its wall-clock limit a hashing run is over (its child killed); this much later its worker
# would have written the outcome, so a version still `hashing` then has lost its run
HASHING_GRACE = timedelta(minutes=1)


def pending_chain_resume(*, older_than: timedelta = STALE_AFTER) -> int:
    """Enqueue the anchor task of every model and version stuck in `pending_chain`, and the hash
    task of every version stuck in `hashing`, untouched for `older_than`. Tasks are idempotent,
    so a duplicate is harmless; a lost one (worker killed, eager mode with the chain down) is
    not lost for good.

    A version in `hashing` counts as stuck only once its last run is past that run's own time
    limit (large files legitimately hash for long). One whose runs already died
    `INSPECTION_MAX_ATTEMPTS` times is rejected (`inspection_failed`) instead of queued again:
    a file that kills its worker must not be handed to worker after worker forever."""
    from ..tasks import model_anchor_task, version_anchor_task, version_hash_task

    now = timezone.now()
    cutoff = now - older_than
    count = 0
    for pk in Model.objects.filter(status=Model.Status.PENDING_CHAIN, updated_at__lte=cutoff).values_list("pk", flat=True):
        model_anchor_task.delay(pk)
        count += 1
    for pk in Version.objects.filter(status=Version.Status.PENDING_CHAIN, updated_at__lte=cutoff).values_list("pk", flat=True):
        version_anchor_task.delay(pk)
        count += 1
    # live (the indexer saw the event first) while the outbox row is still unsettled: the anchor
    # task settles the row (receipt, gas spent), so the relayer's queue never keeps it for ever
    unsettled = [ChainTransaction.Status.QUEUED, ChainTransaction.Status.SIGNED]
    for pk in Model.objects.filter(
        status=Model.Status.LIVE, create_transaction__status__in=unsettled, create_transaction__updated_at__lte=cutoff
    ).values_list("pk", flat=True):
        model_anchor_task.delay(pk)
        count += 1
    for pk in Version.objects.filter(
        status=Version.Status.LIVE, publish_transaction__status__in=unsettled, publish_transaction__updated_at__lte=cutoff
    ).values_list("pk", flat=True):
        version_anchor_task.delay(pk)
        count += 1
    hashing = (
        Version.objects.filter(status=Version.Status.HASHING, updated_at__lte=cutoff)
        .annotate(total_bytes=Sum("artifacts__size"))
        .values_list("pk", "hash_attempts", "updated_at", "total_bytes")
    )
    for pk, attempts, updated_at, total_bytes in hashing:
        if attempts:  # a run started at `updated_at`: wait until it cannot be running any more
            budget = timedelta(seconds=inspection_limits(total_bytes=total_bytes or 0).wall_seconds) + HASHING_GRACE
            if updated_at > now - budget:
                continue
        if attempts >= settings.INSPECTION_MAX_ATTEMPTS:
            version_inspection_abandon(version_id=pk)
            continue
        version_hash_task.delay(pk)
        count += 1
    return count
