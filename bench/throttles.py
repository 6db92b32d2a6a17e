"""Bench-only: DRF's sliding-window throttle on DOWNLOAD_RATE_LIMIT, for the `/bench/drf` context
view (bench/bare_urls.py) and the phase timings of bench/resolve_head.py.

The marketplace itself no longer uses it: since 3b55223 the resolve view counts downloads with a
fixed window (marketplace.api.throttles.download_rate_wait). It lives here so that the app holds
no code only a benchmark calls; its budget and cache keys (`throttle:download:<account or
address>`) are those the API's own throttle uses for its scope.
"""

from marketplace.api.throttles import ApiThrottle


class DownloadThrottle(ApiThrottle):
    """Per account (else per client address), DOWNLOAD_RATE_LIMIT, DRF's sliding log."""

    scope = "download"
    setting = "DOWNLOAD_RATE_LIMIT"
