"""The event indexer: mirrors every ModelRegistry event into the database, safely.

- a cursor (block number and hash) says how far the mirror goes;
- logs are read in bounded block ranges, and only blocks at least CONFIRMATIONS deep, as raw
  JSON-RPC decoded by `chain.decode_log` (web3's per-log formatting cost more than the rest);
  a malformed log from the node is logged, counted and skipped, never stored;
- a range's events are inserted in bulk and each projection applies them as one batch;
- each log is applied once (unique by transaction hash and log index);
- a range is kept only if every log's block is still canonical after reading it;
- when the cursor's block is no longer canonical (a reorg), the mirror is rolled back to the
  highest indexed block that still is (the common ancestor), then indexing resumes from there.

Projections (the license mirror, version states, ...) live in other apps and are named in the
INDEXER_PROJECTIONS setting: modules with `apply(events)` and `rollback(events)`, called in the
same database transaction as the events they concern. This module imports none of them. Optional
hooks for state a projection writes ahead of the indexer (the licence mirror's contract reads):
`reorged(ancestor)` after a rollback, and `observed_blocks(start, end)` / `confirm_observed(start,
end, hashes)` before a range is applied, so that a row from a block that a reorg deeper than
CONFIRMATIONS replaced before the cursor reached it is found too.

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
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import OperationalError, connections, router, transaction
from django.utils.timezone import now as django_now

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
    w3 = chain.web3()
    address = chain.registry_address()
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
            count = _index_range(address, start, end)
        except ReorgDuringRead:
            logger.warning("chain reorganised while reading blocks %s-%s; will retry", start, end)
            break
        run.events += count
        run.to_block = end
        ranges += 1
        start = end + 1
    return run


def _hook(projection, name: str, *args, default=None):
    """A projection's optional hook (`observed_blocks`, `confirm_observed`, `reorged`), if it has one."""
    hook = getattr(projection, name, None)
    return default if hook is None else hook(*args)


RPC_BATCH = 500  # eth_getBlockByNumber calls per JSON-RPC batch
QUERY_CHUNK = 500  # values per `IN (...)` list


def _index_range(address: str, start: int, end: int) -> int:
    """Read, check and store the registry's logs of blocks `start`..`end`, then apply them.

    Logs are read raw (one `eth_getLogs`, the block hashes in JSON-RPC batches) and decoded by
    `chain.decode_log`; the events are stored with one bulk insert and each projection gets the
    whole range as one batch."""
    with chain_errors():
        end_hash = _block_hashes([end])[end][0]
        raw_logs = chain.rpc_call("eth_getLogs", [{"address": address, "fromBlock": hex(start), "toBlock": hex(end)}])
        logs = _parse_logs(raw_logs, address, start, end)
        observed = {n for projection in _projections() for n in _hook(projection, "observed_blocks", start, end, default=[])}
        blocks = _block_hashes(sorted({end} | {log.block_number for log in logs} | {n for n in observed if start <= n <= end}))
    if blocks[end][0] != end_hash or any(log.block_hash != blocks[log.block_number][0] for log in logs):
        raise ReorgDuringRead()
    hashes = {number: block_hash for number, (block_hash, _) in blocks.items()}
    events = _decode_events(address, logs, blocks)

    with transaction.atomic():
        cursor = IndexerCursor.objects.select_for_update().get(contract=address)
        if cursor.block_number != start - 1:
            return 0  # another indexer run got here first
        seen: set[tuple[str, int]] = set()
        for chunk in _chunks(sorted({e.tx_hash for e in events})):
            seen |= set(ChainEvent.objects.filter(tx_hash__in=chunk).values_list("tx_hash", "log_index"))
        fresh = [e for e in events if (e.tx_hash, e.log_index) not in seen]
        skipped_events: list[ChainEvent] = []
        for projection in _projections():
            # rows a projection wrote ahead of the indexer from blocks of this range that a deep
            # reorg replaced: no rollback will find them, since the cursor never reached them
            _hook(projection, "confirm_observed", start, end, hashes)
        bulk_insert(fresh, returning=True)
        IndexedBlock.objects.filter(contract=address, number__in=list(hashes)).delete()
        IndexedBlock.objects.filter(contract=address, number__lt=end - BLOCK_WINDOW).delete()
        IndexedBlock.objects.bulk_create(
            [IndexedBlock(contract=address, number=number, hash=block_hash) for number, block_hash in hashes.items()
             if number >= end - BLOCK_WINDOW],
            batch_size=QUERY_CHUNK,
        )
        if fresh:
            for projection in _projections():
                for group, error in _isolated(projection, "apply", fresh):
                    _record_skips(projection, group, error)
                    skipped_events.extend(group)
            if any(e.name not in GRANT_ONLY_EVENTS for e in fresh):
                cache_generation_bump()
        cursor.block_number = end
        cursor.block_hash = end_hash
        cursor.save(update_fields=["block_number", "block_hash", "updated_at"])
    _count_events(fresh, skipped_events)
    return len(fresh)


