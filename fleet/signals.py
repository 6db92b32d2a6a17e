"""Drop the hot caches (registry/caching.py) when a device or a device token changes by a save or
a delete (an admin edit included): a device's tokens and seats are kept in every process.
`device_revoke` bumps the generation itself (it writes with queryset updates)."""

from django.db.models.signals import post_delete, post_save

from registry.caching import cache_generation_bump

from .models import Device, DeviceToken, Seat


def _changed(sender, **kwargs) -> None:
    if kwargs.get("raw"):  # loaddata
        return
    cache_generation_bump()


def connect() -> None:
    for model in (Device, DeviceToken):
        post_save.connect(_changed, sender=model, dispatch_uid=f"hotcache-save-{model._meta.label}")
    for model in (Device, DeviceToken, Seat):
        post_delete.connect(_changed, sender=model, dispatch_uid=f"hotcache-delete-{model._meta.label}")
