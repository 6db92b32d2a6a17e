"""`hallmark watch`: a device that pulled a model checks it against the chain (anvil, the real
ModelRegistry) and quarantines what must not run; updates are swapped in only once verified.
The installs are made by `hallmark pull` against the live marketplace, the revocation is the
vendor's own transaction, and the RPC requests are counted by a proxy in front of anvil."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account

from registry import chain as chain_module
from scripts.faulty_rpc import FaultyRpc
from tests.conftest import free_port, publish_version, purchase

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Install:
    cli: object
    folder: Path
    version: object

    def inventory(self) -> dict:
        return json.loads((self.cli.config / "inventory.json").read_text())

    def entry(self) -> dict:
        return self.inventory()["models"][str(self.folder.resolve())]


def vendor_sends(vendor, call):
    """A transaction from the vendor's own key, signed here and sent raw (no relayer)."""
    w3 = chain_module.web3()
    account = Account.from_key(vendor.key)
    tx = call.build_transaction({"from": account.address, "nonce": w3.eth.get_transaction_count(account.address)})
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction))
    assert receipt["status"] == 1
    return receipt


def revoke(vendor, version, reason: bytes = b"unsafe weights"):
    contract = chain_module.registry_contract()
    raw_id = chain_module.to_bytes32(version.model.chain_model_id)
    return vendor_sends(vendor, contract.functions.revokeVersion(raw_id, version.number, reason.ljust(32, b"\0")))


@pytest.fixture
def installed(chain, marketplace_cli, live_version, make_party, tmp_path):
    """acme/tiny v1 pulled (and so recorded in the inventory) by a buyer holding a licence."""
    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, buyer.key)
    marketplace_cli.env["HALLMARK_TOKEN"] = buyer.token
    folder = tmp_path / "models" / "tiny"
    pulled = marketplace_cli.run("pull", "acme/tiny", "--dir", str(folder), "--rpc", chain.rpc_url)
    assert pulled.code == 0, pulled.text
    assert "recorded in the inventory: acme/tiny v1" in pulled.out
    return Install(marketplace_cli, folder, live_version)


def test_pull_records_the_install_and_a_healthy_install_watches_clean(chain, installed):
    entry = installed.entry()
    assert entry["status"] == "installed" and entry["version"] == 1
    assert entry["model_id"] == installed.version.model.chain_model_id
    assert entry["root_digest"] == "0x" + installed.version.root_digest
    assert [f["path"] for f in entry["files"]] == ["model.gguf"]
    assert installed.inventory()["chain"]["registry_address"] == chain.address
    assert oct((installed.cli.config / "inventory.json").stat().st_mode & 0o777) == "0o600"

    first = installed.cli.run("watch", "--once", "--rpc", chain.rpc_url)
    assert first.code == 0, first.text
    assert "checked 1 model(s)" in first.out
    again = installed.cli.run("watch", "--once", "--rpc", chain.rpc_url, "--verify-files")
    assert again.code == 0, again.text
    assert installed.entry()["baseline"] is True and installed.entry()["vendor"] == installed.version.model.vendor.address


def test_a_version_the_vendor_revokes_is_quarantined_within_one_poll(chain, installed, vendor):
    assert installed.cli.run("watch", "--once", "--rpc", chain.rpc_url).code == 0
    revoke(vendor, installed.version)

    watched = installed.cli.run("watch", "--once", "--rpc", chain.rpc_url)
    assert watched.code == 3, watched.text
    assert "quarantined acme/tiny v1: version 1 was revoked by its vendor on chain (reason: unsafe weights)" in watched.out
    assert not installed.folder.exists()
    entry = installed.entry()
    assert entry["status"] == "quarantined" and "revoked" in entry["reason"]
    moved = Path(entry["quarantine_path"])
    assert moved.parent == installed.cli.config / "quarantine" / "acme" and moved.name.startswith("tiny@v1-")
    assert (moved / "model.gguf").exists()
    assert "unsafe weights" in (moved / "REASON.txt").read_text()
    # quarantined once: the next poll has nothing left to do
    assert installed.cli.run("watch", "--once", "--rpc", chain.rpc_url).code == 0


def test_a_revocation_before_the_first_poll_is_found_by_the_batched_read(chain, installed, vendor):
    revoke(vendor, installed.version, b"leaked")
    watched = installed.cli.run("watch", "--once", "--rpc", chain.rpc_url, "--json")
    assert watched.code == 3, watched.text
    report = json.loads(watched.out.strip().splitlines()[-1])
    assert report["quarantined"][0]["reason"] == "version 1 was revoked by its vendor on chain (reason: leaked)"


