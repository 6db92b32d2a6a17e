"""Verifying local files against the chain: each outcome has its exit code and message."""

import json
import shutil

import pytest
from django.core.management import call_command
from eth_utils import keccak

from hallmark.verify import Outcome, verify_directory
from registry.chain import to_bytes32
from tests.conftest import free_port

from .kit import Registry

pytestmark = pytest.mark.django_db


@pytest.fixture
def files(tmp_path, gguf_file):
    folder = tmp_path / "download"
    folder.mkdir()
    shutil.copy(gguf_file, folder / "model.gguf")
    return folder


def verify(capsys, folder, revision="v1"):
    with pytest.raises(SystemExit) as exited:
        call_command("verify_model", str(folder), "acme/tiny", revision, "--json")
    report = json.loads(capsys.readouterr().out)
    assert exited.value.code == report["exit_code"]
    return report


def test_untouched_files_verify(chain, live_version, files, capsys):
    report = verify(capsys, files)
    assert report["outcome"] == "verified" and report["exit_code"] == 0
    assert report["chain_root_digest"] == live_version.root_digest and report["signer"] == live_version.model.vendor.address


def test_a_changed_byte_is_tampered_and_named(chain, live_version, files, capsys):
    data = bytearray((files / "model.gguf").read_bytes())
    data[-1] ^= 1
    (files / "model.gguf").write_bytes(bytes(data))
    report = verify(capsys, files)
    assert report["exit_code"] == Outcome.TAMPERED and report["tampered"] == ["model.gguf"]


def test_extra_and_missing_files_are_told_apart(chain, live_version, files, capsys):
    (files / "notes.txt").write_text("not signed")
    report = verify(capsys, files)
    assert report["exit_code"] == Outcome.FILES_DIFFER and report["extra"] == ["notes.txt"]
    (files / "notes.txt").unlink()
    (files / "model.gguf").rename(files / "renamed.gguf")
    report = verify(capsys, files)
    assert report["exit_code"] == Outcome.FILES_DIFFER and report["missing"] == ["model.gguf"] and report["extra"] == ["renamed.gguf"]


def test_a_revoked_version_fails_even_when_files_match(chain, live_version, files, capsys):
    reg = Registry(chain)
    reg.send(reg.f.revokeVersion(to_bytes32(live_version.model.chain_model_id), 1, keccak(text="bad")), live_version.model.vendor.address)
    report = verify(capsys, files)
    assert report["exit_code"] == Outcome.REVOKED and "revoked" in report["message"]


def test_unknown_revision_and_unknown_on_chain_version(chain, live_version, files, capsys):
    assert verify(capsys, files, revision="v9")["exit_code"] == Outcome.UNKNOWN_VERSION
    result = verify_directory(files, rpc_url=chain.rpc_url, registry_address=chain.address, model_id=live_version.model.chain_model_id, version=5)
    assert result.outcome is Outcome.UNKNOWN_VERSION
    result = verify_directory(files, rpc_url=chain.rpc_url, registry_address=chain.address, model_id="0x" + "12" * 32, version=1)
    assert result.outcome is Outcome.UNKNOWN_VERSION and "no model" in result.message


def test_chain_unreachable_is_its_own_outcome(chain, settings, live_version, files, capsys):
    settings.CHAIN_RPC_URL = f"http://127.0.0.1:{free_port()}"
    report = verify(capsys, files)
    assert report["exit_code"] == Outcome.CHAIN_UNAVAILABLE


def test_without_a_manifest_a_mismatch_is_tampered(chain, live_version, files):
    (files / "extra.txt").write_text("x")
    result = verify_directory(files, rpc_url=chain.rpc_url, registry_address=chain.address, model_id=live_version.model.chain_model_id, version=1)
    assert result.outcome is Outcome.TAMPERED


def test_provenance_by_file_hash_is_checked_on_chain(chain, settings, live_version, client):
    sha = live_version.artifacts.get().sha256
    body = client.get(f"/api/v1/provenance/sha256/{sha}").json()
    [found] = body["versions"]
    assert found["repo_id"] == "acme/tiny" and found["version"] == 1 and found["matches_chain"] is True and found["revoked"] is False
    assert client.get(f"/api/v1/provenance/sha256/{'0' * 64}").json()["versions"] == []
    assert client.get("/api/v1/provenance/sha256/xyz").json()["code"] == "invalid_digest"
    settings.CHAIN_RPC_URL = f"http://127.0.0.1:{free_port()}"
    from tests.conftest import reset_chain_caches

    reset_chain_caches()
    down = client.get(f"/api/v1/provenance/sha256/{sha}")
    assert down.status_code == 503 and down.json()["code"] == "chain_unavailable"


def test_revoked_version_is_gone_410_and_main_skips_it(chain, live_version, client, make_party):
    from registry.indexer import indexer_run
    from tests.conftest import purchase

    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, buyer.key)
    reg = Registry(chain)
    reg.send(reg.f.revokeVersion(to_bytes32(live_version.model.chain_model_id), 1, keccak(text="bad")), live_version.model.vendor.address)
    indexer_run()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {buyer.token}"}
    gone = client.get("/acme/tiny/resolve/v1/model.gguf", **headers)
    assert gone.status_code == 410 and gone.json()["code"] == "VersionRevoked"
    assert client.get("/acme/tiny/resolve/main/model.gguf", **headers).status_code == 404


def test_eip712_types_are_served_for_wallets(chain, client):
    body = client.get("/api/v1/eip712").json()
    assert body["domain"]["name"] == "ModelRegistry" and body["domain"]["chainId"] == 31337
    assert [f["name"] for f in body["types"]["PublishVersion"]] == ["modelId", "version", "rootDigest", "metadataDigest", "deadline"]


def test_a_rename_is_caught_only_with_the_signed_metadata(chain, live_version, files):
    """The OMS root covers bytes, not names; the on-chain metadataDigest covers the names."""
    (files / "model.gguf").rename(files / "tokenizer.json")
    args = dict(rpc_url=chain.rpc_url, registry_address=chain.address, model_id=live_version.model.chain_model_id, version=1)
    assert verify_directory(files, **args).outcome is Outcome.VERIFIED  # bytes alone match
    signed = verify_directory(files, metadata=live_version.metadata, **args)
    assert signed.outcome is Outcome.FILES_DIFFER and signed.missing == ["model.gguf"]
    forged = dict(live_version.metadata, files=[{"path": "tokenizer.json", "sha256": live_version.artifacts.get().sha256, "size": 1}])
    assert verify_directory(files, metadata=forged, **args).outcome is Outcome.VERIFIED  # unsigned metadata is ignored


def test_chain_info_tells_clients_where_to_check(chain, settings, client):
    settings.PUBLIC_CHAIN_RPC_URL = "https://rpc.example"
    body = client.get("/api/v1/chain").json()
    assert body == {"chain_id": 31337, "registry_address": chain.address, "rpc_url": "https://rpc.example", "deploy_block": body["deploy_block"]}