@dataclass(frozen=True)
class RawLog:
    """A log's place on chain, checked; topics and data still as the node sent them."""

    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    topics: list
    data: str


def _hash32(value: Any) -> str:
    """A 0x-hex 32-byte hash, lowercase; ValueError otherwise."""
    if not isinstance(value, str) or not _HASH32.fullmatch(value):
        raise ValueError(f"not a 32-byte hash: {str(value)[:80]!r}")
    return value.lower()


def _quantity(value: Any) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"not a hex quantity: {str(value)[:80]!r}")
    return int(value, 16)


def _parse_logs(raw_logs: Any, address: str, start: int, end: int) -> list[RawLog]:
    """The node's logs that can be placed: a log with a missing or garbled field, from another
    address, outside the range or repeated is not one of ours to store. It is logged and skipped
    (a broken or hostile node: nothing else is held up by it)."""
    if not isinstance(raw_logs, list):
        raise ChainUnavailable(f"eth_getLogs answered {type(raw_logs).__name__}, not a list of logs")
    logs: list[RawLog] = []
    keys: set[tuple[str, int]] = set()
    for raw in raw_logs:
        try:
            if raw.get("removed"):
                continue  # a node reporting a log it dropped in a reorg: the block check covers it
            log = RawLog(
                block_number=_quantity(raw["blockNumber"]),
                block_hash=_hash32(raw["blockHash"]),
                tx_hash=_hash32(raw["transactionHash"]),
                log_index=_quantity(raw["logIndex"]),
                topics=raw["topics"],
                data=raw["data"],
            )
            if str(raw.get("address", "")).lower() != address.lower():
                raise ValueError(f"a log of another contract ({str(raw.get('address'))[:50]})")
            if not start <= log.block_number <= end:
                raise ValueError(f"block {log.block_number} outside the range asked for")
            if not isinstance(log.topics, list) or not isinstance(log.data, str):
                raise ValueError("topics or data of the wrong type")
            if (log.tx_hash, log.log_index) in keys:
                raise ValueError("the same transaction hash and log index twice")
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            _skip_malformed(raw, exc)
            continue
        keys.add((log.tx_hash, log.log_index))
        logs.append(log)
    return logs


def _block_hashes(numbers: list[int]) -> dict[int, tuple[str, datetime]]:
    """Each block's canonical hash and time, read in JSON-RPC batches (inside `chain_errors`)."""
    found: dict[int, tuple[str, datetime]] = {}
    for chunk in _chunks(numbers, RPC_BATCH):
        for number, block in zip(chunk, chain.rpc_batch([("eth_getBlockByNumber", [hex(n), False]) for n in chunk]), strict=True):
            if block is None:
                # a lagging node behind a load balancer does not know a block another node told us about
                raise ChainUnavailable(f"the node at {settings.CHAIN_RPC_URL} does not know block {number} yet (lagging); retry later")
            try:
                found[number] = (_hash32(block["hash"]), datetime.fromtimestamp(_quantity(block["timestamp"]), tz=UTC))
            except (KeyError, TypeError, ValueError, OverflowError, OSError) as exc:
                raise ChainUnavailable(f"the node at {settings.CHAIN_RPC_URL} sent a garbled block {number}: {exc}") from exc
    return found


def _decode_events(address: str, logs: list[RawLog], blocks: dict[int, tuple[str, datetime]]) -> list[ChainEvent]:
    """ChainEvents of the registry's logs: an unknown topic0 (no event of the ABI) is not ours
    and is passed over; a malformed log is logged, counted and skipped."""
    events = []
    for log in logs:
        try:
            decoded = chain.decode_log(log.topics, log.data)
        except chain.MalformedLog as exc:
            _skip_malformed(log, exc)
            continue
        if decoded is None:
            logger.info("log %s of tx %s has no event of the registry's ABI (topic0 %s): passed over",
                        log.log_index, log.tx_hash, str(log.topics[:1])[:80])
            continue
        name, args = decoded
        events.append(
            ChainEvent(
                contract=address,
                block_number=log.block_number,
                block_hash=log.block_hash,
                block_timestamp=blocks[log.block_number][1],
                tx_hash=log.tx_hash,
                log_index=log.log_index,
                name=name,
                args=args,
            )
        )
    return events


def _skip_malformed(log: Any, error: Exception) -> None:
    where = (f"tx {log.tx_hash}, log {log.log_index}, block {log.block_number}" if isinstance(log, RawLog)
             else str(log)[:300])
    logger.error("malformed registry log skipped (%s): %s", where, _error_text(error))
    metrics.INDEXER_EVENTS_SKIPPED.labels(event="malformed").inc()


def _chunks(values: list, size: int = QUERY_CHUNK):
    for i in range(0, len(values), size):
        yield values[i : i + size]


