"""Provenance API: which published versions hold a file (by SHA-256), checked on chain, and the
EIP-712 definitions wallets sign with."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from hallmark import eip712
from registry import chain
from registry.verification import versions_on_chain

from .. import selectors
from ..errors import InvalidInput

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
