"""The event indexer: mirrors every ModelRegistry event into the database, safely.

- a cursor (block number and hash) says how far the mirror goes;
- logs are read in bounded block ranges, and only blocks at least CONFIRMATIONS deep;
- each log is applied once (unique by transaction hash and log index);
- a range is kept only if every log's block is still canonical after reading it;
- when the cursor's block is no longer canonical (a reorg), the mirror is rolled back to the
  highest indexed block that still is (the common ancestor), then indexing resumes from there.

Projections (the license mirror, version states, ...) live in other apps and are named in the
INDEXER_PROJECTIONS setting: modules with `apply(events)` and `rollback(events)`, called in the
same database transaction as the events they concern. This module imports none of them.

One bad event must not stop the mirror (a poison event): each projection applies a range's events
in one batch inside a savepoint; when the batch raises, it applies them again one transaction's
events at a time, each in its own savepoint. What still raises is recorded as a SkippedEvent (the
admin and `GET /api/v1/chain/status` show them) and skipped by that projection only: the events
are stored, the cursor moves on, every other event and projection counts. Transient faults (the
database or the chain unreachable) are not poison: they end the run and the range is read again.

A node whose head is below the cursor (a lagging node behind a load balancer) is not a reorg:
the run waits for it and changes nothing.
"""

from __future__ import annotations

import functools
import importlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import OperationalError, transaction
from django.utils.timezone import now as django_now
from eth_utils import event_abi_to_log_topic
from hexbytes import HexBytes

from telemetry import metrics

from . import chain
from .caching import cache_generation_bump
from .chain import ChainMisconfigured, ChainUnavailable, chain_errors, hex0x
from .models import ChainEvent, IndexedBlock, IndexerCursor, SkippedEvent

logger = logging.getLogger(__name__)
BLOCK_WINDOW = 512  # indexed block hashes kept for finding a common ancestor
# events that only add money or licences: nothing cached can be made wrong by them (caches keep
# grants, never refusals), so they do not clear the hot-path caches (registry/caching.py)
GRANT_ONLY_EVENTS = frozenset({"LicensePurchased", "RoyaltyCredited", "PlatformFeeCredited", "OverpaymentCredited", "Withdrawn", "TermsChanged", "PlatformFeeChanged"})
# faults of the moment, not of the event: they end the run (the range is read again next run)
TRANSIENT_ERRORS = (OperationalError, ChainUnavailable, ChainMisconfigured)
SKIP_ERROR_CHARS = 2000  # of the recorded error message


@dataclass
class IndexRun:
    from_block: int
    to_block: int
    events: int = 0
    rolled_back_to: int | None = None
    removed: int = 0


class ReorgDuringRead(Exception):
    """The chain changed while a range was being read; the range is read again next run."""


@functools.cache
def _projections():
    return [importlib.import_module(path) for path in getattr(settings, "INDEXER_PROJECTIONS", [])]


@functools.cache
def _topics() -> dict[bytes, str]:
    return {
        bytes(event_abi_to_log_topic(item)): item["name"]
        for item in chain.load_artifact()["abi"]
        if item["type"] == "event"
    }


def jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, HexBytes)):
        return hex0x(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def _start_block() -> int:
    record = chain.read_deployment() or {}
    return int(getattr(settings, "REGISTRY_DEPLOY_BLOCK", 0) or record.get("block_number", 0))


def indexer_run(*, max_range: int | None = None, max_ranges: int | None = None) -> IndexRun:
    """Index confirmed registry events up to the safe head; roll back first if a reorg happened."""
    try:
        run = _indexer_run(max_range=max_range, max_ranges=max_ranges)
    except ChainUnavailable:
        metrics.INDEXER_RUNS.labels(outcome="chain_unavailable").inc()
        metrics.CHAIN_FAILURES.labels(operation="indexer").inc()
        raise
    except Exception:
        metrics.INDEXER_RUNS.labels(outcome="error").inc()
        raise
    metrics.INDEXER_RUNS.labels(outcome="ok").inc()
    return run


def _indexer_run(*, max_range: int | None, max_ranges: int | None) -> IndexRun:
    max_range = max_range or settings.INDEXER_MAX_RANGE
    contract = chain.registry_contract()
    w3 = chain.web3()
    address = contract.address
    cursor, _ = IndexerCursor.objects.get_or_create(contract=address, defaults={"block_number": _start_block() - 1})
    with chain_errors():
        head = w3.eth.block_number
    safe_head = head - max(settings.CONFIRMATIONS, 1) + 1
    run = IndexRun(from_block=cursor.block_number + 1, to_block=cursor.block_number)
    if head < cursor.block_number:
        # a node that has not caught up yet (load-balanced RPC): not a reorg; once its head
        # passes the cursor, the cursor's hash says whether a reorg happened
        logger.info("the node's head %s is behind the indexed block %s: waiting for it to catch up", head, cursor.block_number)
        return run

    rolled = _rollback_if_reorged(cursor, w3)
    if rolled is not None:
        run.rolled_back_to, run.removed = rolled
        cursor.refresh_from_db()
        run.from_block = cursor.block_number + 1

    ranges = 0
    start = cursor.block_number + 1
    while start <= safe_head and (max_ranges is None or ranges < max_ranges):
        end = min(start + max_range - 1, safe_head)
        try:
            count = _index_range(address, contract, w3, start, end)
        except ReorgDuringRead:
            logger.warning("chain reorganised while reading blocks %s-%s; will retry", start, end)
            break
        run.events += count
        run.to_block = end
        ranges += 1
        start = end + 1
    return run


def _index_range(address: str, contract, w3, start: int, end: int) -> int:
    with chain_errors():
        end_hash = bytes(w3.eth.get_block(end)["hash"])
        logs = w3.eth.get_logs({"address": address, "fromBlock": start, "toBlock": end})
        hashes = {end: end_hash}
        times: dict[int, datetime] = {}
        for log in logs:
            hashes.setdefault(log["blockNumber"], None)
        for number in hashes:
            block = w3.eth.get_block(number)
            canonical = bytes(block["hash"])
            if hashes[number] is not None and hashes[number] != canonical:
                raise ReorgDuringRead()
            hashes[number] = canonical
            times[number] = datetime.fromtimestamp(block["timestamp"], tz=UTC)
    for log in logs:
        if bytes(log["blockHash"]) != hashes[log["blockNumber"]]:
            raise ReorgDuringRead()

    events = []
    topics = _topics()
    for log in logs:
        name = topics.get(bytes(log["topics"][0])) if log["topics"] else None
        if name is None:
            continue
        decoded = getattr(contract.events, name)().process_log(log)
        events.append(
            ChainEvent(
                contract=address,
                block_number=log["blockNumber"],
                block_hash=hex0x(log["blockHash"]),
                block_timestamp=times[log["blockNumber"]],
                tx_hash=hex0x(log["transactionHash"]),
                log_index=log["logIndex"],
                name=name,
                args={k: jsonable(v) for k, v in decoded["args"].items()},
            )
        )
    with transaction.atomic():
        cursor = IndexerCursor.objects.select_for_update().get(contract=address)
        if cursor.block_number != start - 1:
            return 0  # another indexer run got here first
        seen = set(
            ChainEvent.objects.filter(tx_hash__in={e.tx_hash for e in events}).values_list("tx_hash", "log_index")
        ) if events else set()
        fresh = [e for e in events if (e.tx_hash, e.log_index) not in seen]
        skipped_events: list[ChainEvent] = []
        ChainEvent.objects.bulk_create(fresh)
        for number, block_hash in hashes.items():
            IndexedBlock.objects.update_or_create(contract=address, number=number, defaults={"hash": hex0x(block_hash)})
        IndexedBlock.objects.filter(contract=address, number__lt=end - BLOCK_WINDOW).delete()
        if fresh:
            for projection in _projections():
                for events, error in _isolated(projection, "apply", fresh):
                    _record_skips(projection, events, error)
                    skipped_events.extend(events)
            if any(e.name not in GRANT_ONLY_EVENTS for e in fresh):
                cache_generation_bump()
        cursor.block_number = end
        cursor.block_hash = hex0x(end_hash)
        cursor.save(update_fields=["block_number", "block_hash", "updated_at"])
    _count_events(fresh, skipped_events)
    return len(fresh)


def _count_events(fresh: list[ChainEvent], skipped: list[ChainEvent]) -> None:
    """After the commit: an event some projection skipped counts as skipped, not applied."""
    skipped_keys = {(e.tx_hash, e.log_index) for e in skipped}
    for event in fresh:
        family = metrics.INDEXER_EVENTS_SKIPPED if (event.tx_hash, event.log_index) in skipped_keys else metrics.INDEXER_EVENTS_APPLIED
        family.labels(event=metrics.code_label(event.name)).inc()


def _rollback_if_reorged(cursor: IndexerCursor, w3) -> tuple[int, int] | None:
    if cursor.block_number < 0 or not cursor.block_hash:
        return None
    with chain_errors():
        if cursor.block_number > w3.eth.block_number:
            return None  # a lagging node, not a reorg: wait for it (see indexer_run)
        current = w3.eth.get_block(cursor.block_number, full_transactions=False)
    if current is not None and hex0x(current["hash"]) == cursor.block_hash:
        return None
    ancestor = _common_ancestor(cursor.contract, w3)
    return _rollback(cursor.contract, ancestor)


def _common_ancestor(contract: str, w3) -> int:
    with chain_errors():
        head = w3.eth.block_number
        for block in IndexedBlock.objects.filter(contract=contract).order_by("-number").iterator():
            if block.number > head:
                continue
            if hex0x(w3.eth.get_block(block.number)["hash"]) == block.hash:
                return block.number
    return _start_block() - 1  # deeper than the window: rebuild the mirror from the deployment


def _rollback(contract: str, ancestor: int) -> tuple[int, int]:
    with transaction.atomic():
        cursor = IndexerCursor.objects.select_for_update().get(contract=contract)
        removed = list(ChainEvent.objects.filter(contract=contract, block_number__gt=ancestor).order_by("-block_number", "-log_index"))
        skipped = set(SkippedEvent.objects.filter(event__in=removed).values_list("event_id", "projection"))
        ChainEvent.objects.filter(pk__in=[e.pk for e in removed]).delete()  # and their SkippedEvents
        IndexedBlock.objects.filter(contract=contract, number__gt=ancestor).delete()
        if removed:
            for projection in _projections():
                # a projection undoes only what it applied
                undo = [e for e in removed if (e.pk, projection.__name__) not in skipped]
                for events, error in _isolated(projection, "rollback", undo):
                    # the events are gone from the mirror (they left the chain), so no row can
                    # point at them: the log is the record
                    for event in events:
                        logger.error(
                            "projection %s could not roll back %s (tx %s, log %s) that left the chain: %s",
                            projection.__name__, event, event.tx_hash, event.log_index, _error_text(error),
                        )
            cache_generation_bump()  # a rolled-back purchase takes a licence away
        for projection in _projections():
            # facts a projection read from blocks that left the chain (not from events: a licence
            # read from the contract at a block) are forgotten too, if the projection keeps any
            forget = getattr(projection, "reorged", None)
            if forget is not None:
                forget(ancestor)
        kept = IndexedBlock.objects.filter(contract=contract, number=ancestor).first()
        cursor.block_number = ancestor
        cursor.block_hash = kept.hash if kept else ""
        cursor.save(update_fields=["block_number", "block_hash", "updated_at"])
    logger.warning("reorg: rolled the chain mirror back to block %s, removing %s events", ancestor, len(removed))
    return ancestor, len(removed)


def _isolated(projection, action: str, events: list[ChainEvent]) -> list[tuple[list[ChainEvent], Exception]]:
    """Run `projection.<action>` over `events` so that one bad event cannot block the others.

    Fast path: the whole batch in one savepoint (the ledger batches its queries). If it raises,
    that savepoint is rolled back and the events go again one chain transaction at a time, each
    in its own savepoint: a purchase's LicensePurchased and RoyaltyCredited logs come from one
    transaction and the ledger needs them together. Returns the groups that still raised."""
    if not events:
        return []
    handler = getattr(projection, action)
    try:
        with transaction.atomic():
            handler(events)
        return []
    except TRANSIENT_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001 - any fault of a projection is isolated below
        logger.warning("projection %s failed to %s %s events in one batch (%s); retrying one transaction at a time",
                       projection.__name__, action, len(events), _error_text(exc))
    failed = []
    for group in _by_transaction(events):
        try:
            with transaction.atomic():
                handler(group)
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001
            failed.append((group, exc))
    return failed


def _by_transaction(events: list[ChainEvent]) -> list[list[ChainEvent]]:
    """Consecutive events of one chain transaction, in the order given."""
    groups: list[list[ChainEvent]] = []
    for event in events:
        if groups and groups[-1][0].tx_hash == event.tx_hash:
            groups[-1].append(event)
        else:
            groups.append([event])
    return groups


def _error_text(error: Exception) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= SKIP_ERROR_CHARS else text[: SKIP_ERROR_CHARS - 1] + "…"


def _record_skips(projection, events: list[ChainEvent], error: Exception) -> None:
    text = _error_text(error)
    for event in events:
        logger.warning(
            "poison event: projection %s skipped %s (block %s, tx %s, log %s): %s",
            projection.__name__, event, event.block_number, event.tx_hash, event.log_index, text,
        )
        SkippedEvent.objects.update_or_create(event=event, projection=projection.__name__, defaults={"error": text})


def indexer_reapply_skipped(*, projection: str | None = None) -> tuple[int, int]:
    """Apply skipped events again, once the fault that made them poison is fixed (oldest first,
    one chain transaction at a time, each in its own savepoint). A success removes the record;
    a failure keeps it with the new error. Returns (events applied, events still skipped)."""
    configured = {module.__name__: module for module in _projections()}
    applied = failing = 0
    with transaction.atomic():
        # the indexer's runs hold the same lock while they apply events
        list(IndexerCursor.objects.select_for_update())
        skips = SkippedEvent.objects.select_related("event").order_by("event__block_number", "event__log_index", "pk")
        if projection:
            skips = skips.filter(projection=projection)
        groups: dict[tuple[str, str], list[SkippedEvent]] = {}
        for skip in skips:
            groups.setdefault((skip.projection, skip.event.tx_hash), []).append(skip)
        for (path, _tx), group in groups.items():
            pks = [skip.pk for skip in group]
            module = configured.get(path)
            if module is None:
                logger.warning("projection %s is not in INDEXER_PROJECTIONS: its %s skipped event(s) stay", path, len(group))
                failing += len(group)
                continue
            try:
                with transaction.atomic():
                    module.apply([skip.event for skip in group])
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:  # noqa: BLE001 - still poison: keep the record
                SkippedEvent.objects.filter(pk__in=pks).update(error=_error_text(exc), updated_at=django_now())
                failing += len(group)
            else:
                SkippedEvent.objects.filter(pk__in=pks).delete()
                applied += len(group)
        if applied:
            cache_generation_bump()
    return applied, failing
