"""Retention: records kept only as long as they are useful are deleted on a schedule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from ..models import Download, SiweNonce

BATCH = 5_000  # rows per DELETE: a large backlog never holds one long lock on the table


@dataclass(frozen=True)
class PurgeResult:
    siwe_nonces: int
    refused_downloads: int


def expired_records_purge(*, now: datetime | None = None, batch: int = BATCH) -> PurgeResult:
    """Delete Sign-In with Ethereum nonces expired more than SIWE_NONCE_RETENTION_HOURS ago, and
    refused anonymous download records (no user, status 400 or more) older than
    REFUSED_DOWNLOAD_RETENTION_DAYS.

    Anyone can ask for a nonce or a file without signing in, so both tables would otherwise grow
    with every anonymous request. An expired nonce can never be used again, so deleting it changes
    no answer; downloads by an account, and every granted download, are kept (they are the
    record of who fetched what)."""
    now = now or timezone.now()
    nonces = SiweNonce.objects.filter(expires_at__lt=now - timedelta(hours=settings.SIWE_NONCE_RETENTION_HOURS))
    refused = Download.objects.filter(
        user__isnull=True, status_code__gte=400, created_at__lt=now - timedelta(days=settings.REFUSED_DOWNLOAD_RETENTION_DAYS)
    )
    return PurgeResult(siwe_nonces=_delete_in_batches(nonces, batch), refused_downloads=_delete_in_batches(refused, batch))


def _delete_in_batches(rows: QuerySet, batch: int) -> int:
    deleted = 0
    while True:
        ids = list(rows.values_list("pk", flat=True)[:batch])
        if not ids:
            return deleted
        deleted += rows.model.objects.filter(pk__in=ids).delete()[0]
