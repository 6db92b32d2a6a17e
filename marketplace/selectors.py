"""Marketplace reads: repos, revisions and files as buyers and Hugging Face clients name them."""

from __future__ import annotations

import re

from django.db.models import Prefetch, Q, QuerySet, Subquery, prefetch_related_objects

from registry.caching import LocalCache

from .errors import NotFound
from .models import Artifact, Model, Version, Wallet

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
VERSION_RE = re.compile(r"^v([1-9][0-9]{0,8})$")


def model_get_by_repo(*, vendor_slug: str, model_slug: str, live_only: bool = True) -> Model:
    """The model at `<vendor>/<model>`; NotFound (code RepoNotFound) otherwise."""
    qs = Model.objects.select_related("vendor", "parent__vendor").filter(vendor__slug=vendor_slug, slug=model_slug)
    if live_only:
        qs = qs.filter(status=Model.Status.LIVE)
    model = qs.first()
    if model is None:
        raise NotFound(f"repository {vendor_slug}/{model_slug} not found", code="RepoNotFound")
    return model


def wallet_addresses(*, user) -> QuerySet[str]:
    """The addresses of the wallets `user` linked (proved by SIWE), oldest first. A queryset: a
    filter such as `licensee__in=` uses it as a subquery, `list(...)` reads it."""
    return Wallet.objects.filter(user=user).order_by("created_at", "pk").values_list("address", flat=True)


def model_get_owned(*, user, slug: str) -> Model:
    """The model `slug` of the vendor `user`; NotFound (model_not_found) for anyone else's."""
    model = Model.objects.select_related("vendor", "parent__vendor").filter(vendor__user=user, slug=slug).first()
    if model is None:
        raise NotFound(f"you have no model named {slug!r}", code="model_not_found")
    return model


def version_get_owned(*, user, slug: str, version_id: int) -> Version:
    """Version `version_id` (the draft's id, not its number) of the vendor's model `slug`;
    NotFound (model_not_found, version_not_found) otherwise."""
    model = model_get_owned(user=user, slug=slug)
    version = model.versions.filter(pk=version_id).first()
    if version is None:
        raise NotFound(f"{model.repo_id} has no version draft #{version_id}", code="version_not_found")
    return version


def live_versions(*, model: Model) -> QuerySet[Version]:
    return model.versions.filter(status=Version.Status.LIVE).order_by("-number")


def _main_first(versions: QuerySet[Version]) -> QuerySet[Version]:
    """Of live `versions`, the ones `main` may name, the one it names first. `main` is that one
    version as a whole: a file it lacks is missing, never taken from an older version."""
    # a revoked version is never the default, nor one adopted from the chain (published outside
    # Hallmark: no files hosted here): `main` is the latest live version whose files are served
    return versions.filter(revoked=False, adopted=False).order_by("-number")


def version_resolve(*, model: Model, revision: str) -> Version:
    """`main` (latest live), `v<N>`, or the 40-hex commit id; NotFound (RevisionNotFound) otherwise."""
    versions = live_versions(model=model)
    version = None
    if revision == "main":
        version = _main_first(versions).first()
    elif m := VERSION_RE.match(revision):
        version = versions.filter(number=int(m.group(1))).first()
    elif COMMIT_RE.match(revision):
        version = versions.filter(root_digest__startswith=revision).first()
    if version is None:
        raise NotFound(f"revision {revision!r} not found in {model.repo_id}", code="RevisionNotFound")
    return version


# before hashing a version has no manifest yet, and is never listed to buyers or served
_UNHASHED = (Version.Status.DRAFT, Version.Status.HASHING, Version.Status.REJECTED)


def manifest_digests(version: Version) -> dict[str, str]:
    """{path: sha256} of the files the version's manifest (what the vendor signed) names."""
    resources = ((version.manifest or {}).get("predicate") or {}).get("resources") or []
    return {r.get("name"): r.get("digest") for r in resources if isinstance(r, dict)}


def artifact_is_signed(artifact: Artifact, version: Version | None = None) -> bool:
    """Whether `artifact` may be listed and served as a file of its version: any uploaded file
    while the version is not hashed yet; afterwards only a file the signed manifest names, with
    the same SHA-256 (a row added to a published version any other way is never served)."""
    version = version or artifact.version
    if version.status in _UNHASHED:
        return True
    return bool(artifact.sha256) and manifest_digests(version).get(artifact.path) == artifact.sha256


