"""License checks: the mirror first, then the contract at the latest and the safe block; fail closed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import OperationalError, transaction
from django.db.models import Q
from django.utils import timezone as djtz
from eth_utils import to_checksum_address

from registry import chain
from registry.chain import PERPETUAL, ChainUnavailable, chain_errors, hex0x, to_bytes32
from registry.models import IndexedBlock, IndexerCursor
from telemetry import metrics

from .models import License
from .rules import LineageNode, royalty_split


class LicenseCheckUnavailable(Exception):
    """No mirrored licence and the chain cannot be asked: deny for now, retry later."""

    code = "chain_unavailable"
    retry_after = 15


@dataclass(frozen=True)
class LicenseDecision:
    """Whether a licence is held. `source`: "mirror" (the License table), "chain" (read from the
    contract at the safe block, now mirrored) or "unconfirmed" (seen at the latest block only:
    `confirmed` is False, nothing was mirrored, and a reorg may still take it away). `seats`: the
    seats of the licence that granted (its one licensee's; the sum over several wallets is
    `selectors.license_seats_held`)."""

    granted: bool
    licensee: str | None = None
    expires_at: datetime | None = None
    perpetual: bool = False
    source: str = ""
    confirmed: bool = True
    seats: int = 0

    def grant_seconds(self, now: datetime) -> float | None:
        """How long this grant may be kept without asking again: None for as long as a cache
        keeps anything (a perpetual licence), else until the licence expires, and at most
        LICENSE_UNCONFIRMED_GRANT_SECONDS while the purchase is not CONFIRMATIONS deep."""
        until = None if self.perpetual or self.expires_at is None else (self.expires_at - now).total_seconds()
        if self.confirmed:
            return until
        short = float(settings.LICENSE_UNCONFIRMED_GRANT_SECONDS)
        return short if until is None else min(short, until)


def license_check(*, model_id: str, wallets: list[str]) -> LicenseDecision:
    """Whether any of `wallets` holds a valid licence on `model_id` now.

    A mirrored licence answers at once. On a miss the contract's `licenseOf` (expiry and seats) is
    read at the latest block (so a download works seconds after the purchase is mined) and at the safe block
    (CONFIRMATIONS deep): valid at the safe block, it is mirrored; valid at the latest block only,
    it is a short-lived grant (`confirmed=False`, see LicenseDecision.grant_seconds) that is not
    mirrored, so a purchase a reorg removes grants nothing once that grant ends.
    Raises LicenseCheckUnavailable when the chain does not answer and nothing is mirrored.
    """
    if not wallets:
        return LicenseDecision(False)
    wallets = [to_checksum_address(w) for w in wallets]
    held = license_mirror_hit(model_id=model_id, licensees=wallets)
    if held is not None:
        return held
    try:
        return _check_on_chain(model_id, wallets, djtz.now())
    except ChainUnavailable as exc:
        metrics.CHAIN_FAILURES.labels(operation="licence_check").inc()
        raise LicenseCheckUnavailable(
            "the chain cannot be reached to check your licence; try again shortly"
        ) from exc


def license_mirror_hit(*, model_id: str, licensees) -> LicenseDecision | None:
    """A valid mirrored licence for any of `licensees` (a list, or a queryset of addresses used as
    a subquery: one database round trip), else None. The hot path of every download."""
    held = (
        License.objects.filter(model_id=model_id.lower(), licensee__in=licensees)
        .filter(Q(perpetual=True) | Q(expires_at__gt=djtz.now()))
        .only("licensee", "expires_at", "perpetual", "seats")
        .first()
    )
    if held is None:
        return None
    return LicenseDecision(True, held.licensee, held.expires_at, held.perpetual, "mirror", seats=held.seats)


def license_record(
    *, model_id: str, licensee: str, expiry: int, block: int | None, source: str, seats: int = 1, block_hash: str = "",
) -> License | None:
    """Mirror a licence seen on chain: its expiry (unix seconds, PERPETUAL for ever) and its seats
    (events indexed before seats existed carry none: one seat). `block_hash`: the hash of `block`
    as the row's writer saw it; the indexer forgets the row if that block is replaced before it
    has indexed it (see royalties.projections.confirm_observed)."""
    if expiry == 0:
        return None
    perpetual = expiry >= PERPETUAL
    expires_at = None if perpetual else datetime.fromtimestamp(expiry, tz=UTC)
    row, _ = License.objects.update_or_create(
        model_id=model_id.lower(),
        licensee=to_checksum_address(licensee),
        defaults={
            "perpetual": perpetual, "expires_at": expires_at, "seats": _seats(seats), "source": source,
            "observed_block": block, "observed_block_hash": (block_hash or "").lower(),
        },
    )
    return row


def license_mirror_ahead(*, block: int, block_hash: str, **fields) -> License | None:
    """`license_record` for a writer ahead of the indexer (a contract read, a purchase receipt),
    deciding under the indexer's cursor lock: if the indexer has already applied `block`, the row
    is written only if `block_hash` is the hash it indexed there (a read from a fork the indexer
    did not follow, or a block it no longer remembers, is not mirrored); otherwise the indexer
    checks the row when it reaches the block (projections.confirm_observed). While the indexer
    holds the lock (a range being applied) nothing is mirrored. None when nothing was written:
    the caller's grant then stays short and the next check reads the chain again."""
    contract = chain.registry_address()
    try:
        with transaction.atomic():
            try:
                with transaction.atomic():  # a savepoint: a busy lock must not break the outer transaction
                    cursor = (
                        IndexerCursor.objects.select_for_update(nowait=True, no_key=True)
                        .filter(contract=contract).only("block_number").first()
                    )
            except OperationalError:
                return None  # the indexer is applying a range now
            if cursor is not None and block <= cursor.block_number:
                indexed = IndexedBlock.objects.filter(contract=contract, number=block).values_list("hash", flat=True).first()
                if indexed is None or indexed != block_hash.lower():
                    return None
            return license_record(block=block, block_hash=block_hash, **fields)
    except OperationalError:
        return None


