"""Errors a marketplace user can meet: each has a stable `code`, an HTTP status and a message
that says what to do. The API renders them as `{"code": ..., "message": ...}` (marketplace/api/errors.py);
the codes are listed in docs/api.md#errors.
"""

from __future__ import annotations


class MarketplaceError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None, headers: dict | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}

    @property
    def message(self) -> str:
        return str(self)


class InvalidInput(MarketplaceError):
    code = "invalid_input"
    status = 400


class NotAuthenticated(MarketplaceError):
    code = "not_authenticated"
    status = 401


class Forbidden(MarketplaceError):
    code = "forbidden"
    status = 403


class NotFound(MarketplaceError):
    code = "not_found"
    status = 404


class Conflict(MarketplaceError):
    code = "conflict"
    status = 409


class Gone(MarketplaceError):
    """It existed and was withdrawn for good (a revoked version)."""

    code = "gone"
    status = 410


class Unavailable(MarketplaceError):
    code = "chain_unavailable"
    status = 503

    def __init__(self, message: str, *, retry_after: int = 15, **kwargs):
        super().__init__(message, **kwargs)
        self.headers.setdefault("Retry-After", str(retry_after))


class TooManyRequests(MarketplaceError):
    """Refused for now (a rate or spending limit): `Retry-After` says when it may work again."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: int, **kwargs):
        super().__init__(message, **kwargs)
        self.headers.setdefault("Retry-After", str(int(retry_after)))
