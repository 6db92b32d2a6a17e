"""Vendor API (/api/v1/vendor/...): a vendor's models, their versions and files, finalize, signatures; and
/api/v1/vendors/<vendor>/keys, the vendors' public OMS signing keys."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from hallmark import oms

from .. import selectors, services
from ..errors import Forbidden, InvalidInput, NotFound
from ..models import Model, Vendor, VendorSigningKey, Version
from .serializers import ArtifactSerializer, VendorModelSerializer, VendorVersionSerializer
from .tus import request_body


class IsVendor(permissions.BasePermission):
    message = {"code": "not_a_vendor", "message": "this needs a vendor account"}

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and hasattr(request.user, "vendor"))


class SignatureInput(serializers.Serializer):
    signature = serializers.RegexField(r"^0x[0-9a-fA-F]{130}$", help_text="65-byte signature, 0x-hex")


class DeclaredFileSerializer(serializers.Serializer):
    """A file of a new version as the vendor hashed it locally."""

    path = serializers.CharField(max_length=1024)
    sha256 = serializers.RegexField(r"^[0-9a-f]{64}$")
    size = serializers.IntegerField(min_value=0, required=False)


class VendorModelsView(APIView):
    """`GET`: your models; `POST`: a new model (then sign its `typed_data`, CreateModel)."""

    permission_classes = [IsVendor]
    # 404: no such parent; 409 model_exists; 503: the CreateModel message needs the chain (the vendor's nonce)
    error_statuses = {"post": (404, 409, 503)}

    class InputSerializer(serializers.Serializer):
        slug = serializers.CharField(max_length=96)
        name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        description = serializers.CharField(required=False, allow_blank=True, default="")
        price_wei = serializers.RegexField(r"^[0-9]{1,29}$", help_text="wei, as a string of digits")
        license_duration = serializers.IntegerField(min_value=0, default=0)
        parent = serializers.CharField(required=False, allow_blank=True, default="", help_text="<vendor>/<model>")
        upstream_bps = serializers.IntegerField(min_value=0, max_value=10_000, default=0)

    OutputSerializer = VendorModelSerializer

    @extend_schema(responses=VendorModelSerializer(many=True))
    def get(self, request):
        models = Model.objects.select_related("vendor").filter(vendor__user=request.user).order_by("slug")
        return Response(self.OutputSerializer(models, many=True).data)

    @extend_schema(responses={201: VendorModelSerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
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
        return Response(self.OutputSerializer(model).data, status=status.HTTP_201_CREATED)


class VendorModelView(APIView):
    """`GET`: one of your models, with every version."""

    permission_classes = [IsVendor]
    OutputSerializer = VendorModelSerializer

    def get(self, request, slug):
        return Response(self.OutputSerializer(selectors.model_get_owned(user=request.user, slug=slug)).data)


class VendorModelSignatureView(APIView):
    """`POST {signature}`: your signature over the model's CreateModel `typed_data`; the relayer
    registers it on chain (202: the model goes live once the transaction is confirmed)."""

    permission_classes = [IsVendor]
    error_statuses = (409, 503)
    InputSerializer = SignatureInput
    OutputSerializer = VendorModelSerializer

    @extend_schema(responses={202: VendorModelSerializer})
    def post(self, request, slug):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        model = services.model_submit_signature(
            model=selectors.model_get_owned(user=request.user, slug=slug), signature=data.validated_data["signature"]
        )
        return Response(self.OutputSerializer(Model.objects.get(pk=model.pk)).data, status=status.HTTP_202_ACCEPTED)


class VendorVersionsView(APIView):
    """`POST [{files: [{path, sha256, size}]}]`: a new version draft of your model; declared
    digests (hashed locally) are checked against the uploaded files."""

    permission_classes = [IsVendor]
    error_statuses = (409,)

    class InputSerializer(serializers.Serializer):
        files = DeclaredFileSerializer(many=True, required=False, help_text="digests hashed locally; the server rejects any mismatch")

    OutputSerializer = VendorVersionSerializer

    @extend_schema(responses={201: VendorVersionSerializer})
    def post(self, request, slug):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        files = data.validated_data.get("files")
        if files is not None and len({f["path"] for f in files}) != len(files):
            raise serializers.ValidationError({"files": ["a path is declared twice"]})
        declared = {f["path"]: f["sha256"] for f in files} if files is not None else None
        version = services.version_create(model=selectors.model_get_owned(user=request.user, slug=slug), declared_files=declared)
        return Response(self.OutputSerializer(version).data, status=status.HTTP_201_CREATED)


class VendorVersionView(APIView):
    """`GET`: one of your version drafts (by its id), with its manifest and the message to sign."""

    permission_classes = [IsVendor]
    OutputSerializer = VendorVersionSerializer

    def get(self, request, slug, version_id):
        version = selectors.version_get_owned(user=request.user, slug=slug, version_id=version_id)
        return Response(self.OutputSerializer(version).data)


class VendorVersionFileView(APIView):
    """`PUT` the raw bytes of one file; the body is streamed to storage, never parsed. The same
    service as a tus upload: path checks, size limit, quota (the Content-Length counts before a
    byte is read) and the draft check under the version's lock when the file is recorded."""

    permission_classes = [IsVendor]
    error_statuses = (400, 409, 411, 413)
    OutputSerializer = ArtifactSerializer

    @extend_schema(request={"application/octet-stream": OpenApiTypes.BINARY}, responses={201: ArtifactSerializer})
    def put(self, request, slug, version_id, path):
        version = selectors.version_get_owned(user=request.user, slug=slug, version_id=version_id)
        stream, length = request_body(request._request)
        artifact = services.artifact_upload(version=version, path=path, stream=stream, length=length)
        return Response(self.OutputSerializer(artifact).data, status=status.HTTP_201_CREATED)