def _seats(seats: int) -> int:
    """The contract's seats (a uint32, at least one for a licence ever bought) as a mirror value."""
    return min(max(int(seats), 1), 2**32 - 1)


def _valid(expiry: int, now: datetime) -> bool:
    return bool(expiry) and (expiry >= PERPETUAL or expiry > int(now.timestamp()))


def _expiry_datetime(expiry: int) -> datetime | None:
    return None if expiry >= PERPETUAL else datetime.fromtimestamp(expiry, tz=UTC)


def _check_on_chain(model_id: str, wallets: list[str], now: datetime) -> LicenseDecision:
    contract = chain.registry_contract()
    w3 = chain.web3()
    raw_id = to_bytes32(model_id)
    unconfirmed: LicenseDecision | None = None
    with chain_errors():
        head = w3.eth.block_number
        safe = max(head - max(settings.CONFIRMATIONS, 1) + 1, 0)
        safe_hash = ""
        for wallet in wallets:
            expiry, seats = contract.functions.licenseOf(raw_id, wallet).call(block_identifier=head)
            if not _valid(expiry, now):
                continue
            short = LicenseDecision(
                True, wallet, _expiry_datetime(expiry), expiry >= PERPETUAL, "unconfirmed", confirmed=False, seats=int(seats),
            )
            # the safe block's hash first, then the licence at that block (even when it is the
            # head): a reorg in between makes the row be forgotten for nothing (read again
            # later), never kept for a block that left the chain
            safe_hash = safe_hash or hex0x(w3.eth.get_block(safe)["hash"])
            expiry_at_safe, seats_at_safe = contract.functions.licenseOf(raw_id, wallet).call(block_identifier=safe)
            if not _valid(expiry_at_safe, now):
                unconfirmed = unconfirmed or short  # bought in the last CONFIRMATIONS blocks: usable now, mirrored once confirmed
                continue
            # what is confirmed; a renewal (or seats) on top of it is not yet
            row = license_mirror_ahead(
                model_id=model_id, licensee=wallet, expiry=expiry_at_safe, block=safe, source=License.Source.CHAIN_READ,
                seats=seats_at_safe, block_hash=safe_hash,
            )
            if row is None:  # not mirrored now (see license_mirror_ahead): a short grant, asked again
                unconfirmed = unconfirmed or short
                continue
            return LicenseDecision(True, wallet, row.expires_at, row.perpetual, "chain", seats=row.seats)
    return unconfirmed or LicenseDecision(False)


