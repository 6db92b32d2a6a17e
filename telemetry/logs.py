"""Structured logs and the request id.

One request (or one Celery task) is one context: its request id, the user and the vendor acting,
the task's name and id. The context lives in a `contextvars.ContextVar`, so every log line
written while serving the request carries it without anyone passing it along, and a task queued
during the request carries the request id to the worker in a message header. An operator given
the `X-Request-ID` of a user's report finds every line of that request, and of the work it
queued, with one search.

Logs leave the process, so nothing secret may be in them: API tokens, bearer values, passwords,
labelled keys and URL credentials are masked (`redact`) in the message, the extras and the
traceback, in both formats. Transaction hashes look like private keys (0x + 64 hex) and operators
need them, so a bare 0x-hex value is masked only where a label or an extra's name says secret.

Settings: LOG_FORMAT (`plain` | `json`), LOG_LEVEL; see docs/operations.md, Logs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from django.utils.functional import SimpleLazyObject, empty

FIELDS = ("request_id", "user_id", "vendor_id", "task", "task_id")
REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
CELERY_HEADER = "hallmark_request_id"
MAX_PATH = 512
REDACTED = "[redacted]"

access_logger = logging.getLogger("hallmark.access")

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_CONTEXT: ContextVar[Mapping[str, Any]] = ContextVar("hallmark_log_context", default=_EMPTY)

# ------------------------------------------------------------------------------------ context


def current() -> dict[str, Any]:
    """The fields bound in this context (request or task), those with a value only."""
    return {key: value for key, value in _CONTEXT.get().items() if value is not None}


def bind(**fields: Any) -> Token:
    """Add `fields` to this context (None removes one). Returns the token that undoes it; the
    request middleware and the task signals undo everything bound inside them when they end."""
    return _CONTEXT.set(MappingProxyType({**_CONTEXT.get(), **fields}))


def unbind(token: Token) -> None:
    """Restore the context `token` (from `bind`) replaced; empty if it belongs to another context."""
    try:
        _CONTEXT.reset(token)
    except (ValueError, RuntimeError):
        _CONTEXT.set(_EMPTY)


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """`fields` bound for the block, the previous context restored after it."""
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def task_context(name: str, task_id: str | None, request_id: str | None = None) -> contextlib.AbstractContextManager[None]:
    """The context of a task run: its name and id, and the request id of the request that queued
    it (else the current one: an eager task runs inside its request)."""
    return bound(task=name, task_id=task_id, request_id=request_id or _CONTEXT.get().get("request_id"))


def valid_request_id(value: object) -> str | None:
    """`value` if it is a request id we can echo safely (bounded, no separators), else None."""
    if isinstance(value, str) and REQUEST_ID_RE.fullmatch(value):
        return value
    return None


def new_request_id() -> str:
    return uuid.uuid4().hex


# ---------------------------------------------------------------------------------- redaction

_SECRET_NAME = r"[\w.-]*?(?:private_?key|secret|password|passwd|mnemonic|api_?key|token|credentials?)"
_RULES: list[tuple[re.Pattern[str], Any]] = [
    # URL credentials: scheme://user:pass@host -> scheme://***@host
    (re.compile(r"\b([a-z][a-z0-9+.-]{0,31}://)[^/\s@\"'<>]+@", re.I), r"\1***@"),
    (re.compile(r"(%3A%2F%2F)(?:(?!%2F|%40)[^/\s\"'<>&?#])+%40", re.I), r"\1***%40"),  # the same, percent-encoded
    # query parameters that carry a secret: ?token=..., &X-Amz-Signature=..., &api_key=...
    (
        re.compile(r"([?&;][\w.-]*?(?:token|key|signature|password|secret|credential)[\w.-]*=)[^&#;\s\"'<>]*", re.I),
        rf"\1{REDACTED}",
    ),
    # our API tokens (hm_<prefix>_<secret>): the prefix is public (the token list shows it), keep it
    (re.compile(r"\bhm_([0-9a-f]{8})_[A-Za-z0-9_-]+"), rf"hm_\1_{REDACTED}"),
    (re.compile(r"\bhm_(?!\[)[A-Za-z0-9_-]{12,}"), f"hm_{REDACTED}"),
    (re.compile(r"\b(Bearer)\s+(?!\[redacted\])[^\s\"',;]+", re.I), rf"\1 {REDACTED}"),
    # Authorization: <anything up to the end of the value>
    (re.compile(r"(\b[\w-]*?authorization[\"']?\s*[:=]\s*[\"']?)(?!\[redacted\])[^\"'\r\n,;}]+", re.I), rf"\1{REDACTED}"),
    # labelled secrets: private_key=0x..., "password": "...", 'client_secret': '...', token: hm_...
    (
        re.compile(rf"(\b{_SECRET_NAME}[\"']?\s*[:=]\s*)(?![\"']?\[redacted\])(\"[^\"\r\n]*\"|'[^'\r\n]*'|[^\s\"',;&}}\]]+)", re.I),
        lambda m: m.group(1) + _requote(m.group(2)),
    ),
]
_SECRET_KEY = re.compile(r"key|secret|password|passwd|token|authorization|mnemonic|credential|cookie", re.I)


def _requote(value: str) -> str:
    if value[:1] in "\"'" and value[-1:] == value[:1] and len(value) > 1:
        return f"{value[0]}{REDACTED}{value[0]}"
    return REDACTED


def redact(text: str) -> str:
    """`text` with tokens, bearer values, Authorization headers, labelled secrets and URL
    credentials masked. Bare 0x-hex values (transaction hashes) stay."""
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


def secret_name(name: str) -> bool:
    """Whether an extra (or a nested key) of this name holds a secret: its value is never shown."""
    return bool(_SECRET_KEY.search(name))


def _is_http_request(value: Any) -> bool:
    return all(hasattr(type(value), name) for name in ("get_full_path", "build_absolute_uri"))


def _json_safe(value: Any, depth: int = 0) -> Any:
    """`value` as JSON can hold it: strings redacted, containers walked (bounded), anything else
    repr'd and redacted."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return redact(value)
    if _is_http_request(value):  # django.request's `request` extra: its repr holds the query string
        return f"{str(getattr(value, 'method', ''))[:16]} {_bounded_path(str(getattr(value, 'path', '')))}"
    if depth < 4 and isinstance(value, Mapping):
        return {
            str(key): REDACTED if secret_name(str(key)) else _json_safe(item, depth + 1) for key, item in list(value.items())[:100]
        }
    if depth < 4 and isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(item, depth + 1) for item in list(value)[:100]]
    try:
        return redact(repr(value))
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


