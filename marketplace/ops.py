"""The operator's endpoints: `/healthz` (the process answers), `/readyz` (its dependencies do)
and `/metrics` (Prometheus). Thin: the checks are registry/health.py, the families telemetry/.

`/metrics` is not public: it is served to a request carrying `Authorization: Bearer
<METRICS_TOKEN>`, or (METRICS_ALLOW_LOOPBACK) to one that reaches the process straight from
127.0.0.1/::1 without any forwarding header, so the same path proxied by a local nginx is
refused. Everyone else gets 404, as if it did not exist."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from registry.health import readiness
from telemetry import metrics

from .api.errors import error_response

# headers a reverse proxy adds: a request carrying any of them did not come from the host itself
PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP", "HTTP_X_FORWARDED_HOST", "HTTP_VIA")


@never_cache
@require_safe
def healthz(request):
    """Liveness: answers 200 while the process can serve a request; touches nothing else."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request):
    """Readiness: 200 when the database, the broker, the chain (with CHAIN_ID) and the registry
    answer; 503 otherwise. An unfunded relayer is `degraded` (still 200: downloads work)."""
    result = readiness()
    return JsonResponse(result.as_dict(), status=200 if result.ready else 503)


@never_cache
@require_safe
def metrics_view(request):
    if not _metrics_allowed(request):
        return error_response("not_found", "not found", 404)
    return HttpResponse(metrics.render(), content_type=CONTENT_TYPE_LATEST)


def _metrics_allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header[len("Bearer "):].strip().encode(), token.encode())
    if not settings.METRICS_ALLOW_LOOPBACK or any(name in request.META for name in PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False
