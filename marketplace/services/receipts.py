"""Download receipts: one per granted GET of a file, batched under a Merkle root anchored on chain.

The download path pays for one INSERT (`receipt_issue`, saved by `download_finish` in the
transaction that already records the bytes sent): no commit of its own, no chain call, no lock,
no hashing. A
periodic task (`marketplace.close_receipt_batches`, `receipt_batches_run`) closes batches of the
receipts not yet in one (every RECEIPT_BATCH_SECONDS, or at RECEIPT_BATCH_SIZE receipts), computes
their leaves and root (`hallmark.receipts`, OpenZeppelin's StandardMerkleTree), and anchors the
root with `anchorReceipts(root, count)` through the outbox: the row is queued in the same database
transaction as the batch's move to `anchoring`, under a key of its own, so a batch is never lost
(a worker that dies leaves it `closed` or `anchoring`, and the next run takes it up) and never
anchored twice (the outbox relays one row once: a signed row is re-broadcast as the same bytes).
While the chain is down the batch waits, `anchoring`, and the next run after it is back finishes it.
See docs/recorder.md.
"""

from __future__ import annotations

import functools
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from eth_utils import is_address, to_checksum_address

from hallmark import receipts as hallmark_receipts
from registry.chain import ChainError
from registry.models import ChainTransaction
from registry.services import (
    TransactionFailed,
    TransactionPending,
    transaction_enqueue,
    transaction_events,
    transaction_process,
    transaction_requeue,
)
from telemetry import metrics

from ..models import Receipt, ReceiptBatch
from ..receipt_selectors import receipt_json

if TYPE_CHECKING:
    from .downloads import DownloadStart

ZERO_ADDRESS = "0x" + "0" * 40
ANCHOR_FUNCTION = "anchorReceipts"
FAILED_RETRY_MAX = timedelta(hours=1)  # a batch whose anchoring failed is queued again, backing off to this


def receipt_issue(*, start: DownloadStart, range_start: int, range_end: int) -> tuple[Receipt | None, str]:
    """The receipt of a granted GET of `start`'s file for bytes [range_start, range_end), not yet
    saved, and its `X-Hallmark-Receipt` header value; (None, "") when RECEIPTS_ENABLED is off (the
    bench's baseline). `download_finish` saves it in the same transaction as the Download row's
    update once the body is sent: the download path gains one INSERT and no commit (a commit, an
    fsync, is what a write costs there: docs/recorder.md). The leaf is computed when its batch
    closes."""
    if not settings.RECEIPTS_ENABLED:
        return None, ""
    version, download = start.version, start.download
    device = download.device if download is not None else None
    row = Receipt(
        receipt_id="0x" + secrets.token_hex(32),
        model_id=_hex32(version.model.chain_model_id),
        version=version.number,
        root_digest=_hex32(version.root_digest),
        file_sha256=_hex32(start.artifact.sha256),
        licensee=_checksummed(start.grant.wallet),
        device=_checksummed(device.address) if device is not None else ZERO_ADDRESS,
        range_start=range_start,
        range_end=range_end,
        served_at=int(time.time()),
        download=download,
    )
    # the values above are already in the receipt's normal form (what hallmark.receipts would
    # make of them; tests/marketplace/test_receipts.py holds the two headers equal): encoding
    # them directly skips a second validation that cost more than the INSERT
    return row, hallmark_receipts.encode_header_json(receipt_json(row))


@functools.lru_cache(maxsize=4096)
def _checksummed(address: str) -> str:
    """EIP-55 form of a wallet or device address (a keccak each time: kept per process, bounded);
    anything that is not an address (a vendor's own download has no licence wallet) is zero."""
    return str(to_checksum_address(address)) if is_address(address) else ZERO_ADDRESS


def receipt_insert(row: Receipt, *, download_pk: int, bytes_sent: int, range_start: int | None) -> None:
    """INSERT `row` (from `receipt_issue`) and add `bytes_sent` to Download `download_pk`, atomically:
    on PostgreSQL in one statement (a data-modifying WITH: one round trip and no BEGIN/COMMIT of
    its own), elsewhere both in one transaction. The statements are built once per process: the
    ORM's `save()` costs twice the write itself on this path (bench/receipts.py; measured 0.4 ms
    against 0.2 ms a row on SQLite), and nothing reads the new row's pk here. The fields' own
    `pre_save` / `get_db_prep_save` make the values, as `save()` would."""
    statements = _statements(connection.vendor)
    params = [field.get_db_prep_save(field.pre_save(row, True), connection) for field in statements.fields]
    update = [bytes_sent, range_start, download_pk]
    if statements.combined is not None:
        with connection.cursor() as cursor:
            cursor.execute(statements.combined, update + params)
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statements.update, update)
        cursor.execute(statements.insert, params)


