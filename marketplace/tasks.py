"""Celery tasks: thin; load ids, call one service. Chain faults retry with backoff."""

from celery import shared_task

from registry.chain import ChainUnavailable
from registry.services import TransactionPending

from . import services

RETRYABLE = (ChainUnavailable, TransactionPending)
RETRY = {"autoretry_for": RETRYABLE, "retry_backoff": 2, "retry_backoff_max": 60, "retry_jitter": True, "max_retries": None}


@shared_task(name="marketplace.model_anchor", **RETRY)
def model_anchor_task(model_id: int) -> str:
    return services.model_anchor(model_id=model_id).status


@shared_task(name="marketplace.version_hash", acks_late=True)
def version_hash_task(version_id: int) -> str:
    """Hash and inspect a version's files (in a limited child process). Acknowledged late, so a
    worker lost mid-run hands the task on; the service counts every run and rejects the version
    (`inspection_failed`) after INSPECTION_MAX_ATTEMPTS, so a hostile file cannot loop forever."""
    return services.version_hash_and_inspect(version_id=version_id).status


@shared_task(name="marketplace.version_anchor", **RETRY)
def version_anchor_task(version_id: int) -> str:
    return services.version_anchor(version_id=version_id).status


@shared_task(name="marketplace.resume_pending_chain", ignore_result=True)
def resume_pending_chain_task() -> int:
    """Re-queue work whose task was lost (a worker killed, eager mode with the chain down)."""
    return services.pending_chain_resume()


@shared_task(name="marketplace.expire_uploads", ignore_result=True)
def expire_uploads_task() -> int:
    return services.uploads_expire()


@shared_task(name="marketplace.purge_expired", ignore_result=True)
def purge_expired_task() -> int:
    """Expired SIWE nonces and old refused anonymous downloads (settings: *_RETENTION_*)."""
    result = services.expired_records_purge()
    return result.siwe_nonces + result.refused_downloads


@shared_task(name="marketplace.close_receipt_batches", ignore_result=True)
def close_receipt_batches_task() -> int:
    """Close due receipt batches and anchor every batch not yet anchored (Celery beat, every
    RECEIPT_CHECK_SECONDS). The chain down: the batches wait for the next run; nothing retries here."""
    return services.receipt_batches_run().closed