# ------------------------------------------------------------------------------- purchases


class PurchaseNotFound(Exception):
    code = "purchase_pending"


class PurchaseFailed(Exception):
    code = "purchase_reverted"


def lineage_on_chain(*, model_id: str) -> list[LineageNode]:
    """The model and its ancestors as the contract has them (vendor, upstream share)."""
    contract = chain.registry_contract()
    nodes: list[LineageNode] = []
    current = hex0x(to_bytes32(model_id))
    for _ in range(10):
        model = chain.model_on_chain(current, contract=contract)
        if not model.exists:
            break
        nodes.append(LineageNode(current, model.vendor, model.upstream_bps))
        if not model.has_parent:
            break
        current = model.parent_id
    return nodes


def royalty_preview(*, model_id: str, price_wei: int | None = None) -> dict:
    """Who would get what from one purchase now: the contract's rule over its live lineage and fee."""
    contract = chain.registry_contract()
    with chain_errors():
        fee_bps = contract.functions.platformFeeBps().call()
        recipient = contract.functions.platformFeeRecipient().call()
        model = chain.model_on_chain(model_id, contract=contract)
    price = model.price_wei if price_wei is None else int(price_wei)
    lineage = lineage_on_chain(model_id=model_id)
    credits = royalty_split(price_wei=price, platform_fee_bps=fee_bps, platform_recipient=recipient, lineage=lineage)
    return {
        "price_wei": price,
        "platform_fee_bps": fee_bps,
        "credits": [
            {"payee": c.payee, "model_id": c.model_id, "role": c.role, "amount_wei": c.amount_wei} for c in credits
        ],
    }


MAX_SEATS_PER_PURCHASE = 10_000  # the contract's MAX_SEATS_PER_PURCHASE


def purchase_transaction(*, model_id: str, licensee: str, max_price_wei: int | None = None, seats: int = 1) -> dict:
    """The unsigned purchase call for the buyer's wallet to sign and send.

    One seat is the four-argument `purchaseLicense`; several, or seats added to a perpetual licence
    held (`adds_to_perpetual`; `purchaseLicense` refuses it), are `purchaseLicenseSeats` (the price
    times the seats: `price_wei` is that total). Besides `maxPrice` (the total shown, unless the
    buyer allows more) it carries `minExpiresAt`, the expiry shown less
    LICENSE_EXPIRY_SLACK_SECONDS (the perpetual sentinel for a perpetual licence), so a vendor who
    shortens the licence length in front of the purchase makes it revert (`ExpiryBelowMinimum`)
    instead of selling less. `seats_after` is what the licence would hold once mined now (a
    perpetual licence adds the seats to those held; a renewal must cover the seats held: the
    contract reverts `SeatsBelowHeld` below them, said here as `seats_below_held`)."""
    seats = int(seats)
    if not 1 <= seats <= MAX_SEATS_PER_PURCHASE:
        raise ValueError(f"seats must be 1 to {MAX_SEATS_PER_PURCHASE}")
    contract = chain.registry_contract()
    raw = to_bytes32(model_id)
    licensee = to_checksum_address(licensee)
    with chain_errors():
        model = chain.model_on_chain(raw, contract=contract)
        current, held = contract.functions.licenseOf(raw, licensee).call()
        now = chain.web3().eth.get_block("latest")["timestamp"]
    if not model.exists:
        raise LookupError("no such model on chain")
    current, held = int(current), int(held)
    price = model.price_wei * seats
    max_price = price if max_price_wei is None else int(max_price_wei)
    valid = current >= PERPETUAL or current > int(now)
    if model.perpetual:
        expires = min_expires = PERPETUAL
    else:
        expires = min(max(current, int(now)) + model.license_duration, PERPETUAL - 1)  # the contract's cap
        min_expires = max(expires - int(settings.LICENSE_EXPIRY_SLACK_SECONDS), 0)
    if seats == 1 and current < PERPETUAL:
        data = contract.encode_abi("purchaseLicense", args=[raw, licensee, max_price, min_expires])
    else:
        data = contract.encode_abi("purchaseLicenseSeats", args=[raw, licensee, seats, max_price, min_expires])
    return {
        "to": contract.address,
        "data": data,
        "value": price,
        "chain_id": int(chain.web3().eth.chain_id),
        "price_wei": price,
        "unit_price_wei": model.price_wei,
        "seats": seats,
        "seats_held": held if valid else 0,
        "seats_after": held + seats if current >= PERPETUAL else seats,
        "seats_below_held": valid and current < PERPETUAL and seats < held,
        "max_price_wei": max_price,
        "listed": model.listed,
        "licensee": licensee,
        "current_expiry": current or None,
        "expires_at_if_mined_now": expires,
        "min_expires_at": min_expires,
        "already_perpetual": current == PERPETUAL,
        "adds_to_perpetual": current == PERPETUAL and model.perpetual,
    }


