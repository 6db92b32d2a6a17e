"""The double-entry royalty ledger, written only from indexed registry events.

A purchase becomes one entry: the payer's wallet pays `price + overpayment` (a negative line),
and every credit the contract made is a positive line on `credit:<payee>` (platform fee, each
ancestor's vendor, the bought model's vendor, an overpayment back to the payer). A withdrawal
moves `credit:<payee>` to `wallet:<payee>`. Every entry sums to zero, in wei.

Each credit's role comes from its event alone: `PlatformFeeCredited` is the platform fee,
`OverpaymentCredited` an overpayment, and a `RoyaltyCredited` is the bought model's vendor when
it names the bought model, an ancestor's vendor otherwise. Nothing is inferred from log order or
from the fee history.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime

from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from registry import chain
from registry.chain import PERPETUAL, chain_errors, checksum_address
from registry.indexer import bulk_insert
from registry.models import ChainEvent, IndexerCursor

from .models import LedgerEntry, LedgerLine, ReconciliationAlert

logger = logging.getLogger(__name__)
# the credits a purchase makes, and the event argument that names whom each credits
CREDIT_EVENTS = {"PlatformFeeCredited": "recipient", "RoyaltyCredited": "payee", "OverpaymentCredited": "payer"}
MONEY_EVENTS = {"LicensePurchased", *CREDIT_EVENTS, "Withdrawn", "TermsChanged", "PlatformFeeChanged"}


def credit_account(address: str) -> str:
    return f"credit:{address}"


def wallet_account(address: str) -> str:
    return f"wallet:{address}"


def _credit_role(event: ChainEvent, sold_model_id: str) -> str:
    """Who a purchase's credit event pays, by the event's name and the model it names."""
    if event.name == "PlatformFeeCredited":
        return LedgerLine.Role.PLATFORM
    if event.name == "OverpaymentCredited":
        return LedgerLine.Role.OVERPAYMENT
    return LedgerLine.Role.VENDOR if event.args["modelId"].lower() == sold_model_id else LedgerLine.Role.UPSTREAM


def ledger_apply(events: Iterable[ChainEvent], *, _state: _BatchState | None = None) -> int:
    """Turn registry events (in chain order) into balanced entries; returns entries written.

    A batch costs a bounded number of queries, not a few per event: the entries its transactions
    already have (one query per 500 transactions, and one for which of them have lines), the
    publications of the models bought and the accounts that have no line yet (one query per 500
    each), one read per account that has, then bulk inserts of the new entries and of the lines.
    Lines are stamped with their running balances in the order the events come."""
    by_tx: dict[str, list[ChainEvent]] = defaultdict(list)
    money = [event for event in events if event.name in MONEY_EVENTS]
    if not money:
        return 0
    for event in money:
        by_tx[event.tx_hash].append(event)
    written = 0
    state = _state or _BatchState()
    balances = state.balances or _RunningBalances(money)
    versions = _Publications(money)
    entries = _Entries(by_tx, known_empty=state.known_empty)
    for tx_events in by_tx.values():
        tx_events.sort(key=lambda e: e.log_index)
        open_entry: LedgerEntry | None = None
        credited: list[LedgerLine] = []
        for event in tx_events:
            args = event.args
            if event.name == "LicensePurchased":
                entries.close(open_entry, credited, balances)
                expiry = int(args["expiresAt"])
                open_entry = entries.get_or_add(
                    event, LedgerEntry.Kind.PURCHASE, model_id=args["modelId"].lower(),
                    licensee=checksum_address(args["licensee"]), payer=checksum_address(args["payer"]),
                    price_wei=int(args["price"]), perpetual=expiry >= PERPETUAL,
                    expires_at=None if expiry >= PERPETUAL else datetime.fromtimestamp(expiry, tz=UTC),
                    memo={"seats": int(args.get("seats", 1))},  # held after the purchase (none before seats: one)
                )
                open_entry._sold_version = versions.at(open_entry.model_id, open_entry.block_number)
                credited = []
                written += 1
            elif event.name in CREDIT_EVENTS and open_entry is not None:
                payee = checksum_address(args[CREDIT_EVENTS[event.name]])
                role = _credit_role(event, open_entry.model_id)
                credited.append(
                    _line(open_entry, credit_account(payee), payee, role, args["modelId"].lower(), int(args["amount"]), event.log_index)
                )
            elif event.name == "Withdrawn":
                payee = checksum_address(args["payee"])
                amount = int(args["amount"])
                entry = entries.get_or_add(event, LedgerEntry.Kind.WITHDRAWAL)
                if not entries.has_lines(entry):
                    entries.add_lines(balances, [
                        _line(entry, credit_account(payee), payee, LedgerLine.Role.WITHDRAWN, "", -amount, event.log_index),
                        _line(entry, wallet_account(payee), payee, LedgerLine.Role.RECEIVED, "", amount, event.log_index),
                    ])
                written += 1
            elif event.name == "TermsChanged":
                entries.get_or_add(event, LedgerEntry.Kind.TERMS, model_id=args["modelId"].lower(), price_wei=int(args["price"]),
                                   memo={"license_duration": int(args["licenseDuration"]), "listed": args["listed"]})
                written += 1
            elif event.name == "PlatformFeeChanged":
                entries.get_or_add(event, LedgerEntry.Kind.PLATFORM_FEE, memo={"bps": int(args["bps"]), "recipient": args["recipient"]})
                written += 1
        entries.close(open_entry, credited, balances)
    entries.save()
    return written


class _BatchState:
    """What a rebuild carries from one batch to the next: the running balances (every account
    starts at zero: the ledger was dropped), and that no entry exists but those it wrote."""

    def __init__(self, *, fresh_ledger: bool = False):
        self.balances: _RunningBalances | None = _RunningBalances([], all_new=True) if fresh_ledger else None
        self.known_empty = fresh_ledger


class _Entries:
    """The entries of a batch: those its transactions already have (read once), and the new ones
    with their lines, inserted in bulk by `save()` in the order they were added (primary keys in
    chain order, as when each was created in turn)."""

    def __init__(self, by_tx: dict[str, list[ChainEvent]], *, known_empty: bool = False):
        self.existing: dict[tuple[str, int], LedgerEntry] = {}
        self.with_lines: set[int] = set()
        if not known_empty:
            for chunk in _chunks(by_tx):
                for entry in LedgerEntry.objects.filter(tx_hash__in=chunk):
                    self.existing[(entry.tx_hash, entry.log_index)] = entry
            ids = [entry.pk for entry in self.existing.values()]
            for chunk in _chunks(ids):
                self.with_lines |= set(LedgerLine.objects.filter(entry_id__in=chunk).values_list("entry_id", flat=True).distinct())
        self.new: list[LedgerEntry] = []
        self.added: dict[tuple[str, int], LedgerEntry] = {}
        self.lines: list[LedgerLine] = []
        self.lined: set[int] = set()  # id() of the entries given lines in this batch

    def get_or_add(self, event: ChainEvent, kind: str, **fields) -> LedgerEntry:
        """What `LedgerEntry.objects.get_or_create` by (tx_hash, log_index) gave, one at a time."""
        key = (event.tx_hash, event.log_index)
        entry = self.existing.get(key) or self.added.get(key)
        if entry is None:
            entry = LedgerEntry(
                tx_hash=event.tx_hash, log_index=event.log_index, kind=kind, block_number=event.block_number,
                occurred_at=event.block_timestamp or timezone.now(), **fields,
            )
            self.new.append(entry)
            self.added[key] = entry
        return entry

    def has_lines(self, entry: LedgerEntry) -> bool:
        return id(entry) in self.lined or (entry.pk is not None and entry.pk in self.with_lines)

    def add_lines(self, balances: _RunningBalances, lines: list[LedgerLine]) -> None:
        balances.stamp(lines)
        self.lines.extend(lines)
        self.lined.update(id(line.entry) for line in lines)

    def close(self, entry: LedgerEntry | None, credited: list[LedgerLine], balances: _RunningBalances) -> None:
        """Add the purchase's lines: the credits, and the payer's payment that balances them."""
        if entry is None or self.has_lines(entry):
            return
        total = sum(int(line.amount_wei) for line in credited)
        payer = _line(entry, wallet_account(entry.payer), entry.payer, LedgerLine.Role.PAYER, entry.model_id, -total, entry.log_index)
        if total != int(entry.price_wei) + sum(int(x.amount_wei) for x in credited if x.role == LedgerLine.Role.OVERPAYMENT):
            logger.error("purchase %s: credits %s do not add up to its price %s", entry.tx_hash, total, entry.price_wei)
        self.add_lines(balances, [payer, *credited])

    def save(self) -> None:
        bulk_insert(self.new, returning=True)
        for line in self.lines:
            line.entry_id = line.entry.pk  # the entry's primary key, now that it has one
        bulk_insert(self.lines)


def _line(entry, account, address, role, model_id, amount, log_index) -> LedgerLine:
    purchase = entry.kind == LedgerEntry.Kind.PURCHASE
    return LedgerLine(
        entry=entry, account=account, address=address, role=role, model_id=model_id,
        amount_wei=amount, occurred_at=entry.occurred_at, log_index=log_index, block_number=entry.block_number,
        sold_model_id=entry.model_id if purchase else "",
        sold_version=_sold_version(entry) if purchase else None,
    )


def _sold_version(entry: LedgerEntry) -> int | None:
    if not hasattr(entry, "_sold_version"):  # once per purchase, not once per line
        entry._sold_version = version_at(entry.model_id, entry.block_number)
    return entry._sold_version


def version_at(model_id: str, block: int) -> int | None:
    """The version of `model_id` that was the latest published at `block` (from VersionPublished)."""
    number = (
        ChainEvent.objects.filter(name="VersionPublished", args__modelId=model_id, block_number__lte=block)
        .order_by("-block_number", "-log_index")
        .values_list("args__version", flat=True)
        .first()
    )
    return int(number) if number is not None else None


class _Publications:
    """VersionPublished of the models bought in a batch of events, read in one query per 500 models."""

    def __init__(self, events: list[ChainEvent]):
        model_ids = {e.args["modelId"].lower() for e in events if e.name == "LicensePurchased"}
        self.published: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        for chunk in _chunks(model_ids):
            rows = ChainEvent.objects.filter(name="VersionPublished", args__modelId__in=chunk)
            for model_id, block, log_index, number in rows.values_list("args__modelId", "block_number", "log_index", "args__version"):
                self.published[model_id.lower()].append((block, log_index, int(number)))
        for values in self.published.values():
            values.sort()

    def at(self, model_id: str, block: int) -> int | None:
        """What version_at(model_id, block) says, from the batch's read."""
        latest = None
        for published_block, _log, number in self.published.get(model_id, ()):
            if published_block > block:
                break
            latest = number
        return latest


