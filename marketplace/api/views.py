"""REST API (/api/v1/): thin views that translate input, call one service, translate output."""

from __future__ import annotations

from rest_framework import permissions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from registry import chain
from registry.selectors import indexer_status

from .. import selectors, services
from ..errors import Conflict, InvalidInput, NotFound
from ..models import Artifact, Model, Version
from .tus import request_body


class IsVendor(permissions.BasePermission):
    message = {"code": "not_a_vendor", "message": "this needs a vendor account"}

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and hasattr(request.user, "vendor"))


# ----------------------------------------------------------------------------- output


def terms_data(model: Model) -> dict:
    return {
        "price_wei": str(model.price_wei),
        "duration_seconds": int(model.license_duration),
        "perpetual": model.license_duration == 0,
        "listed": model.listed,
    }


def artifact_data(artifact: Artifact) -> dict:
    return {"path": artifact.path, "size": artifact.size, "sha256": artifact.sha256, "format": artifact.file_format}


def version_data(version: Version, *, with_signing: bool = False) -> dict:
    data = {
        "id": version.pk,
        "number": version.number,
        "status": version.status,
        "root_digest": version.root_digest or None,
        "metadata_digest": version.metadata_digest or None,
        "commit": version.commit_sha or None,
        "files": [artifact_data(a) for a in selectors.version_files(version=version)],
        "metadata": version.metadata,
        "signer": version.signer or None,
        "transaction_hash": version.publish_transaction.tx_hash if version.publish_transaction_id else None,
        "published_block": version.published_block,
        "adopted": version.adopted,  # published on chain outside Hallmark: no files hosted here
        "error": {"code": version.error_code, "message": version.error_message} if version.error_code else None,
    }
    if with_signing:
        data["declared_files"] = version.declared_files
        data["manifest"] = version.manifest
        data["typed_data"] = version.typed_data if version.status == Version.Status.AWAITING_SIGNATURE else None
    return data


def model_data(model: Model, *, vendor_view: bool = False) -> dict:
    versions = model.versions.all() if vendor_view else selectors.live_versions(model=model)
    data = {
        "repo_id": model.repo_id,
        "vendor": model.vendor.slug,
        "vendor_address": model.vendor.address,
        "name": model.name,
        "description": model.description,
        "status": model.status,
        "model_id": model.chain_model_id,
        "parent": model.parent.repo_id if model.parent_id else None,
        "upstream_bps": model.upstream_bps,
        "terms": terms_data(model),
        "versions": [version_data(v, with_signing=vendor_view) for v in versions.order_by("-created_at")],
    }
    if vendor_view:
        data["typed_data"] = model.typed_data if model.status == Model.Status.AWAITING_SIGNATURE else None
        data["transaction_hash"] = model.create_transaction.tx_hash if model.create_transaction_id else None
        data["error"] = {"code": model.error_code, "message": model.error_message} if model.error_code else None
    if model.status == Model.Status.LIVE:
        try:
            data["registry_address"] = chain.registry_address()
        except chain.ChainError:
            data["registry_address"] = None
    return data


# ----------------------------------------------------------------------------- input


class ModelCreateInput(serializers.Serializer):
    slug = serializers.CharField(max_length=96)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    price_wei = serializers.RegexField(r"^[0-9]{1,29}$", help_text="wei, as a string of digits")
    license_duration = serializers.IntegerField(min_value=0, default=0)
    parent = serializers.CharField(required=False, allow_blank=True, default="", help_text="<vendor>/<model>")
    upstream_bps = serializers.IntegerField(min_value=0, max_value=10_000, default=0)


class SignatureInput(serializers.Serializer):
    signature = serializers.RegexField(r"^0x[0-9a-fA-F]{130}$", help_text="65-byte signature, 0x-hex")


# ----------------------------------------------------------------------------- vendor


def _own_model(request, slug: str) -> Model:
    model = Model.objects.select_related("vendor").filter(vendor__user=request.user, slug=slug).first()
    if model is None:
        raise NotFound(f"you have no model named {slug!r}", code="model_not_found")
    return model