@dataclass(frozen=True)
class PurchaseConfirmation:
    """The licences a mined purchase granted. `confirmed`: the purchase is CONFIRMATIONS deep and
    `licenses` are mirrored rows; otherwise they are unsaved License objects (usable now through
    the short-lived grant of license_check, mirrored once confirmed) and `depth` < `confirmations`."""

    licenses: list[License]
    confirmed: bool
    depth: int
    confirmations: int


def purchase_confirm(*, tx_hash: str) -> PurchaseConfirmation:
    """Read a purchase's receipt and the licences it granted; mirror them once the purchase is
    CONFIRMATIONS deep (a shallower one could still be reorged out). PurchaseNotFound while it is
    not mined yet, PurchaseFailed when it reverted."""
    from web3.exceptions import TransactionNotFound

    w3 = chain.web3()
    contract = chain.registry_contract()
    with chain_errors():
        try:
            receipt = w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound as exc:
            raise PurchaseNotFound(f"{tx_hash} is not mined yet") from exc
        head = w3.eth.block_number
    needed = max(settings.CONFIRMATIONS, 1)
    depth = max(head - receipt["blockNumber"] + 1, 0)
    confirmed = depth >= needed
    if receipt["status"] != 1:
        raise PurchaseFailed(f"{tx_hash} reverted: no licence was bought and the payment was not taken")
    from web3.logs import DISCARD

    licences = []
    for event in contract.events.LicensePurchased().process_receipt(receipt, errors=DISCARD):
        if to_checksum_address(event["address"]) != contract.address:
            continue
        args = event["args"]
        fields = dict(
            model_id=hex0x(args["modelId"]), licensee=args["licensee"], expiry=int(args["expiresAt"]),
            block=receipt["blockNumber"], source=License.Source.EVENT, seats=int(args["seats"]),
            block_hash=hex0x(receipt["blockHash"]),
        )
        row = (license_mirror_ahead(**fields) or _license_unsaved(**fields)) if confirmed else _license_unsaved(**fields)
        if row is not None:
            licences.append(row)
    if not licences:
        raise PurchaseFailed(f"{tx_hash} is not a purchase on this marketplace's registry")
    return PurchaseConfirmation(licences, confirmed, depth, needed)


def _license_unsaved(
    *, model_id: str, licensee: str, expiry: int, block: int, source: str, seats: int, block_hash: str,
) -> License | None:
    """What license_record would mirror, without writing it."""
    if expiry == 0:
        return None
    return License(
        model_id=model_id.lower(), licensee=to_checksum_address(licensee), perpetual=expiry >= PERPETUAL,
        expires_at=_expiry_datetime(expiry), seats=_seats(seats), source=source, observed_block=block,
        observed_block_hash=block_hash.lower(),
    )
