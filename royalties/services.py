"""License checks: the mirror first, then the contract at the latest block; fail closed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from django.db.models import Q
from django.utils import timezone as djtz
from eth_utils import to_checksum_address

from registry import chain
from registry.chain import ChainUnavailable, chain_errors

from .models import License

PERPETUAL = 2**64 - 1


class LicenseCheckUnavailable(Exception):
    """No mirrored licence and the chain cannot be asked: deny for now, retry later."""

    code = "chain_unavailable"
    retry_after = 15


@dataclass(frozen=True)
class LicenseDecision:
    granted: bool
    licensee: str | None = None
    expires_at: datetime | None = None
    perpetual: bool = False
    source: str = ""


def license_check(*, model_id: str, wallets: list[str]) -> LicenseDecision:
    """Whether any of `wallets` holds a valid licence on `model_id` now.

    A mirrored licence answers at once; on a miss the contract's `licenseExpiry` is read at the
    latest block (so a download works seconds after the purchase is mined) and mirrored.
    Raises LicenseCheckUnavailable when the chain does not answer and nothing is mirrored.
    """
    if not wallets:
        return LicenseDecision(False)
    wallets = [to_checksum_address(w) for w in wallets]
    now = djtz.now()
    held = (
        License.objects.filter(model_id=model_id.lower(), licensee__in=wallets)
        .filter(Q(perpetual=True) | Q(expires_at__gt=now))
        .first()
    )
    if held is not None:
        return LicenseDecision(True, held.licensee, held.expires_at, held.perpetual, "mirror")
    try:
        return _check_on_chain(model_id, wallets, now)
    except ChainUnavailable as exc:
        raise LicenseCheckUnavailable(
            "the chain cannot be reached to check your licence; try again shortly"
        ) from exc


def license_record(*, model_id: str, licensee: str, expiry: int, block: int | None, source: str) -> License | None:
    """Mirror a licence expiry (unix seconds, PERPETUAL for ever) seen on chain."""
    if expiry == 0:
        return None
    perpetual = expiry >= PERPETUAL
    expires_at = None if perpetual else datetime.fromtimestamp(expiry, tz=timezone.utc)
    row, _ = License.objects.update_or_create(
        model_id=model_id.lower(),
        licensee=to_checksum_address(licensee),
        defaults={"perpetual": perpetual, "expires_at": expires_at, "source": source, "observed_block": block},
    )
    return row


def _check_on_chain(model_id: str, wallets: list[str], now: datetime) -> LicenseDecision:
    contract = chain.registry_contract()
    w3 = chain.web3()
    raw_id = bytes.fromhex(model_id[2:])
    with chain_errors():
        block = w3.eth.block_number
        for wallet in wallets:
            expiry = contract.functions.licenseExpiry(raw_id, wallet).call(block_identifier=block)
            if expiry and (expiry >= PERPETUAL or expiry > int(now.timestamp())):
                row = license_record(
                    model_id=model_id, licensee=wallet, expiry=expiry, block=block, source=License.Source.CHAIN_READ
                )
                return LicenseDecision(True, wallet, row.expires_at, row.perpetual, "chain")
    return LicenseDecision(False)
