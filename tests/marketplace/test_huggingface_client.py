"""Unmodified `huggingface_hub` against a live marketplace: download, snapshot, errors."""

import hashlib

import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

from tests.conftest import purchase, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def vendor(chain, make_party):
    return make_party("vendor", chain.keys[1], vendor_slug="acme")


def test_hf_hub_download_and_snapshot_with_a_licensed_token(chain, live_server, live_version, make_party, gguf_file, tmp_path):
    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, buyer.key)
    expected = hashlib.sha256(gguf_file.read_bytes()).hexdigest()

    path = hf_hub_download("acme/tiny", "model.gguf", endpoint=live_server.url, token=buyer.token, cache_dir=tmp_path / "a")
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == expected
    folder = snapshot_download("acme/tiny", revision="v1", endpoint=live_server.url, token=buyer.token, cache_dir=tmp_path / "b")
    assert folder.endswith(live_version.commit_sha)
    api = HfApi(endpoint=live_server.url, token=buyer.token)
    assert api.list_repo_files("acme/tiny") == ["model.gguf"]
    assert api.model_info("acme/tiny").sha == live_version.commit_sha


def test_hf_client_errors_name_the_problem(chain, live_server, live_version, make_party, tmp_path):
    stranger = make_party("stranger", chain.keys[3])
    kwargs = dict(endpoint=live_server.url, cache_dir=tmp_path)
    with pytest.raises(GatedRepoError):
        hf_hub_download("acme/tiny", "model.gguf", token=stranger.token, **kwargs)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("acme/nothing", "model.gguf", token=stranger.token, **kwargs)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("acme/tiny", "model.gguf", revision="v7", token=stranger.token, **kwargs)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("acme/tiny", "missing.gguf", token=stranger.token, **kwargs)


def test_without_a_token_the_client_raises_its_gated_error(chain, live_server, live_version, tmp_path):
    with pytest.raises(GatedRepoError) as caught:
        hf_hub_download("acme/tiny", "model.gguf", endpoint=live_server.url, token=False, cache_dir=tmp_path)
    assert caught.value.response.status_code == 401


def test_the_commit_id_is_a_revision_and_model_info_lists_files(chain, live_server, live_version, make_party, tmp_path):
    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, buyer.key)
    info = HfApi(endpoint=live_server.url, token=buyer.token).model_info("acme/tiny", revision=live_version.commit_sha, files_metadata=True)
    [sibling] = info.siblings
    assert sibling.rfilename == "model.gguf" and sibling.lfs.sha256 == live_version.artifacts.get().sha256
    path = hf_hub_download("acme/tiny", "model.gguf", revision=live_version.commit_sha, endpoint=live_server.url, token=buyer.token, cache_dir=tmp_path)
    assert open(path, "rb").read()[:4] == b"GGUF"


class CuttingProxy:
    """A loopback TCP proxy that drops the first connection once it has relayed `cut_after`
    response bytes: a download cut off mid-file, as a flaky network would."""

    def __init__(self, target_port: int, cut_after: int):
        import socket
        import threading

        self.target_port, self.cut_after, self.cut = target_port, cut_after, False
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            cut_this = not self.cut
            self.cut = True
            threading.Thread(target=self._pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, self.cut_after if cut_this else None), daemon=True).start()

    @staticmethod
    def _pipe(source, sink, limit):
        sent = 0
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if limit is not None and sent + len(data) > limit:
                    sink.sendall(data[: limit - sent])
                    break
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(2)
            except OSError:
                pass
            sock.close()

    def close(self):
        self.listener.close()


def test_an_interrupted_download_resumes_with_a_range_request(chain, live_server, live_version, make_party, tmp_path, monkeypatch):
    from urllib.parse import urlparse

    from huggingface_hub import constants

    from marketplace.models import Download

    # the client keeps only whole chunks (10 MiB by default) of a cut transfer; a small file needs small chunks
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 16 * 1024)
    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, buyer.key)
    sha = live_version.artifacts.get().sha256
    proxy = CuttingProxy(urlparse(live_server.url).port, cut_after=100_000)
    try:
        path = hf_hub_download("acme/tiny", "model.gguf", endpoint=f"http://127.0.0.1:{proxy.port}", token=buyer.token, cache_dir=tmp_path)
    finally:
        proxy.close()
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == sha
    # the server writes what it sent once the body is handed over: that may be just after the client has it all
    resumed = wait_for(
        lambda: Download.objects.filter(method="GET", status_code=206, range_start__isnull=False).first(),
        timeout=30, message="the resumed download recorded",
    )
    assert 0 < resumed.range_start < 100_000 and resumed.range_start + resumed.bytes_sent == live_version.artifacts.get().size


def test_hf_download_command_with_hf_endpoint(chain, live_server, live_version, make_party, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, buyer.key)
    hf = Path(sys.executable).parent / "hf"
    env = dict(os.environ, HF_ENDPOINT=live_server.url, HF_TOKEN=buyer.token, HF_HOME=str(tmp_path / "home"), HF_HUB_DISABLE_TELEMETRY="1")
    result = subprocess.run(
        [str(hf), "download", "acme/tiny", "model.gguf", "--local-dir", str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256((tmp_path / "out" / "model.gguf").read_bytes()).hexdigest() == live_version.artifacts.get().sha256
    refused = subprocess.run(
        [str(hf), "download", "acme/tiny", "model.gguf", "--local-dir", str(tmp_path / "no")],
        env=dict(env, HF_TOKEN=make_party("stranger", chain.keys[3]).token), capture_output=True, text=True, timeout=120,
    )
    assert refused.returncode != 0 and "access denied" in refused.stderr.lower()  # the CLI's gated-repo message
