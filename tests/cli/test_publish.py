"""`hallmark publish`: tus uploads hashed as they are sent, the digests declared at finalize, the
server's hashing by a Celery worker, the check before signing, the signature relayed to the chain."""

import hashlib
import json

import pytest
import requests

from marketplace.models import Version
from registry import chain as chain_module
from registry.chain import to_bytes32

from .conftest import root_digest_printed

pytestmark = pytest.mark.django_db(transaction=True)


def version_digest(model, number: int) -> str:
    raw = chain_module.registry_contract().functions.versionDigest(to_bytes32(model.chain_model_id), number).call()
    return bytes(raw).hex()


def test_publish_goes_live_with_the_root_digest_hashed_locally(chain, celery_worker, marketplace_cli, vendor, registered, model_dir):
    assert marketplace_cli.run("login", key=vendor.key).code == 0
    result = marketplace_cli.run("publish", "--timeout", "90", str(model_dir), "--model", "acme/tiny", key=vendor.key)
    assert result.code == 0, result.text

    root = root_digest_printed(result.out)
    assert version_digest(registered, 1) == root
    version = Version.objects.get(model=registered)
    assert version.status == Version.Status.LIVE and version.number == 1 and version.signer == vendor.address
    assert sorted(a.path for a in version.artifacts.all()) == ["README.md", "model.gguf"]
    assert "live: acme/tiny v1" in result.out and version.publish_transaction.tx_hash in result.out
    assert f"block        {version.published_block}" in result.out
    state = json.loads((marketplace_cli.config / "uploads.json").read_text())
    assert state == {"drafts": {}, "uploads": {}}  # nothing left to resume
    # each file read once: hashed while it was sent, the signed segments taken from its chunks
    assert "hashing each as it is sent" in result.out
    assert f"hashing {model_dir}" not in result.out and "in segments of" not in result.out


def test_a_rerun_resumes_the_same_draft_after_a_failed_upload(chain, celery_worker, marketplace_cli, vendor, registered, model_dir, settings):
    sizes = sum(p.stat().st_size for p in model_dir.iterdir())
    settings.VENDOR_STORAGE_QUOTA = sizes - 1  # README.md (uploaded first) fits, model.gguf then does not
    env = dict(key=vendor.key, HALLMARK_TOKEN=vendor.token)
    # one file at a time, in name order, so which file the quota refuses is known
    failed = marketplace_cli.run("publish", "--timeout", "90", "--upload-workers", "1", str(model_dir), "--model", "acme/tiny", **env)
    assert failed.code == 1 and "quota_exceeded" in failed.err
    [draft] = Version.objects.filter(model=registered)
    assert draft.status == Version.Status.DRAFT and [a.path for a in draft.artifacts.all()] == ["README.md"]

    settings.VENDOR_STORAGE_QUOTA = 10**12
    resumed = marketplace_cli.run("publish", "--timeout", "90", str(model_dir), "--model", "acme/tiny", **env)
    assert resumed.code == 0, resumed.text
    assert f"resuming draft #{draft.pk}" in resumed.out and "README.md: already uploaded" in resumed.out
    [live] = Version.objects.filter(model=registered)
    assert live.pk == draft.pk and live.status == Version.Status.LIVE
    assert version_digest(registered, 1) == root_digest_printed(resumed.out)


