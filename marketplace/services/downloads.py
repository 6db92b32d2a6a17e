"""Downloads: who may fetch a version's file (licence on chain), and the record of every attempt."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from registry.caching import LocalCache
from royalties.services import LicenseCheckUnavailable, license_check, license_mirror_hit

from ..errors import Forbidden, NotAuthenticated, Unavailable
from ..models import ApiToken, Artifact, Download, Version, Wallet


@dataclass(frozen=True)
class DownloadGrant:
    wallet: str
    source: str  # "owner", "mirror", "chain" or "unconfirmed" (a purchase not yet CONFIRMATIONS deep)


_grants = LocalCache("licence-grants")


def download_authorize(*, user, version: Version) -> DownloadGrant:
    """Allow the download if the user is the model's vendor or a linked wallet holds a licence.

    Raises NotAuthenticated/Forbidden with code GatedRepo, or Unavailable (503, Retry-After)
    when the chain cannot be asked and no licence is mirrored: the check fails closed.
    A grant is kept in the process until the licence expires, at most HOT_CACHE_SECONDS
    (registry/caching.py), and at most LICENSE_UNCONFIRMED_GRANT_SECONDS while the purchase is
    not CONFIRMATIONS deep (a reorg may remove it); a refusal is never kept, so a purchase works
    as soon as it is mined.
    """
    model = version.model
    if user is None or not user.is_authenticated:
        raise NotAuthenticated(
            f"{model.repo_id} needs a licence: send `Authorization: Bearer <API token>`", code="GatedRepo"
        )
    return _grants.get_or_load((user.pk, model.chain_model_id), lambda: _authorize(user, model))


def _authorize(user, model) -> tuple[DownloadGrant, float | None]:
    if model.vendor.user_id == user.pk:
        return DownloadGrant(model.vendor.address, "owner"), None
    mirrored = license_mirror_hit(model_id=model.chain_model_id, licensees=Wallet.objects.filter(user=user).values("address"))
    if mirrored is None:
        wallets = list(Wallet.objects.filter(user=user).values_list("address", flat=True))
        try:
            mirrored = license_check(model_id=model.chain_model_id, wallets=wallets)
        except LicenseCheckUnavailable as exc:
            raise Unavailable(str(exc), retry_after=exc.retry_after) from exc
    if not mirrored.granted:
        raise Forbidden(
            f"none of your wallets holds a licence for {model.repo_id}; buy one (purchaseLicense) and retry",
            code="GatedRepo",
        )
    return DownloadGrant(mirrored.licensee or "", mirrored.source), mirrored.grant_seconds(timezone.now())


def download_record(
    *,
    user,
    token: ApiToken | None,
    repo_id: str,
    revision: str,
    path: str,
    method: str,
    status_code: int,
    version: Version | None = None,
    artifact: Artifact | None = None,
    grant: DownloadGrant | None = None,
    error_code: str = "",
    bytes_sent: int = 0,
    range_start: int | None = None,
) -> Download:
    return Download.objects.create(
        user=user if user is not None and user.is_authenticated else None,
        token=token,
        wallet=grant.wallet if grant else "",
        version=version,
        artifact=artifact,
        repo_id=repo_id[:200],
        revision=revision[:200],
        path=path[:1024],
        method=method,
        status_code=status_code,
        error_code=error_code,
        license_source=grant.source if grant else "",
        bytes_sent=bytes_sent,
        range_start=range_start,
    )