# --------------------------------------------------------------------------------- formatting

# every attribute a LogRecord has of its own; anything else on a record came from `extra=`
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "context",
    "taskName",
    *FIELDS,
}


def _context_of(record: logging.LogRecord) -> dict[str, Any]:
    """The context fields of `record`: those ContextFilter copied onto it, else the current ones."""
    if getattr(record, "_hallmark_context", False):
        return {field: getattr(record, field, None) for field in FIELDS if getattr(record, field, None) is not None}
    return current()


def _message_of(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception as exc:  # wrong arguments for the format: keep what there is
        return f"{record.msg!r} {record.args!r} (could not format: {exc!r})"


class ContextFilter(logging.Filter):
    """Copies the request/task context onto every record (request_id, user_id, vendor_id, task,
    task_id; None when unknown), so both formats and any handler can show them. Set on the
    handlers, so it sees the records of every logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _CONTEXT.get()
        for field in FIELDS:
            if getattr(record, field, None) is None:
                setattr(record, field, context.get(field))
        record._hallmark_context = True
        return True


class PlainFormatter(logging.Formatter):
    """The human format (`LOG_FORMAT=plain`): `%(context)s` is `[request id] ` (or
    `[task name task id] `) when known; the whole line redacted."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            context = _context_of(record)
            if context.get("request_id"):
                record.context = f"[{context['request_id']}] "
            elif context.get("task"):
                record.context = f"[{context['task']} {context.get('task_id', '')}] "
            else:
                record.context = ""
            return redact(super().format(record))
        except Exception as exc:
            return f"{record.levelname} {record.name} unformattable log record ({type(exc).__name__})"


class JsonFormatter(logging.Formatter):
    """One JSON object per line (`LOG_FORMAT=json`): ts, level, logger, message, the context
    fields that are known, exc (the traceback) when there is one, and the caller's `extra=`
    fields (JSON-safe, secret-named ones masked). Never raises: a formatter that raises loses the
    line, so anything it cannot render becomes a reduced line instead."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            return self._format(record)
        except Exception as exc:
            return json.dumps({
                "ts": _timestamp(getattr(record, "created", None)),
                "level": str(getattr(record, "levelname", "")),
                "logger": str(getattr(record, "name", "")),
                "message": redact(str(getattr(record, "msg", ""))[:2000]),
                "format_error": type(exc).__name__,
            })

    def _format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(_message_of(record)),
        }
        line.update(_context_of(record))
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = redact(record.exc_text)
        if record.stack_info:
            line["stack"] = redact(self.formatStack(record.stack_info))
        for key, value in record.__dict__.items():
            if key in _RECORD_ATTRIBUTES or key.startswith("_") or key in line:
                continue
            line[key] = REDACTED if secret_name(key) else _json_safe(value)
        return json.dumps(line, default=lambda value: redact(repr(value)))


def _timestamp(created: float | None) -> str:
    moment = datetime.fromtimestamp(created if created is not None else time.time(), UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -------------------------------------------------------------------------------- middleware


def _bounded_path(path: str) -> str:
    """The path for the access line: at most MAX_PATH characters, control characters escaped (a
    decoded %0A must not start a forged line in the plain format)."""
    path = path[:MAX_PATH]
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", path)


def _cached_vendor_id(user: Any) -> int | None:
    """The user's vendor id if something in this request already loaded the vendor (the vendor
    API's permission, the portal): read from Django's relation cache, never a query."""
    cache = getattr(getattr(user, "_state", None), "fields_cache", None) or {}
    return getattr(cache.get("vendor"), "pk", None)


def _loaded_user(request) -> Any:
    """The request's user if something already loaded it (DRF's authentication, a view, a
    template), else None: Django's user is lazy, and the access line must not cost a session and
    user query on a request that never needed them."""
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject) and user._wrapped is empty:
        return None
    return user


def _response_bytes(response: Any) -> int | None:
    if getattr(response, "streaming", False):
        length = response.get("Content-Length")
        return int(length) if length and length.isdigit() else None
    return len(response.content)


class RequestContextMiddleware:
    """Gives each request an id (the client's `X-Request-ID` if it is a safe one, else a new
    uuid4), binds it for the request's log lines, returns it in the `X-Request-ID` header of every
    response (errors included: Django turns exceptions into responses inside this middleware),
    and writes one access line per request on `hallmark.access`.

    The user is read when the response is made: DRF authenticates inside the view, and the
    bearer parser binds the user it found (`marketplace.authentication`). Streamed bodies are
    sent after this returns, so their lines carry no request id and `duration_ms` excludes them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = valid_request_id(request.META.get("HTTP_X_REQUEST_ID")) or new_request_id()
        request.request_id = request_id
        token = _CONTEXT.set(MappingProxyType({"request_id": request_id}))  # nothing of a previous request
        started = time.monotonic()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request_id
            self._access_line(request, response, started)
            return response
        finally:
            unbind(token)

    @staticmethod
    def _access_line(request, response, started: float) -> None:
        try:
            context = _CONTEXT.get()
            user = _loaded_user(request)
            user_id = user.pk if user is not None and user.is_authenticated else context.get("user_id")
            vendor_id = context.get("vendor_id") or (_cached_vendor_id(user) if user_id is not None else None)
            bind(user_id=user_id, vendor_id=vendor_id)
            method, path = str(request.method)[:16], _bounded_path(request.path)
            duration_ms = round((time.monotonic() - started) * 1000, 1)
            access_logger.info(
                "%s %s %s %sms",
                method,
                path,
                response.status_code,
                duration_ms,
                extra={
                    "method": method,
                    "path": path,
                    "status": response.status_code,
                    "duration_ms": duration_ms,
                    "bytes": _response_bytes(response),
                },
            )
        except Exception:  # the access line must never cost the response
            logging.getLogger(__name__).exception("access log line failed")


