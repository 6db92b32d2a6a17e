"""Rate limits per API token (else per client address), read from settings at each request."""

from __future__ import annotations

import math
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


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


def client_address(request) -> str:
    """The client's address as DRF's throttles see it (X-Forwarded-For under NUM_PROXIES)."""
    return BaseThrottle().get_ident(request)


def parse_rate(rate: str) -> tuple[int, int]:
    """`1200/min` -> (1200, 60): requests allowed per period of seconds."""
    count, period = rate.split("/")
    return int(count), _PERIODS[period.strip()[0].lower()]


def download_rate_wait(ident: str) -> int | None:
    """Count one download request of `ident` against DOWNLOAD_RATE_LIMIT; None when allowed, else
    the seconds until the current window ends (for Retry-After).

    A fixed window counter: one atomic increment per request (one round trip with Redis), where
    DRF's sliding log reads and rewrites the whole list of recent request times. At a window's
    edge a client may send up to twice the limit within one period."""
    limit, period = parse_rate(settings.DOWNLOAD_RATE_LIMIT)
    now = time.time()
    window = int(now // period)
    key = f"throttle:download:{ident}:{period}:{window}"
    try:
        count = cache.incr(key)
    except ValueError:  # the window's first request
        if cache.add(key, 1, timeout=period + 1):
            count = 1
        else:
            count = cache.incr(key)
    if count <= limit:
        return None
    return max(1, math.ceil((window + 1) * period - now))
