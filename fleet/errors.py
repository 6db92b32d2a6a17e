"""Errors of the fleet: each a stable `code`, an HTTP status and a message that says what to do.

`fleet` sits below `marketplace` and cannot use its error classes; the API edge
(marketplace/api/devices.py) and the download path translate these into the API's one error
shape. The codes are listed in docs/api.md#errors."""

from __future__ import annotations


class FleetError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    @property
    def message(self) -> str:
        return str(self)


class InvalidChallenge(FleetError):
    """invalid_signature, challenge_invalid, challenge_expired, challenge_used (400)."""


class DeviceConflict(FleetError):
    status = 409  # device_exists, device_revoked (at registration), inventory_stale


class DeviceNotFound(FleetError):
    code = "device_not_found"
    status = 404


class DeviceRevoked(FleetError):
    code = "device_revoked"
    status = 403


class DeviceTokenInvalid(FleetError):
    code = "invalid_token"
    status = 401  # also token_expired: the device asks for a new one


class SeatLimit(FleetError):
    code = "seat_limit"
    status = 403


class InventoryRefused(FleetError):
    code = "invalid_inventory"
    status = 400  # inventory_too_large is 413