def _own_version(request, slug: str, version_id: int) -> Version:
    model = _own_model(request, slug)
    version = model.versions.filter(pk=version_id).first()
    if version is None:
        raise NotFound(f"{model.repo_id} has no version draft #{version_id}", code="version_not_found")
    return version


class VendorModelsView(APIView):
    permission_classes = [IsVendor]

    def get(self, request):
        models = Model.objects.select_related("vendor").filter(vendor__user=request.user).order_by("slug")
        return Response([model_data(m, vendor_view=True) for m in models])

    def post(self, request):
        data = ModelCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        parent = None
        if values["parent"]:
            vendor_slug, _, model_slug = values["parent"].partition("/")
            parent = selectors.model_get_by_repo(vendor_slug=vendor_slug, model_slug=model_slug)
        model = services.model_create(
            vendor=request.user.vendor,
            slug=values["slug"],
            name=values["name"],
            description=values["description"],
            price_wei=int(values["price_wei"]),
            license_duration=values["license_duration"],
            parent=parent,
            upstream_bps=values["upstream_bps"],
        )
        return Response(model_data(model, vendor_view=True), status=status.HTTP_201_CREATED)


class VendorModelView(APIView):
    permission_classes = [IsVendor]

    def get(self, request, slug):
        return Response(model_data(_own_model(request, slug), vendor_view=True))


class VendorModelSignatureView(APIView):
    permission_classes = [IsVendor]

    def post(self, request, slug):
        data = SignatureInput(data=request.data)
        data.is_valid(raise_exception=True)
        model = services.model_submit_signature(model=_own_model(request, slug), signature=data.validated_data["signature"])
        return Response(model_data(Model.objects.get(pk=model.pk), vendor_view=True), status=status.HTTP_202_ACCEPTED)


class DeclaredFile(serializers.Serializer):
    path = serializers.CharField(max_length=1024)
    sha256 = serializers.RegexField(r"^[0-9a-f]{64}$")
    size = serializers.IntegerField(min_value=0, required=False)


class VersionCreateInput(serializers.Serializer):
    files = DeclaredFile(many=True, required=False, help_text="digests hashed locally; the server rejects any mismatch")


class VendorVersionsView(APIView):
    permission_classes = [IsVendor]

    def post(self, request, slug):
        data = VersionCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        files = data.validated_data.get("files")
        if files is not None and len({f["path"] for f in files}) != len(files):
            raise serializers.ValidationError({"files": ["a path is declared twice"]})
        declared = {f["path"]: f["sha256"] for f in files} if files is not None else None
        version = services.version_create(model=_own_model(request, slug), declared_files=declared)
        return Response(version_data(version, with_signing=True), status=status.HTTP_201_CREATED)


class VendorVersionView(APIView):
    permission_classes = [IsVendor]

    def get(self, request, slug, version_id):
        return Response(version_data(_own_version(request, slug, version_id), with_signing=True))


class VendorVersionFileView(APIView):
    """`PUT` the raw bytes of one file; the body is streamed to storage, never parsed. The same
    service as a tus upload: path checks, size limit, quota (the Content-Length counts before a
    byte is read) and the draft check under the version's lock when the file is recorded."""

    permission_classes = [IsVendor]

    def put(self, request, slug, version_id, path):
        version = _own_version(request, slug, version_id)
        stream, length = request_body(request._request)
        artifact = services.artifact_upload(version=version, path=path, stream=stream, length=length)
        return Response(artifact_data(artifact), status=status.HTTP_201_CREATED)


class VendorVersionFinalizeView(APIView):
    permission_classes = [IsVendor]

    def post(self, request, slug, version_id):
        version = services.version_finalize(version=_own_version(request, slug, version_id))
        return Response(version_data(Version.objects.get(pk=version.pk), with_signing=True), status=status.HTTP_202_ACCEPTED)


