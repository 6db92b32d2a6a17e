"""Unmodified `huggingface_hub` against a live marketplace: download, snapshot, errors."""

import hashlib

import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

from tests.conftest import purchase
from tests.marketplace.test_api_errors import live_version  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def vendor(chain, make_party):
    return make_party("vendor", chain.keys[1], vendor_slug="acme")


def test_hf_hub_download_and_snapshot_with_a_licensed_token(chain, live_server, live_version, make_party, gguf_file, tmp_path):  # noqa: F811
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


def test_hf_client_errors_name_the_problem(chain, live_server, live_version, make_party, tmp_path):  # noqa: F811
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
