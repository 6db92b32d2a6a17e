"""One error shape for the whole API: `{"code": <stable code>, "message": <what to do>}`, with the
code in `X-Error-Code` (and the message in `X-Error-Message`, as Hugging Face clients read it).

`error_response` is the one renderer: the DRF views (through `exception_handler`), the resolve
view and tus uploads all answer errors with it. The codes are listed in docs/api.md#errors."""

from __future__ import annotations

from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from registry.chain import ChainMisconfigured, ChainUnavailable

from ..errors import MarketplaceError

# headers a DRF error response keeps from DRF's own answer (WWW-Authenticate on a 401, Retry-After on a 429)
_KEPT_HEADERS = ("WWW-Authenticate", "Retry-After", "Allow")


def error_response(
    code: str, message: str, status: int, headers: dict | None = None, *, fields=None, drf: bool = False
) -> JsonResponse | Response:
    """The error answer: JSON `{code, message}` (plus `fields` for invalid input), `X-Error-Code`,
    `X-Error-Message` and any `headers` (Retry-After, X-Repo-Commit, ...). `drf=True` for a DRF
    view's exception handler, which must hand DRF a Response to render."""
    body = {"code": code, "message": message}
    if fields is not None:
        body["fields"] = fields
    response = Response(body, status=status) if drf else JsonResponse(body, status=status)
    response["X-Error-Code"] = code
    response["X-Error-Message"] = _header_text(message)
    for key, value in (headers or {}).items():
        response[key] = value
    return response


def error_from(exc: MarketplaceError, headers: dict | None = None, *, drf: bool = False) -> JsonResponse | Response:
    return error_response(exc.code, exc.message, exc.status, {**exc.headers, **(headers or {})}, drf=drf)


def _header_text(message: str) -> str:
    """`message` as a header value: printable ASCII only (a newline would be refused), at most 500 characters."""
    return "".join(c if " " <= c <= "~" else "?" for c in message)[:500]


def exception_handler(exc, context):
    if isinstance(exc, MarketplaceError):
        return error_from(exc, drf=True)
    if isinstance(exc, ChainUnavailable):
        return error_response(exc.code, f"{exc}; nothing was changed, try again shortly", 503, {"Retry-After": "15"}, drf=True)
    if isinstance(exc, ChainMisconfigured):
        return error_response(exc.code, str(exc), 503, {"Retry-After": "60"}, drf=True)
    if isinstance(exc, Http404):
        return error_response("not_found", "not found", 404, drf=True)
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
    kept = {key: response[key] for key in _KEPT_HEADERS if response.has_header(key)}
    fields = detail if isinstance(exc, exceptions.ValidationError) else None
    return error_response(code, message, response.status_code, kept, fields=fields, drf=True)
