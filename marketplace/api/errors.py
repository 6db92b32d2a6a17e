"""One error shape for the whole API: `{"code": <stable code>, "message": <what to do>}`."""

from __future__ import annotations

from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from registry.chain import ChainMisconfigured, ChainUnavailable

from ..errors import MarketplaceError


def error_response(code: str, message: str, status: int, headers: dict | None = None) -> JsonResponse:
    response = JsonResponse({"code": code, "message": message}, status=status)
    response["X-Error-Code"] = code
    response["X-Error-Message"] = message.encode("ascii", "replace").decode()[:500]
    for key, value in (headers or {}).items():
        response[key] = value
    return response


def exception_handler(exc, context):
    if isinstance(exc, MarketplaceError):
        return _drf(exc.code, exc.message, exc.status, exc.headers)
    if isinstance(exc, ChainUnavailable):
        return _drf(exc.code, f"{exc}; nothing was changed, try again shortly", 503, {"Retry-After": "15"})
    if isinstance(exc, ChainMisconfigured):
        return _drf(exc.code, str(exc), 503, {"Retry-After": "60"})
    if isinstance(exc, Http404):
        return _drf("not_found", "not found", 404)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data
    if isinstance(detail, dict) and "code" in detail and "message" in detail:
        code, message = str(detail["code"]), str(detail["message"])
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "invalid_input"
        message = detail.get("detail") if isinstance(detail, dict) and "detail" in detail else detail
        message = str(message)
    else:
        code, message = "error", str(detail)
    if isinstance(exc, exceptions.NotAuthenticated):
        code = "not_authenticated"
    if isinstance(exc, exceptions.Throttled):
        code = "rate_limited"
        message = f"too many requests for this account; retry in {exc.wait:.0f} s" if exc.wait else "too many requests"
    response.data = {"code": code, "message": message}
    if isinstance(exc, exceptions.ValidationError):
        response.data["fields"] = detail
    response["X-Error-Code"] = code
    return response


def _drf(code: str, message: str, status: int, headers: dict | None = None) -> Response:
    response = Response({"code": code, "message": message}, status=status)
    response["X-Error-Code"] = code
    for key, value in (headers or {}).items():
        response[key] = value
    return response