def version_files(*, version: Version) -> list[Artifact]:
    """The files of `version`, by path: once hashed, only those its signed manifest names."""
    return [a for a in version.artifacts.order_by("path") if artifact_is_signed(a, version)]


def artifact_get(*, version: Version, path: str) -> Artifact:
    artifact = version.artifacts.filter(path=path).first()
    if artifact is None or not artifact_is_signed(artifact, version):
        raise NotFound(
            f"{path!r} is not a file of {version.model.repo_id} v{version.number}",
            code="EntryNotFound",
            headers={"X-Repo-Commit": version.commit_sha},
        )
    return artifact


def model_list_public() -> QuerySet[Model]:
    return Model.objects.select_related("vendor").filter(status=Model.Status.LIVE, listed=True).order_by("-created_at")


def artifacts_with_sha256(*, sha256: str) -> list[Artifact]:
    """Files of live versions with this digest, as their signed manifests name them (the index's
    answer, to be checked on chain)."""
    found = (
        Artifact.objects.select_related("version__model__vendor")
        .filter(sha256=sha256, version__status=Version.Status.LIVE)
        .order_by("version__model__vendor__slug", "version__model__slug", "version__number")
    )
    return [a for a in found if artifact_is_signed(a)]


ORDERINGS = {
    "newest": "-created_at",
    "oldest": "created_at",
    "price": "price_wei",
    "-price": "-price_wei",
    "name": "slug",
    "parameters": "parameter_count",
    "-parameters": "-parameter_count",
}


def model_search(
    *,
    q: str = "",
    vendor: str = "",
    file_format: str = "",
    quantization: str = "",
    architecture: str = "",
    min_parameters: int | None = None,
    max_parameters: int | None = None,
    license_kind: str = "",
    min_price_wei: int | None = None,
    max_price_wei: int | None = None,
    ordering: str = "newest",
) -> QuerySet[Model]:
    """The public catalog, filtered: live listed models with at least one live version."""
    qs = model_list_public().filter(latest_version_number__isnull=False)
    if q:
        qs = qs.filter(Q(slug__icontains=q) | Q(name__icontains=q) | Q(description__icontains=q) | Q(vendor__slug__icontains=q))
    if vendor:
        qs = qs.filter(vendor__slug=vendor)
    if file_format:
        qs = qs.filter(file_formats__contains=f",{file_format.lower()},")
    if quantization:
        qs = qs.filter(quantization__iexact=quantization)
    if architecture:
        qs = qs.filter(architecture__iexact=architecture)
    if min_parameters is not None:
        qs = qs.filter(parameter_count__gte=min_parameters)
    if max_parameters is not None:
        qs = qs.filter(parameter_count__lte=max_parameters)
    if license_kind == "perpetual":
        qs = qs.filter(license_duration=0)
    elif license_kind == "timed":
        qs = qs.filter(license_duration__gt=0)
    if min_price_wei is not None:
        qs = qs.filter(price_wei__gte=min_price_wei)
    if max_price_wei is not None:
        qs = qs.filter(price_wei__lte=max_price_wei)
    return qs.order_by(ORDERINGS.get(ordering, "-created_at"), "pk")


def model_lineage(*, model: Model) -> list[Model]:
    """The model's ancestors, parent first (at most 8, as the contract bounds it)."""
    chain, current = [], model
    while current.parent_id and len(chain) < 9:
        current = Model.objects.select_related("vendor", "parent").get(pk=current.parent_id)
        chain.append(current)
    return chain


_downloads = LocalCache("download-files")


def artifact_for_download(*, vendor_slug: str, model_slug: str, revision: str, path: str) -> Artifact | None:
    """The file a download names, with its version, model and vendor, in one query; None when
    anything is missing (the caller then finds out what, for the precise error).

    Found files are kept in the process (registry/caching.py): a version going live or being
    revoked clears them everywhere within HOT_CACHE_CHECK_SECONDS. Misses are not kept."""
    return _downloads.get_or_load(
        (vendor_slug, model_slug, revision, path),
        lambda: _artifact_for_download(vendor_slug=vendor_slug, model_slug=model_slug, revision=revision, path=path),
    )


