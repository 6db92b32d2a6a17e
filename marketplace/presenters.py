"""What pages show beyond the database rows, shared by the public pages (views.py) and the vendor
portal (portal.py): each version checked against the chain, a model's lineage, the credit a
payee can withdraw. Reads only; a chain that cannot be read gives an empty answer, never an
error page."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from registry import chain
from registry.verification import versions_on_chain

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
