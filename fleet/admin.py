from django.contrib import admin

from .models import Device, DeviceChallenge, DeviceModel, DeviceToken, Seat


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ("address", "name", "owner", "created_at", "revoked_at", "last_seen_at", "inventory_reported_at")
    list_filter = ("revoked_at",)
    search_fields = ("address", "name", "owner__username")
    raw_id_fields = ("owner",)
    readonly_fields = ("address", "created_at", "last_seen_at", "last_inventory", "inventory_reported_at")


@admin.register(DeviceToken)
class DeviceTokenAdmin(admin.ModelAdmin):
    """Tokens are listed by prefix; the hash is never shown."""

    list_display = ("prefix", "device", "created_at", "expires_at")
    search_fields = ("prefix", "device__address")
    raw_id_fields = ("device",)
    exclude = ("key_hash",)
    readonly_fields = ("prefix", "device", "created_at", "expires_at")


@admin.register(DeviceChallenge)
class DeviceChallengeAdmin(admin.ModelAdmin):
    list_display = ("address", "purpose", "created_at", "expires_at", "used_at")
    search_fields = ("address",)


@admin.register(Seat)
class SeatAdmin(admin.ModelAdmin):
    list_display = ("device", "model_id", "created_at")
    search_fields = ("device__address", "model_id")
    raw_id_fields = ("device",)


@admin.register(DeviceModel)
class DeviceModelAdmin(admin.ModelAdmin):
    list_display = ("device", "repo_id", "version", "status")
    list_filter = ("status",)
    search_fields = ("repo_id", "model_id", "device__address")
    raw_id_fields = ("device",)
