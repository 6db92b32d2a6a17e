"""Edge devices of a fleet: their keys, short-lived tokens, licence seats and reported inventories.

A device is known by the address of a secp256k1 key it made itself; it proves that key by
signing a single-use challenge (EIP-191), for its registration by its owner and for each token.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Device(models.Model):
    """One edge device bound to its owner's account. Removing it revokes it: the row stays (its
    downloads name it), its address can never be registered again, its seats are freed."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="devices")
    address = models.CharField(max_length=42, unique=True, help_text="checksummed address of the device's own key")
    name = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    last_inventory = models.JSONField(null=True, blank=True, help_text="the last signed inventory, as the device sent it")
    inventory_reported_at = models.DateTimeField(null=True, blank=True, help_text="`reported_at` of the last inventory")

    class Meta:
        indexes = [models.Index(fields=["owner", "revoked_at"], name="fleet_device_owner_live")]

    def __str__(self) -> str:
        return f"{self.name} ({self.address})"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class DeviceChallenge(models.Model):
    """A message for a device to sign: for one address and one purpose, usable once, briefly."""

    class Purpose(models.TextChoices):
        REGISTER = "register", "register"
        TOKEN = "token", "token"

    address = models.CharField(max_length=42)
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    nonce = models.CharField(max_length=64, unique=True)
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.purpose} {self.address}"


class DeviceToken(models.Model):
    """A device's bearer token (`hmd_<prefix>_<secret>`): short-lived, only its SHA-256 stored."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="tokens")
    prefix = models.CharField(max_length=16, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.device.address})"


class Seat(models.Model):
    """A device's use of one of its owner's licence seats for a model, taken on its first download."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="seats")
    model_id = models.CharField(max_length=66, help_text="the chain model id, 0x + 64 lower-case hex")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["device", "model_id"], name="fleet_seat_once_per_device")]
        indexes = [models.Index(fields=["model_id"], name="fleet_seat_model")]

    def __str__(self) -> str:
        return f"{self.device.address} {self.model_id}"


class DeviceModel(models.Model):
    """One entry of a device's last inventory: a model version it runs (or quarantined). Rows, not
    a JSON scan, so the Fleet page and the vendors' counts are queries."""

    class Status(models.TextChoices):
        INSTALLED = "installed", "installed"
        QUARANTINED = "quarantined", "quarantined"

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="models")
    repo_id = models.CharField(max_length=200)
    model_id = models.CharField(max_length=66)
    version = models.PositiveIntegerField()
    root_digest = models.CharField(max_length=66)
    status = models.CharField(max_length=16, choices=Status.choices)
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        indexes = [models.Index(fields=["model_id", "version"], name="fleet_devicemodel_version")]

    def __str__(self) -> str:
        return f"{self.repo_id}@v{self.version} on {self.device_id}"
