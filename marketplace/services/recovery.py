"""Recovery: put back on the queue whatever waits for the chain or for hashing without a task."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from ..models import Model, Version

STALE_AFTER = timedelta(minutes=2)


def pending_chain_resume(*, older_than: timedelta = STALE_AFTER) -> int:
    """Enqueue the anchor task of every model and version stuck in `pending_chain`, and the hash
    task of every version stuck in `hashing`, untouched for `older_than`. Tasks are idempotent,
    so a duplicate is harmless; a lost one (worker killed, eager mode with the chain down) is
    not lost for good."""
    from ..tasks import model_anchor_task, version_anchor_task, version_hash_task

    cutoff = timezone.now() - older_than
    count = 0
    for pk in Model.objects.filter(status=Model.Status.PENDING_CHAIN, updated_at__lte=cutoff).values_list("pk", flat=True):
        model_anchor_task.delay(pk)
        count += 1
    for pk in Version.objects.filter(status=Version.Status.PENDING_CHAIN, updated_at__lte=cutoff).values_list("pk", flat=True):
        version_anchor_task.delay(pk)
        count += 1
    for pk in Version.objects.filter(status=Version.Status.HASHING, updated_at__lte=cutoff).values_list("pk", flat=True):
        version_hash_task.delay(pk)
        count += 1
    return count
