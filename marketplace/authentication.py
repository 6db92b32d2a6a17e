"""Bearer authentication, for DRF views and plain ones: API tokens (`hm_...`) and device tokens
(`hmd_...`, fleet/).

The one place the `Authorization` header is read: the API (DRF), the resolve view and tus
uploads all call `bearer_key` / `authenticate`. It is also where a device token is kept to what
it may do: only a view that says so (`device_allowed`, or a DRF view's `device_token_allowed`)
accepts one; everywhere else it is refused with 403 `device_token_not_allowed` before the view
runs, so no view can forget to."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from fleet.errors import FleetError
from fleet.models import DeviceToken
from fleet.services import TOKEN_PREFIX as DEVICE_TOKEN_PREFIX
from fleet.services import device_token_authenticate
from telemetry import logs

from .errors import Forbidden, MarketplaceError, NotAuthenticated
from .services import api_token_authenticate

KEYWORD = "Bearer"


def bearer_key(request) -> str | None:
    """The API token a Django request sends (`Authorization: Bearer <token>`), None without the
    header; NotAuthenticated (invalid_token) for any other form of it."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return None
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != KEYWORD.lower():
        raise NotAuthenticated(f"use `Authorization: {KEYWORD} <API token>`", code="invalid_token")
    return parts[1]


def authenticate(request, *, device_allowed: bool = False):
    """(user, token) for a Django request: the bearer token's, else the session's user (or
    AnonymousUser) with no token. NotAuthenticated (invalid_token, token_expired) for a bad token.

    A device token (`hmd_...`) gives (its device's owner, the DeviceToken) where `device_allowed`
    (the Hugging Face endpoints, the device's own inventory and `/devices/me`); anywhere else it
    is Forbidden `device_token_not_allowed`: a device never buys, makes tokens or calls vendor endpoints."""
    key = bearer_key(request)
    if key is None:
        return request.user, None
    return key_authenticate(key, device_allowed=device_allowed)


def key_authenticate(key: str, *, device_allowed: bool = False):
    """(user, token) for an API or device token sent some other way than a bearer header (the
    OCI registry's token endpoint takes it as the basic-auth password); errors as `authenticate`."""
    if key.startswith(DEVICE_TOKEN_PREFIX):
        return _device(key, device_allowed)
    token = api_token_authenticate(key)
    logs.bind(user_id=token.user_id)  # the request's log lines and access line name the user
    return token.user, token


def _device(key: str, device_allowed: bool) -> tuple:
    if not device_allowed:
        raise Forbidden(
            "a device token may only download and report its inventory: use the owner's API token here",
            code="device_token_not_allowed",
        )
    try:
        token = device_token_authenticate(key)
    except FleetError as exc:  # invalid_token, token_expired (401), device_revoked (403)
        raise MarketplaceError(exc.message, code=exc.code, status=exc.status) from exc
    owner = token.device.owner
    logs.bind(user_id=owner.pk)
    return owner, token


def is_device_token(token) -> bool:
    return isinstance(token, DeviceToken)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """The API's bearer tokens. A DRF view accepts device tokens only with `device_token_allowed = True`."""

    keyword = KEYWORD

    def authenticate(self, request):
        if not request.META.get("HTTP_AUTHORIZATION"):
            return None
        view = (getattr(request, "parser_context", None) or {}).get("view")
        try:
            return authenticate(request, device_allowed=getattr(view, "device_token_allowed", False))
        except MarketplaceError as exc:
            detail = {"code": exc.code, "message": exc.message}
            if exc.status == 403:
                raise exceptions.PermissionDenied(detail) from exc
            raise exceptions.AuthenticationFailed(detail) from exc

    def authenticate_header(self, request):
        return self.keyword
