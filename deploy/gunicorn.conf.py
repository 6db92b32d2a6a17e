"""Gunicorn settings for the web process: `gunicorn -c deploy/gunicorn.conf.py config.wsgi`.

Why a config file: Prometheus counts under gunicorn are kept per worker process, in files that
prometheus_client's multiprocess mode writes into PROMETHEUS_MULTIPROC_DIR; `/metrics` (served by
any one worker) adds up every file in that directory. Two hooks keep that sum right:

- `on_starting` (the master, once, before any worker exists) empties the directory: files left by
  a previous run would otherwise be added to the new run's counts forever.
- `child_exit` tells prometheus_client that a worker died, so its live gauges stop counting (its
  counters stay in the sum: a counter must never go down while the master runs).

A Celery worker and beat on the same host write into the SAME directory (the counts made in jobs:
indexer events, relayer transactions, hashing) and must therefore be started after gunicorn and
restarted whenever gunicorn is (re)started: see "Running it" in docs/operations.md (systemd
`PartOf=`/`After=` on the web unit). Restarting only the Celery worker is harmless.

Command-line options (`-b`, `-w`, ...) override the values below; the environment variables
named here override the defaults without editing the file.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

# nginx (TLS, X-Accel-Redirect for downloads) connects here; never expose gunicorn directly.
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Sync workers: each request holds one worker. 2 x cores + 1, at most 16 (every worker keeps its
# own database connection, see conn_max_age in docs/operations.md).
workers = int(os.environ.get("GUNICORN_WORKERS", min(2 * multiprocessing.cpu_count() + 1, 16)))
worker_class = "sync"
# An upload chunk (tus PATCH) on a slow link is the longest request a worker serves itself; file
# bodies of downloads are sent by nginx.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5  # behind nginx's upstream keepalive
# Bounded request line and headers: a hostile client cannot make a worker buffer megabytes of them.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
# Django logs every request itself (with the request id, see "Logs"); gunicorn's access log would
# duplicate it without the id.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# Not preloaded: the application (and prometheus_client's per-process files) is loaded in each
# worker after the fork, never shared with the master.
preload_app = False
# No max_requests: each recycled worker leaves one more file in the metrics directory, which every
# scrape then reads.
max_requests = 0
# No control socket (gunicorn 27's `gunicornc` interface, unused here): its default path is one
# per user (~/.gunicorn/gunicorn.ctl), so a second instance on the host would take over the first's.
control_socket_disable = True

METRICS_FILE_SUFFIX = ".db"


def metrics_directory() -> Path:
    """The multiprocess directory, or a refusal: without it every worker would count alone and
    `/metrics` would show whichever worker answered the scrape."""
    raw = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if not raw:
        raise RuntimeError(
            "PROMETHEUS_MULTIPROC_DIR is not set: set it to a directory only Hallmark writes to "
            "(e.g. /var/lib/hallmark/metrics), the same for the web and the Celery worker on this host; "
            "see 'Running it' in docs/operations.md"
        )
    path = Path(raw)
    if not path.is_absolute():
        raise RuntimeError("PROMETHEUS_MULTIPROC_DIR must be an absolute path")
    return path


def empty_metrics_directory(path: Path) -> int:
    """Remove the metric files (only `*.db` directly inside it, the names prometheus_client writes,
    so a mistaken setting such as `/` or a home directory loses nothing else). Returns how many."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    removed = 0
    for entry in path.iterdir():
        if entry.suffix == METRICS_FILE_SUFFIX and entry.is_file() and not entry.is_symlink():
            entry.unlink()
            removed += 1
    return removed


def on_starting(server) -> None:
    path = metrics_directory()
    if server.master_pid:
        # a re-executed master (USR2 binary upgrade): the old master's workers still write there
        server.log.info("metrics directory %s kept (upgrade of a running master)", path)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return
    removed = empty_metrics_directory(path)
    server.log.info("metrics directory %s emptied (%d files)", path, removed)


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
