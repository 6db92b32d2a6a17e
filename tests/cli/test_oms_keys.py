"""`hallmark keys init | register` and `hallmark publish` with a P-256 key: the published version
carries the OMS bundle the stock `model_signing verify key` accepts for the vendor's folder."""

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hallmark import oms
from hallmark.manifest import TOOL_STATE_FOLDERS, FileDigest, hash_directory
from hallmark.verify import Outcome
from marketplace.models import VendorSigningKey, Version
from marketplace.oms import oms_bundle_bytes

pytestmark = pytest.mark.django_db(transaction=True)

MODEL_SIGNING = str(Path(sys.executable).with_name("model_signing"))


def test_keys_init_writes_a_private_p256_key_and_prints_its_public_half(cli):
    result = cli.run("keys", "init")
    assert result.code == 0, result.text
    path = cli.config / "oms-signing-key.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = oms.load_private_key(path)
    assert oms.public_key_pem(key).strip() in result.out and oms.key_sha256(key) in result.out
    again = cli.run("keys", "init")
    assert again.code == 1 and "exists already" in again.err
    assert oms.key_sha256(oms.load_private_key(path)) == oms.key_sha256(key)  # not replaced


def test_publish_with_a_registered_key_signs_model_sig_the_stock_verifier_accepts(
    chain, celery_worker, marketplace_cli, vendor, registered, model_dir, tmp_path
):
    assert marketplace_cli.run("keys", "init").code == 0
    registered_key = marketplace_cli.run("keys", "register", "--vendor", "acme", HALLMARK_TOKEN=vendor.token)
    assert registered_key.code == 0, registered_key.text
    key = oms.load_private_key(marketplace_cli.config / "oms-signing-key.pem")
    assert VendorSigningKey.objects.get(vendor=vendor.vendor, retired_at__isnull=True).sha256 == oms.key_sha256(key)

    result = marketplace_cli.run("publish", "--timeout", "90", str(model_dir), "--model", "acme/tiny", key=vendor.key, HALLMARK_TOKEN=vendor.token)
    assert result.code == 0, result.text
    assert "signing the OMS statement (model.sig)" in result.out
    version = Version.objects.get(model=registered)
    assert version.status == Version.Status.LIVE and version.metadata["signing_key"]["sha256"] == oms.key_sha256(key)

    (model_dir / "model.sig").write_bytes(oms_bundle_bytes(version))
    (tmp_path / "vendor.pem").write_text(oms.public_key_pem(key))
    verify = [MODEL_SIGNING, "verify", "key", "--signature", str(model_dir / "model.sig"), "--public_key", str(tmp_path / "vendor.pem"), str(model_dir)]
    assert subprocess.run(verify, capture_output=True, text=True, timeout=120).returncode == 0
    (model_dir / "README.md").write_text("# changed\n")
    assert subprocess.run(verify, capture_output=True, text=True, timeout=120).returncode == 1


def test_publish_refuses_to_sign_with_another_key_than_the_registered_one(
    chain, celery_worker, marketplace_cli, vendor, registered, model_dir, tmp_path
):
    assert marketplace_cli.run("keys", "init").code == 0
    assert marketplace_cli.run("keys", "register", "--vendor", "acme", HALLMARK_TOKEN=vendor.token).code == 0
    other = tmp_path / "other.pem"
    assert marketplace_cli.run("keys", "init", "--out", str(other)).code == 0
    result = marketplace_cli.run(
        "publish", "--timeout", "90", str(model_dir), "--model", "acme/tiny", "--signing-key", str(other),
        key=vendor.key, HALLMARK_TOKEN=vendor.token,
    )
    assert result.code == 1 and "names the OMS key" in result.err
    assert Version.objects.get(model=registered).status == Version.Status.AWAITING_SIGNATURE


def test_verify_checks_model_sig_with_the_key_the_signed_metadata_names(
    chain, celery_worker, marketplace_cli, vendor, registered, model_dir, tmp_path
):
    assert marketplace_cli.run("keys", "init").code == 0
    assert marketplace_cli.run("keys", "register", "--vendor", "acme", HALLMARK_TOKEN=vendor.token).code == 0
    published = marketplace_cli.run("publish", "--timeout", "90", str(model_dir), "--model", "acme/tiny", key=vendor.key, HALLMARK_TOKEN=vendor.token)
    assert published.code == 0, published.text
    version = Version.objects.get(model=registered)
    key = oms.load_private_key(marketplace_cli.config / "oms-signing-key.pem")
    signature = model_dir / "model.sig"

    def verify() -> tuple[int, dict]:
        result = marketplace_cli.run("verify", str(model_dir), "acme/tiny@v1", "--rpc", chain.rpc_url, "--registry", chain.address, "--json")
        return result.code, json.loads(result.out)

    signature.write_bytes(oms_bundle_bytes(version))
    code, report = verify()
    assert code == 0 and report["oms_signature"]["status"] == "verified", report
    assert report["oms_signature"]["key_sha256"] == oms.key_sha256(key)

    files = hash_directory(model_dir, exclude=TOOL_STATE_FOLDERS)
    other = [FileDigest(f.name, "0" * 64, f.size) if f.name == "README.md" else f for f in files]
    for bundle in (
        oms.sign_statement(oms.generate_key(), oms.signing_statement("acme/tiny", files)),  # another key
        oms.sign_statement(key, oms.signing_statement("acme/tiny", other)),  # the vendor's key, other files
    ):
        signature.write_bytes(oms.bundle_bytes(bundle))
        code, report = verify()
        assert code == Outcome.SIGNATURE_INVALID == 11 and report["oms_signature"]["status"] == "invalid", report

    signature.unlink()
    code, report = verify()
    assert code == 0 and "oms_signature" not in report
