"""Fleet reads: an owner's devices and what they run, and the per-version counts a vendor sees."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet

from .models import Device, DeviceModel, Seat


def devices_of(*, owner) -> QuerySet[Device]:
    """The owner's devices, removed ones too (kept for the record), newest first, with their
    seats and last inventory rows."""
    return (
        Device.objects.filter(owner=owner)
        .prefetch_related(
            Prefetch("seats", queryset=Seat.objects.order_by("model_id")),
            Prefetch("models", queryset=DeviceModel.objects.order_by("repo_id", "version")),
        )
        .order_by("revoked_at", "-created_at")
    )


def device_get_owned(*, owner, address: str) -> Device | None:
    """The owner's device with this address (any case), else None: another owner's is not found."""
    return Device.objects.filter(owner=owner, address__iexact=address[:42]).first()


def version_device_counts(*, model_id: str) -> list[dict]:
    """For a vendor's model: per version, how many live devices run it (installed) and how many
    quarantined it. Counts only, never whose devices."""
    rows = (
        DeviceModel.objects.filter(model_id=model_id.lower(), device__revoked_at__isnull=True)
        .values("version")
        .annotate(
            installed=Count("device", filter=Q(status=DeviceModel.Status.INSTALLED), distinct=True),
            quarantined=Count("device", filter=Q(status=DeviceModel.Status.QUARANTINED), distinct=True),
        )
        .order_by("-version")
    )
    return list(rows)