class VendorVersionFinalizeView(APIView):
    """`POST [{files: [{path, sha256, size}]}]`: no more files; the version's files are hashed and
    inspected (202), then it awaits your signature. `files`: the digests computed while uploading
    (the CLI reads each file once), checked like those declared when the draft was opened."""

    permission_classes = [IsVendor]
    error_statuses = (400, 409)
    OutputSerializer = VendorVersionSerializer

    class InputSerializer(serializers.Serializer):
        files = DeclaredFileSerializer(many=True, required=False, help_text="digests of the bytes sent; the server rejects any mismatch")

    @extend_schema(request=InputSerializer, responses={202: VendorVersionSerializer})
    def post(self, request, slug, version_id):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        files = data.validated_data.get("files")
        if files is not None and len({f["path"] for f in files}) != len(files):
            raise serializers.ValidationError({"files": ["a path is declared twice"]})
        version = services.version_finalize(
            version=selectors.version_get_owned(user=request.user, slug=slug, version_id=version_id),
            declared_files={f["path"]: f["sha256"] for f in files} if files is not None else None,
        )
        return Response(self.OutputSerializer(Version.objects.get(pk=version.pk)).data, status=status.HTTP_202_ACCEPTED)


class VendorVersionSignatureView(APIView):
    """`POST {signature[, oms_bundle]}`: your signature over the version's PublishVersion
    `typed_data`; the relayer publishes it on chain (202). `oms_bundle`: the OpenSSF Model
    Signing bundle of the version's statement, signed with your registered P-256 key (what
    `model_signing sign key` writes to `model.sig`): checked first, a bad one refuses the whole
    request (400 `invalid_signature_bundle`, 413 when larger than the bound; 409
    `signing_key_not_bound`), and served as `model.sig` once the version is live."""

    permission_classes = [IsVendor]
    error_statuses = (409, 413, 429, 503)
    OutputSerializer = VendorVersionSerializer

    class InputSerializer(SignatureInput):
        oms_bundle = serializers.JSONField(
            required=False, help_text="Sigstore bundle v0.3 (JSON object) of the version's OMS statement, signed with your P-256 key"
        )

    @extend_schema(request=InputSerializer, responses={202: VendorVersionSerializer})
    def post(self, request, slug, version_id):
        # bounded before the body is parsed: a bundle is at most MAX_BUNDLE_BYTES, the rest is small
        if int(request.META.get("CONTENT_LENGTH") or 0) > oms.MAX_BUNDLE_BYTES + 4096:
            raise InvalidInput(
                f"the request is larger than a signature bundle may be ({oms.MAX_BUNDLE_BYTES} bytes)",
                code="invalid_signature_bundle", status=413,
            )
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = services.version_submit_signature(
            version=selectors.version_get_owned(user=request.user, slug=slug, version_id=version_id),
            signature=data.validated_data["signature"],
            oms_bundle=data.validated_data.get("oms_bundle"),
        )
        return Response(self.OutputSerializer(Version.objects.get(pk=version.pk)).data, status=status.HTTP_202_ACCEPTED)


class SigningKeySerializer(serializers.Serializer):
    """A vendor's OMS signing key (P-256), public."""

    algorithm = serializers.CharField(help_text="ecdsa-p256-sha256")
    sha256 = serializers.CharField(help_text="hex SHA-256 of the DER SubjectPublicKeyInfo: what a version's metadata `signing_key` names")
    public_key_pem = serializers.CharField(help_text="SubjectPublicKeyInfo PEM, for `model_signing verify key --public_key`")
    current = serializers.SerializerMethodField(help_text="the key the next hashed version names")
    created_at = serializers.DateTimeField()
    retired_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "SigningKey"

    def get_current(self, key: VendorSigningKey) -> bool:
        return key.retired_at is None


class VendorKeysView(APIView):
    """`GET /api/v1/vendors/<vendor>/keys`: the vendor's OpenSSF Model Signing public keys (P-256),
    newest first, public like the model pages. `POST {public_key_pem}` (the vendor only): register
    a new current key; the next version hashed names it in its signed metadata (`signing_key`)."""

    error_statuses = {"post": (400, 401, 403)}

    class InputSerializer(serializers.Serializer):
        public_key_pem = serializers.CharField(max_length=oms.MAX_PUBLIC_KEY_PEM_BYTES, help_text="a NIST P-256 public key, PEM")

    OutputSerializer = SigningKeySerializer

    @extend_schema(responses=SigningKeySerializer(many=True))
    def get(self, request, vendor):
        found = Vendor.objects.filter(slug=vendor).first()
        if found is None:
            raise NotFound(f"there is no vendor {vendor!r}", code="vendor_not_found")
        keys = found.signing_keys.order_by("-created_at", "-pk")
        return Response(self.OutputSerializer(keys, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: SigningKeySerializer})
    def post(self, request, vendor):
        own = getattr(request.user, "vendor", None) if request.user and request.user.is_authenticated else None
        if own is None or own.slug != vendor:
            raise Forbidden(f"only the vendor {vendor!r} registers its keys; sign in with its wallet", code="not_your_vendor")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = services.vendor_signing_key_register(vendor=own, public_key_pem=data.validated_data["public_key_pem"])
        return Response(self.OutputSerializer(key).data, status=status.HTTP_201_CREATED)
