"""Ranged downloads under real gunicorn: the bytes are exactly the window a Range names, at the
start, in the middle and at the end of the file, and a whole-file GET (sendfile) on the same
kept-alive connection is still whole; each answer is recorded with what it sent, and receipted.
(Ranged answers are streamed through Python: sending them with sendfile made `hallmark pull`
slower here, docs/benchmarks.md "Pull at wire speed".)"""

from __future__ import annotations

import hashlib

import pytest
import requests
from django.conf import settings

from marketplace.models import Artifact, Download, Receipt
from tests.conftest import free_port, wait_for
from tests.telemetry.test_gunicorn_metrics import ROOT, server_env, stop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def gunicorn(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    port = free_port()
    env = dict(
        server_env(None), MEDIA_ROOT=str(settings.MEDIA_ROOT), SECURE_SSL_REDIRECT="0", ALLOWED_HOSTS="127.0.0.1,localhost",
        DOWNLOAD_RATE_LIMIT="1000000/min", API_RATE_LIMIT="1000000/min",
    )
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("gunicorn")), "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1", "--timeout", "60"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return requests.get(f"{url}/healthz", timeout=10).status_code == 200
        except requests.RequestException:  # not listening yet, or still loading the application
            return False

    wait_for(up, timeout=60, message="gunicorn")
    yield url
    stop(proc)


def test_a_range_is_sent_as_exactly_its_window_of_the_file(gunicorn, live_version, vendor):
    artifact = Artifact.objects.get(version=live_version, path="model.gguf")
    data = (settings.MEDIA_ROOT / artifact.storage_name).read_bytes()
    assert len(data) == artifact.size > 3000
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {vendor.token}"
    url = f"{gunicorn}/acme/tiny/resolve/main/model.gguf"
    size = len(data)
    windows = [(0, 99), (1000, 2047), (size - 500, size - 1)]
    for first, last in windows:
        answer = session.get(url, headers={"Range": f"bytes={first}-{last}"}, timeout=30)
        assert answer.status_code == 206, answer.text[:300]
        assert answer.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert answer.content == data[first : last + 1]
    suffix = session.get(url, headers={"Range": "bytes=-10"}, timeout=30)
    assert suffix.status_code == 206 and suffix.content == data[-10:]
    whole = session.get(url, timeout=30)  # the same kept-alive connection: nothing left over from a window
    assert whole.status_code == 200 and hashlib.sha256(whole.content).hexdigest() == artifact.sha256

    # each answer recorded with what it sent, and a receipt for its window
    # (recorded once the server is done with the body: the last one may land just after we read it)
    expected = {(0, 100), (1000, 1048), (size - 500, 500), (size - 10, 10), (None, size)}

    def recorded() -> set:
        return set(Download.objects.filter(method="GET", path="model.gguf").values_list("range_start", "bytes_sent"))

    wait_for(lambda: recorded() == expected, timeout=30, message=f"the downloads recorded as {expected}")
    ranges = {(r.range_start, r.range_end) for r in Receipt.objects.all()}
    assert ranges == {(0, 100), (1000, 2048), (size - 500, size), (size - 10, size), (0, size)}
