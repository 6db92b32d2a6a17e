"""Reads of the royalty ledger and licence mirror: statements for vendors, licences for buyers.

Only ledger rows and indexed events are read (no other app), so the API, the CSV export and the
portal's royalties page all show the same numbers."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import OuterRef, Q, Subquery, Sum
from django.utils import timezone
from eth_utils import to_checksum_address

from registry.models import ChainEvent

from .ledger import credit_account
from .models import LedgerEntry, LedgerLine, License

WEI_PER_ETH = Decimal(10) ** 18


def format_eth(wei: int) -> str:
    """A wei amount for people: exact, trailing zeros trimmed (`0.0125 ETH`)."""
    text = format(Decimal(int(wei)) / WEI_PER_ETH, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} ETH"


def models_of(addresses: list[str]) -> set[str]:
    """Model ids registered on chain by these vendor addresses (from ModelCreated events)."""
    rows = ChainEvent.objects.filter(name="ModelCreated", args__vendor__in=addresses).values_list("args__modelId", flat=True)
    return {m.lower() for m in rows}


def _publications(model_ids: set[str]) -> dict[str, list[tuple[int, int]]]:
    """(block, version) of every VersionPublished of these models, read in one query."""
    published: dict[str, list[tuple[int, int]]] = defaultdict(list)
    rows = ChainEvent.objects.filter(name="VersionPublished", args__modelId__in=sorted(model_ids))
    for model_id, block, number in rows.values_list("args__modelId", "block_number", "args__version"):
        published[model_id.lower()].append((block, int(number)))
    for values in published.values():
        values.sort()
    return published


def _version_at(model_id: str, block: int, published: dict[str, list[tuple[int, int]]]) -> int | None:
    """The version of `model_id` that was the latest published at `block`."""
    latest = None
    for published_block, number in published.get(model_id, ()):
        if published_block <= block:
            latest = number
    return latest


@dataclass
class Statement:
    addresses: list[str]
    start: datetime
    end: datetime
    opening_balance_wei: int
    closing_balance_wei: int
    lines: list[LedgerLine]
    sales: list[dict] = field(default_factory=list)
    royalties_from_downstream: list[dict] = field(default_factory=list)
    platform_fees_wei: int = 0
    withdrawals_wei: int = 0
    earned_wei: int = 0


def statement_build(*, addresses: list[str], start: datetime, end: datetime) -> Statement:
    """A vendor's statement for [start, end): balances, every credit line, and the totals."""
    addresses = [to_checksum_address(a) for a in addresses]
    accounts = [credit_account(a) for a in addresses]

    opening = int(LedgerLine.objects.filter(account__in=accounts, occurred_at__lt=start).aggregate(s=Sum("amount_wei"))["s"] or 0)
    lines = list(
        LedgerLine.objects.select_related("entry")
        .filter(account__in=accounts, occurred_at__gte=start, occurred_at__lt=end)
        .order_by("occurred_at", "entry__block_number", "log_index", "pk")
    )
    # the closing balance is the opening one plus the period's lines: one sum, not two
    statement = Statement(addresses, start, end, opening, opening + sum(int(line.amount_wei) for line in lines), lines)

    own_models = models_of(addresses)
    versions = _publications(own_models)
    sales: dict[tuple[str, int | None], dict] = {}
    sale_entries = (
        LedgerEntry.objects.filter(kind=LedgerEntry.Kind.PURCHASE, model_id__in=own_models, occurred_at__gte=start, occurred_at__lt=end)
        .prefetch_related("lines")
        .order_by("occurred_at")
    )
    for entry in sale_entries:
        version = _version_at(entry.model_id, entry.block_number, versions)
        row = sales.setdefault(
            (entry.model_id, version),
            {"model_id": entry.model_id, "version": version, "units": 0, "gross_wei": 0, "net_to_vendor_wei": 0, "platform_fees_wei": 0},
        )
        row["units"] += 1
        row["gross_wei"] += int(entry.price_wei or 0)
        for line in entry.lines.all():
            if line.role == LedgerLine.Role.VENDOR and line.address in addresses:
                row["net_to_vendor_wei"] += int(line.amount_wei)
            elif line.role == LedgerLine.Role.PLATFORM:
                row["platform_fees_wei"] += int(line.amount_wei)
    statement.sales = sorted(sales.values(), key=lambda r: (r["model_id"], r["version"] or 0))
    statement.platform_fees_wei = sum(r["platform_fees_wei"] for r in statement.sales)

    downstream: dict[tuple[str, str], int] = defaultdict(int)
    for line in lines:
        if line.role == LedgerLine.Role.UPSTREAM:
            downstream[(line.entry.model_id, line.model_id)] += int(line.amount_wei)
        if line.role == LedgerLine.Role.WITHDRAWN:
            statement.withdrawals_wei += -int(line.amount_wei)
        if int(line.amount_wei) > 0:
            statement.earned_wei += int(line.amount_wei)
    statement.royalties_from_downstream = [
        {"downstream_model_id": sold, "your_model_id": yours, "amount_wei": amount}
        for (sold, yours), amount in sorted(downstream.items())
    ]
    return statement


@dataclass
class LicenceHeld:
    model_id: str
    licensee: str
    perpetual: bool
    expires_at: datetime | None
    renewal_due: bool
    tx_hash: str | None
    purchased_at: datetime | None


def licenses_held(*, addresses: list[str], renewal_window: timedelta = timedelta(days=30)) -> list[LicenceHeld]:
    """Licences held by these wallets now, with the purchase that last extended each."""
    addresses = [to_checksum_address(a) for a in addresses]
    now = timezone.now()
    last = LedgerEntry.objects.filter(
        kind=LedgerEntry.Kind.PURCHASE, model_id=OuterRef("model_id"), licensee=OuterRef("licensee")
    ).order_by("-block_number", "-log_index")
    rows = (
        License.objects.filter(licensee__in=addresses)
        .filter(Q(perpetual=True) | Q(expires_at__gt=now))
        .annotate(last_tx=Subquery(last.values("tx_hash")[:1]), last_at=Subquery(last.values("occurred_at")[:1]))
        .order_by("expires_at")
    )  # one query: the purchase that last extended each licence comes as a subquery
    return [
        LicenceHeld(
            model_id=row.model_id, licensee=row.licensee, perpetual=row.perpetual, expires_at=row.expires_at,
            renewal_due=(not row.perpetual and row.expires_at is not None and row.expires_at - now <= renewal_window),
            tx_hash=row.last_tx, purchased_at=row.last_at,
        )
        for row in rows
    ]


def purchase_history(*, addresses: list[str], limit: int = 500) -> list[LedgerEntry]:
    """Purchases where these wallets paid or received the licence, newest first."""
    addresses = [to_checksum_address(a) for a in addresses]
    return list(
        LedgerEntry.objects.filter(kind=LedgerEntry.Kind.PURCHASE)
        .filter(Q(licensee__in=addresses) | Q(payer__in=addresses))
        .order_by("-occurred_at", "-log_index")[:limit]
    )
