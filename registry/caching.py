"""Process-local caches for hot read paths, cleared everywhere within a second of a change.

A download's HEAD is answered thousands of times a second from a handful of facts: which user a
token belongs to, which file a repo/revision/path names, whether that user holds a licence. Asking
the database each time costs milliseconds of ORM work per request (docs/benchmarks.md), so those
facts are kept in each worker process, in plain dicts: no network, no pickling.

What makes that safe is one shared number, the cache generation (a row in the database). Any
change that could make a cached fact wrong (a token revoked, a version live or revoked, a wallet
linked, a licence rolled back by a reorg, an admin edit) bumps it once the change is committed
(`cache_generation_bump`). Every process reads the generation at most once per
`HOT_CACHE_CHECK_SECONDS` (default 1 s) and drops all its entries when it moved. So a change is
seen by every worker within about that interval; the process that made it sees it at once. Each
entry also carries its own deadline (`HOT_CACHE_SECONDS`, and for licences their expiry, or
`LICENSE_UNCONFIRMED_GRANT_SECONDS` for a purchase not yet confirmed: nothing bumps when a reorg
removes one), a bound that holds even if a bump were ever missed. `HOT_CACHE_SECONDS=0` turns the caches off.

Only answers that grant something are cached by the callers; refusals always go to the source,
so a purchase or a new token works at once.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F

_MISSING = object()
_caches: list[LocalCache] = []
_lock = threading.Lock()
_state = {"generation": None, "checked_at": float("-inf"), "epoch": 0}  # epoch: local clears so far


class LocalCache:
    """A bounded dict with a deadline per entry, dropped whenever the shared generation moves."""

    def __init__(self, name: str, max_entries: int = 10_000):
        self.name = name
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        _caches.append(self)

    def get_or_load(self, key: Hashable, load: Callable[[], tuple[Any, float | None]]) -> Any:
        """The cached value for `key`, else `load()`'s. `load` returns (value, max_seconds):
        max_seconds None keeps it for HOT_CACHE_SECONDS, 0 or less does not keep it (a refusal,
        an expired licence). What `load` raises is raised and nothing is kept."""
        if not enabled():
            return load()[0]
        _check_generation()
        epoch = _state["epoch"]
        hit = self._entries.get(key, _MISSING)
        if hit is not _MISSING:
            deadline, value = hit
            if time.monotonic() < deadline:
                return value
            self._entries.pop(key, None)
        value, max_seconds = load()
        ttl = seconds() if max_seconds is None else min(seconds(), max_seconds)
        with _lock:
            # cleared while `load` read the source? then what it read may be the old state
            if ttl > 0 and epoch == _state["epoch"]:
                self._entries[key] = (time.monotonic() + ttl, value)
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return value


def seconds() -> float:
    return float(getattr(settings, "HOT_CACHE_SECONDS", 60))


def enabled() -> bool:
    return seconds() > 0


def clear_local() -> None:
    """Drop every entry of this process and forget the generation seen (tests call it between tests)."""
    _clear_entries()
    _state.update(generation=None, checked_at=float("-inf"))


def cache_generation_bump() -> None:
    """Say that cached facts may be wrong now: this process drops its caches at once, every
    process within HOT_CACHE_CHECK_SECONDS of the change being committed.

    The shared number moves in its own short statement after the commit, not inside the caller's
    transaction: holding that row's lock through a long transaction would serialise, and could
    deadlock, every writer that bumps. A crash between the commit and the bump leaves other
    processes on entries at most HOT_CACHE_SECONDS old."""
    _clear_entries()
    transaction.on_commit(_bump_shared)


def _bump_shared() -> None:
    from .models import CacheGeneration

    if not CacheGeneration.objects.filter(pk=1).update(value=F("value") + 1):
        CacheGeneration.objects.get_or_create(pk=1, defaults={"value": 1})
    _clear_entries()  # a request between the change and its commit may have cached the old state
    _state["checked_at"] = float("-inf")


def _clear_entries() -> None:
    with _lock:
        _state["epoch"] += 1
        for cache in _caches:
            cache._entries.clear()


def _check_generation() -> None:
    now = time.monotonic()
    if now - _state["checked_at"] < float(getattr(settings, "HOT_CACHE_CHECK_SECONDS", 1)):
        return
    from .models import CacheGeneration

    try:
        current = CacheGeneration.objects.filter(pk=1).values_list("value", flat=True).first() or 0
    except DatabaseError:
        # cannot tell whether anything changed: trust nothing cached (the caller then asks the
        # database itself, and reports its error)
        _clear_entries()
        return
    if current != _state["generation"]:
        _clear_entries()
        _state["generation"] = current
    _state["checked_at"] = now
