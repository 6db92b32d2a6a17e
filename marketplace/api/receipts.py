"""Download receipts (/api/v1/receipts/<id>, /api/v1/vendor/models/<slug>/receipts): a receipt with
the Merkle proof that its batch's anchored root covers it, and a vendor's counts per model and
period with those roots. Reads only (marketplace/receipt_selectors.py); docs/recorder.md."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from rest_framework import permissions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import receipt_selectors, selectors
from .vendor import IsVendor

HEX32 = r"^0x[0-9a-f]{64}$"
MAX_PERIOD_DAYS = 366
EARLIEST, LATEST = date(1970, 1, 1), date(9999, 12, 1)  # unix seconds, and room for a day's arithmetic


class ReceiptSerializer(serializers.Serializer):
    receipt_id = serializers.RegexField(HEX32, help_text="32 random bytes, the id in this URL")
    model_id = serializers.RegexField(HEX32)
    version = serializers.IntegerField()
    root_digest = serializers.RegexField(HEX32)
    file_sha256 = serializers.RegexField(HEX32)
    licensee = serializers.CharField(help_text="the wallet whose licence granted the download (checksummed)")
    device = serializers.CharField(help_text="the device that downloaded it; the zero address for none")
    range_start = serializers.IntegerField()
    range_end = serializers.IntegerField(help_text="exclusive")
    served_at = serializers.IntegerField(help_text="unix seconds")

    class Meta:
        ref_name = "Receipt"


class ReceiptBatchSerializer(serializers.Serializer):
    batch_id = serializers.IntegerField(help_text="the contract's batch id: `receiptBatch(batch_id)`")
    root = serializers.RegexField(HEX32)
    count = serializers.IntegerField()
    tx_hash = serializers.CharField(help_text="the `anchorReceipts` transaction")
    block = serializers.IntegerField(allow_null=True)

    class Meta:
        ref_name = "ReceiptBatch"


class ReceiptView(APIView):
    """`GET`: a download receipt; once its batch is anchored, the batch and the Merkle proof
    (OpenZeppelin's `MerkleProof.verify(proof, root, leaf)` accepts it against the root the
    chain's `receiptBatch(batch_id)` holds). Readable by the licensee, the account that
    downloaded, the device (its own token) and its owner, and the model's vendor: anyone else 404."""

    permission_classes = [permissions.IsAuthenticated]
    device_token_allowed = True  # a device reads the receipts of its own downloads

    class OutputSerializer(serializers.Serializer):
        receipt = ReceiptSerializer()
        batch = ReceiptBatchSerializer(allow_null=True)
        proof = serializers.ListField(child=serializers.RegexField(HEX32), allow_null=True)
        anchored = serializers.BooleanField()

    def get(self, request, receipt_id):
        receipt = receipt_selectors.receipt_get_readable(user=request.user, token=request.auth, receipt_id=receipt_id)
        result = receipt_selectors.receipt_proof(receipt=receipt)
        return Response(self.OutputSerializer(result).data)


class PeriodQuery(serializers.Serializer):
    """`from` and `to` (UTC days, inclusive): names a class body cannot declare (`from` is a keyword)."""

    def get_fields(self):
        return {
            "from": serializers.DateField(required=False, help_text="first UTC day (default: 29 days before `to`)"),
            "to": serializers.DateField(required=False, help_text="last UTC day, inclusive (default: today)"),
        }

    class Meta:
        ref_name = "ReceiptPeriodQuery"


class ReceiptCountsSerializer(serializers.Serializer):
    model = serializers.CharField(help_text="<vendor>/<model>")
    model_id = serializers.CharField()
    count = serializers.IntegerField(help_text="receipts served in the period")
    anchored = serializers.IntegerField(help_text="of them, under an anchored root")
    batches = serializers.ListField(
        child=serializers.DictField(), help_text="the anchored roots, newest first: `batch_id, root, count, in_period, tx_hash, block`"
    )
    batches_truncated = serializers.BooleanField(help_text=f"more than {receipt_selectors.MAX_BATCHES_LISTED} roots: the oldest left out")

    def get_fields(self):
        return {"from": serializers.DateField(), "to": serializers.DateField(help_text="inclusive"), **super().get_fields()}

    class Meta:
        ref_name = "ReceiptCounts"


def _period(params: dict) -> tuple[date, date]:
    today = datetime.now(UTC).date()
    end = params.get("to") or today
    start = params.get("from") or max(end, EARLIEST + timedelta(days=29)) - timedelta(days=29)
    for day in (start, end):
        if not EARLIEST <= day <= LATEST:
            raise serializers.ValidationError({"from": f"days from {EARLIEST} to {LATEST}"})
    if end < start:
        raise serializers.ValidationError({"to": "is before from"})
    if (end - start).days >= MAX_PERIOD_DAYS:
        raise serializers.ValidationError({"to": f"a period is at most {MAX_PERIOD_DAYS} days"})
    return start, end


def _unix(day: date) -> int:
    return int(datetime.combine(day, time.min, tzinfo=UTC).timestamp())


class VendorReceiptsView(APIView):
    """`GET ?from=YYYY-MM-DD&to=YYYY-MM-DD`: the receipts of your model served in those UTC days
    (at most 366), how many of them are under an anchored root, and those roots (newest first,
    at most 1000), each checkable on chain with `receiptBatch(batch_id)`."""

    permission_classes = [IsVendor]

    FilterSerializer = PeriodQuery
    OutputSerializer = ReceiptCountsSerializer

    def get(self, request, slug):
        model = selectors.model_get_owned(user=request.user, slug=slug)
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        start, end = _period(query.validated_data)
        counts = receipt_selectors.receipt_counts(model=model, start=_unix(start), end=_unix(end + timedelta(days=1)))
        answer = {
            "model": model.repo_id, "model_id": model.chain_model_id, "from": start, "to": end, "count": counts.count,
            "anchored": counts.anchored, "batches": counts.batches, "batches_truncated": counts.batches_truncated,
        }
        return Response(self.OutputSerializer(answer).data)
