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
        ))
    License.objects.bulk_create(
        rows, batch_size=500, update_conflicts=True, unique_fields=["model_id", "licensee"],
        update_fields=["perpetual", "expires_at", "seats", "source", "observed_block", "updated_at"],
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
                block=latest.block_number, source=License.Source.EVENT, seats=_seats(latest),
            )


def _seats(event: ChainEvent) -> int:
    """The seats held after the purchase; an event stored before the contract counted seats is one."""
    return int(event.args.get("seats", 1))


def reorged(ancestor: int) -> None:
    """Blocks above `ancestor` left the chain (the indexer rolled back to it): a licence mirrored
    from a contract read at one of them (`license_check` at the safe block, not an event) is no
    longer evidence of anything. It is forgotten; the next check reads the chain again."""
    gone = License.objects.filter(source=License.Source.CHAIN_READ, observed_block__gt=ancestor).delete()[0]
    if gone:
        cache_generation_bump()
