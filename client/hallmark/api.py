"""A small HTTP client for the marketplace API: bearer token, JSON in and out, and the server's
errors (`{"code", "message"}`) raised as ApiError with that code and message."""

from __future__ import annotations

import time
from typing import Any

import requests

from . import __version__


class ApiError(Exception):
    def __init__(self, status: int | None, code: str, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]"


def error_from_response(response: requests.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "code" in body:
        code, message = str(body["code"]), str(body.get("message") or body["code"])
    else:
        code, message = f"http_{response.status_code}", (response.text.strip()[:300] or response.reason or "error")
    retry = response.headers.get("Retry-After")
    return ApiError(response.status_code, code, message, float(retry) if retry and retry.isdigit() else None)


class Api:
    """`Api(endpoint, token).get("/api/v1/...")` returns the decoded JSON of a 2xx answer."""

    def __init__(self, endpoint: str, token: str | None = None, timeout: float = 30.0):
        self.endpoint = endpoint.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"hallmark-cli/{__version__}"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def url(self, path: str) -> str:
        return self.endpoint + path

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        try:
            response = self.session.request(method, self.url(path), timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise ApiError(None, "unreachable", f"{self.endpoint} does not answer ({exc.__class__.__name__})") from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        if response.status_code == 204 or not response.content:
            return response.status_code, None
        try:
            return response.status_code, response.json()
        except ValueError as exc:
            raise ApiError(response.status_code, "not_json", f"{self.url(path)} did not answer JSON: is this a Hallmark endpoint?") from exc

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)[1]

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, json=json, **kwargs)[1]

    def get_retrying(self, path: str, attempts: int = 5, **kwargs: Any) -> Any:
        """GET, waiting out 503 (chain unavailable) and 429 (rate limited) answers a few times."""
        for attempt in range(attempts):
            try:
                return self.get(path, **kwargs)
            except ApiError as exc:
                if exc.status not in (429, 503) or attempt == attempts - 1:
                    raise
                time.sleep(min(exc.retry_after or 2.0, 15.0))
        raise AssertionError("unreachable")
