"""Rate limits per API token (else per client address), read from settings at each request."""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class _PerToken(SimpleRateThrottle):
    setting = ""

    def get_rate(self):
        return getattr(settings, self.setting)

    def get_cache_key(self, request, view):
        token = getattr(request, "auth", None)
        ident = f"token:{token.prefix}" if token is not None and hasattr(token, "prefix") else self.get_ident(request)
        return f"throttle:{self.scope}:{ident}"


class DownloadThrottle(_PerToken):
    scope = "download"
    setting = "DOWNLOAD_RATE_LIMIT"


class ApiThrottle(_PerToken):
    scope = "api"
    setting = "API_RATE_LIMIT"