CHAIN_ORDER = ("occurred_at", "block_number", "log_index", "pk")


def last_balance(account: str, *, before=None) -> int:
    """An account's balance after its last line in chain order (before `before`, a datetime)."""
    lines = LedgerLine.objects.filter(account=account)
    if before is not None:
        lines = lines.filter(occurred_at__lt=before)
    last = lines.order_by(*(f"-{f}" for f in CHAIN_ORDER)).values_list("balance_after_wei", flat=True)[:1]
    if not last:
        return 0
    if last[0] is None:  # a line written before balances were kept: add them up
        return int(lines.aggregate(s=Sum("amount_wei"))["s"] or 0)
    return int(last[0])


def _accounts(events: list[ChainEvent]) -> set[str]:
    """The accounts these money events write lines on."""
    accounts = set()
    for event in events:
        args = event.args
        if event.name == "LicensePurchased":
            accounts.add(wallet_account(checksum_address(args["payer"])))
        elif event.name in CREDIT_EVENTS:
            accounts.add(credit_account(checksum_address(args[CREDIT_EVENTS[event.name]])))
        elif event.name == "Withdrawn":
            payee = checksum_address(args["payee"])
            accounts |= {credit_account(payee), wallet_account(payee)}
    return accounts


def _chunks(values, size: int = 500):
    values = sorted(values)
    for i in range(0, len(values), size):
        yield values[i : i + size]


