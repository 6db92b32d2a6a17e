"""Counting requests: one counter and one latency histogram per endpoint family.

The family is chosen from the URL pattern that matched (or the path's first segment when none
did), never from the raw path: label values stay a fixed set whatever a client sends."""

from __future__ import annotations

import time

from . import metrics

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def family_of(request) -> str:
    """resolve | hf_api | oci | api | portal | pages | admin | static | health | metrics | unmatched."""
    path = request.path_info or "/"
    if path in OPS_PATHS:
        return "metrics" if path == "/metrics" else "health"
    match = getattr(request, "resolver_match", None)
    name = (match.url_name or "") if match is not None else ""
    if name == "hf-resolve":
        return "resolve"
    if path.startswith("/api/models/"):
        return "hf_api"
    if path.startswith("/v2/"):
        return "oci"  # the OCI registry (marketplace/api/oci.py)
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/portal/"):
        return "portal"
    if path.startswith("/admin/"):
        return "admin"
    if path.startswith("/static/") or path.startswith("/media/"):
        return "static"
    if match is None:
        return "unmatched"
    return "pages"


class RequestMetricsMiddleware:
    """Counts every response (errors included) and times it; place it first, so the time covers
    the other middleware too."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        except Exception:
            self._count(request, 500, started)
            raise
        self._count(request, response.status_code, started)
        return response

    @staticmethod
    def _count(request, status: int, started: float) -> None:
        family = family_of(request)
        method = request.method if request.method in METHODS else "other"
        code = str(status) if 100 <= int(status) <= 599 else "other"
        metrics.HTTP_REQUESTS.labels(family=family, method=method, status=code).inc()
        metrics.HTTP_REQUEST_SECONDS.labels(family=family).observe(time.perf_counter() - started)