_INTEGER_FIELDS = {"IntegerField", "BigIntegerField", "PositiveIntegerField", "PositiveBigIntegerField", "SmallIntegerField",
                   "PositiveSmallIntegerField", "ForeignKey", "BigAutoField", "AutoField"}
_HASH32 = re.compile(r"0x[0-9a-fA-F]{64}")
UNNEST_ROWS = 5000  # rows per INSERT ... SELECT FROM unnest(...) on PostgreSQL


def bulk_insert(objs: list, *, returning: bool = False) -> None:
    """INSERT `objs` (unsaved instances of one model) as `bulk_create` would, in multi-row
    statements, without its per-value cost: each field's database value is prepared by the
    field itself (`get_db_prep_save`), once per distinct value where values repeat (times,
    amounts). With `returning`, each object gets its primary key (RETURNING, PostgreSQL and
    SQLite >= 3.35). Used for the rows a batch of events writes: ChainEvent, ledger entries and
    lines; thousands per range, where the ORM's SQL compiler was most of the insert time."""
    if not objs:
        return
    model = type(objs[0])
    meta = model._meta
    db = connections[router.db_for_write(model)]
    fields = [f for f in meta.concrete_fields if not (f.primary_key and getattr(objs[0], f.attname) is None)]
    cache: dict[tuple[str, Any], Any] = {}
    # how each field's values are prepared: "memo" once per distinct value, "text" and "int" as
    # they are when already of that type (what the field would return), "field" by the field
    kinds = tuple(
        "memo" if f.get_internal_type() in ("DateTimeField", "DecimalField")
        else "text" if f.get_internal_type() in ("CharField", "TextField")
        else "int" if f.get_internal_type() in _INTEGER_FIELDS
        else "field"
        for f in fields
    )
    stamped = django_now()
    auto = [f.attname for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)]
    for obj in objs:  # auto_now(_add): the statement's time, one for all its rows
        for attname in auto:
            setattr(obj, attname, stamped)

    def prepared(field, kind: str, obj) -> Any:
        value = getattr(obj, field.attname)
        if (kind == "text" and type(value) is str) or (kind == "int" and type(value) is int):
            return value
        if kind != "memo":
            return field.get_db_prep_save(value, db)
        key = (field.attname, value)
        if key not in cache:
            cache[key] = field.get_db_prep_save(value, db)
        return cache[key]

    quote = db.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    into = f"INSERT INTO {quote(meta.db_table)} ({columns})"
    unnest = db.vendor == "postgresql"
    if unnest:
        # one array per column (a short statement psycopg parses once, whatever the row count),
        # rows in array order; sent in binary (%b): no escaping of each element into text
        into += " SELECT * FROM unnest(" + ", ".join(f"%b::{f.db_type(db)}[]" for f in fields) + ")"
        size = UNNEST_ROWS
    else:
        row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        size = min(max(1, db.ops.bulk_batch_size(fields, objs)), QUERY_CHUNK)
    with _server_bound_cursor(db) if unnest else db.cursor() as cursor:
        for chunk in _chunks(objs, size):
            if unnest:
                params = [[prepared(f, k, obj) for obj in chunk] for f, k in zip(fields, kinds, strict=True)]
                sql = into
            else:
                params = [prepared(f, k, obj) for obj in chunk for f, k in zip(fields, kinds, strict=True)]
                sql = f"{into} VALUES {', '.join([row] * len(chunk))}"
            if not returning:
                cursor.execute(sql, params)
                continue
            cursor.execute(f"{sql} RETURNING {quote(meta.pk.column)}", params)
            for obj, (pk,) in zip(chunk, cursor.fetchall(), strict=True):
                setattr(obj, meta.pk.attname, pk)
                obj._state.adding = False
                obj._state.db = db.alias


def _server_bound_cursor(db):
    """A cursor of Django's PostgreSQL connection (same transaction, queries logged as usual)
    that sends its parameters apart from the statement: psycopg's default client-side binding
    quotes every element of the arrays into the SQL text, which cost as much as the insert."""
    import psycopg

    db.ensure_connection()
    return db._prepare_cursor(psycopg.Cursor(db.connection))


def _count_events(fresh: list[ChainEvent], skipped: list[ChainEvent]) -> None:
    """After the commit: an event some projection skipped counts as skipped, not applied."""
    skipped_keys = {(e.tx_hash, e.log_index) for e in skipped}
    counts: Counter[tuple[bool, str]] = Counter(((e.tx_hash, e.log_index) in skipped_keys, e.name) for e in fresh)
    for (was_skipped, name), count in counts.items():
        family = metrics.INDEXER_EVENTS_SKIPPED if was_skipped else metrics.INDEXER_EVENTS_APPLIED
        family.labels(event=metrics.code_label(name)).inc(count)


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
            _hook(projection, "reorged", ancestor)
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
