"""Clear the download hot path's caches (registry/caching.py) when what they hold changes.

Saves and deletes of these models reach every process within HOT_CACHE_CHECK_SECONDS; changes
made with queryset.update() bump the generation where they are made: the state changes in
marketplace/services/states.py, and the indexer for the events it applies."""

from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save

from registry.caching import cache_generation_bump

from .models import ApiToken, Artifact, Model, Vendor, Version, Wallet


def _changed(sender, **kwargs) -> None:
    if kwargs.get("raw"):  # loaddata
        return
    cache_generation_bump()


def connect() -> None:
    for model in (ApiToken, Wallet, Vendor, Model, Version, Artifact, get_user_model()):
        post_save.connect(_changed, sender=model, dispatch_uid=f"hotcache-save-{model._meta.label}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"hotcache-delete-{model._meta.label}")