class _RunningBalances:
    """Stamps each new line with its account's balance after it; lines come in chain order.

    Accounts that have no line yet (most payers and payees of a new batch) are found in one query
    per 500 and start at zero; the others are read once, on their first line of the batch."""

    def __init__(self, events: list[ChainEvent], *, all_new: bool = False):
        self.all_new = all_new  # the ledger was empty when this started: every account starts at zero
        self.balances: dict[str, int] = {}
        if not all_new:
            accounts = _accounts(events)
            existing = set()
            for chunk in _chunks(accounts):
                existing |= set(LedgerLine.objects.filter(account__in=chunk).values_list("account", flat=True).distinct())
            self.balances = {account: 0 for account in accounts - existing}

    def stamp(self, lines: list[LedgerLine]) -> None:
        for line in lines:
            if line.account not in self.balances:
                self.balances[line.account] = 0 if self.all_new else last_balance(line.account)
            self.balances[line.account] += int(line.amount_wei)
            line.balance_after_wei = self.balances[line.account]


def ledger_rollback(events: Iterable[ChainEvent]) -> int:
    """Remove the entries of events that left the canonical chain."""
    tx_hashes = {e.tx_hash for e in events if e.name in MONEY_EVENTS}
    deleted, _ = LedgerEntry.objects.filter(tx_hash__in=tx_hashes).delete()
    return deleted


