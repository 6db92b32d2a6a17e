"""`hallmark verify`: only an RPC URL and the registry address; one exit code per outcome."""

import json
import shutil

import pytest
from eth_utils import keccak

from hallmark.verify import Outcome
from registry.chain import to_bytes32
from tests.conftest import free_port
from tests.registry.kit import Registry

from .conftest import save_version_json

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def files(tmp_path, gguf_file, live_version):
    folder = tmp_path / "download"
    folder.mkdir()
    shutil.copy(gguf_file, folder / "model.gguf")
    save_version_json(folder, live_version)
    return folder


@pytest.fixture
def verify(cli, chain, files, live_version):
    model_id = live_version.model.chain_model_id

    def run(spec: str = f"{model_id}@1", *extra: str, folder=files, rpc: str = chain.rpc_url):
        result = cli.run("verify", str(folder), spec, "--rpc", rpc, "--registry", chain.address, "--json", *extra)
        report = json.loads(result.out) if result.code != 2 else None
        if report is not None:
            assert report["exit_code"] == result.code
        return result.code, report

    return run


def test_untouched_files_verify_and_the_saved_metadata_is_used(verify, live_version, files):
    code, report = verify()
    assert code == 0 and report["outcome"] == "verified" and report["chain_root_digest"] == live_version.root_digest
    (files / "model.gguf").rename(files / "renamed.gguf")  # the root covers bytes only; the signed metadata covers names
    code, report = verify()
    assert code == Outcome.FILES_DIFFER and report["missing"] == ["model.gguf"] and report["extra"] == ["renamed.gguf"]


def test_a_changed_byte_is_tampered(verify, files):
    data = bytearray((files / "model.gguf").read_bytes())
    data[100] ^= 0xFF
    (files / "model.gguf").write_bytes(bytes(data))
    code, report = verify()
    assert code == Outcome.TAMPERED == 3 and report["tampered"] == ["model.gguf"]


def test_an_extra_file_differs(verify, files):
    (files / "notes.txt").write_text("not signed")
    code, report = verify()
    assert code == Outcome.FILES_DIFFER == 4 and report["extra"] == ["notes.txt"]


def test_a_revoked_version_fails_even_when_its_files_match(chain, verify, live_version):
    registry = Registry(chain)
    registry.send(registry.f.revokeVersion(to_bytes32(live_version.model.chain_model_id), 1, keccak(text="bad")),
                  live_version.model.vendor.address)
    code, report = verify()
    assert code == Outcome.REVOKED == 5 and "revoked" in report["message"]


def test_unknown_versions_and_models(verify, live_version):
    assert verify(f"{live_version.model.chain_model_id}@v9")[0] == Outcome.UNKNOWN_VERSION == 6
    code, report = verify("0x" + "12" * 32 + "@1")
    assert code == 6 and "no model" in report["message"]
    assert verify(f"{live_version.model.vendor.address}/other-slug@1")[0] == 6


def test_an_unreachable_chain_is_its_own_exit_code(verify):
    code, report = verify(rpc=f"http://127.0.0.1:{free_port()}")
    assert code == Outcome.CHAIN_UNAVAILABLE == 7 and "nothing was verified" in report["message"]


def test_the_vendor_address_and_slug_name_the_model(verify, live_version):
    code, report = verify(f"{live_version.model.vendor.address}/tiny@v1")
    assert code == 0 and report["model_id"] == live_version.model.chain_model_id


def test_a_marketplace_name_is_resolved_through_the_endpoint(verify, live_server, live_version):
    code, report = verify("acme/tiny@v1", "--endpoint", live_server.url)
    assert code == 0 and report["model_id"] == live_version.model.chain_model_id
    code, report = verify("acme/nothing@v1", "--endpoint", live_server.url)
    assert code == 6 and "acme/nothing" in report["message"]


