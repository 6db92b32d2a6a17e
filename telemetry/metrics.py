"""Every Prometheus metric family the marketplace exports, defined once.

Two kinds:

- counted where it happens (requests, downloads, licence checks, chain failures, indexer events,
  relayer transactions, hashing): the families below. Under gunicorn (and a Celery worker on the
  same host) set PROMETHEUS_MULTIPROC_DIR to one empty directory for all of them before they
  start: each process writes its own file there and `/metrics` adds them up
  (prometheus_client's multiprocess mode; see docs/operations.md). Without it the counts are the
  answering process's own (`make run`, tests).
- read when scraped (outbox rows, indexer lag, relayer balance, queue lengths, readiness): the
  apps register a collector with `register_scrape_collector`, called only when `/metrics` is read.

Label values are always from a fixed, small set (never a path, an address or a user-supplied
string): a hostile client must not be able to grow the number of series.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

PREFIX = "hallmark_"
CODE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")

# requests, by endpoint family (telemetry.http.family_of)
HTTP_REQUESTS = Counter(
    "hallmark_http_requests", "HTTP requests answered, by endpoint family, method and status code", ["family", "method", "status"]
)
HTTP_REQUEST_SECONDS = Histogram(
    "hallmark_http_request_duration_seconds",
    "Time from the request reaching Django to the response leaving it (streamed bodies excluded)",
    ["family"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
# downloads: outcome granted | refused; reason: "ok" when granted, else the error code sent
DOWNLOADS = Counter("hallmark_downloads", "File downloads decided, by outcome and refusal reason", ["outcome", "reason"])
# licence checks of downloads: source cache (a grant this process keeps) | owner (the vendor) |
# mirror | chain | unconfirmed (a purchase not yet CONFIRMATIONS deep); result held | not_held |
# unavailable (the chain did not answer and nothing was mirrored: refused, 503)
LICENCE_CHECKS = Counter("hallmark_licence_checks", "Licence checks answered, by where the answer came from", ["source", "result"])
# chain failures: operation licence_check | relayer | indexer | purchase | readiness | other
CHAIN_FAILURES = Counter("hallmark_chain_failures", "Chain RPC calls that failed (node down, timeout, wrong chain)", ["operation"])
INDEXER_RUNS = Counter("hallmark_indexer_runs", "Indexer runs, by outcome (ok | chain_unavailable | error)", ["outcome"])
INDEXER_EVENTS_APPLIED = Counter("hallmark_indexer_events_applied", "Registry events applied to the mirror, by event name", ["event"])
INDEXER_EVENTS_SKIPPED = Counter(
    "hallmark_indexer_events_skipped", "Registry events a projection could not apply (poison events), by event name", ["event"]
)
RELAYER_TRANSACTIONS = Counter(
    "hallmark_relayer_transactions", "Outbox transactions finished by the relayer, by outcome (confirmed | failed)", ["outcome"]
)
RELAYER_FUNDING_REFUSALS = Counter(
    "hallmark_relayer_funding_refusals", "Outbox rows the relayer left queued because its wallet was below RELAYER_MIN_BALANCE_WEI"
)
VERSION_PROCESSING_SECONDS = Histogram(
    "hallmark_version_processing_seconds",
    "Hashing and inspection of a version's files in the sandbox, by outcome (ok | rejected | error)",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
)
VERSION_REJECTIONS = Counter("hallmark_version_rejections", "Versions rejected at hashing or inspection, by error code", ["code"])
VERSIONS_LIVE = Counter("hallmark_versions_live", "Versions that went live (their publication confirmed on chain)")
# download receipts (docs/recorder.md): one per granted GET; batches whose root the chain holds
RECEIPTS_ISSUED = Counter("hallmark_receipts_issued", "Download receipts issued (one per granted GET of a file)")
RECEIPT_BATCHES_ANCHORED = Counter(
    "hallmark_receipt_batches_anchored", "Receipt batches whose Merkle root was anchored on chain (anchorReceipts confirmed)"
)
# a purchase is counted where it becomes a fact: hallmark_indexer_events_applied{event="LicensePurchased"}

ScrapeCollector = Callable[[], Iterable[Metric]]
_scrape_collectors: list[ScrapeCollector] = []


def register_scrape_collector(collect: ScrapeCollector) -> ScrapeCollector:
    """Add a function called on every scrape that yields Metric families (GaugeMetricFamily,
    CounterMetricFamily) read at that moment. Idempotent for the same function."""
    if collect not in _scrape_collectors:
        _scrape_collectors.append(collect)
    return collect


def code_label(code: str) -> str:
    """An error code as a label value: codes are identifiers we chose; anything else is `other`."""
    return code if code and CODE_RE.match(code) else "other"


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


class _Scraped:
    """Adapts the registered scrape collectors to prometheus_client's collector protocol."""

    def collect(self) -> Iterable[Metric]:
        for collect in list(_scrape_collectors):
            yield from collect()


def render() -> bytes:
    """The exposition text: every process's counts (multiprocess mode) or this process's, then the
    values read now."""
    if multiprocess_dir():
        counted = CollectorRegistry()
        MultiProcessCollector(counted)
        text = generate_latest(counted)
    else:
        from prometheus_client import REGISTRY

        text = generate_latest(REGISTRY)
    scraped = CollectorRegistry(auto_describe=False)
    scraped.register(_Scraped())  # type: ignore[arg-type]
    return text + generate_latest(scraped)
