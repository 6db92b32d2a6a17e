"""Hugging Face Hub compatible endpoints, so unmodified `huggingface_hub` clients can download.

Repo id `<vendor>/<model>`; revision `main`, `v<N>` or the 40-hex commit (root digest prefix).
Errors carry `X-Error-Code` (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo).
"""

from __future__ import annotations

import hashlib
from urllib.parse import unquote

from django.http import HttpResponse
from django.views import View
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors, services
from ..authentication import authenticate
from ..errors import MarketplaceError
from ..models import Version
from ..oms import OMS_BUNDLE_MEDIA_TYPE, OMS_SIGNATURE_FILE, oms_bundle_bytes
from .errors import error_from, error_response
from .files import file_response
from .throttles import download_rate_wait, rate_limit_ident

POINTER_SIZE = 134  # size of a git-lfs pointer file; clients only display it


def _sibling(artifact) -> dict:
    return {
        "rfilename": artifact.path,
        "size": artifact.size,
        "lfs": {"size": artifact.size, "sha256": artifact.sha256, "pointerSize": POINTER_SIZE},
    }


def _info(version: Version) -> dict:
    model = version.model
    artifacts = selectors.version_files(version=version)  # the signed manifest's files only
    return {
        "_id": model.chain_model_id,
        "id": model.repo_id,
        "modelId": model.repo_id,
        "author": model.vendor.slug,
        "sha": version.commit_sha,
        "lastModified": version.updated_at.isoformat().replace("+00:00", "Z"),
        "createdAt": model.created_at.isoformat().replace("+00:00", "Z"),
        "private": False,
        "gated": "manual",
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": [f for f in (version.metadata or {}).get("formats", [])],
        "library_name": "gguf" if "gguf" in (version.metadata or {}).get("formats", []) else None,
        "siblings": [_sibling(a) for a in artifacts] + _signature_siblings(version),
        "usedStorage": sum(a.size for a in artifacts),
        "hallmark": {
            "model_id": model.chain_model_id,
            "version": version.number,
            "root_digest": version.root_digest,
            "metadata_digest": version.metadata_digest,
            "signer": version.signer,
        },
    }


def _signature_siblings(version: Version) -> list[dict]:
    """`model.sig` beside the files when the vendor signed an OMS bundle (not an LFS file: small)."""
    body = oms_bundle_bytes(version)
    return [] if body is None else [{"rfilename": OMS_SIGNATURE_FILE, "size": len(body)}]


class ModelInfoView(APIView):
    """`GET /api/models/{repo}` and `/api/models/{repo}/revision/{rev}`."""

    device_token_allowed = True  # an edge device's token (fleet/) reads what it may download

    @extend_schema(responses=OpenApiTypes.OBJECT, description="the model's info as the Hugging Face Hub answers it (`id`, `sha`, `siblings`, ...)")
    def get(self, request, vendor, model, revision="main"):
        repo = selectors.model_get_by_repo(vendor_slug=vendor, model_slug=model)
        version = selectors.version_resolve(model=repo, revision=unquote(revision))
        return Response(_info(version))


class ModelTreeView(APIView):
    """`GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=true`."""

    device_token_allowed = True

    @extend_schema(
        responses={200: {"type": "array", "items": {"type": "object"}}},
        parameters=[OpenApiParameter("recursive", bool, description="list the files in folders too")],
        description="the files of a revision as the Hugging Face Hub lists them (`type`, `path`, `size`, `oid`, `lfs`)",
    )
    def get(self, request, vendor, model, revision, path=""):
        repo = selectors.model_get_by_repo(vendor_slug=vendor, model_slug=model)
        version = selectors.version_resolve(model=repo, revision=unquote(revision))
        prefix = path.strip("/")
        recursive = request.query_params.get("recursive", "false").lower() in ("1", "true")
        entries, folders = [], set()
        for artifact in selectors.version_files(version=version):
            if prefix and not artifact.path.startswith(prefix + "/"):
                continue
            rest = artifact.path[len(prefix) + 1 :] if prefix else artifact.path
            if not recursive and "/" in rest:
                folder = (prefix + "/" if prefix else "") + rest.split("/", 1)[0]
                if folder not in folders:
                    folders.add(folder)
                    entries.append({"type": "directory", "oid": version.commit_sha, "size": 0, "path": folder})
                continue
            entries.append(
                {
                    "type": "file",
                    "oid": artifact.sha256[:40],
                    "size": artifact.size,
                    "path": artifact.path,
                    "lfs": {"oid": artifact.sha256, "size": artifact.size, "pointerSize": POINTER_SIZE},
                }
            )
        body = oms_bundle_bytes(version) if not prefix else None
        if body is not None:  # the OMS signature, beside the files (marketplace/oms.py)
            entries.append({"type": "file", "oid": hashlib.sha1(body).hexdigest(), "size": len(body), "path": OMS_SIGNATURE_FILE})
        return Response(entries)


