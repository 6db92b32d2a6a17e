from django.contrib import admin

from registry.caching import cache_generation_bump

from .models import License


@admin.register(License)
class LicenseAdmin(admin.ModelAdmin):
    list_display = ("model_id", "licensee", "perpetual", "expires_at", "seats", "source", "observed_block")
    search_fields = ("model_id", "licensee")

    # Downloads keep licence grants in each process (registry/caching.py): a licence an operator
    # shortens or deletes here must stop granting at once, not when a cached grant runs out.
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        cache_generation_bump()

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        cache_generation_bump()

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        cache_generation_bump()


from .models import LedgerEntry, LedgerLine, ReconciliationAlert  # noqa: E402


class LedgerLineInline(admin.TabularInline):
    model = LedgerLine
    extra = 0
    fields = ("account", "role", "model_id", "amount_wei")
    readonly_fields = fields
    can_delete = False


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    list_display = ("kind", "occurred_at", "model_id", "licensee", "price_wei", "tx_hash", "block_number")
    list_filter = ("kind",)
    search_fields = ("tx_hash", "model_id", "licensee", "payer")
    inlines = [LedgerLineInline]

    def has_change_permission(self, request, obj=None):
        return False  # written from chain events only


@admin.register(ReconciliationAlert)
class ReconciliationAlertAdmin(admin.ModelAdmin):
    list_display = ("payee", "block_number", "ledger_balance_wei", "chain_balance_wei", "drift", "created_at", "resolved_at")
    list_filter = ("resolved_at",)
    search_fields = ("payee",)

    @admin.display(description="drift (wei)")
    def drift(self, obj):
        return obj.drift_wei
