"""Reads of the royalty ledger and licence mirror: statements for vendors, licences for buyers.

Only ledger rows and indexed events are read (no other app), so the API, the CSV export and the
portal's royalties page all show the same numbers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from eth_utils import to_checksum_address

from registry.models import ChainEvent

from .ledger import CHAIN_ORDER, credit_account, last_balance
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


@dataclass(frozen=True)
class StatementLine:
    """One ledger line on a statement, read as a row (no ORM objects on the statement's path)."""

    id: int
    occurred_at: datetime
    role: str
    address: str
    model_id: str
    amount_wei: int
    sold_model_id: str
    tx_hash: str
    block_number: int


_LINE_COLUMNS = ("pk", "occurred_at", "role", "address", "model_id", "amount_wei", "sold_model_id", "entry__tx_hash", "block_number")
_LINE_ORDER = CHAIN_ORDER


@dataclass
class Statement:
    """A vendor's statement for [start, end). Every figure covers the whole period; `lines` is one
    page of it (`lines_offset`, at most `lines_limit` lines) and `line_count` says how many there are."""

    addresses: list[str]
    start: datetime
    end: datetime
    opening_balance_wei: int
    closing_balance_wei: int
    line_count: int
    lines: list[StatementLine]
    lines_offset: int = 0
    sales: list[dict] = field(default_factory=list)
    royalties_from_downstream: list[dict] = field(default_factory=list)
    platform_fees_wei: int = 0
    withdrawals_wei: int = 0
    earned_wei: int = 0


def _period_lines(addresses: list[str], start: datetime, end: datetime):
    return LedgerLine.objects.filter(account__in=[credit_account(a) for a in addresses], occurred_at__gte=start, occurred_at__lt=end)


def _lines(addresses: list[str], start: datetime, end: datetime):
    return _period_lines(addresses, start, end).order_by(*_LINE_ORDER).values_list(*_LINE_COLUMNS)


def statement_lines(*, addresses: list[str], start: datetime, end: datetime) -> Iterator[StatementLine]:
    """Every credit line of these wallets in [start, end), in ledger order, streamed in chunks
    (the CSV export reads them all this way without holding them in memory)."""
    addresses = [to_checksum_address(a) for a in addresses]
    for row in _lines(addresses, start, end).iterator(chunk_size=2000):
        yield StatementLine(*row)


def _raw_rows(queryset) -> list[tuple]:
    """A values_list queryset's rows straight from the driver: Django's per-value converters cost
    more than the query itself for a few thousand aggregate rows (sums come back as Decimal or int;
    callers int() them). Every column in the index, so PostgreSQL answers from the index alone."""
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _sales(addresses: list[str], start: datetime, end: datetime) -> list[dict]:
    """Units, gross, net to these wallets and platform fees per (model, version) sold in [start, end).

    Read from the purchases' lines alone (each carries the model sold and the version that was the
    latest published at its block), summed in SQL per (model, version): a sale is its payer's
    line, its gross what the payer paid less any overpayment credited back."""
    own_models = models_of(addresses)
    if not own_models:
        return []
    Role = LedgerLine.Role
    grouped = (
        LedgerLine.objects.filter(sold_model_id__in=own_models, occurred_at__gte=start, occurred_at__lt=end)
        .values_list("sold_model_id", "sold_version")
        .annotate(
            units=Count("amount_wei", filter=Q(role=Role.PAYER)),
            paid=Sum("amount_wei", filter=Q(role__in=[Role.PAYER, Role.OVERPAYMENT])),
            net=Sum("amount_wei", filter=Q(role=Role.VENDOR, address__in=addresses)),
            fees=Sum("amount_wei", filter=Q(role=Role.PLATFORM)),
        )
        .order_by()
    )
    sales = [
        {
            "model_id": model_id, "version": version, "units": units,
            "gross_wei": -int(paid or 0),  # the payer's line less the overpayment credited back
            "net_to_vendor_wei": int(net or 0), "platform_fees_wei": int(fees or 0),
        }
        for model_id, version, units, paid, net, fees in _raw_rows(grouped)
    ]
    return sorted(sales, key=lambda r: (r["model_id"], r["version"] or 0))


def statement_build(*, addresses: list[str], start: datetime, end: datetime, lines_offset: int = 0, lines_limit: int | None = 100) -> Statement:
    """A vendor's statement for [start, end): balances and totals over the whole period, summed in
    SQL, and one page of its credit lines (`lines_limit=None`: all of them).

    A big vendor's month is thousands of lines; building an object per line cost ~0.5 s at 100k
    purchases, the aggregates cost ~50 ms (bench/ledger_scale.py, docs/benchmarks.md)."""
    addresses = [to_checksum_address(a) for a in addresses]
    # the balance after each account's last line before the period: one index probe, not a sum
    # over its whole history
    opening = sum(last_balance(credit_account(a), before=start) for a in addresses)

    moved = earned = withdrawn = count = 0
    downstream: dict[tuple[str, str], int] = defaultdict(int)
    groups = (
        _period_lines(addresses, start, end)
        .values_list("role", "sold_model_id", "model_id")
        .annotate(n=Count("amount_wei"), moved=Sum("amount_wei"), earned=Sum("amount_wei", filter=Q(amount_wei__gt=0)))
        .order_by()
    )
    for role, sold_model_id, model_id, n, amount, positive in _raw_rows(groups):
        count += n
        moved += int(amount)
        earned += int(positive or 0)
        if role == LedgerLine.Role.UPSTREAM:
            downstream[(sold_model_id, model_id)] += int(amount)
        elif role == LedgerLine.Role.WITHDRAWN:
            withdrawn += -int(amount)

    lines: list[StatementLine] = []
    if count and lines_limit != 0:
        rows = _lines(addresses, start, end)
        rows = rows[lines_offset : lines_offset + lines_limit] if lines_limit is not None else rows[lines_offset:]
        lines = [StatementLine(*row) for row in rows]
    sales = _sales(addresses, start, end)
    return Statement(
        addresses, start, end, opening, opening + moved, count, lines, lines_offset,
        sales=sales,
        royalties_from_downstream=[
            {"downstream_model_id": sold, "your_model_id": yours, "amount_wei": amount}
            for (sold, yours), amount in sorted(downstream.items())
        ],
        platform_fees_wei=sum(r["platform_fees_wei"] for r in sales),
        withdrawals_wei=withdrawn,
        earned_wei=earned,
    )


def statement_daily_sales(*, addresses: list[str], start: datetime, end: datetime) -> dict:
    """{UTC day: (sales credited to these wallets as vendor, wei)} in [start, end): the portal's chart."""
    addresses = [to_checksum_address(a) for a in addresses]
    rows = (
        _period_lines(addresses, start, end).filter(role=LedgerLine.Role.VENDOR)
        .annotate(day=TruncDate("occurred_at", tzinfo=UTC))
        .values_list("day").annotate(n=Count("id"), wei=Sum("amount_wei")).order_by()
    )
    return {day: (n, int(wei)) for day, n, wei in rows}


@dataclass
class LicenceHeld:
    model_id: str
    licensee: str
    perpetual: bool
    expires_at: datetime | None
    renewal_due: bool
    tx_hash: str | None
    purchased_at: datetime | None
    seats: int = 1


def licenses_held(*, addresses: list[str], renewal_window: timedelta = timedelta(days=30)) -> list[LicenceHeld]:
    """Licences held by these wallets now, with the purchase that last extended each."""
    addresses = [to_checksum_address(a) for a in addresses]
    now = timezone.now()
    rows = list(
        License.objects.filter(licensee__in=addresses).filter(Q(perpetual=True) | Q(expires_at__gt=now)).order_by("expires_at")
    )
    # the purchase that last extended each licence: these wallets' purchases in chain order, the
    # last one per (model, licensee) kept (one indexed query; a correlated subquery per licence
    # read the wallet's whole history once per licence)
    last: dict[tuple[str, str], tuple[str, datetime]] = {}
    purchases = (
        LedgerEntry.objects.filter(kind=LedgerEntry.Kind.PURCHASE, licensee__in=addresses)
        .order_by("block_number", "log_index")
        .values_list("model_id", "licensee", "tx_hash", "occurred_at")
    )
    for model_id, licensee, tx_hash, occurred_at in purchases:
        last[(model_id, licensee)] = (tx_hash, occurred_at)
    held = []
    for row in rows:
        tx_hash, purchased_at = last.get((row.model_id, row.licensee), (None, None))
        held.append(LicenceHeld(
            model_id=row.model_id, licensee=row.licensee, perpetual=row.perpetual, expires_at=row.expires_at,
            renewal_due=(not row.perpetual and row.expires_at is not None and row.expires_at - now <= renewal_window),
            tx_hash=tx_hash, purchased_at=purchased_at, seats=row.seats,
        ))
    return held


def license_seats_held(*, model_id: str, licensees) -> int:
    """The seats of `model_id` held now by `licensees` (a list of addresses, or a queryset of them
    used as a subquery, like `services.license_mirror_hit`): the sum over their valid (perpetual
    or unexpired) mirrored licences, one query. Each wallet's licence counts once, so a fleet
    owner with several wallets holds the seats of all of them; an expired licence holds none."""
    if isinstance(licensees, list | tuple | set):
        licensees = [to_checksum_address(a) for a in licensees]
    total = (
        License.objects.filter(model_id=model_id.lower(), licensee__in=licensees)
        .filter(Q(perpetual=True) | Q(expires_at__gt=timezone.now()))
        .aggregate(seats=Sum("seats"))["seats"]
    )
    return int(total or 0)


def purchase_history(*, addresses: list[str], limit: int = 500) -> list[LedgerEntry]:
    """Purchases where these wallets paid or received the licence, newest first."""
    addresses = [to_checksum_address(a) for a in addresses]
    return list(
        LedgerEntry.objects.filter(kind=LedgerEntry.Kind.PURCHASE)
        .filter(Q(licensee__in=addresses) | Q(payer__in=addresses))
        .order_by("-occurred_at", "-log_index")[:limit]
    )
