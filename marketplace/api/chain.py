"""Chain API: which chain and registry this marketplace uses, and how far its mirror of the chain is."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from registry import chain
from registry.selectors import indexer_status


class ChainInfoView(APIView):
    """`GET /api/v1/chain`: the chain id, registry address and a public RPC URL, so clients and
    devices can check everything on chain themselves."""

    error_statuses = (503,)  # the registry address is unknown (chain_misconfigured)

    class OutputSerializer(serializers.Serializer):
        chain_id = serializers.IntegerField()
        registry_address = serializers.CharField()
        rpc_url = serializers.CharField(allow_null=True)
        deploy_block = serializers.IntegerField(allow_null=True)

    def get(self, request):
        record = chain.read_deployment() or {}
        info = {
            "chain_id": settings.CHAIN_ID,
            "registry_address": chain.registry_address(),
            "rpc_url": settings.PUBLIC_CHAIN_RPC_URL or None,
            "deploy_block": settings.REGISTRY_DEPLOY_BLOCK or record.get("block_number"),
        }
        return Response(self.OutputSerializer(info).data)


class ChainStatusView(APIView):
    """`GET /api/v1/chain/status`: how far the chain mirror is behind the head, and the events it
    had to skip (poison events, docs/operations.md). Public: nothing in it is secret."""

    class OutputSerializer(serializers.Serializer):
        class SkippedEventSerializer(serializers.Serializer):
            event = serializers.CharField()
            block_number = serializers.IntegerField()
            tx_hash = serializers.CharField()
            log_index = serializers.IntegerField()
            projection = serializers.CharField()
            error = serializers.CharField()
            at = serializers.SerializerMethodField()

            def get_at(self, skip) -> str:
                return skip.at.isoformat()

        chain_id = serializers.IntegerField()
        registry_address = serializers.CharField()
        head = serializers.IntegerField(allow_null=True, help_text="null: the chain did not answer")
        indexed_block = serializers.IntegerField(allow_null=True, help_text="null: the indexer has not run yet")
        lag_blocks = serializers.IntegerField(allow_null=True)
        skipped_events = serializers.IntegerField()
        recent_skipped = SkippedEventSerializer(many=True)

    def get(self, request):
        return Response(self.OutputSerializer(indexer_status()).data)