@dataclass(frozen=True)
class _Statements:
    fields: list
    insert: str
    update: str  # the Download row's bytes sent and range start
    combined: str | None  # both at once, where the database can (PostgreSQL)


@functools.lru_cache(maxsize=4)
def _statements(vendor: str) -> _Statements:
    from ..models import Download

    quote = connection.ops.quote_name
    fields = [field for field in Receipt._meta.concrete_fields if not field.primary_key]
    insert = "INSERT INTO {} ({}) VALUES ({})".format(
        quote(Receipt._meta.db_table), ", ".join(quote(field.column) for field in fields), ", ".join(["%s"] * len(fields))
    )
    update = "UPDATE {} SET {bytes} = {bytes} + %s, {start} = %s WHERE {pk} = %s".format(
        quote(Download._meta.db_table), bytes=quote("bytes_sent"), start=quote("range_start"), pk=quote(Download._meta.pk.column)
    )
    combined = f"WITH sent AS ({update}) {insert}" if vendor == "postgresql" else None
    return _Statements(fields, insert, update, combined)


def receipt_value(row: Receipt) -> hallmark_receipts.Receipt:
    """The shared library's form of a stored receipt (its JSON, leaf and proof are defined there)."""
    return hallmark_receipts.Receipt.from_json(receipt_json(row))


@dataclass(frozen=True)
class ReceiptsRun:
    closed: int  # batches closed by this run
    anchored: int  # batches whose anchoring this run confirmed
    waiting: int  # batches left closed or anchoring (chain down, relayer unfunded, backing off)


def receipt_batches_run(*, now: float | None = None) -> ReceiptsRun:
    """Close what is due, then anchor every batch not yet anchored: the periodic task's body,
    safe to run twice at once or after a crash (each step is idempotent)."""
    closed = receipt_batches_close(now=now)
    anchored = 0
    pending = list(ReceiptBatch.objects.exclude(state=ReceiptBatch.State.ANCHORED).order_by("pk").values_list("pk", flat=True))
    for pk in pending:
        try:
            batch = receipt_batch_anchor(batch_pk=pk)
        except (ChainError, TransactionPending):
            break  # the chain (or the relayer) is not there for the next batch either: all wait
        if batch.state == ReceiptBatch.State.ANCHORED:
            anchored += 1
    return ReceiptsRun(closed=len(closed), anchored=anchored, waiting=len(pending) - anchored)


def receipt_batches_close(*, now: float | None = None) -> list[ReceiptBatch]:
    """Close batches of the receipts not yet in one: each full RECEIPT_BATCH_SIZE, then the rest
    once its oldest receipt is RECEIPT_BATCH_SECONDS old. Each batch is closed in its own
    transaction; a concurrent run that took some of the same receipts makes this one's batch
    roll back (and the receipts stay with the other)."""
    now = time.time() if now is None else now
    size = max(1, int(settings.RECEIPT_BATCH_SIZE))
    due_before = now - float(settings.RECEIPT_BATCH_SECONDS)
    batches = []
    while True:
        batch = _close_one(size=size, due_before=due_before)
        if batch is None:
            return batches
        batches.append(batch)


def _close_one(*, size: int, due_before: float) -> ReceiptBatch | None:
    with transaction.atomic():
        rows = list(Receipt.objects.filter(batch__isnull=True).order_by("served_at", "pk")[:size])
        if not rows or (len(rows) < size and rows[0].served_at > due_before):
            return None
        leaves = [hallmark_receipts.leaf_hash(receipt_value(row)) for row in rows]
        root = hallmark_receipts.build_tree(leaves).root
        batch = ReceiptBatch.objects.create(root="0x" + bytes(root).hex(), count=len(rows))
        # claim them with a conditional write: a run closing at the same time waits for this one
        # and then finds them taken (PostgreSQL re-checks the condition; SQLite serialises writers)
        claimed = Receipt.objects.filter(pk__in=[row.pk for row in rows], batch__isnull=True).update(batch=batch)
        if claimed != len(rows):
            transaction.set_rollback(True)
            return None
        for row, leaf in zip(rows, leaves, strict=True):
            row.leaf = "0x" + bytes(leaf).hex()
        Receipt.objects.bulk_update(rows, ["leaf"], batch_size=1000)
        _queue_anchor(batch)
        return batch


def _queue_anchor(batch: ReceiptBatch) -> None:
    """closed -> anchoring: `anchorReceipts` into the outbox, in the caller's transaction. The key
    names the batch and the attempt: queuing it again is free; after a final failure the next
    attempt is a new row (a failed transaction changed nothing on chain)."""
    attempt = batch.attempts + 1
    tx = transaction_enqueue(
        idempotency_key=f"receipts:{batch.pk}:{attempt}",
        function=ANCHOR_FUNCTION,
        args={"root": bytes.fromhex(batch.root[2:]), "count": batch.count},
    )
    ReceiptBatch.objects.filter(pk=batch.pk, state=ReceiptBatch.State.CLOSED).update(
        state=ReceiptBatch.State.ANCHORING, transaction=tx, attempts=attempt, updated_at=timezone.now()
    )


