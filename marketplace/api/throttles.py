"""Rate limits per account (else per client address), read from settings at each request.

A limit counts an account's requests, whichever of its tokens (or its session) sends them: making
more tokens buys no more requests. Anonymous requests count per client address, which comes from
`X-Forwarded-For` only when the peer is one of TRUSTED_PROXIES (`client_address`)."""

from __future__ import annotations

import ipaddress
import math
import time
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import SimpleRateThrottle

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class _PerAccount(SimpleRateThrottle):
    setting = ""

    def get_rate(self):
        return getattr(settings, self.setting)

    def get_ident(self, request):
        return client_address(request)  # DRF's own would believe any X-Forwarded-For

    def get_cache_key(self, request, view):
        return f"throttle:{self.scope}:{rate_limit_ident(request, getattr(request, 'user', None))}"


class ApiThrottle(_PerAccount):
    scope = "api"
    setting = "API_RATE_LIMIT"


def rate_limit_ident(request, user) -> str:
    """Whose budget a request counts against: the signed-in account (by API token or session),
    else the client's address."""
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user:{user.pk}"
    return f"address:{client_address(request)}"


def client_address(request) -> str:
    """The client's IP address: REMOTE_ADDR, unless that peer is one of TRUSTED_PROXIES; then the
    right-most `X-Forwarded-For` hop that is not a trusted proxy (what the outermost trusted
    proxy saw). Hops left of it are whatever the client chose to send, so they never count."""
    peer = request.META.get("REMOTE_ADDR", "")
    trusted = _trusted_networks(tuple(getattr(settings, "TRUSTED_PROXIES", ()) or ()))
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    client = peer
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if _parse_ip(hop) is None:
            break  # not an address: nothing trustworthy is left of it
        client = hop
        if not _is_trusted(hop, trusted):
            break
    return client


@lru_cache(maxsize=8)
def _trusted_networks(entries: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def _parse_ip(text: str):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _is_trusted(text: str, networks: tuple) -> bool:
    address = _parse_ip(text)
    return address is not None and any(address in network for network in networks)


def parse_rate(rate: str) -> tuple[int, int]:
    """`1200/min` -> (1200, 60): requests allowed per period of seconds."""
    count, period = rate.split("/")
    return int(count), _PERIODS[period.strip()[0].lower()]


def download_rate_wait(ident: str) -> int | None:
    """Count one download request of `ident` (`rate_limit_ident`: the account, else the address)
    against DOWNLOAD_RATE_LIMIT; None when allowed, else the seconds until the current window ends
    (for Retry-After).

    A fixed window counter: one atomic increment per request (one round trip with Redis), where
    DRF's sliding log reads and rewrites the whole list of recent request times. At a window's
    edge a client may send up to twice the limit within one period."""
    limit, period = parse_rate(settings.DOWNLOAD_RATE_LIMIT)
    now = time.time()
    window = int(now // period)
    key = f"throttle:download:{ident}:{period}:{window}"
    try:
        count = cache.incr(key)
    except ValueError:  # the window's first request (or a racing one, which then increments)
        count = 1 if cache.add(key, 1, timeout=period + 1) else cache.incr(key)
    if count <= limit:
        return None
    return max(1, math.ceil((window + 1) * period - now))
