"""API token authentication (`Authorization: Bearer hm_...`), for DRF views and plain ones.

The one place the `Authorization` header is read: the API (DRF), the resolve view and tus
uploads all call `bearer_key` / `authenticate`."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from telemetry import logs

from .errors import NotAuthenticated
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


def authenticate(request):
    """(user, token) for a Django request: the bearer token's, else the session's user (or
    AnonymousUser) with no token. NotAuthenticated (invalid_token, token_expired) for a bad token."""
    key = bearer_key(request)
    if key is None:
        return request.user, None
    token = api_token_authenticate(key)
    logs.bind(user_id=token.user_id)  # the request's log lines and access line name the user
    return token.user, token


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = KEYWORD

    def authenticate(self, request):
        if not request.META.get("HTTP_AUTHORIZATION"):
            return None
        try:
            return authenticate(request)
        except NotAuthenticated as exc:
            raise exceptions.AuthenticationFailed({"code": exc.code, "message": exc.message}) from exc

    def authenticate_header(self, request):
        return self.keyword
