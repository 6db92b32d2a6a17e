"""Indexer projection: the royalty ledger and the license mirror follow registry events (and their rollback)."""

from __future__ import annotations

from registry.caching import cache_generation_bump
from registry.models import ChainEvent

from .ledger import ledger_apply, ledger_rollback
from .models import License
from .services import license_record


def apply(events: list[ChainEvent]) -> None:
    ledger_apply(events)
    for event in events:
        if event.name == "LicensePurchased":
            license_record(
                model_id=event.args["modelId"],
                licensee=event.args["licensee"],
                expiry=int(event.args["expiresAt"]),
                block=event.block_number,
                source=License.Source.EVENT,
                seats=_seats(event),
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
