"""Reads about the chain mirror: how far the indexer is, and what it had to skip."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings

from . import chain
from .chain import ChainError
from .models import IndexerCursor, SkippedEvent

RECENT_SKIPPED = 20
URL_RE = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)  # an RPC or database URL may hold a key


@dataclass(frozen=True)
class SkippedEventInfo:
    event: str
    block_number: int
    tx_hash: str
    log_index: int
    projection: str
    error: str
    at: datetime


@dataclass(frozen=True)
class IndexerStatus:
    chain_id: int
    registry_address: str
    head: int | None  # None: the chain did not answer
    indexed_block: int | None  # None: the indexer has not run yet
    skipped_events: int
    recent_skipped: list[SkippedEventInfo] = field(default_factory=list)

    @property
    def lag_blocks(self) -> int | None:
        """Blocks the mirror is behind the head (CONFIRMATIONS - 1 when caught up); below zero
        while the node answering is behind the mirror (a lagging node: the indexer waits)."""
        if self.head is None or self.indexed_block is None:
            return None
        return self.head - self.indexed_block


def indexer_status() -> IndexerStatus:
    """The chain head, the block the mirror reached, and the events projections skipped (newest
    first). Public: errors are shown without any URL in them; the admin shows them whole."""
    address = chain.registry_address()
    try:
        with chain.chain_errors():
            head = int(chain.web3().eth.block_number)
    except ChainError:
        head = None
    cursor = IndexerCursor.objects.filter(contract=address).first()
    indexed = cursor.block_number if cursor is not None and cursor.block_number >= 0 else None
    skipped = SkippedEvent.objects.filter(event__contract=address)
    recent = [
        SkippedEventInfo(
            event=skip.event.name,
            block_number=skip.event.block_number,
            tx_hash=skip.event.tx_hash,
            log_index=skip.event.log_index,
            projection=skip.projection,
            error=URL_RE.sub("<url>", skip.error),
            at=skip.created_at,
        )
        for skip in skipped.select_related("event").order_by("-created_at", "-pk")[:RECENT_SKIPPED]
    ]
    return IndexerStatus(
        chain_id=settings.CHAIN_ID,
        registry_address=address,
        head=head,
        indexed_block=indexed,
        skipped_events=skipped.count(),
        recent_skipped=recent,
    )
