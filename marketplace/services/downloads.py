"""Downloads: which file a request names, who may fetch it (licence on chain), and the record of
every attempt. The resolve view (marketplace/api/huggingface.py) calls `download_start`, streams
the file, then `download_finish`."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F
from django.utils import timezone

from fleet.errors import FleetError
from fleet.models import Device, DeviceToken
from fleet.services import seat_ensure
from registry.caching import LocalCache
from royalties.services import LicenseCheckUnavailable, license_check, license_mirror_hit
from telemetry import metrics

from .. import selectors
from ..errors import Forbidden, Gone, MarketplaceError, NotAuthenticated, Unavailable
from ..models import ApiToken, Artifact, Download, Receipt, Version
from .receipts import receipt_insert


@dataclass(frozen=True)
class DownloadGrant:
    wallet: str
    source: str  # "owner", "mirror", "chain" or "unconfirmed" (a purchase not yet CONFIRMATIONS deep)
    seats: int = 0  # the granting licence's seats (what an unconfirmed, unmirrored licence holds)


@dataclass(frozen=True)
class DownloadStart:
    """A download allowed to go ahead: the file, its version, the licence that allows it, and the
    record of it (None for a HEAD, which is not a download)."""

    version: Version
    artifact: Artifact
    grant: DownloadGrant
    download: Download | None


_grants = LocalCache("licence-grants")


def download_start(
    *, user, token: ApiToken | DeviceToken | None, vendor_slug: str, model_slug: str, revision: str, path: str, method: str
) -> DownloadStart:
    """Find the file `<vendor>/<model>` names at `revision` and `path`, and allow its download.

    Raises NotFound (RepoNotFound, RevisionNotFound, EntryNotFound), Gone (VersionRevoked: the
    vendor revoked that version), NotAuthenticated/Forbidden (GatedRepo; seat_limit for an edge
    device past its owner's seats) or Unavailable (the licence cannot be checked). Every GET is
    recorded, refused or not, with the device whose token asked; a HEAD is not (fleets poll with
    it, and a warm HEAD makes no database query)."""
    device = token.device if isinstance(token, DeviceToken) else None
    api_token = token if isinstance(token, ApiToken) else None
    record = dict(
        user=user, token=api_token, device=device, repo_id=f"{vendor_slug}/{model_slug}", revision=revision, path=path,
        method=method,
    )
    version = artifact = None
    try:
        artifact = selectors.artifact_for_download(vendor_slug=vendor_slug, model_slug=model_slug, revision=revision, path=path)
        if artifact is not None:
            version = artifact.version
        else:  # something is missing: find out what, for the client's precise error
            repo = selectors.model_get_by_repo(vendor_slug=vendor_slug, model_slug=model_slug)
            version = selectors.version_resolve(model=repo, revision=revision)
            artifact = selectors.artifact_get(version=version, path=path)
        if version.revoked:
            raise Gone(
                f"v{version.number} of {record['repo_id']} was revoked by its vendor; use another revision",
                code="VersionRevoked", headers={"X-Repo-Commit": version.commit_sha},
            )
        grant = download_authorize(user=user, version=version)
        if device is not None:
            device_seat(device=device, user=user, model=version.model, grant=grant, take=method == "GET")
    except MarketplaceError as exc:
        if method == "GET":
            download_record(**record, version=version, artifact=artifact, status_code=exc.status, error_code=exc.code)
            metrics.DOWNLOADS.labels(outcome="refused", reason=metrics.code_label(exc.code)).inc()
        raise
    download = None
    if method == "GET":
        download = download_record(**record, version=version, artifact=artifact, grant=grant, status_code=200)
        metrics.DOWNLOADS.labels(outcome="granted", reason="ok").inc()
    return DownloadStart(version=version, artifact=artifact, grant=grant, download=download)


def download_finish(*, download: Download, bytes_sent: int, range_start: int | None, receipt: Receipt | None = None) -> None:
    """Record what was sent once the server is done with the body (a client may stop early), and
    the download's receipt (services/receipts.py `receipt_issue`) atomically with it: one commit
    for both (one statement on PostgreSQL), the cost that counts on the download path."""
    if receipt is None:
        Download.objects.filter(pk=download.pk).update(bytes_sent=F("bytes_sent") + bytes_sent, range_start=range_start)
        return
    receipt_insert(receipt, download_pk=download.pk, bytes_sent=bytes_sent, range_start=range_start)
    metrics.RECEIPTS_ISSUED.inc()


def download_answered(*, download: Download, status_code: int) -> None:
    """Record an answer other than 200 to an allowed GET (206 for a range, 416 past the end, 302 to storage)."""
    Download.objects.filter(pk=download.pk).update(status_code=status_code)


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
    loaded = []

    def load() -> tuple[DownloadGrant, float | None]:
        loaded.append(True)
        return _authorize(user, model)

    grant = _grants.get_or_load((user.pk, model.chain_model_id), load)
    if not loaded:
        metrics.LICENCE_CHECKS.labels(source="cache", result="held").inc()
    return grant


def device_seat(*, device: Device, user, model, grant: DownloadGrant, take: bool) -> None:
    """An edge device downloads on one of its owner's seats for the model (fleet/services.py
    `seat_ensure`: the first GET takes it, a HEAD only checks one could be taken). The vendor's
    own devices need none. A licence seen at the latest block only (not mirrored) counts with its
    own seats until the mirror has it. Forbidden `seat_limit` past the seats held."""
    if grant.source == "owner":
        return
    try:
        seat_ensure(
            device=device, model_id=model.chain_model_id, repo_id=model.repo_id,
            licensees=selectors.wallet_addresses(user=user), take=take,
            minimum_held=max(grant.seats, 1) if grant.source == "unconfirmed" else 0,
        )
    except FleetError as exc:
        raise Forbidden(exc.message, code=exc.code, status=exc.status) from exc


def _authorize(user, model) -> tuple[DownloadGrant, float | None]:
    if model.vendor.user_id == user.pk:
        metrics.LICENCE_CHECKS.labels(source="owner", result="held").inc()
        return DownloadGrant(model.vendor.address, "owner"), None
    mirrored = license_mirror_hit(model_id=model.chain_model_id, licensees=selectors.wallet_addresses(user=user))
    if mirrored is None:
        wallets = list(selectors.wallet_addresses(user=user))
        try:
            mirrored = license_check(model_id=model.chain_model_id, wallets=wallets)
        except LicenseCheckUnavailable as exc:
            metrics.LICENCE_CHECKS.labels(source="chain", result="unavailable").inc()
            raise Unavailable(str(exc), retry_after=exc.retry_after) from exc
    metrics.LICENCE_CHECKS.labels(
        source=mirrored.source or "chain", result="held" if mirrored.granted else "not_held"
    ).inc()
    if not mirrored.granted:
        raise Forbidden(
            f"none of your wallets holds a licence for {model.repo_id}; buy one (purchaseLicense) and retry",
            code="GatedRepo",
        )
    grant = DownloadGrant(mirrored.licensee or "", mirrored.source, mirrored.seats)
    return grant, mirrored.grant_seconds(timezone.now())


def download_record(
    *,
    user,
    token: ApiToken | None,
    repo_id: str,
    device: Device | None = None,
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
        device=device,
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
