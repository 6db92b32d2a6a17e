from django.contrib import admin

from .models import License


@admin.register(License)
class LicenseAdmin(admin.ModelAdmin):
    list_display = ("model_id", "licensee", "perpetual", "expires_at", "source", "observed_block")
    search_fields = ("model_id", "licensee")
