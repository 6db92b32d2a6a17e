"""Reads of download receipts (writes: services/receipts.py): one receipt with its proof for those
who may see it, a vendor's counts per model and period with the anchored roots that cover them,
and the values `/metrics` reads when scraped. A module of its own beside `selectors.py`, which
other sub-domains keep growing; the same rules (reads only, no side effects)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Count, Min, Q
from prometheus_client.core import GaugeMetricFamily, Metric

from fleet.models import Device, DeviceToken
from hallmark import receipts as hallmark_receipts

from .errors import NotFound
from .models import Model, Receipt, ReceiptBatch, Wallet

RECEIPT_ID_RE = re.compile(r"^0x[0-9a-fA-F]{64}$")
MAX_BATCHES_LISTED = 1000  # a vendor's period lists at most this many anchored roots (newest first)


def receipt_get_readable(*, user, token, receipt_id: str) -> Receipt:
    """The receipt `receipt_id` if the asker may read it: the licensee (a wallet they linked), the
    account that downloaded it, the owner of the device that did, the model's vendor; with a
    device token, that device only. NotFound (receipt_not_found) for anyone else, so an id
    nobody may read and an id that does not exist answer alike."""
    missing = NotFound("no receipt with this id is yours to read", code="receipt_not_found")
    if not RECEIPT_ID_RE.match(receipt_id or ""):
        raise missing
    receipt = Receipt.objects.select_related("batch", "batch__transaction", "download").filter(receipt_id=receipt_id.lower()).first()
    if receipt is None or not _may_read(user, token, receipt):
        raise missing
    return receipt


def _may_read(user, token, receipt: Receipt) -> bool:
    if isinstance(token, DeviceToken):
        return token.device.address.lower() == receipt.device.lower()
    if user is None or not user.is_authenticated:
        return False
    if receipt.download is not None and receipt.download.user_id == user.pk:
        return True
    if Wallet.objects.filter(user=user, address__iexact=receipt.licensee).exists():
        return True
    if Device.objects.filter(owner=user, address__iexact=receipt.device).exists():
        return True
    return Model.objects.filter(chain_model_id=receipt.model_id, vendor__user=user).exists()


def receipt_json(row: Receipt) -> dict:
    """The receipt's JSON form (docs/recorder.md): what the header encodes and the API returns."""
    return {
        "receipt_id": row.receipt_id,
        "model_id": row.model_id,
        "version": row.version,
        "root_digest": row.root_digest,
        "file_sha256": row.file_sha256,
        "licensee": row.licensee,
        "device": row.device,
        "range_start": row.range_start,
        "range_end": row.range_end,
        "served_at": row.served_at,
    }


@dataclass(frozen=True)
class ReceiptProof:
    receipt: dict
    batch: dict | None  # batch_id, root, count, tx_hash, block: once anchored
    proof: list[str] | None
    anchored: bool


def receipt_proof(*, receipt: Receipt) -> ReceiptProof:
    """The receipt's JSON form and, once its batch is anchored, the batch and the Merkle proof of
    its leaf (the batch's tree rebuilt from the stored leaves: OpenZeppelin's StandardMerkleTree)."""
    batch = receipt.batch
    if batch is None or batch.state != ReceiptBatch.State.ANCHORED:
        return ReceiptProof(receipt_json(receipt), None, None, False)
    leaves = [bytes.fromhex(leaf[2:]) for leaf in Receipt.objects.filter(batch=batch).values_list("leaf", flat=True)]
    tree = hallmark_receipts.build_tree(leaves)
    proof = hallmark_receipts.proof_to_hex(tree.proof(bytes.fromhex(receipt.leaf[2:])))
    return ReceiptProof(receipt_json(receipt), _batch_json(batch), proof, True)


def _batch_json(batch: ReceiptBatch) -> dict:
    tx = batch.transaction
    return {
        "batch_id": batch.batch_id,
        "root": batch.root,
        "count": batch.count,
        "tx_hash": tx.tx_hash if tx is not None else "",
        "block": batch.block_number,
    }


@dataclass(frozen=True)
class ReceiptCounts:
    count: int  # receipts served in [start, end)
    anchored: int  # of them, in an anchored batch
    batches: list[dict]  # the anchored batches covering them: batch_id, root, count, in_period, tx_hash, block
    batches_truncated: bool


def receipt_counts(*, model: Model, start: int, end: int) -> ReceiptCounts:
    """A vendor's receipts of `model` served in [start, end) (unix seconds), and the anchored
    roots that cover them: each root can be checked on chain (`receiptBatch`), so the count is
    not a number taken on trust."""
    rows = Receipt.objects.filter(model_id=model.chain_model_id, served_at__gte=start, served_at__lt=end)
    totals = rows.aggregate(count=Count("pk"), anchored=Count("pk", filter=Q(batch__state=ReceiptBatch.State.ANCHORED)))
    per_batch = (
        rows.filter(batch__state=ReceiptBatch.State.ANCHORED)
        .values("batch")
        .annotate(in_period=Count("pk"))
        .order_by("-batch")[: MAX_BATCHES_LISTED + 1]
    )
    in_period = {row["batch"]: row["in_period"] for row in per_batch}
    batches = ReceiptBatch.objects.select_related("transaction").filter(pk__in=list(in_period)[:MAX_BATCHES_LISTED]).order_by("-pk")
    listed = [{**_batch_json(b), "in_period": in_period[b.pk]} for b in batches]
    return ReceiptCounts(totals["count"], totals["anchored"], listed, len(in_period) > MAX_BATCHES_LISTED)


# ------------------------------------------------------------------ values read when scraped


def collect() -> Iterable[Metric]:
    """Receipts not yet under an anchored root, and the age of the oldest of them."""
    waiting = [ReceiptBatch.State.CLOSED, ReceiptBatch.State.ANCHORING]
    unbatched = Receipt.objects.filter(batch__isnull=True).aggregate(n=Count("pk"), oldest=Min("served_at"))
    in_batches = Receipt.objects.filter(batch__state__in=waiting).aggregate(n=Count("pk"), oldest=Min("served_at"))
    yield GaugeMetricFamily(
        "hallmark_receipts_unanchored",
        "Download receipts not yet under an anchored Merkle root (in no batch, or in a batch waiting for the chain)",
        value=unbatched["n"] + in_batches["n"],
    )
    oldest = min([t for t in (unbatched["oldest"], in_batches["oldest"]) if t is not None], default=None)
    yield GaugeMetricFamily(
        "hallmark_receipts_oldest_unanchored_age_seconds",
        "Age of the oldest download receipt not yet under an anchored root (0: none)",
        value=max(0.0, time.time() - oldest) if oldest is not None else 0.0,
    )
