"""`hallmark pull` of a version that carries an OMS signature bundle puts it beside the files as
`model.sig`, checks it with the key the version's signed metadata names, and leaves a folder the
stock `model_signing verify key` accepts as it is (issue 19)."""

from __future__ import annotations

import subprocess

import pytest

from hallmark import oms
from tests.marketplace.test_oms import MODEL_SIGNING, registered_key, signed_version, signing_key  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


def test_pull_keeps_and_checks_model_sig_and_the_stock_verifier_accepts_the_folder(
    chain, marketplace_cli, live_server, signed_version, signing_key, vendor, tmp_path  # noqa: F811
):
    target = tmp_path / "pulled"
    pulled = marketplace_cli.run(
        "pull", "acme/base", "--revision", f"v{signed_version.number}", "--dir", str(target), "--rpc", chain.rpc_url,
        HALLMARK_TOKEN=vendor.token,
    )
    assert pulled.code == 0, pulled.text
    assert "model.sig verified" in pulled.text
    assert (target / "model.sig").read_bytes() == oms.bundle_bytes(signed_version.oms_bundle)

    pem = tmp_path / "vendor.pem"
    pem.write_text(oms.public_key_pem(signing_key))
    stock = [MODEL_SIGNING, "verify", "key", "--signature", str(target / "model.sig"), "--public_key", str(pem), str(target)]
    done = subprocess.run(stock, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr

    # one changed byte in the installed folder: the stock verifier refuses it
    (target / "model.gguf").write_bytes(b"\x00" + (target / "model.gguf").read_bytes()[1:])
    assert subprocess.run(stock, capture_output=True, text=True, timeout=120).returncode != 0
