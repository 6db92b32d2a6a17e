#!/usr/bin/env python
"""Authorized `HEAD` on the Hugging Face resolve endpoint under load, beside a bare Django view
served the same way in the same run.

    make bench-deps                                  # ab (apache2-utils) and wrk
    .venv/bin/python bench/resolve_head.py           # 50 concurrent requests, 15 s per measurement
    .venv/bin/python bench/resolve_head.py --duration 5 --repeat 1   # a quick try
    .venv/bin/python bench/resolve_head.py --postgres   # on a throw-away PostgreSQL database
    .venv/bin/python bench/resolve_head.py --cprofile   # also cProfile's top functions (stderr)

A throw-away stack (temp dir, SQLite database by default, anvil child, ModelRegistry deployed,
`manage.py seed_demo`: a live model and a buyer whose licence is mirrored) and one gunicorn
(`--workers` sync workers, DEBUG off) started with DJANGO_SETTINGS_MODULE=bench.settings_bench:
the marketplace's settings with bench/bare_urls.py as URLconf, which adds `/bench/bare` (a view
returning "ok") and `/bench/drf` to every marketplace URL. So all go through the same gunicorn,
middleware and URL resolution:

- anchor: `HEAD /bench/bare`;
- context: `HEAD /bench/drf`, a DRF view with the API's token authentication and DRF's throttle
  and nothing else (the floor of an authorized DRF endpoint);
- ours: `HEAD /<vendor>/<model>/resolve/main/<file>` with the buyer's `Authorization: Bearer`
  token: token, rate limit, repo, revision and file resolution, the licence check (a mirrored
  licence), the file's headers (no Download row: a HEAD is not a download). Since c6c9e94 the
  token, the file and the licence grant are kept in each worker (registry/caching.py), so a warm
  HEAD asks the database at most once a second (the cache generation).

The load generator is ApacheBench, `ab -i` (HEAD), `--concurrency` requests in flight for
`--duration` seconds, the same Authorization header to all; percentiles from its `-e` table
(0.001 ms resolution). wrk was the first choice but wrk 4.1.0 cannot time HEAD: its HTTP parser
is not told the request was a HEAD, so it waits for the `Content-Length` bytes a HEAD answer
never carries and counts every response as a read error (the script checks this with a
one-second wrk probe and prints what wrk counted). Each measurement follows a short warm-up; the
endpoints are interleaved `--repeat` times and the run with the highest rate of each is
shown. DOWNLOAD_RATE_LIMIT is set to 1000000/s so the throttle never refuses (it still runs:
without REDIS_URL the Django cache is LocMem, so each worker keeps its own history).

Then, in this process (same database, same settings), the HEAD path is timed phase by phase over
`--profile-requests` Django test-client requests, beside the bare view, with the SQL queries of
one request. Targets: ours >= 0.5x the bare view's requests/s, and p99 <= 2x the bare view's p99.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import requests  # noqa: E402
from _stack import Stack, cleanup_on_sigterm, commit_note, free_port, load_note, throwaway_postgres, wait_http  # noqa: E402

RATE = "1000000/s"
SETTINGS = "bench.settings_bench"

WRK_LUA = """\
wrk.method = "HEAD"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKJSON {\\"requests\\": %d, \\"read_errors\\": %d}\\n", summary.requests, e.read))
end
"""


def ab(url: str, token: str, *, concurrency: int, duration: float, csv: Path) -> dict:
    """`ab -i` (HEAD) for `duration` seconds with `concurrency` requests in flight: rate and percentiles."""
    out = subprocess.run(
        ["ab", "-i", "-q", "-c", str(concurrency), "-t", f"{duration:g}", "-n", "100000000", "-s", "30",
         "-e", str(csv), "-H", f"Authorization: Bearer {token}", url],
        check=True, capture_output=True, text=True,
    )
    text = out.stdout

    def number(label: str, default: float | None = None) -> float:
        match = re.search(rf"^{re.escape(label)}:\s+([0-9.]+)", text, re.M)
        if match is None:
            if default is None:
                raise RuntimeError(f"ab printed no {label!r}:\n{text}\n{out.stderr}")
            return default
        return float(match.group(1))

    percentiles = {}
    for line in csv.read_text().splitlines()[1:]:
        pct, ms = line.split(",")
        percentiles[int(float(pct))] = float(ms)
    return {
        "rps": number("Requests per second"), "complete": int(number("Complete requests")),
        "failed": int(number("Failed requests")), "non2xx": int(number("Non-2xx responses", 0)),
        "p50_ms": percentiles[50], "p90_ms": percentiles[90], "p99_ms": percentiles[99], "max_ms": percentiles[100],
    }


def wrk_head_probe(url: str, token: str, script: Path) -> dict | None:
    """One second of wrk sending HEAD: how many responses it can count (see the module doc)."""
    if shutil.which("wrk") is None:
        return None
    script.write_text(WRK_LUA)
    out = subprocess.run(["wrk", "-t", "1", "-c", "5", "-d", "1s", "-s", str(script), "-H", f"Authorization: Bearer {token}", url],
                         capture_output=True, text=True)
    match = re.search(r"^WRKJSON (.*)$", out.stdout, re.M)
    return json.loads(match.group(1)) if match else None


# ------------------------------------------------------------------------------ in-process profile


class PhaseTimer:
    """Wraps functions (module or class attributes) to add up the time spent in each, by name."""

    def __init__(self):
        self.totals: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._undo: list = []

    def wrap(self, owner, attr: str, name: str) -> None:
        original = getattr(owner, attr)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.totals[name] += time.perf_counter() - start
                self.calls[name] += 1

        setattr(owner, attr, timed)
        self._undo.append((owner, attr, original))

    def restore(self) -> None:
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)
        self._undo.clear()


def profile_in_process(env: dict, resolve_path: str, token: str, requests_n: int, cprofile: bool) -> dict:
    """Time the HEAD path phase by phase with Django's test client (no server, no network)."""
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    import marketplace.authentication as authentication
    import marketplace.services as services
    import marketplace.services.downloads as downloads
    from bench.throttles import DownloadThrottle
    from marketplace import selectors
    from marketplace.api import huggingface

    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    for _ in range(50):  # warm caches, connections, imports
        assert client.head(resolve_path, **auth).status_code == 200
        assert client.head("/bench/bare", **auth).status_code == 200
        assert client.head("/bench/drf", **auth).status_code == 200

    def per_request(path: str) -> float:
        start = time.perf_counter()
        for _ in range(requests_n):
            client.head(path, **auth)
        return (time.perf_counter() - start) / requests_n

    bare = per_request("/bench/bare")
    drf = per_request("/bench/drf")
    ours = per_request(resolve_path)

    timer = PhaseTimer()
    # the phases of the HEAD path; names missing from the code being measured are skipped
    # (1a09cf2 replaced the three lookups by artifact_for_download and added license_mirror_hit)
    timer.wrap(authentication, "api_token_authenticate", "authentication: API token lookup (api_token_authenticate)")
    if hasattr(selectors, "artifact_for_download"):
        timer.wrap(selectors, "artifact_for_download", "artifact_for_download (file + version + model + vendor, one query)")
    if hasattr(downloads, "license_mirror_hit"):
        timer.wrap(downloads, "license_mirror_hit", "  of which license_mirror_hit (licence through a wallet subquery)")
    if hasattr(huggingface, "download_rate_wait"):
        timer.wrap(huggingface, "download_rate_wait", "rate limit (download_rate_wait: one counter in the Django cache)")
    else:
        timer.wrap(DownloadThrottle, "allow_request", "throttle (DownloadThrottle, Django cache)")
    timer.wrap(selectors, "model_get_by_repo", "model_get_by_repo (model + vendor + parent)")
    timer.wrap(selectors, "version_resolve", "version_resolve (`main` -> latest live version)")
    timer.wrap(selectors, "artifact_get", "artifact_get (the file's row)")
    # the resolve view reaches these through download_start (the module's own names are wrapped)
    owner = downloads if hasattr(downloads, "download_start") else services
    timer.wrap(owner, "download_authorize", "download_authorize (wallets + licence check)")
    timer.wrap(downloads, "license_check", "  of which license_check (License mirror query)")
    timer.wrap(owner, "download_record", "download_record (INSERT Download; GET only since 74374d9)")
    timer.wrap(huggingface, "file_response", "file_response (the file's headers)")
    try:
        start = time.perf_counter()
        for _ in range(requests_n):
            client.head(resolve_path, **auth)
        wrapped_total = (time.perf_counter() - start) / requests_n
    finally:
        timer.restore()

    with CaptureQueriesContext(connection) as queries:
        client.head(resolve_path, **auth)

    def timed_loop(fn, n: int = 500) -> float:
        for _ in range(20):
            fn()
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n

    lookups = {}
    with connection.cursor() as cursor:
        lookups["a database round trip (`SELECT 1` on a cursor)"] = timed_loop(lambda: cursor.execute("SELECT 1"))
    vendor, model, _, revision, path = resolve_path.lstrip("/").split("/", 4)
    if hasattr(selectors, "artifact_for_download"):
        from marketplace.models import Artifact

        lookups["selectors.artifact_for_download as the view calls it (kept in the process since c6c9e94)"] = timed_loop(
            lambda: selectors.artifact_for_download(vendor_slug=vendor, model_slug=model, revision=revision, path=path))
        if hasattr(selectors, "_artifact_for_download"):
            lookups["its database query, selectors._artifact_for_download (every column of 4 tables, JSON included)"] = timed_loop(
                lambda: selectors._artifact_for_download(vendor_slug=vendor, model_slug=model, revision=revision, path=path))
        lean = (
            Artifact.objects.select_related("version__model__vendor")
            .filter(path=path, version__model__vendor__slug=vendor, version__model__slug=model, version__model__status="live",
                    version__status="live", version__revoked=False)
            .order_by("-version__number")
            .only("path", "size", "sha256", "storage_name", "version__number", "version__root_digest", "version__revoked",
                  "version__model__chain_model_id", "version__model__slug", "version__model__vendor__slug",
                  "version__model__vendor__user_id", "version__model__vendor__address")
        )
        lookups["the same query with .only() the 12 columns the HEAD path reads (bench-only variant)"] = timed_loop(lambda: lean.first())
        sql, params = lean[:1].query.sql_with_params()
        with connection.cursor() as cursor:
            lookups["the same .only() query as raw SQL on a cursor (no ORM)"] = timed_loop(
                lambda: (cursor.execute(sql, params), cursor.fetchone()))
    if cprofile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(requests_n):
            client.head(resolve_path, **auth)
        profiler.disable()
        print("--- cProfile of the resolve HEAD path (in-process test client) ---", file=sys.stderr)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    return {
        "lookups": lookups,
        "bare_s": bare, "drf_s": drf, "ours_s": ours, "wrapped_s": wrapped_total, "vendor": connection.vendor,
        "phases": {name: timer.totals[name] / requests_n for name in timer.totals},
        "queries": [q["sql"] for q in queries.captured_queries],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15, help="seconds of each measurement (default 15)")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight, ab -c (default 50)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers (default 4)")
    parser.add_argument("--repeat", type=int, default=2, help="measurements of each endpoint, interleaved; the best is kept (default 2)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up load before each measurement (default 3)")
    parser.add_argument("--postgres", action="store_true", help="a throw-away PostgreSQL database (hallmark_head_bench) instead of SQLite")
    parser.add_argument("--pg-server", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server for --postgres")
    parser.add_argument("--conn-max-age", type=int, default=0,
                        help="CONN_MAX_AGE for gunicorn and the profile, set as ?conn_max_age= in DATABASE_URL (default 0: Django's and the app's default)")
    parser.add_argument("--profile-requests", type=int, default=2000, help="test-client requests for the phase timing (0: skip)")
    parser.add_argument("--cprofile", action="store_true", help="also print cProfile's top functions of the HEAD path (stderr)")
    parser.add_argument("--tmp", default=None, help="parent of the temp directory (default: the system temp dir)")
    args = parser.parse_args()
    if shutil.which("ab") is None:
        print("ab is not installed: run `make bench-deps` (Debian: apt-get install apache2-utils)", file=sys.stderr)
        return 0
    cleanup_on_sigterm()
    note = f"{commit_note()}; {load_note()}"
    runs: dict[str, list[dict]] = defaultdict(list)
    with ExitStack() as cleanup:
        database_url = cleanup.enter_context(throwaway_postgres("hallmark_head_bench", args.pg_server)) if args.postgres else None
        stack = cleanup.enter_context(Stack(prefix="hallmark-bench-head-", tmp_parent=args.tmp, database_url=database_url))
        try:
            if args.conn_max_age:  # django-environ reads it from the URL: a deployment setting, no code change
                stack.env["DATABASE_URL"] += f"?conn_max_age={args.conn_max_age}"
            port = free_port()
            endpoint = f"http://127.0.0.1:{port}"
            stack.env.update(PUBLIC_BASE_URL=endpoint, ALLOWED_HOSTS="127.0.0.1,localhost,testserver", DOWNLOAD_RATE_LIMIT=RATE)
            print(f"starting anvil, seeding, starting gunicorn in {stack.dir} ...", file=sys.stderr)
            stack.start_chain()
            seed = json.loads(stack.manage("seed_demo", "--json").strip().splitlines()[-1])
            token = seed["licensed_token"]
            file = seed["files"][0]
            resolve_path = f"/{seed['repo_id']}/resolve/main/{file['path']}"
            proc = stack.spawn("gunicorn", [
                sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(args.workers),
                "--timeout", "120", "--graceful-timeout", "5",
            ], extra_env={"DJANGO_SETTINGS_MODULE": SETTINGS})
            wait_http(f"{endpoint}/bench/bare", proc, timeout=60)
            auth = {"Authorization": f"Bearer {token}"}
            head = requests.head(endpoint + resolve_path, headers=auth, timeout=30)
            bare = requests.head(endpoint + "/bench/bare", headers=auth, timeout=30)
            if head.status_code != 200 or head.headers.get("X-Linked-Size") != str(file["size"]) or bare.status_code != 200:
                raise RuntimeError(f"sanity check: resolve HEAD {head.status_code} {dict(head.headers)}, bare HEAD {bare.status_code}")
            refused = requests.head(endpoint + resolve_path, headers={"Authorization": f"Bearer {seed['unlicensed_token']}"}, timeout=30)
            drf = requests.head(endpoint + "/bench/drf", headers=auth, timeout=30)
            if drf.status_code != 200:
                raise RuntimeError(f"sanity check: /bench/drf HEAD answered {drf.status_code}")
            urls = {"bare": endpoint + "/bench/bare", "drf": endpoint + "/bench/drf", "ours": endpoint + resolve_path}
            probe = wrk_head_probe(urls["bare"], token, stack.dir / "head.lua")

            csv = stack.dir / "percentiles.csv"
            print(f"ab -i: {args.repeat} x ({args.warmup:g}s warm-up + {args.duration:g}s) per endpoint ...", file=sys.stderr)
            for _ in range(args.repeat):
                for key, url in urls.items():
                    if args.warmup > 0:
                        ab(url, token, concurrency=args.concurrency, duration=args.warmup, csv=csv)
                    runs[key].append(ab(url, token, concurrency=args.concurrency, duration=args.duration, csv=csv))
            proc_alive = proc.poll() is None
            profile = None
            if args.profile_requests:
                print(f"timing the HEAD path in-process over {args.profile_requests} test-client requests ...", file=sys.stderr)
                profile = profile_in_process(stack.env, resolve_path, token, args.profile_requests, args.cprofile)
        except Exception:
            for name in ("gunicorn", "anvil"):
                tail = stack.log_tail(name)
                if tail:
                    print(f"--- {name} log ---\n{tail}", file=sys.stderr)
            raise

    best = {key: max(values, key=lambda r: r["rps"]) for key, values in runs.items()}
    bare, ours = best["bare"], best["ours"]
    database = "PostgreSQL (local, throw-away)" if args.postgres else "SQLite"
    print(f"{note}; {os.cpu_count()} cores; ab -i -c {args.concurrency} -t {args.duration:g} (HEAD); "
          f"gunicorn -w {args.workers} (sync), DEBUG off, {database}, CONN_MAX_AGE={args.conn_max_age}; best of {args.repeat} runs each\n")
    print("| HEAD under load | requests/s | × bare | p50 (ms) | p90 (ms) | p99 (ms) | p99 × bare | max (ms) | failed or non-2xx |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    labels = (("bare", "bare Django view `/bench/bare` (anchor)"),
              ("drf", "DRF view, same token authentication and throttle, no other work `/bench/drf` (context)"),
              ("ours", "resolve, licensed token (ours)"))
    for key, label in labels:
        r = best[key]
        print(f"| {label} | {r['rps']:,.0f} | {r['rps'] / bare['rps']:.2f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} "
              f"| {r['p99_ms']:.1f} | {r['p99_ms'] / bare['p99_ms']:.2f} | {r['max_ms']:.0f} | {r['failed'] + r['non2xx']} |")
    print()
    if args.repeat > 1:
        print("all runs (requests/s, p99 ms): " + "; ".join(
            f"{key}: " + ", ".join(f"{r['rps']:,.0f} / {r['p99_ms']:.1f}" for r in values) for key, values in runs.items()))
        print()
    if profile:
        print(f"In-process, Django test client, {args.profile_requests} HEADs each ({profile['vendor']}): bare view "
              f"{profile['bare_s'] * 1e6:,.0f} µs/request, DRF view with token authentication {profile['drf_s'] * 1e6:,.0f} µs, "
              f"resolve {profile['ours_s'] * 1e6:,.0f} µs/request "
              f"({profile['ours_s'] / profile['bare_s']:.1f}x); with the phase timers {profile['wrapped_s'] * 1e6:,.0f} µs.\n")
        print("| phase of the resolve HEAD (in-process) | µs/request | share of the extra over the bare view |")
        print("|---|---:|---:|")
        extra = profile["ours_s"] - profile["bare_s"]
        for name, seconds in sorted(profile["phases"].items(), key=lambda kv: -kv[1]):
            print(f"| {name} | {seconds * 1e6:,.0f} | {seconds / extra:.0%} |")
        timed = sum(seconds for name, seconds in profile["phases"].items() if not name.startswith(" "))
        rest = profile["wrapped_s"] - profile["bare_s"] - timed
        print(f"| the rest: dispatch (Django; DRF before 3b55223), response (with the timers' own cost) | {rest * 1e6:,.0f} | {rest / extra:.0%} |")
        print()
        print("| one lookup of the HEAD path, in-process | µs |")
        print("|---|---:|")
        for name, seconds in profile["lookups"].items():
            print(f"| {name} | {seconds * 1e6:,.0f} |")
        print()
        print(f"SQL queries of one resolve HEAD: {len(profile['queries'])}")
        print("```")
        for sql in profile["queries"]:
            print(sql if len(sql) <= 240 else sql[:237] + "...")
        print("```")
        print()
    if probe is not None:
        print(f"INFO  wrk HEAD probe (1 s, bare view): {probe['requests']} responses counted, {probe['read_errors']} read errors "
              "(wrk 4.1.0 waits for a body after HEAD; hence ab)")
    ratio, p99_ratio = ours["rps"] / bare["rps"], ours["p99_ms"] / bare["p99_ms"]
    print(f"{'PASS' if refused.status_code == 403 else 'MISS'}  a token without a licence is refused (HEAD answered {refused.status_code})")
    clean = proc_alive and all(r["failed"] == 0 and r["non2xx"] == 0 for values in runs.values() for r in values)
    print(f"{'PASS' if clean else 'MISS'}  no failed or non-2xx response under load; gunicorn alive")
    print(f"{'PASS' if ratio >= 0.5 else 'MISS'}  resolve HEAD >= 0.5x the bare view's requests/s ({ratio:.2f}x)")
    print(f"{'PASS' if p99_ratio <= 2 else 'MISS'}  resolve HEAD p99 <= 2x the bare view's p99 ({p99_ratio:.2f}x: "
          f"{ours['p99_ms']:.1f} ms vs {bare['p99_ms']:.1f} ms)")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