class ResolveView(View):
    """`HEAD`/`GET /{repo}/resolve/{rev}/{path}`: a licensed file, streamed (Range aware).

    The download hot path, so a plain Django view rather than a DRF one: fleets poll it with
    `HEAD` (huggingface_hub asks before every download) and DRF's request wrapping, content
    negotiation and sliding-window throttle cost more than the answer (docs/benchmarks.md). It
    authenticates exactly as the API does (`Authorization: Bearer`, else the session), limits
    requests per account with DOWNLOAD_RATE_LIMIT, and answers errors in the API's JSON shape.
    """

    http_method_names = ["get", "head", "options"]

    def head(self, request, vendor, model, revision, path):
        return self._serve(request, vendor, model, revision, path)

    def get(self, request, vendor, model, revision, path):
        return self._serve(request, vendor, model, revision, path)

    def _serve(self, request, vendor, model, revision, path):
        try:
            user, token = authenticate(request, device_allowed=True)  # a device downloads with its own token
        except MarketplaceError as exc:
            return error_from(exc, {"WWW-Authenticate": "Bearer"})
        wait = download_rate_wait(rate_limit_ident(request, user))
        if wait is not None:
            return error_response(
                "rate_limited", f"too many requests for this account; retry in {wait} s", 429, {"Retry-After": str(wait)}
            )
        if path == OMS_SIGNATURE_FILE:
            return _signature_response(request, vendor, model, unquote(revision))
        try:
            start = services.download_start(
                user=user, token=token, vendor_slug=vendor, model_slug=model, revision=unquote(revision), path=path,
                method=request.method,
            )
        except MarketplaceError as exc:
            return error_from(exc)
        return download_response(request, start)


def download_response(request, start: services.downloads.DownloadStart) -> HttpResponse:
    """The file a granted `download_start` names, streamed (Range aware), with its receipt, and
    the bytes sent recorded once the body is done: the resolve view's answer, and the OCI
    registry's for a layer blob (api/oci.py), so both doors record a download alike."""
    download = start.download
    receipts: list = []  # the GET's receipt, saved with the bytes sent (services/receipts.py)
    if download is None:  # a HEAD
        on_done = _nothing_sent
    else:
        def on_done(bytes_sent: int, range_start: int | None) -> None:
            services.download_finish(
                download=download, bytes_sent=bytes_sent, range_start=range_start, receipt=receipts.pop() if receipts else None
            )

        def receipt(range_start: int, range_end: int) -> str:
            row, header = services.receipt_issue(start=start, range_start=range_start, range_end=range_end)
            if row is not None:
                receipts.append(row)
            return header

    response = file_response(
        start.artifact,
        commit=start.version.commit_sha,
        method=request.method,
        range_header=request.META.get("HTTP_RANGE"),
        on_done=on_done,
        receipt=None if download is None else receipt,
    )
    if download is not None and response.status_code != 200:
        services.download_answered(download=download, status_code=response.status_code)
    return response


def _signature_response(request, vendor: str, model: str, revision: str) -> HttpResponse:
    """The version's OMS signature bundle as `model.sig`: public like the model page (a signature
    is no secret: it names only digests), so no licence is checked and no download recorded.
    EntryNotFound when the vendor signed no bundle."""
    try:
        repo = selectors.model_get_by_repo(vendor_slug=vendor, model_slug=model)
        version = selectors.version_resolve(model=repo, revision=revision)
    except MarketplaceError as exc:
        return error_from(exc)
    body = oms_bundle_bytes(version)
    if body is None:
        return error_response(
            "EntryNotFound", f"{repo.repo_id} v{version.number} carries no OMS signature (model.sig)", 404,
            {"X-Repo-Commit": version.commit_sha},
        )
    response = HttpResponse(b"" if request.method == "HEAD" else body, content_type=OMS_BUNDLE_MEDIA_TYPE)
    response["Content-Length"] = str(len(body))
    response["ETag"] = f'"{hashlib.sha256(body).hexdigest()}"'
    response["X-Repo-Commit"] = version.commit_sha
    response["Accept-Ranges"] = "none"
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


def _nothing_sent(bytes_sent: int, range_start: int | None) -> None:
    """A HEAD sends no body, and is not recorded."""