class VendorVersionSignatureView(APIView):
    permission_classes = [IsVendor]

    def post(self, request, slug, version_id):
        data = SignatureInput(data=request.data)
        data.is_valid(raise_exception=True)
        version = services.version_submit_signature(
            version=_own_version(request, slug, version_id), signature=data.validated_data["signature"]
        )
        return Response(version_data(Version.objects.get(pk=version.pk), with_signing=True), status=status.HTTP_202_ACCEPTED)


# ----------------------------------------------------------------------------- public catalog


class CatalogQuery(serializers.Serializer):
    q = serializers.CharField(required=False, default="", max_length=200)
    vendor = serializers.CharField(required=False, default="", max_length=64)
    format = serializers.ChoiceField(choices=["gguf", "safetensors", "onnx"], required=False, default="")
    quantization = serializers.CharField(required=False, default="", max_length=64)
    architecture = serializers.CharField(required=False, default="", max_length=64)
    min_parameters = serializers.IntegerField(required=False, min_value=0)
    max_parameters = serializers.IntegerField(required=False, min_value=0)
    license = serializers.ChoiceField(choices=["perpetual", "timed"], required=False, default="")
    min_price_wei = serializers.RegexField(r"^[0-9]{1,78}$", required=False)
    max_price_wei = serializers.RegexField(r"^[0-9]{1,78}$", required=False)
    ordering = serializers.ChoiceField(choices=list(selectors.ORDERINGS), required=False, default="newest")


class CatalogPagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


def catalog_entry(model: Model) -> dict:
    return {
        "repo_id": model.repo_id,
        "vendor": model.vendor.slug,
        "name": model.name,
        "description": model.description,
        "model_id": model.chain_model_id,
        "latest_version": model.latest_version_number,
        "architecture": model.architecture or None,
        "quantization": model.quantization or None,
        "formats": [f for f in model.file_formats.split(",") if f],
        "parameter_count": model.parameter_count,
        "terms": terms_data(model),
        "created_at": model.created_at,
    }


class ModelListView(APIView):
    """`GET /api/v1/models`: search and filter the catalog (all filters optional, combined)."""

    def get(self, request):
        query = CatalogQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        v = query.validated_data
        results = selectors.model_search(
            q=v["q"], vendor=v["vendor"], file_format=v["format"], quantization=v["quantization"],
            architecture=v["architecture"], min_parameters=v.get("min_parameters"), max_parameters=v.get("max_parameters"),
            license_kind=v["license"],
            min_price_wei=int(v["min_price_wei"]) if v.get("min_price_wei") else None,
            max_price_wei=int(v["max_price_wei"]) if v.get("max_price_wei") else None,
            ordering=v["ordering"],
        )
        paginator = CatalogPagination()
        page = paginator.paginate_queryset(results, request, view=self)
        return paginator.get_paginated_response([catalog_entry(m) for m in page])


class ModelDetailView(APIView):
    """`GET /api/v1/models/<vendor>/<model>`: versions, files, manifests, on-chain ids, lineage, terms."""

    def get(self, request, vendor, model):
        found = selectors.model_get_by_repo(vendor_slug=vendor, model_slug=model)
        data = model_data(found)
        data.update({k: v for k, v in catalog_entry(found).items() if k not in data})
        for version, entry in zip(selectors.live_versions(model=found).order_by("-created_at"), data["versions"]):
            entry["manifest"] = version.manifest
            entry["revoked"] = version.revoked
        data["lineage"] = [
            {"repo_id": m.repo_id, "model_id": m.chain_model_id, "upstream_bps": m.upstream_bps, "vendor_address": m.vendor.address}
            for m in selectors.model_lineage(model=found)
        ]
        return Response(data)


# ----------------------------------------------------------------------------- provenance


