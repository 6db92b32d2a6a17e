from django.contrib import admin

from .models import ChainTransaction, RelayerNonce


@admin.register(ChainTransaction)
class ChainTransactionAdmin(admin.ModelAdmin):
    list_display = ("id", "function", "status", "tx_hash", "nonce", "block_number", "attempts", "created_at")
    list_filter = ("status", "function")
    search_fields = ("tx_hash", "idempotency_key")
    readonly_fields = [f.name for f in ChainTransaction._meta.fields]


@admin.register(RelayerNonce)
class RelayerNonceAdmin(admin.ModelAdmin):
    list_display = ("address", "next_nonce", "updated_at")
