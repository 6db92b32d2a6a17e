"""Readiness and the values `/metrics` reads when it is scraped.

Readiness asks each dependency one cheap question with a short timeout
(READINESS_TIMEOUT_SECONDS): the database a `SELECT 1`, the broker a PING, the chain its id, the
registry whether code sits at its address, the relayer whether its wallet can pay. The answer
is kept READINESS_CACHE_SECONDS per process, so a flood of probes costs the dependencies
nothing. What it says is public: states, latencies and fixed sentences, never a URL, a host
name or an exception text (those can hold credentials); the log has the details.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection
from django.db.models import Count, Min, Sum
from eth_utils import to_checksum_address
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from telemetry import metrics

from . import chain
from .chain import ChainMisconfigured, chain_errors
from .models import ChainTransaction, IndexerCursor, SkippedEvent

logger = logging.getLogger(__name__)

OK, DEGRADED, FAIL, SKIPPED = "ok", "degraded", "fail", "skipped"
# kombu's Redis transport keeps a queue's higher priorities under "<queue>\x06\x16<n>"
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | degraded | fail | skipped
    latency_ms: float
    detail: str = ""

    def as_dict(self) -> dict:
        answer = {"status": self.status, "latency_ms": round(self.latency_ms, 1)}
        if self.detail:
            answer["detail"] = self.detail
        return answer


@dataclass(frozen=True)
class Readiness:
    checks: list[Check] = field(default_factory=list)

    @property
    def status(self) -> str:
        states = {c.status for c in self.checks}
        return FAIL if FAIL in states else DEGRADED if DEGRADED in states else OK

    @property
    def ready(self) -> bool:
        return self.status != FAIL

    def as_dict(self) -> dict:
        return {"status": self.status, "checks": {c.name: c.as_dict() for c in self.checks}}


def _timed(name: str, probe: Callable[[], tuple[str, str]]) -> Check:
    started = time.perf_counter()
    try:
        status, detail = probe()
    except Exception as exc:  # a probe never raises: it reports
        logger.warning("readiness check %s failed: %s: %s", name, exc.__class__.__name__, exc)
        status, detail = FAIL, _FAILURE_TEXT.get(name, "does not answer")
    return Check(name, status, (time.perf_counter() - started) * 1000, detail)


_FAILURE_TEXT = {
    "database": "the database does not answer",
    "broker": "the task broker does not answer",
    "chain": "the chain RPC does not answer",
    "registry": "the registry contract cannot be read",
    "relayer": "the relayer wallet cannot be read",
}


def _timeout() -> float:
    return float(settings.READINESS_TIMEOUT_SECONDS)


def _database() -> tuple[str, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        connection.close()  # a broken connection is not reused: the next probe connects afresh
        raise
    return OK, ""


def _broker() -> tuple[str, str]:
    url = settings.CELERY_BROKER_URL
    if url.startswith("memory://"):
        return SKIPPED, "no broker configured: tasks run in the web process"
    if url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        client = redis.Redis.from_url(url, socket_timeout=_timeout(), socket_connect_timeout=_timeout())
        try:
            client.ping()
        finally:
            client.close()
        return OK, ""
    from kombu import Connection

    with Connection(url, connect_timeout=_timeout()) as conn:
        conn.ensure_connection(max_retries=1, timeout=_timeout())
    return OK, ""


def _chain() -> tuple[str, str]:
    with chain_errors():
        actual = int(chain.web3(timeout=_timeout()).eth.chain_id)
    if actual != settings.CHAIN_ID:
        return FAIL, f"the chain RPC serves chain id {actual}, but CHAIN_ID is {settings.CHAIN_ID}"
    return OK, ""


def _registry() -> tuple[str, str]:
    try:
        address = chain.registry_address()
    except ChainMisconfigured:
        return FAIL, "no registry address configured (REGISTRY_ADDRESS or a deployment record)"
    with chain_errors():
        code = chain.web3(timeout=_timeout()).eth.get_code(to_checksum_address(address))
    if not code:
        return FAIL, "no contract code at the registry address on this chain"
    return OK, ""


def _relayer() -> tuple[str, str]:
    from .selectors import relayer_funding

    funding = relayer_funding()
    if funding.funded is None:
        return SKIPPED, "no relayer key configured" if not funding.address else "the relayer balance could not be read"
    if not funding.funded:
        return DEGRADED, "waiting for the operator to fund the relayer: new chain transactions are held"
    return OK, ""


_CHECKS: tuple[tuple[str, Callable[[], tuple[str, str]]], ...] = (
    ("database", _database),
    ("broker", _broker),
    ("chain", _chain),
    ("registry", _registry),
    ("relayer", _relayer),
)
_cache_lock = threading.Lock()
_cached: tuple[float, Readiness] | None = None


def readiness(*, fresh: bool = False) -> Readiness:
    """Every check, in order; a chain that does not answer skips the checks that need it."""
    global _cached
    keep = float(settings.READINESS_CACHE_SECONDS)
    with _cache_lock:
        if not fresh and _cached is not None and keep > 0 and time.monotonic() - _cached[0] < keep:
            return _cached[1]
    checks: list[Check] = []
    for name, probe in _CHECKS:
        if name in ("registry", "relayer") and any(c.name == "chain" and c.status == FAIL for c in checks):
            checks.append(Check(name, FAIL if name == "registry" else SKIPPED, 0.0, "not checked: the chain does not answer"))
            continue
        checks.append(_timed(name, probe))
    if any(c.name == "chain" and c.status == FAIL for c in checks):
        metrics.CHAIN_FAILURES.labels(operation="readiness").inc()
    result = Readiness(checks)
    with _cache_lock:
        _cached = (time.monotonic(), result)
    return result


# ------------------------------------------------------------------ values read when scraped


def collect() -> Iterable[Metric]:
    """The outbox, the indexer, the relayer, the queues and readiness, as they are now."""
    yield from _outbox()
    yield from _chain_values()
    yield from _queues()
    yield from _readiness_values()


def _outbox() -> Iterable[Metric]:
    rows = GaugeMetricFamily("hallmark_outbox_transactions", "Outbox rows by state", labels=["state"])
    counts = dict(ChainTransaction.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    for state in ChainTransaction.Status.values:
        rows.add_metric([state], counts.get(state, 0))
    yield rows
    pending = (ChainTransaction.Status.QUEUED, ChainTransaction.Status.SIGNED)
    oldest = ChainTransaction.objects.filter(status__in=pending).aggregate(at=Min("created_at"))["at"]
    age = max(0.0, (datetime.now(UTC) - oldest).total_seconds()) if oldest else 0.0
    yield GaugeMetricFamily(
        "hallmark_outbox_oldest_pending_age_seconds", "Age of the oldest queued or signed outbox row (0: none)", value=age
    )
    spent = ChainTransaction.objects.filter(fee_wei__isnull=False).aggregate(total=Sum("fee_wei"))["total"] or 0
    yield CounterMetricFamily(
        "hallmark_relayer_gas_spent_wei", "Fees of every mined outbox transaction (reverted ones too), in wei", value=int(spent)
    )


def _chain_values() -> Iterable[Metric]:
    try:
        address = chain.registry_address()
    except ChainMisconfigured:
        address = ""
    cursor = IndexerCursor.objects.filter(contract=address).first() if address else None
    indexed = cursor.block_number if cursor is not None and cursor.block_number >= 0 else None
    yield GaugeMetricFamily(
        "hallmark_indexer_skipped_events",
        "Registry events a projection skipped and nobody re-applied yet",
        value=SkippedEvent.objects.filter(event__contract=address).count() if address else 0,
    )
    try:
        with chain_errors():
            w3 = chain.web3(timeout=_timeout())
            head_block = w3.eth.get_block("latest")
            indexed_block = w3.eth.get_block(indexed) if indexed is not None else None
    except Exception as exc:  # a scrape never fails because the chain does (ChainError or a garbled answer)
        logger.info("metrics: the chain did not answer: %s", exc.__class__.__name__)
        metrics.CHAIN_FAILURES.labels(operation="metrics").inc()
        head_block = indexed_block = None
    if head_block is not None:
        head = int(head_block["number"])
        yield GaugeMetricFamily("hallmark_indexer_head_block", "The chain's latest block", value=head)
        if indexed is not None:
            yield GaugeMetricFamily("hallmark_indexer_indexed_block", "The last block the mirror holds", value=indexed)
            yield GaugeMetricFamily("hallmark_indexer_lag_blocks", "Blocks between the head and the mirror", value=head - indexed)
            seconds = int(head_block["timestamp"]) - int(indexed_block["timestamp"]) if indexed_block is not None else 0
            yield GaugeMetricFamily(
                "hallmark_indexer_lag_seconds", "Head block time minus the mirror's last block time", value=max(0, seconds)
            )
    yield from _relayer_values()


def _relayer_values() -> Iterable[Metric]:
    from .selectors import relayer_funding

    try:
        funding = relayer_funding()
    except Exception as exc:
        logger.info("metrics: the relayer funding could not be read: %s", exc.__class__.__name__)
        return
    yield GaugeMetricFamily("hallmark_relayer_min_balance_wei", "RELAYER_MIN_BALANCE_WEI", value=int(funding.min_balance_wei))
    if funding.balance_wei is not None:
        yield GaugeMetricFamily("hallmark_relayer_balance_wei", "The relayer wallet's balance", value=int(funding.balance_wei))
    if funding.funded is not None:
        yield GaugeMetricFamily(
            "hallmark_relayer_funded", "1 when the relayer can pay for new transactions, 0 when it holds them", value=int(funding.funded)
        )


def _queue_names() -> list[str]:
    names = [settings.CELERY_TASK_DEFAULT_QUEUE]
    routes = getattr(settings, "CELERY_TASK_ROUTES", None) or {}
    if isinstance(routes, dict):
        names += [r["queue"] for r in routes.values() if isinstance(r, dict) and r.get("queue")]
    return sorted(set(names))


def _queues() -> Iterable[Metric]:
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return
    import redis

    family = GaugeMetricFamily("hallmark_celery_queue_length", "Tasks waiting in the broker, by queue", labels=["queue"])
    client = redis.Redis.from_url(url, socket_timeout=_timeout(), socket_connect_timeout=_timeout())
    try:
        pipe = client.pipeline()
        names = _queue_names()
        for name in names:
            for suffix in _PRIORITY_SUFFIXES:
                pipe.llen(name + suffix)
        lengths = pipe.execute()
    except Exception as exc:
        logger.info("metrics: the broker did not answer: %s", exc.__class__.__name__)
        return
    finally:
        client.close()
    per = len(_PRIORITY_SUFFIXES)
    for index, name in enumerate(names):
        family.add_metric([name], sum(int(n) for n in lengths[index * per:(index + 1) * per]))
    yield family


def _readiness_values() -> Iterable[Metric]:
    result = readiness()
    per_check = GaugeMetricFamily(
        "hallmark_readiness_check", "1 when a readiness check passes (ok, degraded or skipped), 0 when it fails", labels=["check"]
    )
    for check in result.checks:
        per_check.add_metric([check.name], 0 if check.status == FAIL else 1)
    yield per_check
    yield GaugeMetricFamily("hallmark_ready", "1 when /readyz answers 200", value=int(result.ready))