def test_a_tampered_file_is_quarantined(chain, installed):
    assert installed.cli.run("watch", "--once", "--rpc", chain.rpc_url).code == 0
    with open(installed.folder / "model.gguf", "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 0xFF]))

    watched = installed.cli.run("watch", "--once", "--rpc", chain.rpc_url)
    assert watched.code == 3, watched.text
    assert "tampered: model.gguf is not the file the vendor signed" in watched.out
    assert installed.entry()["status"] == "quarantined" and not installed.folder.exists()


def test_a_newer_version_is_reported_then_swapped_in_once_it_verifies(chain, installed, vendor, gguf_file):
    assert installed.cli.run("watch", "--once", "--rpc", chain.rpc_url).code == 0
    v2 = publish_version(vendor, installed.version.model, {"model.gguf": gguf_file.read_bytes(), "NOTES.md": b"v2: better\n"})

    available = installed.cli.run("watch", "--once", "--rpc", chain.rpc_url)
    assert available.code == 4, available.text
    assert "update available: acme/tiny v1 -> v2" in available.out
    assert installed.entry()["version"] == 1

    updated = installed.cli.run("watch", "--once", "--rpc", chain.rpc_url, "--update")
    assert updated.code == 0, updated.text
    assert "updated acme/tiny v1 -> v2" in updated.out
    assert (installed.folder / "NOTES.md").read_text() == "v2: better\n"
    entry = installed.entry()
    assert entry["version"] == 2 and entry["root_digest"] == "0x" + v2.root_digest and entry["update"] is None
    assert not list(installed.folder.parent.glob(".tiny.hallmark-*"))  # no staging or retired folder left
    assert installed.cli.run("watch", "--once", "--rpc", chain.rpc_url, "--verify-files").code == 0


def test_an_update_that_fails_verification_keeps_the_old_version(chain, installed, vendor, gguf_file):
    from django.core.files.storage import default_storage

    assert installed.cli.run("watch", "--once", "--rpc", chain.rpc_url).code == 0
    v2 = publish_version(vendor, installed.version.model, {"model.gguf": gguf_file.read_bytes(), "NOTES.md": b"v2: better\n"})
    # the server's copy of v2 goes bad after it was signed: it serves bytes the vendor never signed
    stored = Path(default_storage.path(v2.artifacts.get(path="NOTES.md").storage_name))
    stored.write_bytes(b"v2: evil!!\n")

    watched = installed.cli.run("watch", "--once", "--rpc", chain.rpc_url, "--update")
    assert watched.code == 4, watched.text
    assert "v2 failed" in watched.out and "failed verification (tampered" in watched.out  # caught while it arrived
    assert "v1 stays in place" in watched.out
    assert not (installed.folder / "NOTES.md").exists() and (installed.folder / "model.gguf").exists()
    entry = installed.entry()
    assert entry["version"] == 1 and entry["status"] == "installed" and entry["rejected"]["version"] == 2
    assert not list(installed.folder.parent.glob(".tiny.hallmark-*"))


def test_an_unreachable_chain_exits_7_and_changes_nothing(chain, installed):
    before = installed.inventory()
    watched = installed.cli.run("watch", "--once", "--rpc", f"http://127.0.0.1:{free_port()}")
    assert watched.code == 7, watched.text
    assert "chain unreachable" in watched.err
    assert installed.inventory() == before and installed.folder.exists()


def _rpc_requests(cli, url) -> list[int]:
    counts = []
    for _ in range(2):
        watched = cli.run("watch", "--once", "--rpc", url, "--json")
        assert watched.code == 0, watched.text
        counts.append(json.loads(watched.out.strip().splitlines()[-1])["rpc_requests"])
        chain_module.web3().provider.make_request("evm_mine", [])  # a new block: the next poll reads logs
    return counts


def test_a_poll_costs_the_same_rpc_requests_for_1_and_50_models(chain, installed):
    proxy = FaultyRpc(chain.rpc_url).start()
    try:
        one_reported = _rpc_requests(installed.cli, proxy.url)
        one_counted = proxy.counts["forwarded"]

        inventory = installed.inventory()
        entry = inventory["models"][str(installed.folder.resolve())]
        for i in range(49):
            copy = installed.folder.parent / f"tiny-{i}"
            shutil.copytree(installed.folder, copy, copy_function=shutil.copy2)  # same bytes and mtimes
            inventory["models"][str(copy)] = {**entry, "path": str(copy), "baseline": False}
        inventory["chain"].pop("last_block")
        (installed.cli.config / "inventory.json").write_text(json.dumps(inventory))

        before = proxy.counts["forwarded"]
        fifty_reported = _rpc_requests(installed.cli, proxy.url)
        fifty_counted = proxy.counts["forwarded"] - before
    finally:
        proxy.stop()
    assert one_reported == fifty_reported == [2, 2]
    assert one_counted == fifty_counted == 4


def test_watch_keeps_polling_until_ctrl_c_and_stops_cleanly(chain, installed, vendor):
    import os
    import signal
    import subprocess

    from tests.cli.conftest import HALLMARK

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HALLMARK_", "HF_"))}
    env.update(HALLMARK_CONFIG_DIR=str(installed.cli.config), PYTHONUNBUFFERED="1")
    child = subprocess.Popen([str(HALLMARK), "watch", "--interval", "0.2", "--rpc", chain.rpc_url],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "checked 1 model(s)" in child.stdout.readline()
        revoke(vendor, installed.version)
        lines = iter(child.stdout.readline, "")
        assert any(line.startswith("quarantined acme/tiny v1") for line in lines)  # found by a later poll of the loop
        assert any(line.startswith("checked 0 model(s)") for line in lines)  # and the loop goes on, all good
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err  # the last poll's code
    assert out.rstrip().endswith("watch stopped") and "Traceback" not in err
    assert installed.entry()["status"] == "quarantined"
