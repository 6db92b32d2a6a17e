"""Under real gunicorn with deploy/gunicorn.conf.py, `/metrics` adds up every worker's counts.

Without prometheus_client's multiprocess mode each worker would answer a scrape with its own
counts only, and the numbers would jump with whichever worker Prometheus reached. The test makes
the split certain: one worker is held by a request whose headers are not finished, so the other
one serves every /healthz; then the held request completes on the first. Whichever worker answers
the scrape, the total can only be right if both workers' files were read."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "gunicorn.conf.py"
GUNICORN = Path(sys.executable).with_name("gunicorn")
REQUESTS = 25


def server_env(metrics_dir: Path | None) -> dict[str, str]:
    db = connection.settings_dict
    assert connection.vendor == "postgresql", "this test needs DATABASE_URL to point at PostgreSQL (make test does)"
    env = dict(
        os.environ,
        DATABASE_URL=f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        CHAIN_RPC_URL=settings.CHAIN_RPC_URL,
        METRICS_ALLOW_LOOPBACK="1",
        READINESS_TIMEOUT_SECONDS="1",
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("prometheus_multiproc_dir", None)
    if metrics_dir is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    return env


def start_gunicorn(port: int, metrics_dir: Path, log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(GUNICORN), "-c", str(CONFIG), "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2", "--timeout", "60"],
            cwd=ROOT, env=server_env(metrics_dir), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def accepted(server_port: int, client_port: int) -> bool:
    """Whether a worker has accept()ed the connection from client_port: until then the kernel
    holds it in the listen queue and /proc/net/tcp shows it without an inode."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port and inode != "0":
            return True
    return False


def health_requests(text: str) -> float:
    for family in text_string_to_metric_families(text):
        if family.name == "hallmark_http_requests":
            return sum(s.value for s in family.samples if s.name == "hallmark_http_requests_total" and s.labels.get("family") == "health")
    raise AssertionError("no hallmark_http_requests family in /metrics")


def test_metrics_add_up_both_workers_and_a_stale_directory_is_emptied(tmp_path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"left by a previous run, unreadable")  # would break the scrape if kept
    (metrics_dir / "notes.txt").write_text("not ours")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "gunicorn.log"
    server = start_gunicorn(port, metrics_dir, log)
    held = None
    try:
        answered = 0

        def healthy() -> bool:
            nonlocal answered
            assert server.poll() is None, log.read_text()[-3000:]
            try:
                ok = requests.get(f"{base}/healthz", timeout=10).status_code == 200
            except requests.RequestException:  # not listening yet
                return False
            answered += ok
            return ok

        wait_for(healthy, timeout=60, message="gunicorn")
        # no per-user control socket a second instance on the host would take over
        assert "Control socket listening" not in log.read_text()
        assert not (metrics_dir / "counter_1.db").exists()
        assert (metrics_dir / "notes.txt").read_text() == "not ours"

        # worker A: a request whose headers are not finished
        held = socket.create_connection(("127.0.0.1", port), timeout=30)
        held.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        wait_for(lambda: accepted(port, held.getsockname()[1]), timeout=30, message="a worker to accept the held request")

        # worker B: every one of these
        for _ in range(REQUESTS):
            assert requests.get(f"{base}/healthz", timeout=10, headers={"Connection": "close"}).status_code == 200

        # worker A finishes its request
        held.sendall(b"Connection: close\r\n\r\n")
        reply = b""
        while chunk := held.recv(65536):
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200"), reply[:100]

        scrape = requests.get(f"{base}/metrics", timeout=30)
        assert scrape.status_code == 200, scrape.status_code
        assert health_requests(scrape.text) == answered + REQUESTS + 1
        pids = {name.rsplit("_", 1)[-1].removesuffix(".db") for name in os.listdir(metrics_dir) if name.startswith("counter_")}
        assert len(pids) >= 2, sorted(os.listdir(metrics_dir))
    finally:
        if held is not None:
            held.close()
        stop(server)


def test_gunicorn_refuses_to_start_without_a_metrics_directory():
    result = subprocess.run(
        [str(GUNICORN), "-c", str(CONFIG), "config.wsgi", "-b", f"127.0.0.1:{free_port()}", "-w", "1"],
        cwd=ROOT, env=server_env(None), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "PROMETHEUS_MULTIPROC_DIR is not set" in result.stderr
