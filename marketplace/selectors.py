"""Marketplace reads: repos, revisions and files as buyers and Hugging Face clients name them."""

from __future__ import annotations

import re

from django.db.models import QuerySet

from .errors import NotFound
from .models import Artifact, Model, Version

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


def live_versions(*, model: Model) -> QuerySet[Version]:
    return model.versions.filter(status=Version.Status.LIVE).order_by("-number")


def version_resolve(*, model: Model, revision: str) -> Version:
    """`main` (latest live), `v<N>`, or the 40-hex commit id; NotFound (RevisionNotFound) otherwise."""
    versions = live_versions(model=model)
    version = None
    if revision == "main":
        version = versions.filter(revoked=False).first()  # a revoked version is never the default
    elif m := VERSION_RE.match(revision):
        version = versions.filter(number=int(m.group(1))).first()
    elif COMMIT_RE.match(revision):
        version = versions.filter(root_digest__startswith=revision).first()
    if version is None:
        raise NotFound(f"revision {revision!r} not found in {model.repo_id}", code="RevisionNotFound")
    return version


def artifact_get(*, version: Version, path: str) -> Artifact:
    artifact = version.artifacts.filter(path=path).first()
    if artifact is None:
        raise NotFound(
            f"{path!r} is not a file of {version.model.repo_id} v{version.number}",
            code="EntryNotFound",
            headers={"X-Repo-Commit": version.commit_sha},
        )
    return artifact


def model_list_public() -> QuerySet[Model]:
    return Model.objects.select_related("vendor").filter(status=Model.Status.LIVE, listed=True).order_by("-created_at")


def artifacts_with_sha256(*, sha256: str) -> list[Artifact]:
    """Files of live versions with this digest (the index's answer, to be checked on chain)."""
    return list(
        Artifact.objects.select_related("version__model__vendor")
        .filter(sha256=sha256, version__status=Version.Status.LIVE)
        .order_by("version__model__vendor__slug", "version__model__slug", "version__number")
    )
