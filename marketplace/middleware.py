"""Security headers for pages: a Content-Security-Policy that allows no inline script."""

from django.conf import settings

CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Content-Security-Policy" not in response and response.get("Content-Type", "").startswith("text/html"):
            response["Content-Security-Policy"] = getattr(settings, "CONTENT_SECURITY_POLICY", CSP)
        return response


class OperationsEndpointsMiddleware:
    """Answers `/healthz`, `/readyz` and `/metrics` before host validation and the HTTPS redirect.

    Load balancers and Prometheus probe a process by its address (`Host: 10.0.3.7:8000`, plain
    HTTP), which ALLOWED_HOSTS and SECURE_SSL_REDIRECT would refuse (400) or redirect (301).
    These three answers hold no page and no cookie, and `/metrics` guards itself (marketplace/ops.py)."""

    def __init__(self, get_response):
        self.get_response = get_response
        from . import ops

        self.views = {"/healthz": ops.healthz, "/readyz": ops.readyz, "/metrics": ops.metrics_view}

    def __call__(self, request):
        view = self.views.get(request.path_info)
        if view is not None:
            return view(request)
        return self.get_response(request)