def receipt_batch_anchor(*, batch_pk: int) -> ReceiptBatch:
    """Take one batch as far as it goes now: queue it (closed), relay its row and confirm it
    (anchoring). The chain down or the relayer unfunded: it stays as it is, for the next run, and
    ChainError / TransactionPending tell the caller so."""
    batch = ReceiptBatch.objects.get(pk=batch_pk)
    if batch.state == ReceiptBatch.State.CLOSED:
        if batch.attempts and batch.updated_at > timezone.now() - _backoff(batch.attempts):
            return batch
        with transaction.atomic():
            batch = ReceiptBatch.objects.select_for_update().get(pk=batch_pk)
            if batch.state == ReceiptBatch.State.CLOSED:
                _queue_anchor(batch)
        batch.refresh_from_db()
    if batch.state != ReceiptBatch.State.ANCHORING:
        return batch
    try:
        tx = transaction_process(transaction_id=batch.transaction_id)
    except (ChainError, TransactionPending) as exc:
        _note(batch, str(exc))
        raise
    except TransactionFailed as exc:
        # nothing changed on chain: back to closed, queued again (a new row) after a back-off
        ReceiptBatch.objects.filter(pk=batch.pk, state=ReceiptBatch.State.ANCHORING, transaction=batch.transaction_id).update(
            state=ReceiptBatch.State.CLOSED, last_error=f"[{exc.error_code}] {exc}"[:200], updated_at=timezone.now()
        )
        batch.refresh_from_db()
        return batch
    return receipt_batch_confirm(batch_pk=batch.pk, tx=tx)


def receipt_batch_confirm(*, batch_pk: int, tx: ChainTransaction) -> ReceiptBatch:
    """anchoring -> anchored: the batch id from the confirmed transaction's `ReceiptsAnchored`
    (the one carrying this root). Counted once, however many runs get here."""
    with transaction.atomic():
        batch = ReceiptBatch.objects.select_for_update().get(pk=batch_pk)
        if batch.state != ReceiptBatch.State.ANCHORING or tx.status != ChainTransaction.Status.CONFIRMED:
            return batch
        events = [
            e for e in transaction_events(tx)
            if e["event"] == "ReceiptsAnchored" and "0x" + bytes(e["args"]["root"]).hex() == batch.root
        ]
        if not events:
            batch.last_error = "the anchoring transaction carries no ReceiptsAnchored event for this root"
            batch.save(update_fields=["last_error", "updated_at"])
            return batch
        batch.batch_id = int(events[0]["args"]["batchId"])
        batch.block_number = tx.block_number
        batch.anchored_at = timezone.now()
        batch.state = ReceiptBatch.State.ANCHORED
        batch.last_error = ""
        batch.save()
    metrics.RECEIPT_BATCHES_ANCHORED.inc()
    return batch


def receipt_batch_unanchor(*, root: str, batch_id: int) -> ReceiptBatch | None:
    """anchored -> anchoring: a reorg took away the `ReceiptsAnchored` of the batch with this root
    (called by the indexer's rollback, marketplace/projections.py). Its outbox row goes back to
    `signed` (the same bytes are broadcast again) and the batch forgets its on-chain id, block and
    time: the next `receipt_batches_run` confirms it again and records the id the chain gives it
    then (another batch may have taken the old one). A batch not anchored under that id: None."""
    with transaction.atomic():
        batch = ReceiptBatch.objects.select_for_update().filter(
            root=root.lower(), batch_id=batch_id, state=ReceiptBatch.State.ANCHORED
        ).first()
        if batch is None:
            return None
        batch.state = ReceiptBatch.State.ANCHORING
        batch.batch_id = None
        batch.block_number = None
        batch.anchored_at = None
        batch.last_error = "its anchoring transaction left the chain (reorg): waiting for it again"
        batch.save()
        if batch.transaction_id is not None:
            transaction_requeue(transaction_id=batch.transaction_id)
    return batch


def _note(batch: ReceiptBatch, message: str) -> None:
    ReceiptBatch.objects.filter(pk=batch.pk).update(last_error=message[:200])


def _backoff(attempts: int) -> timedelta:
    return min(FAILED_RETRY_MAX, timedelta(seconds=60 * 2 ** min(attempts - 1, 10)))


def _hex32(value: str) -> str:
    """A 32-byte value as 0x-hex (the database keeps digests without the prefix)."""
    value = (value or "").lower()
    return value if value.startswith("0x") else "0x" + value