class ProvenanceByHashView(APIView):
    """`GET /api/v1/provenance/sha256/<hex>`: which published versions contain a file with this
    SHA-256, answered from the index and each checked against the chain."""

    def get(self, request, sha256):
        from registry.verification import versions_on_chain

        sha256 = sha256.lower()
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise InvalidInput("give the file's SHA-256 as 64 hex characters", code="invalid_digest")
        found = selectors.artifacts_with_sha256(sha256=sha256)
        checks = versions_on_chain([(a.version.model.chain_model_id, a.version.number, a.version.root_digest) for a in found])
        results = []
        for artifact, check in zip(found, checks):
            version = artifact.version
            results.append(
                {
                    "repo_id": version.model.repo_id,
                    "model_id": version.model.chain_model_id,
                    "version": version.number,
                    "revision": f"v{version.number}",
                    "commit": version.commit_sha,
                    "path": artifact.path,
                    "size": artifact.size,
                    "root_digest": version.root_digest,
                    "signer": version.signer,
                    "vendor_address": version.model.vendor.address,
                    **check,
                }
            )
        return Response({"sha256": sha256, "versions": results})


class Eip712TypesView(APIView):
    """`GET /api/v1/eip712`: the typed-data definitions and this deployment's domain, for wallets."""

    def get(self, request):
        from django.conf import settings

        from hallmark import eip712

        return Response(
            {
                "types": {"EIP712Domain": eip712.EIP712_DOMAIN, **eip712.TYPES},
                "domain": eip712.domain(settings.CHAIN_ID, chain.registry_address()),
            }
        )


# ----------------------------------------------------------------------------- purchases


class PurchaseQuery(serializers.Serializer):
    licensee = serializers.RegexField(r"^0x[0-9a-fA-F]{40}$", required=False)
    max_price_wei = serializers.RegexField(r"^[0-9]{1,78}$", required=False)


def _wei(value: int) -> str:
    return str(int(value))


class PurchaseTransactionView(APIView):
    """`GET /api/v1/models/<vendor>/<model>/purchase?licensee=0x…`: the unsigned `purchaseLicense`
    transaction for the buyer's wallet (to, data, value, chain id), the royalty split, the expiry.
    The API never holds a buyer's key. Without `licensee`, your first linked wallet."""

    def get(self, request, vendor, model):
        from royalties.services import purchase_transaction, royalty_preview

        query = PurchaseQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        found = selectors.model_get_by_repo(vendor_slug=vendor, model_slug=model)
        licensee = query.validated_data.get("licensee")
        if not licensee and request.user.is_authenticated:
            licensee = request.user.wallets.order_by("created_at").values_list("address", flat=True).first()
        if not licensee:
            raise InvalidInput("say which wallet gets the licence: ?licensee=0x…", code="licensee_required")
        max_price = query.validated_data.get("max_price_wei")
        tx = purchase_transaction(model_id=found.chain_model_id, licensee=licensee, max_price_wei=int(max_price) if max_price else None)
        if not tx["listed"]:
            raise Conflict(f"{found.repo_id} is not for sale right now", code="not_listed")
        if tx["already_perpetual"]:
            raise Conflict(f"{tx['licensee']} already holds a perpetual licence for {found.repo_id}", code="already_licensed")
        preview = royalty_preview(model_id=found.chain_model_id)
        return Response(
            {
                "repo_id": found.repo_id,
                "model_id": found.chain_model_id,
                "licensee": tx["licensee"],
                "transaction": {"to": tx["to"], "data": tx["data"], "value": hex(tx["value"]), "chainId": tx["chain_id"]},
                "price_wei": _wei(tx["price_wei"]),
                "max_price_wei": _wei(tx["max_price_wei"]),
                "expires_at": None if tx["expires_at_if_mined_now"] >= 2**64 - 1 else tx["expires_at_if_mined_now"],
                "perpetual": tx["expires_at_if_mined_now"] >= 2**64 - 1,
                # the transaction reverts (ExpiryBelowMinimum) if the licence would end before this
                # null for a perpetual licence (the transaction then asks for 2^64-1: perpetual only),
                # so a JavaScript client never meets an integer it cannot hold exactly
                "min_expires_at": None if tx["min_expires_at"] >= 2**64 - 1 else tx["min_expires_at"],
                "royalties": [{**c, "amount_wei": _wei(c["amount_wei"])} for c in preview["credits"]],
            }
        )


