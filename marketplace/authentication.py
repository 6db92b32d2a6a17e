"""API token authentication (`Authorization: Bearer hm_...`) for DRF views."""

from rest_framework import authentication, exceptions

from .errors import NotAuthenticated
from .services import api_token_authenticate


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != self.keyword.lower():
            raise exceptions.AuthenticationFailed(
                {"code": "invalid_token", "message": "use `Authorization: Bearer <API token>`"}
            )
        try:
            token = api_token_authenticate(parts[1])
        except NotAuthenticated as exc:
            raise exceptions.AuthenticationFailed({"code": exc.code, "message": exc.message}) from exc
        return token.user, token

    def authenticate_header(self, request):
        return self.keyword
