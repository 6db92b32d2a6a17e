from django.contrib import admin

from .models import ChainTransaction, RelayerNonce, SkippedEvent


@admin.register(ChainTransaction)
class ChainTransactionAdmin(admin.ModelAdmin):
    list_display = ("id", "function", "status", "tx_hash", "nonce", "block_number", "attempts", "created_at")
    list_filter = ("status", "function")
    search_fields = ("tx_hash", "idempotency_key")
    readonly_fields = [f.name for f in ChainTransaction._meta.fields]


@admin.register(RelayerNonce)
class RelayerNonceAdmin(admin.ModelAdmin):
    list_display = ("address", "next_nonce", "updated_at")


@admin.register(SkippedEvent)
class SkippedEventAdmin(admin.ModelAdmin):
    """Poison events: chain events one projection could not apply (docs/operations.md)."""

    list_display = ("created_at", "event_name", "block_number", "tx_hash", "log_index", "projection", "short_error")
    list_filter = ("projection", "event__name")
    search_fields = ("event__tx_hash", "projection", "error")
    list_select_related = ("event",)
    readonly_fields = ("event", "event_args", "projection", "error", "created_at", "updated_at")
    fields = readonly_fields
    ordering = ("-created_at",)

    @admin.display(description="event", ordering="event__name")
    def event_name(self, obj):
        return obj.event.name

    @admin.display(description="block", ordering="event__block_number")
    def block_number(self, obj):
        return obj.event.block_number

    @admin.display(description="tx", ordering="event__tx_hash")
    def tx_hash(self, obj):
        return obj.event.tx_hash

    @admin.display(description="log")
    def log_index(self, obj):
        return obj.event.log_index

    @admin.display(description="error")
    def short_error(self, obj):
        return obj.error if len(obj.error) <= 120 else obj.error[:119] + "…"

    @admin.display(description="arguments")
    def event_args(self, obj):
        return obj.event.args

    def has_add_permission(self, request):
        return False  # recorded by the indexer only
