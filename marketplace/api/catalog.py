"""Public catalog API (/api/v1/models...): search the live models, one model in full, and the
segment digests of one of its versions."""

from __future__ import annotations

import logging

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from hallmark.segments import segment_document, segment_document_digest

from .. import selectors
from ..errors import NotFound
from ..models import Model, Version
from .serializers import BlankAsNull, ModelSerializer, Moment, RegistryAddressField, TermsSerializer, VersionSerializer

logger = logging.getLogger(__name__)

# a version never changes once live: caches may keep its segment document forever
IMMUTABLE = "public, max-age=31536000, immutable"
MAX_VERSION_NUMBER = 2**31 - 1  # the column's range: a larger number names no version


class CatalogPagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


class CatalogEntrySerializer(serializers.Serializer):
    """A model as the catalog lists it."""

    repo_id = serializers.CharField()
    vendor = serializers.CharField(source="vendor.slug")
    name = serializers.CharField()
    description = serializers.CharField()
    model_id = serializers.CharField(source="chain_model_id")
    latest_version = serializers.IntegerField(source="latest_version_number", allow_null=True)
    architecture = BlankAsNull()
    quantization = BlankAsNull()
    formats = serializers.SerializerMethodField()
    parameter_count = serializers.IntegerField(allow_null=True)
    terms = TermsSerializer(source="*")
    created_at = Moment()

    def get_formats(self, model: Model) -> list[str]:
        return _formats(model)


def _formats(model: Model) -> list[str]:
    return [f for f in model.file_formats.split(",") if f]


class LiveVersionSerializer(VersionSerializer):
    """A live version on the model's public page: with its signed manifest, and whether it was revoked."""

    manifest = serializers.JSONField(allow_null=True)
    revoked = serializers.BooleanField()


class AncestorSerializer(serializers.Serializer):
    """A model this one derives from: royalties flow up to it (`upstream_bps` of each sale)."""

    repo_id = serializers.CharField()
    model_id = serializers.CharField(source="chain_model_id")
    upstream_bps = serializers.IntegerField()
    vendor_address = serializers.CharField(source="vendor.address")


class ModelListView(APIView):
    """`GET /api/v1/models`: search and filter the catalog (all filters optional, combined)."""

    error_statuses = (404,)  # a page past the last one

    class FilterSerializer(serializers.Serializer):
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

    OutputSerializer = CatalogEntrySerializer

    class PageSerializer(serializers.Serializer):
        count = serializers.IntegerField()
        next = serializers.URLField(allow_null=True)
        previous = serializers.URLField(allow_null=True)
        results = CatalogEntrySerializer(many=True)

    @extend_schema(
        responses=PageSerializer,
        parameters=[
            OpenApiParameter("page", int, description="page number, from 1 (404 past the last page)"),
            OpenApiParameter("page_size", int, description=f"entries per page, at most {CatalogPagination.max_page_size}"),
        ],
    )
    def get(self, request):
        query = self.FilterSerializer(data=request.query_params)
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
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


class ModelDetailView(APIView):
    """`GET /api/v1/models/<vendor>/<model>`: versions, files, manifests, on-chain ids, lineage, terms."""

    class OutputSerializer(ModelSerializer):
        version_serializer = LiveVersionSerializer

        registry_address = RegistryAddressField()
        latest_version = serializers.IntegerField(source="latest_version_number", allow_null=True)
        architecture = BlankAsNull()
        quantization = BlankAsNull()
        formats = serializers.SerializerMethodField()
        parameter_count = serializers.IntegerField(allow_null=True)
        created_at = Moment()
        lineage = serializers.SerializerMethodField()

        class Meta:
            ref_name = "ModelDetail"

        @extend_schema_field(LiveVersionSerializer(many=True))
        def get_versions(self, model: Model) -> list:
            return super().get_versions(model)

        def get_formats(self, model: Model) -> list[str]:
            return _formats(model)

        @extend_schema_field(AncestorSerializer(many=True))
        def get_lineage(self, model: Model) -> list:
            return AncestorSerializer(selectors.model_lineage(model=model), many=True).data

    def get(self, request, vendor, model):
        found = selectors.model_get_by_repo(vendor_slug=vendor, model_slug=model)
        return Response(self.OutputSerializer(found).data)


class VersionSegmentsView(APIView):
    """`GET /api/v1/models/<vendor>/<model>/versions/<number>/segments`: the SHA-256 of each
    segment of each file of a live version, the document its signed metadata commits to
    (`metadata.segments`: segment size and the document's digest). Public like the model detail
    that lists the version; a version hashed before segments existed (or published outside
    Hallmark) answers 404 `segments_unavailable`, and its files are checked whole."""

    class OutputSerializer(serializers.Serializer):
        version = serializers.IntegerField(help_text="format of the document (1)")
        segment_size = serializers.IntegerField(help_text="bytes per segment; a file's last segment may be shorter")
        files = serializers.DictField(
            child=serializers.ListField(child=serializers.CharField(min_length=64, max_length=64)),
            help_text="path -> hex SHA-256 of each segment, in order (an empty file has none)",
        )

    def get(self, request, vendor, model, number):
        found = selectors.model_get_by_repo(vendor_slug=vendor, model_slug=model)
        version = selectors.live_versions(model=found).filter(number=number).first() if number <= MAX_VERSION_NUMBER else None
        if version is None:
            raise NotFound(f"revision 'v{number}' not found in {found.repo_id}", code="RevisionNotFound")
        document = version_segment_document(version)
        response = Response(document)
        response["Cache-Control"] = IMMUTABLE
        response["ETag"] = f'"{version.metadata["segments"]["sha256"]}"'
        return response


def version_segment_document(version: Version) -> dict:
    """The segment document of `version` over the files its signed manifest names, once it is the
    one the signed metadata commits to; NotFound (`segments_unavailable`) otherwise: never a
    document a client would have to refuse."""
    committed = (version.metadata or {}).get("segments")
    unavailable = NotFound(
        f"{version.model.repo_id} v{version.number} has no segment digests (published before they existed, or "
        "outside Hallmark): check each file whole against its SHA-256",
        code="segments_unavailable",
    )
    if not isinstance(committed, dict) or not isinstance(committed.get("size"), int):
        raise unavailable
    files = {a.path: a.segment_digests for a in selectors.version_files(version=version)}
    document = segment_document(files, committed.get("size"))
    if segment_document_digest(document) != committed.get("sha256"):
        logger.error("segment digests of %s v%s differ from the ones its metadata commits to", version.model.repo_id, version.number)
        raise unavailable
    return document
