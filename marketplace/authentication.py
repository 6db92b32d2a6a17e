"""API token authentication (`Authorization: Bearer hm_...`), for DRF views and plain ones."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from .errors import NotAuthenticated
from .services import api_token_authenticate

KEYWORD = "Bearer"


def authenticate(request):
    """(user, token) for a Django request: the bearer token's, else the session's user (or
    AnonymousUser) with no token. NotAuthenticated (invalid_token, token_expired) for a bad token."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return request.user, None
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != KEYWORD.lower():
        raise NotAuthenticated(f"use `Authorization: {KEYWORD} <API token>`", code="invalid_token")
    token = api_token_authenticate(parts[1])
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
