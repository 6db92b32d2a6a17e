"""Provenance API: which published versions hold a file (by SHA-256), checked on chain, and the
EIP-712 definitions wallets sign with."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from hallmark import eip712
from registry import chain
from registry.verification import versions_on_chain

from .. import selectors
from ..errors import InvalidInput, NotFound
from ..oms import OMS_BUNDLE_MEDIA_TYPE, oms_bundle_bytes

HEX = frozenset("0123456789abcdef")


class ProvenanceByHashView(APIView):
    """`GET /api/v1/provenance/sha256/<hex>`: which published versions contain a file with this
    SHA-256, answered from the index and each checked against the chain."""

    error_statuses = (400, 503)  # invalid_digest; the chain does not answer

    class OutputSerializer(serializers.Serializer):
        class MatchSerializer(serializers.Serializer):
            """One file of a published version with that digest (an artifact beside its check on chain)."""

            repo_id = serializers.CharField(source="artifact.version.model.repo_id")
            model_id = serializers.CharField(source="artifact.version.model.chain_model_id")
            version = serializers.IntegerField(source="artifact.version.number")
            revision = serializers.SerializerMethodField()
            commit = serializers.CharField(source="artifact.version.commit_sha")
            path = serializers.CharField(source="artifact.path")
            size = serializers.IntegerField(source="artifact.size")
            root_digest = serializers.CharField(source="artifact.version.root_digest")
            signer = serializers.CharField(source="artifact.version.signer")
            vendor_address = serializers.CharField(source="artifact.version.model.vendor.address")
            chain_root_digest = serializers.CharField(source="check.chain_root_digest", allow_null=True)
            matches_chain = serializers.BooleanField(source="check.matches_chain")
            revoked = serializers.BooleanField(source="check.revoked")

            def get_revision(self, match) -> str:
                return f"v{match['artifact'].version.number}"

        sha256 = serializers.CharField()
        versions = MatchSerializer(many=True)

    def get(self, request, sha256):
        sha256 = sha256.lower()
        if len(sha256) != 64 or not HEX.issuperset(sha256):
            raise InvalidInput("give the file's SHA-256 as 64 hex characters", code="invalid_digest")
        found = selectors.artifacts_with_sha256(sha256=sha256)
        checks = versions_on_chain([(a.version.model.chain_model_id, a.version.number, a.version.root_digest) for a in found])
        matches = [{"artifact": artifact, "check": check} for artifact, check in zip(found, checks, strict=True)]
        return Response(self.OutputSerializer({"sha256": sha256, "versions": matches}).data)


class Eip712TypesView(APIView):
    """`GET /api/v1/eip712`: the typed-data definitions and this deployment's domain, for wallets."""

    error_statuses = (503,)  # the registry address is unknown (chain_misconfigured)

    class OutputSerializer(serializers.Serializer):
        types = serializers.JSONField(help_text="EIP712Domain, PublishVersion, CreateModel")
        domain = serializers.JSONField(help_text="name, version, chainId, verifyingContract")

    def get(self, request):
        answer = {
            "types": {"EIP712Domain": eip712.EIP712_DOMAIN, **eip712.TYPES},
            "domain": eip712.domain(settings.CHAIN_ID, chain.registry_address()),
        }
        return Response(self.OutputSerializer(answer).data)


class VersionSignatureBundleView(APIView):
    """`GET /api/v1/models/<vendor>/<model>/versions/<number>/model.sig`: the vendor's OpenSSF Model
    Signing bundle of a live version, the bytes `model_signing verify key --signature` reads.
    Public like the model page (a signature is no secret and names only digests); 404
    `signature_unavailable` for a version its vendor signed without a P-256 key."""

    @extend_schema(responses={(200, OMS_BUNDLE_MEDIA_TYPE): OpenApiTypes.OBJECT})
    def get(self, request, vendor, model, number):
        found = selectors.model_get_by_repo(vendor_slug=vendor, model_slug=model)
        if number > 2**31 - 1:  # the column's range: a larger number names no version
            raise NotFound(f"revision 'v{number}' not found in {found.repo_id}", code="RevisionNotFound")
        version = selectors.version_resolve(model=found, revision=f"v{number}")
        body = oms_bundle_bytes(version)
        if body is None:
            raise NotFound(
                f"{found.repo_id} v{number} carries no OpenSSF Model Signing bundle: its vendor signed it with the wallet only",
                code="signature_unavailable",
            )
        response = HttpResponse(body, content_type=OMS_BUNDLE_MEDIA_TYPE)
        response["Content-Disposition"] = 'attachment; filename="model.sig"'
        response["Cache-Control"] = "public, max-age=31536000, immutable"
        return response
