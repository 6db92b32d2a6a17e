"""Reads about the chain mirror: how far the indexer is, and what it had to skip; whether the
relayer's wallet can pay for new work."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from . import chain
from .chain import ChainError

logger = logging.getLogger(__name__)
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


# ------------------------------------------------------------------------- relayer funding

FUNDING_CACHE_SECONDS = 5  # the portal and /readyz read this often; the relayer reads it live


@dataclass(frozen=True)
class RelayerFunding:
    """The relayer wallet's balance against RELAYER_MIN_BALANCE_WEI (integers, wei).

    `funded` is None (and `balance_wei` None) when it is not known: no relayer key configured,
    or the chain did not answer. A balance equal to the minimum is funded."""

    address: str | None
    balance_wei: int | None
    min_balance_wei: int
    funded: bool | None
    checked_at: datetime


def relayer_funding() -> RelayerFunding:
    """Whether the relayer can pay for new outbox rows, read at most FUNDING_CACHE_SECONDS ago
    (by this, or by the relayer itself when it last looked before signing).

    Never raises for a chain or cache fault: readiness reports it as "degraded" and the portal
    shows its notice only when `funded` is False."""
    try:
        address = chain.relayer_account().address
    except (ChainError, ValueError, OSError):  # no key on a public chain, an unreadable keystore
        return RelayerFunding(None, None, _min_balance(), None, timezone.now())
    try:
        cached = cache.get(_funding_key(address))
    except Exception:  # the cache (Redis) is down: read the chain instead
        cached = None
    if cached is not None:
        balance, checked_at = cached
        return _funding(address, balance, checked_at)
    try:
        with chain.chain_errors():
            balance = int(chain.web3().eth.get_balance(address))
    except ChainError:
        balance = None
    return relayer_funding_remember(address=address, balance_wei=balance)


def relayer_funding_remember(*, address: str, balance_wei: int | None) -> RelayerFunding:
    """Record a balance just read (the relayer calls this before signing), so the readers see
    the relayer's own latest view without another RPC call."""
    checked_at = timezone.now()
    try:
        cache.set(_funding_key(address), (balance_wei, checked_at), FUNDING_CACHE_SECONDS)
    except Exception:  # a cache fault never stops the relayer; readers then ask the chain
        logger.debug("relayer funding not cached", exc_info=True)
    return _funding(address, balance_wei, checked_at)


def _funding(address: str, balance: int | None, checked_at: datetime) -> RelayerFunding:
    minimum = _min_balance()
    funded = None if balance is None else int(balance) >= minimum
    return RelayerFunding(address, None if balance is None else int(balance), minimum, funded, checked_at)


def _min_balance() -> int:
    return max(0, int(settings.RELAYER_MIN_BALANCE_WEI))


def _funding_key(address: str) -> str:
    return f"registry:relayer-funding:{settings.CHAIN_ID}:{address}"
