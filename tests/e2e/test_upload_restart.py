"""An upload killed mid-chunk with its server resumes, after a restart, from the last stored byte."""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests
from django.conf import settings
from django.db import connection
from tusclient import client as tus
from tusclient.uploader import Uploader

from marketplace import services
from marketplace.models import Artifact
from tests.conftest import free_port, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
CHUNK = 256 * 1024


def start_server(port: int, media_root: Path) -> subprocess.Popen:
    db = connection.settings_dict
    assert connection.vendor == "postgresql", "this test needs DATABASE_URL to point at PostgreSQL (make test does)"
    env = dict(
        os.environ,
        DATABASE_URL=f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        MEDIA_ROOT=str(media_root),
        CHAIN_RPC_URL=settings.CHAIN_RPC_URL,
        REGISTRY_ADDRESS=settings.REGISTRY_ADDRESS,
        CELERY_TASK_ALWAYS_EAGER="1",
    )
    env.pop("REDIS_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1", "--timeout", "120"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    wait_for(lambda: _answers(port), timeout=30, message="gunicorn")
    return proc


def _answers(port: int) -> bool:
    try:
        return requests.options(f"http://127.0.0.1:{port}/api/v1/uploads/00000000-0000-0000-0000-000000000000", timeout=5).status_code == 204
    except requests.RequestException:  # not listening yet, or its first request is still loading Django
        return False


def kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_upload_resumes_after_the_server_is_killed_mid_chunk(live_version, vendor, settings, tmp_path):
    draft = services.version_create(model=live_version.model)
    data = os.urandom(4 * CHUNK + 1000)
    source = tmp_path / "big.gguf"
    source.write_bytes(data)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    creation = f"{base}/api/v1/vendor/models/{draft.model.slug}/versions/{draft.pk}/uploads"
    auth = {"Authorization": f"Bearer {vendor.token}"}

    server = start_server(port, settings.MEDIA_ROOT)
    try:
        uploader = Uploader(file_path=str(source), client=tus.TusClient(creation, headers=auth), metadata={"filename": "big.gguf"}, chunk_size=CHUNK)
        uploader.upload(stop_at=2 * CHUNK)
        url = uploader.url

        # a third chunk is cut off: half its bytes sent, then the server dies
        path = urlparse(url).path
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                (f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {vendor.token}\r\n"
                 f"Tus-Resumable: 1.0.0\r\nUpload-Offset: {2 * CHUNK}\r\nContent-Type: application/offset+octet-stream\r\n"
                 f"Content-Length: {CHUNK}\r\n\r\n").encode()
            )
            sock.sendall(b"\xee" * (CHUNK // 2))  # not the file's bytes: they must never be kept
            time.sleep(0.5)
            kill(server)
    finally:
        if server.poll() is None:
            kill(server)

    server = start_server(port, settings.MEDIA_ROOT)
    try:
        head = requests.head(url, headers={**auth, "Tus-Resumable": "1.0.0"})
        assert int(head.headers["Upload-Offset"]) == 2 * CHUNK
        resumed = Uploader(file_path=str(source), client=tus.TusClient(creation, headers=auth), url=url, chunk_size=CHUNK)
        assert resumed.offset == 2 * CHUNK
        resumed.upload()
    finally:
        kill(server)
    artifact = Artifact.objects.get(version=draft, path="big.gguf")
    stored = Path(settings.MEDIA_ROOT) / artifact.storage_name
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