class PurchaseConfirmInput(serializers.Serializer):
    tx_hash = serializers.RegexField(r"^0x[0-9a-fA-F]{64}$")


class PurchaseConfirmView(APIView):
    """`POST /api/v1/purchases {tx_hash}`: once the purchase is mined, the licence it granted
    (202 while pending; 422 if it reverted). Mirrored once CONFIRMATIONS deep (`confirmed: true`);
    a shallower purchase answers `status: "unconfirmed"`, `confirmed: false` and the depth needed:
    the licence is usable now, and mirrored when the purchase is confirmed."""

    def post(self, request):
        from royalties.services import PurchaseFailed, PurchaseNotFound, purchase_confirm

        data = PurchaseConfirmInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            confirmation = purchase_confirm(tx_hash=data.validated_data["tx_hash"])
        except PurchaseNotFound as exc:
            return Response({"status": "pending", "message": str(exc)}, status=status.HTTP_202_ACCEPTED)
        except PurchaseFailed as exc:
            raise InvalidInput(str(exc), code=exc.code, status=422) from exc
        return Response(
            {
                "status": "confirmed" if confirmation.confirmed else "unconfirmed",
                "confirmed": confirmation.confirmed,
                "depth": confirmation.depth,
                "confirmations": confirmation.confirmations,
                "licenses": [
                    {
                        "model_id": row.model_id,
                        "licensee": row.licensee,
                        "perpetual": row.perpetual,
                        "expires_at": row.expires_at,
                        "block": row.observed_block,
                    }
                    for row in confirmation.licenses
                ],
            }
        )


class RoyaltyPreviewView(APIView):
    """`GET /api/v1/models/<vendor>/<model>/royalties?price_wei=`: who would get what from one sale."""

    def get(self, request, vendor, model):
        from royalties.services import royalty_preview

        found = selectors.model_get_by_repo(vendor_slug=vendor, model_slug=model)
        raw = request.query_params.get("price_wei")
        if raw is not None and not raw.isdigit():
            raise InvalidInput("price_wei is a whole number of wei", code="invalid_price")
        preview = royalty_preview(model_id=found.chain_model_id, price_wei=int(raw) if raw else None)
        return Response(
            {
                "repo_id": found.repo_id,
                "price_wei": _wei(preview["price_wei"]),
                "platform_fee_bps": preview["platform_fee_bps"],
                "credits": [{**c, "amount_wei": _wei(c["amount_wei"])} for c in preview["credits"]],
            }
        )


class ChainInfoView(APIView):
    """`GET /api/v1/chain`: the chain id, registry address and a public RPC URL, so clients and
    devices can check everything on chain themselves."""

    def get(self, request):
        from django.conf import settings

        record = chain.read_deployment() or {}
        return Response(
            {
                "chain_id": settings.CHAIN_ID,
                "registry_address": chain.registry_address(),
                "rpc_url": settings.PUBLIC_CHAIN_RPC_URL or None,
                "deploy_block": settings.REGISTRY_DEPLOY_BLOCK or record.get("block_number"),
            }
        )


class ChainStatusView(APIView):
    """`GET /api/v1/chain/status`: how far the chain mirror is behind the head, and the events it
    had to skip (poison events, docs/operations.md). Public: nothing in it is secret."""

    def get(self, request):
        state = indexer_status()
        return Response(
            {
                "chain_id": state.chain_id,
                "registry_address": state.registry_address,
                "head": state.head,
                "indexed_block": state.indexed_block,
                "lag_blocks": state.lag_blocks,
                "skipped_events": state.skipped_events,
                "recent_skipped": [
                    {
                        "event": skip.event,
                        "block_number": skip.block_number,
                        "tx_hash": skip.tx_hash,
                        "log_index": skip.log_index,
                        "projection": skip.projection,
                        "error": skip.error,
                        "at": skip.at.isoformat(),
                    }
                    for skip in state.recent_skipped
                ],
            }
        )
