"""Periodic royalty tasks (Celery beat)."""

from celery import shared_task

from registry.chain import ChainUnavailable

from .ledger import ledger_reconcile


@shared_task(name="royalties.reconcile", ignore_result=True)
def reconcile_task() -> int:
    try:
        return len(ledger_reconcile())
    except ChainUnavailable:
        return -1  # next time