def test_usage_errors_exit_2(cli, chain, files, verify):
    assert verify("acme/tiny@v1")[0] == 2  # a marketplace name without an endpoint
    assert verify("0x1234@1")[0] == 2
    assert verify("no-version")[0] == 2
    assert verify(folder=files / "missing")[0] == 2
    no_rpc = cli.run("verify", str(files), "0x" + "12" * 32 + "@1", "--registry", chain.address)
    assert no_rpc.code == 2 and "--rpc" in no_rpc.err
    no_registry = cli.run("verify", str(files), "0x" + "12" * 32 + "@1", "--rpc", chain.rpc_url)
    assert no_registry.code == 2 and "--registry" in no_registry.err
    assert cli.run("verify").code == 2


def test_human_output_names_the_outcome(cli, chain, files, live_version):
    result = cli.run("verify", str(files), f"{live_version.model.chain_model_id}@1", "--rpc", chain.rpc_url, "--registry", chain.address)
    assert result.code == 0 and result.out.startswith("verified: 1 file(s) match version 1")
    assert f"chain root  0x{live_version.root_digest}" in result.out


def test_huggingface_downloads_verify_by_the_same_rule_as_the_server(cli, chain, live_server, live_version, make_party, tmp_path):
    """`hallmark verify` and `manage.py verify_model` share one rule (hallmark.verify.verify_directory):
    a cache's snapshots/<commit> folder is read through its links into blobs/, a local_dir
    folder without huggingface_hub's .cache/, and a link out of the cache is refused."""
    from huggingface_hub import snapshot_download

    from tests.conftest import purchase

    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, buyer.key)
    download = dict(revision="v1", endpoint=live_server.url, token=buyer.token)
    cached = snapshot_download("acme/tiny", cache_dir=tmp_path / "hub", **download)
    local = tmp_path / "local"
    snapshot_download("acme/tiny", local_dir=local, cache_dir=tmp_path / "hub2", **download)
    spec = f"{live_version.model.chain_model_id}@1"

    def verify(folder) -> tuple[int, dict]:
        result = cli.run("verify", str(folder), spec, "--rpc", chain.rpc_url, "--registry", chain.address, "--json")
        return result.code, json.loads(result.out)

    assert verify(cached)[0] == 0 and verify(local)[0] == 0
    secret = tmp_path / "model.gguf"
    shutil.copy(local / "model.gguf", secret)  # the signed bytes, but outside the cache
    link = tmp_path / "hub" / "models--acme--tiny" / "snapshots" / live_version.commit_sha / "model.gguf"
    link.unlink()
    link.symlink_to(secret)
    code, report = verify(cached)
    assert code == Outcome.FILES_DIFFER and "absolute path" in report["message"] and "[unsafe_path]" in report["message"]


def test_with_an_endpoint_the_chain_is_the_one_the_marketplace_reports_and_the_source_is_said(
    cli, chain, files, live_server, live_version, settings
):
    settings.PUBLIC_CHAIN_RPC_URL = chain.rpc_url  # what GET /api/v1/chain reports
    url = live_server.url
    found = cli.run("verify", str(files), "acme/tiny@v1", "--endpoint", url)
    assert found.code == 0 and found.out.startswith("verified: 1 file(s) match version 1"), found.text
    assert f"chain: {chain.rpc_url} (the marketplace at {url}), registry {chain.address} (the marketplace at {url})" in found.err

    pinned = cli.run("verify", str(files), "acme/tiny@v1", "--endpoint", url, "--rpc", chain.rpc_url,
                     HALLMARK_REGISTRY_ADDRESS=chain.address)
    assert pinned.code == 0, pinned.text
    assert f"chain: {chain.rpc_url} (--rpc), registry {chain.address} ($HALLMARK_REGISTRY_ADDRESS)\n" in pinned.err

    settings.PUBLIC_CHAIN_RPC_URL = ""  # a marketplace that names no public node: the RPC is the user's to give
    no_rpc = cli.run("verify", str(files), "acme/tiny@v1", "--endpoint", url)
    assert no_rpc.code == 2 and "--rpc" in no_rpc.err