def api_draft(live_server, vendor, files: dict[str, bytes], declared: dict[str, bytes] | None = None) -> int:
    """A draft made through the API (as the portal or another tool would), its files uploaded."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {vendor.token}"
    base = f"{live_server.url}/api/v1/vendor/models/tiny/versions"
    body = {"files": [{"path": p, "sha256": hashlib.sha256(d).hexdigest()} for p, d in declared.items()]} if declared else {}
    version_id = http.post(base, json=body).json()["id"]
    for path, data in files.items():
        assert http.put(f"{base}/{version_id}/files/{path}", data=data).status_code == 201
    return version_id


def test_publish_refuses_to_sign_a_version_of_other_files(chain, celery_worker, marketplace_cli, live_server, vendor, registered, model_dir):
    other = {"model.gguf": (model_dir / "model.gguf").read_bytes(), "README.md": b"# someone else's card\n"}
    version_id = api_draft(live_server, vendor, other)
    finalize = requests.post(f"{live_server.url}/api/v1/vendor/models/tiny/versions/{version_id}/finalize",
                             headers={"Authorization": f"Bearer {vendor.token}"})
    assert finalize.status_code == 202

    result = marketplace_cli.run("publish", "--timeout", "90", str(model_dir), "--model", "acme/tiny", "--draft", str(version_id),
                                 key=vendor.key, HALLMARK_TOKEN=vendor.token)
    assert result.code == 1 and f"refusing to sign draft #{version_id}" in result.err
    assert "root digest" in result.err
    version = Version.objects.get(pk=version_id)
    assert version.status == Version.Status.AWAITING_SIGNATURE and not version.signature
    assert version_digest(registered, 1) == "00" * 32


def test_the_server_rejects_files_that_differ_from_the_declared_digests(chain, celery_worker, marketplace_cli, live_server, vendor, registered, model_dir):
    """As if model.gguf changed between hashing and upload: the declared digest no longer matches."""
    declared = {"model.gguf": (model_dir / "model.gguf").read_bytes(), "README.md": (model_dir / "README.md").read_bytes()}
    version_id = api_draft(live_server, vendor, {}, declared=declared)
    data = bytearray(declared["model.gguf"])
    data[-1] ^= 1
    (model_dir / "model.gguf").write_bytes(bytes(data))

    result = marketplace_cli.run("publish", "--timeout", "90", str(model_dir), "--model", "acme/tiny", "--draft", str(version_id),
                                 key=vendor.key, HALLMARK_TOKEN=vendor.token)
    assert result.code == 1 and "declared_digest_mismatch" in result.err and "rejected" in result.err
    assert Version.objects.get(pk=version_id).status == Version.Status.REJECTED


def test_publish_names_what_is_wrong_before_uploading(chain, marketplace_cli, vendor, registered, make_party, model_dir, tmp_path):
    env = dict(key=vendor.key, HALLMARK_TOKEN=vendor.token)
    unknown = marketplace_cli.run("publish", "--timeout", "90", str(model_dir), "--model", "acme/nothing", **env)
    assert unknown.code == 1 and "acme/nothing is not one of your models" in unknown.err
    other_vendor = marketplace_cli.run("publish", "--timeout", "90", str(model_dir), "--model", "someone/tiny", **env)
    assert other_vendor.code == 1 and "does not exist for your vendor account" in other_vendor.err
    wrong_key = marketplace_cli.run("publish", "--timeout", "90", str(model_dir), "--model", "acme/tiny", key=chain.keys[7], HALLMARK_TOKEN=vendor.token)
    assert wrong_key.code == 1 and vendor.address in wrong_key.err
    assert marketplace_cli.run("publish", "--timeout", "90", str(tmp_path / "missing"), "--model", "acme/tiny", **env).code == 2
    assert marketplace_cli.run("publish", "--timeout", "90", str(model_dir), "--model", "no-slash", **env).code == 2
    assert not Version.objects.filter(model=registered).exists()


def test_no_wait_returns_before_the_chain_and_a_rerun_follows_it_to_live(chain, celery_worker, marketplace_cli, vendor, registered, model_dir):
    assert marketplace_cli.run("login", key=vendor.key).code == 0
    quick = marketplace_cli.run("publish", "--no-wait", "--timeout", "90", str(model_dir), "--model", "acme/tiny", key=vendor.key)
    assert quick.code == 0, quick.text
    assert "on its way to the chain" in quick.out and "live:" not in quick.out
    followed = marketplace_cli.run("publish", "--timeout", "90", str(model_dir), "--model", "acme/tiny", key=vendor.key)
    assert followed.code == 0, followed.text
    assert "live: acme/tiny v1" in followed.out
    version = Version.objects.get(model=registered)  # one version: the rerun followed it, opened no other
    assert version.status == Version.Status.LIVE and version_digest(registered, 1) == root_digest_printed(quick.out)
