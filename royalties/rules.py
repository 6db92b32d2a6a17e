"""The royalty rule of ModelRegistry, in Python: who gets what from one sale, to the wei.

Kept identical to `_splitPayment` in contracts/ModelRegistry.sol (a test checks it against the
contract on random lineages): the platform fee first, floored; then ancestor k of the bought model
gets `remaining * b0 * ... * b(k-1) * (10000 - bk) / 10000^(k+1)` floored, where `bi` is model i's
`upstreamBps`, and the first ancestor whose `upstreamBps` is 0 keeps everything that reaches it;
the bought model's vendor gets the rest, rounding dust included. The shares sum to the price.
"""

from __future__ import annotations

from dataclasses import dataclass

BPS = 10_000


@dataclass(frozen=True)
class LineageNode:
    """One model of a lineage, the bought model first, then its parent, and so on."""

    model_id: str
    vendor: str
    upstream_bps: int


@dataclass(frozen=True)
class Credit:
    payee: str
    model_id: str  # the model whose sale (or lineage position) earned it
    amount_wei: int
    role: str  # "platform", "vendor" or "upstream"


def royalty_split(*, price_wei: int, platform_fee_bps: int, platform_recipient: str, lineage: list[LineageNode]) -> list[Credit]:
    """The credits one purchase of `lineage[0]` makes, in the order the contract emits them."""
    if price_wei < 0 or not lineage:
        raise ValueError("a split needs a non-negative price and the bought model")
    credits: list[Credit] = []
    fee = price_wei * platform_fee_bps // BPS
    if fee:
        credits.append(Credit(platform_recipient, lineage[0].model_id, fee, "platform"))
    remaining = price_wei - fee
    paid_upstream = 0
    bought = lineage[0]
    if bought.upstream_bps and remaining:
        numerator, denominator = remaining * bought.upstream_bps, BPS
        for ancestor in lineage[1:]:
            if ancestor.upstream_bps == 0:
                share = numerator // denominator
                if share:
                    credits.append(Credit(ancestor.vendor, ancestor.model_id, share, "upstream"))
                paid_upstream += share
                break
            share = numerator * (BPS - ancestor.upstream_bps) // (denominator * BPS)
            if share:
                credits.append(Credit(ancestor.vendor, ancestor.model_id, share, "upstream"))
            paid_upstream += share
            numerator *= ancestor.upstream_bps
            denominator *= BPS
        else:
            raise ValueError("the lineage ends on a model that still passes royalties upstream")
    own = remaining - paid_upstream
    if own:
        credits.append(Credit(bought.vendor, bought.model_id, own, "vendor"))
    return credits
