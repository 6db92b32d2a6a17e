from django.contrib import admin

from .models import ApiToken, Artifact, Download, Model, Receipt, ReceiptBatch, Vendor, Version, Wallet


@admin.register(Vendor)
class VendorAdmin(admin.ModelAdmin):
    list_display = ("slug", "address", "user", "created_at")
    search_fields = ("slug", "address")


@admin.register(Wallet)
class WalletAdmin(admin.ModelAdmin):
    list_display = ("address", "user", "created_at")
    search_fields = ("address",)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "user", "name", "expires_at", "revoked_at", "last_used_at")
    exclude = ("key_hash",)


class ArtifactInline(admin.TabularInline):
    model = Artifact
    extra = 0
    fields = ("path", "size", "sha256", "file_format")
    readonly_fields = fields


@admin.register(Model)
class ModelAdmin(admin.ModelAdmin):
    list_display = ("__str__", "status", "price_wei", "license_duration", "listed", "created_at")
    list_filter = ("status", "listed")
    search_fields = ("slug", "vendor__slug", "chain_model_id")


@admin.register(Version)
class VersionAdmin(admin.ModelAdmin):
    list_display = ("__str__", "status", "root_digest", "published_block", "created_at")
    list_filter = ("status",)
    inlines = [ArtifactInline]


@admin.register(Download)
class DownloadAdmin(admin.ModelAdmin):
    list_display = ("repo_id", "revision", "path", "method", "status_code", "error_code", "wallet", "bytes_sent", "created_at")
    list_filter = ("status_code", "method")


@admin.register(ReceiptBatch)
class ReceiptBatchAdmin(admin.ModelAdmin):
    """Read-only: a batch's root is what the chain holds (docs/recorder.md)."""

    list_display = ("pk", "state", "count", "batch_id", "block_number", "attempts", "last_error", "created_at")
    list_filter = ("state",)

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Receipt)
class ReceiptAdmin(admin.ModelAdmin):
    list_display = ("receipt_id", "model_id", "version", "licensee", "device", "range_start", "range_end", "served_at", "batch")
    search_fields = ("receipt_id", "licensee", "device")
    raw_id_fields = ("download", "batch")

    def has_change_permission(self, request, obj=None):
        return False
