"""Indexer projection: the royalty ledger and the license mirror follow registry events (and their rollback)."""

from __future__ import annotations

from datetime import UTC, datetime

from registry.caching import cache_generation_bump
from registry.chain import PERPETUAL, checksum_address
from registry.models import ChainEvent

from .ledger import ledger_apply, ledger_rollback
from .models import License
from .services import license_record


def apply(events: list[ChainEvent]) -> None:
    """The ledger's entries, then the licences bought (one upsert per 500 licences)."""
    ledger_apply(events)
    _licenses_record(events)


def _licenses_record(events: list[ChainEvent]) -> None:
    """What `license_record` writes for each LicensePurchased, in one upsert per 500 licences:
    the last purchase of a (model, licensee) in the batch wins, as it would one event at a time;
    an expiry of zero writes nothing."""
    latest: dict[tuple[str, str], ChainEvent] = {}
    for event in events:
        if event.name == "LicensePurchased" and int(event.args["expiresAt"]) != 0:
            latest[(event.args["modelId"].lower(), checksum_address(event.args["licensee"]))] = event
    rows = []
    for (model_id, licensee), event in latest.items():
        expiry = int(event.args["expiresAt"])
        perpetual = expiry >= PERPETUAL
        rows.append(License(
            model_id=model_id, licensee=licensee, perpetual=perpetual,
            expires_at=None if perpetual else datetime.fromtimestamp(expiry, tz=UTC),
            seats=min(max(_seats(event), 1), 2**32 - 1), source=License.Source.EVENT, observed_block=event.block_number,
            observed_block_hash=event.block_hash.lower(),
        ))
    License.objects.bulk_create(
        rows, batch_size=500, update_conflicts=True, unique_fields=["model_id", "licensee"],
        update_fields=["perpetual", "expires_at", "seats", "source", "observed_block", "observed_block_hash", "updated_at"],
    )


def rollback(events: list[ChainEvent]) -> None:
    """Drop the ledger entries of removed events; recompute each touched licence from the
    purchases that remain on the canonical chain."""
    ledger_rollback(events)
    touched = {(e.args["modelId"], e.args["licensee"]) for e in events if e.name == "LicensePurchased"}
    for model_id, licensee in touched:
        latest = (
            ChainEvent.objects.filter(name="LicensePurchased", args__modelId=model_id, args__licensee=licensee)
            .order_by("-block_number", "-log_index")
            .first()
        )
        if latest is None:
            License.objects.filter(model_id=model_id.lower(), licensee=licensee).delete()
        else:
            license_record(
                model_id=model_id, licensee=licensee, expiry=int(latest.args["expiresAt"]),
                block=latest.block_number, source=License.Source.EVENT, seats=_seats(latest), block_hash=latest.block_hash,
            )


def _seats(event: ChainEvent) -> int:
    """The seats held after the purchase; an event stored before the contract counted seats is one."""
    return int(event.args.get("seats", 1))


def reorged(ancestor: int) -> None:
    """Blocks above `ancestor` left the chain (the indexer rolled back to it, and `rollback` has
    recomputed every licence of the events removed): a licence still mirrored from one of those
    blocks was written ahead of the indexer (a contract read at the safe block, a purchase
    receipt) and is no longer evidence of anything. It is forgotten; the next check reads the chain again."""
    gone = License.objects.filter(observed_block__gt=ancestor).delete()[0]
    if gone:
        cache_generation_bump()


def observed_blocks(start: int, end: int) -> list[int]:
    """The blocks in `start`..`end` that mirrored licences were seen at (at most end - start + 1
    numbers): the indexer reads their canonical hashes for `confirm_observed`."""
    return list(
        License.objects.filter(observed_block__range=(start, end)).values_list("observed_block", flat=True).distinct()
    )


def confirm_observed(start: int, end: int, hashes: dict[int, str]) -> None:
    """The indexer is about to apply blocks `start`..`end`, whose canonical hashes include
    `hashes`: a licence written ahead of it (a contract read at the safe block, a purchase
    receipt) from a block that a reorg deeper than CONFIRMATIONS has since replaced never reached
    the indexer's cursor, so no rollback will find it. Such a row (or one whose block's hash is
    unknown: written after `observed_blocks` was asked, or before hashes were kept) is forgotten;
    the next licence check reads the chain again, and the events of the range are applied after this."""
    rows = License.objects.filter(observed_block__range=(start, end)).values_list("pk", "observed_block", "observed_block_hash")
    stale = [pk for pk, block, block_hash in rows.iterator() if not block_hash or hashes.get(block) != block_hash]
    for begin in range(0, len(stale), 500):
        License.objects.filter(pk__in=stale[begin:begin + 500]).delete()
    if stale:
        cache_generation_bump()