def _artifact_for_download(*, vendor_slug: str, model_slug: str, revision: str, path: str) -> tuple[Artifact | None, float | None]:
    qs = Artifact.objects.select_related("version__model__vendor").filter(
        path=path,
        version__model__vendor__slug=vendor_slug,
        version__model__slug=model_slug,
        version__model__status=Model.Status.LIVE,
        version__status=Version.Status.LIVE,
    )
    if revision == "main":
        # the file of the one version `main` names (still one query), never an older version's
        main = _main_first(
            Version.objects.filter(
                model__vendor__slug=vendor_slug, model__slug=model_slug, model__status=Model.Status.LIVE,
                status=Version.Status.LIVE,
            )
        )
        qs = qs.filter(version=Subquery(main.values("pk")[:1]))
    elif m := VERSION_RE.match(revision):
        qs = qs.filter(version__number=int(m.group(1)))
    elif COMMIT_RE.match(revision):
        qs = qs.filter(version__root_digest__startswith=revision)
    else:
        return None, 0
    artifact = qs.first()
    if artifact is not None and not artifact_is_signed(artifact):
        artifact = None
    return artifact, (None if artifact is not None else 0)


def catalog_latest_versions(*, models: list[Model]) -> dict[int, Version]:
    """For one page of catalog models: the version each one's catalog facts describe (the latest
    live, unrevoked version hosted here, `latest_version_number`), with its files, by model id.
    Two queries whatever the page size (the versions, then their files): never one per card."""
    wanted = {m.pk: m.latest_version_number for m in models if m.latest_version_number is not None}
    if not wanted:
        return {}
    # two IN lists (an index scan on model_id) and the pairs matched here: cheaper to plan
    # than 24 OR'ed (model, number) pairs; the files are fetched for the matching versions only
    versions = [
        v for v in Version.objects.filter(model_id__in=wanted, number__in=set(wanted.values()), status=Version.Status.LIVE)
        .only("id", "model_id", "number", "status", "signer", "revoked", "manifest")
        if wanted[v.model_id] == v.number
    ]
    prefetch_related_objects(
        versions, Prefetch("artifacts", queryset=Artifact.objects.only("id", "version_id", "path", "size", "sha256"))
    )
    return {v.model_id: v for v in versions}


def catalog_facets() -> dict[str, list[str]]:
    """The quantizations and architectures the public catalog holds, for the filter choices."""
    live = Model.objects.filter(status=Model.Status.LIVE, listed=True, latest_version_number__isnull=False)
    return {
        field: list(live.exclude(**{field: ""}).order_by(field).values_list(field, flat=True).distinct())
        for field in ("quantization", "architecture")
    }


def fleet_version_states(*, model_ids: set[str]) -> tuple[set[tuple[str, int]], dict[str, int]]:
    """What the marketplace knows of the versions edge devices report (fleet/ cannot read this
    table): the (chain model id, number) pairs revoked, and each model's latest live version a
    device can pull (not revoked, hosted here). One query for any number of models."""
    revoked: set[tuple[str, int]] = set()
    latest: dict[str, int] = {}
    rows = Version.objects.filter(model__chain_model_id__in=[m.lower() for m in model_ids], status=Version.Status.LIVE)
    for model_id, number, is_revoked, adopted in rows.values_list("model__chain_model_id", "number", "revoked", "adopted"):
        model_id = model_id.lower()
        if is_revoked:
            revoked.add((model_id, number))
        elif not adopted and number > latest.get(model_id, 0):
            latest[model_id] = number
    return revoked, latest


def fleet_entries_flagged(entries) -> tuple[list[dict], list[dict]]:
    """Of inventory entries (anything with `repo_id`, `model_id`, `version`: fleet's reported
    rows), the ones on an outdated version (with the `latest`) and the ones on a revoked version."""
    entries = list(entries)
    revoked_pairs, latest = fleet_version_states(model_ids={entry.model_id for entry in entries})
    outdated, revoked = [], []
    for entry in entries:
        item = {"repo_id": entry.repo_id, "model_id": entry.model_id, "version": entry.version}
        if (entry.model_id.lower(), entry.version) in revoked_pairs:
            revoked.append(item)
        elif latest.get(entry.model_id.lower(), 0) > entry.version:
            outdated.append({**item, "latest": latest[entry.model_id.lower()]})
    return outdated, revoked
