"""Output pieces several API modules share (terms, files, versions, models) and the error body.

A view's own `InputSerializer` / `OutputSerializer` sit beside it (api/vendor.py, api/catalog.py,
...) and compose these. Output only: they read model instances and never validate anything."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from registry import chain

from .. import selectors
from ..models import Model, Version

NULLABLE_OBJECT = {"type": "object", "nullable": True, "additionalProperties": {}}


class Moment(serializers.DateTimeField):
    """A datetime written by the JSON renderer (ISO 8601, milliseconds, `Z`), as the API always has."""

    def to_representation(self, value):
        return value


class BlankAsNull(serializers.CharField):
    """A text column where "" means "not yet": answered as null."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return str(value) if value else None


class ErrorSerializer(serializers.Serializer):
    """The body of every error answer (docs/api.md#errors); the code is also in `X-Error-Code`."""

    code = serializers.CharField(help_text="stable code, listed in docs/api.md#errors")
    message = serializers.CharField(help_text="what went wrong and what to do")
    fields = serializers.JSONField(required=False, help_text="invalid input only: the message of each field")

    class Meta:
        ref_name = "Error"


class ErrorDetailSerializer(serializers.Serializer):
    """Why a model or version failed (its `error_code`, `error_message`)."""

    code = serializers.CharField(source="error_code")
    message = serializers.CharField(source="error_message")

    class Meta:
        ref_name = "FailureDetail"


@extend_schema_field(ErrorDetailSerializer(allow_null=True))
class FailureField(serializers.Field):
    """`{code, message}` of a failed model or version, else null."""

    def __init__(self, **kwargs):
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, value):
        return ErrorDetailSerializer(value).data if value.error_code else None


class TermsSerializer(serializers.Serializer):
    price_wei = serializers.CharField(help_text="wei, as a string of digits")
    duration_seconds = serializers.IntegerField(source="license_duration", help_text="0: perpetual")
    perpetual = serializers.SerializerMethodField()
    listed = serializers.BooleanField()

    class Meta:
        ref_name = "Terms"

    def get_perpetual(self, model: Model) -> bool:
        return model.license_duration == 0


class ArtifactSerializer(serializers.Serializer):
    path = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    format = serializers.CharField(source="file_format")

    class Meta:
        ref_name = "File"


class VersionSerializer(serializers.Serializer):
    """A version as buyers see it."""

    id = serializers.IntegerField(source="pk")
    number = serializers.IntegerField(allow_null=True)
    status = serializers.CharField()
    root_digest = BlankAsNull()
    metadata_digest = BlankAsNull()
    commit = BlankAsNull(source="commit_sha")
    files = serializers.SerializerMethodField()
    metadata = serializers.JSONField(allow_null=True)
    signer = BlankAsNull()
    transaction_hash = serializers.SerializerMethodField()
    published_block = serializers.IntegerField(allow_null=True)
    adopted = serializers.BooleanField(help_text="published on chain outside Hallmark: no files hosted here")
    error = FailureField()

    class Meta:
        ref_name = "Version"

    @extend_schema_field(ArtifactSerializer(many=True))
    def get_files(self, version: Version) -> list:
        return ArtifactSerializer(selectors.version_files(version=version), many=True).data

    def get_transaction_hash(self, version: Version) -> str | None:
        return version.publish_transaction.tx_hash if version.publish_transaction_id else None


class VendorVersionSerializer(VersionSerializer):
    """A version as its vendor sees it: what was declared, the manifest, the message to sign."""

    declared_files = serializers.JSONField(allow_null=True)
    manifest = serializers.JSONField(allow_null=True)
    typed_data = serializers.SerializerMethodField()

    class Meta:
        ref_name = "VendorVersion"

    @extend_schema_field(NULLABLE_OBJECT)
    def get_typed_data(self, version: Version) -> dict | None:
        return version.typed_data if version.status == Version.Status.AWAITING_SIGNATURE else None


class RegistryAddressField(serializers.CharField):
    """The registry contract's address, for a live model only (ModelSerializer drops it otherwise);
    null when the chain settings are wrong."""

    def __init__(self, **kwargs):
        super().__init__(source="*", required=False, allow_null=True, help_text="live models only", **kwargs)

    def to_representation(self, model: Model) -> str | None:
        try:
            return chain.registry_address()
        except chain.ChainError:
            return None


class ModelSerializer(serializers.Serializer):
    """A model with its terms and versions (live ones for buyers, all for its vendor)."""

    version_serializer = VersionSerializer

    repo_id = serializers.CharField()
    vendor = serializers.CharField(source="vendor.slug")
    vendor_address = serializers.CharField(source="vendor.address")
    name = serializers.CharField()
    description = serializers.CharField()
    status = serializers.CharField()
    model_id = serializers.CharField(source="chain_model_id")
    parent = serializers.SerializerMethodField()
    upstream_bps = serializers.IntegerField()
    terms = TermsSerializer(source="*")
    versions = serializers.SerializerMethodField()

    class Meta:
        ref_name = "Model"

    def get_parent(self, model: Model) -> str | None:
        return model.parent.repo_id if model.parent_id else None

    @extend_schema_field(VersionSerializer(many=True))
    def get_versions(self, model: Model) -> list:
        return self.version_serializer(self.versions_of(model).order_by("-created_at"), many=True).data

    def versions_of(self, model: Model):
        return selectors.live_versions(model=model)

    def to_representation(self, model: Model) -> dict:
        data = super().to_representation(model)
        if model.status != Model.Status.LIVE:
            data.pop("registry_address", None)
        return data


class VendorModelSerializer(ModelSerializer):
    """A model as its vendor sees it: every version, the message to sign, the transaction, the failure."""

    version_serializer = VendorVersionSerializer

    typed_data = serializers.SerializerMethodField()
    transaction_hash = serializers.SerializerMethodField()
    error = FailureField()
    registry_address = RegistryAddressField()

    class Meta:
        ref_name = "VendorModel"

    @extend_schema_field(VendorVersionSerializer(many=True))
    def get_versions(self, model: Model) -> list:
        return super().get_versions(model)

    def versions_of(self, model: Model):
        return model.versions.all()

    @extend_schema_field(NULLABLE_OBJECT)
    def get_typed_data(self, model: Model) -> dict | None:
        return model.typed_data if model.status == Model.Status.AWAITING_SIGNATURE else None

    def get_transaction_hash(self, model: Model) -> str | None:
        return model.create_transaction.tx_hash if model.create_transaction_id else None
