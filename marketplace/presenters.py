"""What pages show beyond the database rows, shared by the public pages (views.py) and the vendor
portal (portal.py): each version checked against the chain, a model's lineage, the credit a
payee can withdraw. Reads only; a chain that cannot be read gives an empty answer, never an
error page."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from registry import chain
from registry.verification import versions_on_chain
from royalties.models import LedgerEntry
from royalties.rules import LineageNode, royalty_split
from royalties.selectors import format_eth

from . import selectors
from .models import Model, Version


def version_chain_checks(*, model: Model, versions: list[Version]) -> dict[int, dict]:
    """For the public page: each live version checked against the chain (digest, revocation),
    by version id; empty while the chain cannot be read."""
    try:
        checks = versions_on_chain([(model.chain_model_id, v.number, v.root_digest) for v in versions])
    except chain.ChainError:
        return {}
    return {v.pk: check for v, check in zip(versions, checks, strict=True)}


def model_lineage_root_first(*, model: Model) -> list[Model]:
    """The model's ancestors, the root first (for the lineage list of the model page)."""
    return list(reversed(selectors.model_lineage(model=model)))


@dataclass(frozen=True)
class WithdrawableCredit:
    address: str
    wei: int


def royalty_credits_withdrawable(*, addresses: list[str]) -> list[WithdrawableCredit] | None:
    """What each of `addresses` can withdraw now: the contract's `creditOf` (credited, not yet
    withdrawn). None while the chain cannot be read."""
    try:
        contract = chain.registry_contract()
        with chain.chain_errors():
            return [WithdrawableCredit(address, int(contract.functions.creditOf(address).call())) for address in addresses]
    except chain.ChainError:
        return None


def chain_context() -> dict:
    """The chain id and registry address a page's wallet scripts need ("" while unknown)."""
    try:
        address = chain.registry_address()
    except chain.ChainError:
        address = ""
    return {"chain_id": settings.CHAIN_ID, "registry_address": address}


# ------------------------------------------------------------------------------- lineage


@dataclass(frozen=True)
class LineageShare:
    """One model of the model page's lineage tree and what a purchase of the page's model pays it."""

    model: Model
    depth: int  # 0: the root ancestor; the page's model is at len(ancestors)
    upstream_percent: float  # its own upstreamBps as a percentage
    share_percent: float | None  # of the page model's price, by the contract's cascade (None for derivatives)
    share_wei: int | None
    current: bool = False

    @property
    def share_eth(self) -> str:
        return format_eth(self.share_wei or 0)


def _lineage_percent(part: int, whole: int) -> float:
    return round(100 * part / whole, 2) if whole else 0.0


def model_lineage_tree(*, model: Model) -> dict | None:
    """The model page's lineage: ancestors root first, the model, and its live, listed derivatives,
    each with the share of one purchase of `model` it receives (royalties/rules.royalty_split, the
    contract's rule, over the mirrored lineage and fee: no chain read). None when the model has
    neither ancestors nor derivatives.

    The shares are computed on the model's price (on a nominal 1 ETH when it is free, so the
    percentages still show the rule); the platform fee and the model's own vendor are listed too,
    so every share of a purchase is on the page and the percentages sum to 100."""
    ancestors = selectors.model_lineage(model=model)  # parent first
    derivatives = list(
        Model.objects.select_related("vendor")
        .filter(parent=model, status=Model.Status.LIVE, listed=True)
        .order_by("slug")
    )
    if not ancestors and not derivatives:
        return None
    price = model.price_wei or 10**18
    fee_bps = royalty_platform_fee_bps()
    lineage = [LineageNode(m.chain_model_id, m.vendor.address, m.upstream_bps) for m in [model, *ancestors]]
    try:
        credits = royalty_split(price_wei=price, platform_fee_bps=fee_bps, platform_recipient="platform", lineage=lineage)
    except ValueError:  # an ancestor past the contract's depth bound: show no shares rather than wrong ones
        credits = []
    paid = {(c.model_id, c.role): c.amount_wei for c in credits}
    path = list(reversed(ancestors))
    nodes = [
        LineageShare(m, depth, m.upstream_bps / 100, _lineage_percent(paid.get((m.chain_model_id, "upstream"), 0), price),
                     paid.get((m.chain_model_id, "upstream"), 0))
        for depth, m in enumerate(path)
    ]
    own = paid.get((model.chain_model_id, "vendor"), 0)
    nodes.append(LineageShare(model, len(path), model.upstream_bps / 100, _lineage_percent(own, price), own, current=True))
    children = [LineageShare(m, len(path) + 1, m.upstream_bps / 100, None, None) for m in derivatives]
    fee = paid.get((model.chain_model_id, "platform"), 0)
    return {
        "nodes": nodes, "derivatives": children, "price_wei": price, "nominal": not model.price_wei,
        "platform_fee_percent": _lineage_percent(fee, price), "platform_fee_wei": fee,
        "platform_fee_eth": format_eth(fee), "price_eth": format_eth(price),
        "complete": bool(credits),
    }


def royalty_platform_fee_bps() -> int:
    """The platform fee as last mirrored from the chain (`PlatformFeeChanged` in the ledger), else
    the deployment's setting (PLATFORM_FEE_BPS)."""
    latest = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.PLATFORM_FEE).order_by("-block_number", "-log_index").first()
    if latest is not None and "bps" in latest.memo:
        return int(latest.memo["bps"])
    return int(settings.PLATFORM_FEE_BPS)
