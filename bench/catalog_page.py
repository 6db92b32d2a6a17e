#!/usr/bin/env python
"""The catalog page beside its API: GET /models (the server-rendered catalog, 24 cards) and
GET /api/v1/models (the anchor: same selector, same filters) over 1,000 models on PostgreSQL.

    .venv/bin/python bench/catalog_page.py                 # 1,000 models, 200 requests of each
    .venv/bin/python bench/catalog_page.py --models 200 --runs 30   # a quick try

A throw-away database (`--database`, default hallmark_catalog_bench; its name must contain
"bench": it is dropped before and after) is created on `--pg-server` and migrated. For this
benchmark only, rows are written directly (bulk_create), as the indexer's projections and the
catalog refresh would have left them (write_catalog below, also used by the page's tests):
vendors, live listed models with catalog facts, each with its latest live version (signed by
its vendor, a few by another key) and 1-3 files named by that version's manifest.

Then, in this process (DEBUG off, the Django test client, one persistent connection), each
request runs `--runs` times after 5 warm-ups, for several filter sets; p50 and p95 of the page
and of the API are printed, with the ratio page / API. The page's extra work over the API:
rendering 24 cards, the filter choices (two small queries), each card's version and files
(two queries for the whole page).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import secrets
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._stack import cleanup_on_sigterm, commit_note, load_note, postgres_reachable, throwaway_postgres  # noqa: E402

ARCHITECTURES = ["llama", "qwen2", "phi3", "gemma2", "mistral", "smollm"]
QUANTIZATIONS = ["Q4_K_M", "Q5_K_M", "Q8_0", "F16", "int8"]
FORMATS = [",gguf,", ",safetensors,", ",onnx,", ",gguf,safetensors,"]
PARAMETERS = [135, 360, 500, 1_100, 1_500, 2_000, 3_000, 3_800, 7_000, 8_000]
DURATIONS = [0, 0, 30 * 86400, 365 * 86400]

FILTER_SETS = {
    "none": {},
    "gguf_q4_1b": {"format": "gguf", "quantization": "Q4_K_M", "min_parameters": str(10**9), "ordering": "-parameters"},
    "text_llama": {"q": "llama", "ordering": "newest"},
    "price_timed": {"min_price_wei": str(10**16), "max_price_wei": str(10**17), "license": "timed", "ordering": "price"},
}


def digest(*parts) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


def write_catalog(*, models: int, vendors: int = 20, seed: int = 7, prefix: str = "bench") -> list:
    """Write `models` live, listed catalog models straight into the database (bulk_create): each
    with its latest live version and its files. Returns the Model rows."""
    from django.contrib.auth import get_user_model

    from marketplace.models import Artifact, Model, Vendor, Version

    rng = random.Random(seed)
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"{prefix}-vendor-{j}") for j in range(vendors)]
    )
    vendor_rows = Vendor.objects.bulk_create([
        Vendor(user=u, slug=f"{prefix}-v{j}", display_name=f"Vendor {j}", address="0x" + digest(prefix, "vendor", j)[:40])
        for j, u in enumerate(users)
    ])
    rows = []
    for i in range(models):
        arch = rng.choice(ARCHITECTURES)
        rows.append(Model(
            vendor=vendor_rows[i % vendors], slug=f"{arch}-{i:04d}", name=f"{arch.title()} model {i}",
            description=f"A {arch} model for edge devices, number {i}.", chain_model_id="0x" + digest(prefix, "model", i),
            price_wei=rng.choice([5, 10, 20, 50, 100, 250]) * 10**15, license_duration=rng.choice(DURATIONS),
            listed=True, status=Model.Status.LIVE, latest_version_number=rng.randint(1, 5),
            architecture=arch, quantization=rng.choice(QUANTIZATIONS), file_formats=rng.choice(FORMATS),
            parameter_count=rng.choice(PARAMETERS) * 10**6,
        ))
    rows = Model.objects.bulk_create(rows)
    versions, files = [], []
    for i, m in enumerate(rows):
        names = [(f"model-{k}.gguf", digest(prefix, "file", i, k), rng.randint(10**6, 4 * 10**9)) for k in range(rng.randint(1, 3))]
        files.append(names)
        versions.append(Version(
            model=m, number=m.latest_version_number, status=Version.Status.LIVE, root_digest=digest(prefix, "root", i),
            signer=m.vendor.address if i % 20 else "0x" + digest(prefix, "other", i)[:40],
            manifest={"predicate": {"resources": [{"name": n, "digest": d} for n, d, _ in names]}},
        ))
    versions = Version.objects.bulk_create(versions)
    Artifact.objects.bulk_create([
        Artifact(version=v, path=n, storage_name=f"{prefix}/{d}", size=s, sha256=d, file_format="gguf")
        for v, names in zip(versions, files, strict=True) for n, d, s in names
    ])
    return rows


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, int(round(pct / 100 * len(ordered) + 0.5)) - 1))]


def measure(fn, runs: int, warmup: int = 5) -> dict:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return {"p50": percentile(samples, 50) * 1000, "p95": percentile(samples, 95) * 1000, "mean": statistics.fmean(samples) * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1_000)
    parser.add_argument("--vendors", type=int, default=50)
    parser.add_argument("--runs", type=int, default=200, help="timed requests of each (default 200)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", default="hallmark_catalog_bench", help="throw-away database name; must contain 'bench'")
    parser.add_argument("--pg-server", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    if "bench" not in args.database:
        parser.error("--database: it is dropped and created; its name must contain 'bench'")
    note = f"{commit_note()}; {load_note()}"
    cleanup_on_sigterm()
    if not postgres_reachable(args.pg_server):
        return 0
    with throwaway_postgres(args.database, args.pg_server) as url:
        return run(args, url, note)


def run(args, url: str, note: str) -> int:
    os.environ.update(DATABASE_URL=url, DJANGO_SETTINGS_MODULE="config.settings", DEBUG="0", REDIS_URL="",
                      SECRET_KEY="hallmark-bench-" + secrets.token_hex(16), LOG_LEVEL="WARNING",
                      ALLOWED_HOSTS="testserver", API_RATE_LIMIT="100000000/min", SECURE_SSL_REDIRECT="0")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    print(f"migrating {url} ...", file=sys.stderr)
    call_command("migrate", interactive=False, verbosity=0)
    print(f"writing {args.models:,} models ...", file=sys.stderr)
    write_catalog(models=args.models, vendors=args.vendors, seed=args.seed)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    client = Client()

    def get(path: str, query: dict):
        def request():
            response = client.get(path, query)
            assert response.status_code == 200, (path, query, response.status_code)
            return response
        return request

    print(f"# catalog page vs API, {args.models:,} models, {args.runs} requests each ({note})")
    print(f"{'filters':<14} {'page p50':>9} {'page p95':>9} {'api p50':>8} {'api p95':>8} {'p50 ratio':>9} {'matches':>8}")
    for name, query in FILTER_SETS.items():
        matches = get("/api/v1/models", query)().json()["count"]
        page = measure(get("/models", query), args.runs)
        api = measure(get("/api/v1/models", {**query, "page_size": "24"}), args.runs)
        print(f"{name:<14} {page['p50']:>7.1f}ms {page['p95']:>7.1f}ms {api['p50']:>6.1f}ms {api['p95']:>6.1f}ms "
              f"{page['p50'] / api['p50']:>8.2f}x {matches:>8,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
