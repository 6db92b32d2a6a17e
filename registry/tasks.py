"""Periodic chain tasks (Celery beat): thin wrappers over registry services."""

from celery import shared_task

from .chain import ChainUnavailable
from .indexer import indexer_run


@shared_task(name="registry.index_chain", ignore_result=True)
def index_chain_task() -> dict:
    try:
        run = indexer_run()
    except ChainUnavailable:
        return {"skipped": "chain_unavailable"}  # the next beat tick tries again
    return {"to_block": run.to_block, "events": run.events, "rolled_back_to": run.rolled_back_to}