# ------------------------------------------------------------------------------------- celery

_task_tokens: dict[str, Token] = {}


def _before_task_publish(sender=None, headers=None, **kwargs) -> None:
    """A task queued while serving a request carries the request id to the worker."""
    request_id = _CONTEXT.get().get("request_id")
    if request_id and isinstance(headers, dict):
        headers.setdefault(CELERY_HEADER, request_id)


def _task_prerun(sender=None, task_id=None, task=None, **kwargs) -> None:
    request = getattr(task, "request", None)
    request_id = valid_request_id(getattr(request, CELERY_HEADER, None)) or _CONTEXT.get().get("request_id")
    _task_tokens[str(task_id)] = bind(request_id=request_id, task=getattr(task, "name", None), task_id=task_id)


def _task_postrun(sender=None, task_id=None, **kwargs) -> None:
    token = _task_tokens.pop(str(task_id), None)
    if token is not None:
        unbind(token)


def _keep_django_logging(**kwargs) -> None:
    """Connected to Celery's `setup_logging`: while any receiver is connected, a worker leaves the
    logging configuration alone, so Django's LOGGING (LOG_FORMAT, LOG_LEVEL; applied by
    django.setup(), which Celery's Django fix-up runs in the worker) is the one in force instead of
    Celery replacing the root handlers with its own format."""


def connect_celery_signals() -> None:
    """Hook the request id into Celery: headers on publish, the task context around each run."""
    from celery import signals

    signals.before_task_publish.connect(_before_task_publish, weak=False, dispatch_uid="hallmark-log-publish")
    signals.task_prerun.connect(_task_prerun, weak=False, dispatch_uid="hallmark-log-prerun")
    signals.task_postrun.connect(_task_postrun, weak=False, dispatch_uid="hallmark-log-postrun")
    signals.setup_logging.connect(_keep_django_logging, weak=False, dispatch_uid="hallmark-log-setup")