REBUILD_BATCH = 20_000  # events per ledger_apply batch of a rebuild (a transaction is never split)


@transaction.atomic
def ledger_rebuild() -> int:
    """Drop the ledger and write it again from the indexed events alone, in batches of about
    REBUILD_BATCH events (memory stays flat over millions; the running balances carry over).

    One transaction (a rebuild that dies leaves the old ledger whole) that first takes the
    indexer's cursor lock: the indexer waits instead of applying events the rebuild would miss
    or apply twice. The old ledger goes with two plain DELETEs (Django's
    `delete()` would load every entry first: most of the time at a million events)."""
    list(IndexerCursor.objects.select_for_update().values_list("pk", flat=True))
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {quote(LedgerLine._meta.db_table)}")  # noqa: S608 (table names, no input)
        cursor.execute(f"DELETE FROM {quote(LedgerEntry._meta.db_table)}")  # noqa: S608
    state = _BatchState(fresh_ledger=True)
    written = 0
    batch: list[ChainEvent] = []
    events = ChainEvent.objects.filter(name__in=MONEY_EVENTS).order_by("block_number", "log_index")
    for event in events.iterator(chunk_size=5000):
        if len(batch) >= REBUILD_BATCH and event.tx_hash != batch[-1].tx_hash:
            written += ledger_apply(batch, _state=state)
            batch = []
        batch.append(event)
    return written + ledger_apply(batch, _state=state)


def ledger_balance(*, address: str, until=None) -> int:
    """A payee's credit (what `creditOf` should say): the sum of its lines."""
    qs = LedgerLine.objects.filter(account=credit_account(checksum_address(address)))
    if until is not None:
        qs = qs.filter(occurred_at__lt=until)
    return int(qs.aggregate(s=Sum("amount_wei"))["s"] or 0)


def ledger_reconcile() -> list[ReconciliationAlert]:
    """Compare every payee's ledger balance with `creditOf` at the block the indexer reached.

    Reading the chain at the indexer's own block means a purchase the indexer has not seen yet
    is not drift; a wrong or missing ledger line is. Drift is recorded as an alert (admin page)
    and logged; an alert whose payee balances again is marked resolved.
    """
    contract = chain.registry_contract()
    cursor = IndexerCursor.objects.filter(contract=contract.address).first()
    if cursor is None or cursor.block_number < 0:
        return []
    block = cursor.block_number
    payees = set(
        LedgerLine.objects.filter(account__startswith="credit:").values_list("address", flat=True).distinct()
    )
    for name in ("RoyaltyCredited", "PlatformFeeCredited"):  # credited on chain, even if the ledger missed it
        payees |= {checksum_address(a) for a in ChainEvent.objects.filter(name=name).values_list(f"args__{CREDIT_EVENTS[name]}", flat=True)}
    alerts = []
    with chain_errors():
        for payee in sorted(payees):
            on_chain = int(contract.functions.creditOf(payee).call(block_identifier=block))
            in_ledger = ledger_balance(address=payee)
            open_alerts = ReconciliationAlert.objects.filter(payee=payee, resolved_at__isnull=True)
            if on_chain == in_ledger:
                open_alerts.update(resolved_at=timezone.now())
                continue
            logger.error(
                "royalty ledger drift: %s has %s wei in the ledger but %s wei on chain at block %s",
                payee, in_ledger, on_chain, block,
            )
            alert = open_alerts.filter(ledger_balance_wei=in_ledger, chain_balance_wei=on_chain).first()
            if alert is None:
                alert = ReconciliationAlert.objects.create(
                    payee=payee, block_number=block, ledger_balance_wei=in_ledger, chain_balance_wei=on_chain
                )
            alerts.append(alert)
    return alerts
