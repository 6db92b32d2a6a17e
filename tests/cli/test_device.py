"""`hallmark device`: a key made on the device, registered with the fleet owner's login, a device
token fetched by signing a challenge, `hallmark pull` downloading as the device, and the signed
inventory reported, all against the live marketplace and anvil."""

from __future__ import annotations

import json
import re

import pytest
import requests
from eth_account import Account

from tests.conftest import purchase

pytestmark = pytest.mark.django_db(transaction=True)


def test_device_init_writes_a_private_key_and_prints_its_address(cli):
    made = cli.run("device", "init")
    assert made.code == 0, made.text
    key_file = cli.config / "device.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    address = Account.from_key(key_file.read_text().strip()).address
    assert f"address: {address}" in made.out
    assert key_file.read_text().strip() not in made.text  # the key itself is never printed

    again = cli.run("device", "init")
    assert again.code == 1 and "exists already" in again.err
    assert Account.from_key(key_file.read_text().strip()).address == address  # not replaced

    shown = cli.run("device", "show", "--json")
    assert shown.code == 0 and json.loads(shown.out)["address"] == address
    assert json.loads(shown.out)["registered_with"] is None


def test_device_commands_need_a_key_and_a_valid_name(cli):
    assert cli.run("device", "show").code == 1
    assert "hallmark device init" in cli.run("device", "show").err
    cli.run("device", "init")
    bad = cli.run("device", "register", "--name", "x" * 65, "--endpoint", "http://127.0.0.1:9")
    assert bad.code == 2 and "1 to 64 printable characters" in bad.err


def test_a_registered_device_pulls_with_its_own_token_and_reports_its_inventory(chain, marketplace_cli, live_server, live_version, make_party, tmp_path):
    from fleet.models import Device, DeviceModel
    from marketplace.models import Download

    owner = make_party("owner", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, owner.key)
    cli = marketplace_cli
    cli.env["HALLMARK_TOKEN"] = owner.token  # the fleet owner's login, on the device for registration
    address = re.search(r"address: (0x[0-9a-fA-F]{40})", cli.run("device", "init").out).group(1)

    registered = cli.run("device", "register", "--name", "edge-1")
    assert registered.code == 0, registered.text
    device = Device.objects.get(address=address)
    assert device.owner == owner.user and device.name == "edge-1"
    saved = json.loads((cli.config / "device.json").read_text())
    assert saved["address"] == address and saved["endpoint"] == live_server.url
    assert oct((cli.config / "device.json").stat().st_mode & 0o777) == "0o600"

    folder = tmp_path / "tiny"
    pulled = cli.run("pull", "acme/tiny", "--dir", str(folder), "--rpc", chain.rpc_url)
    assert pulled.code == 0, pulled.text
    assert f"downloading as device {address}" in pulled.out
    assert Download.objects.filter(device=device).exists()
    token = json.loads((cli.config / "device.json").read_text())["token"]
    assert token["token"].startswith("hmd_") and token["token"] not in pulled.text
    shown = cli.run("device", "show")
    assert "edge-1" in shown.out and token["token"] not in shown.text

    reported = cli.run("device", "report")
    assert reported.code == 0, reported.text
    assert "reported 1 model(s)" in reported.out
    row = DeviceModel.objects.get(device=device)
    assert row.model_id == live_version.model.chain_model_id and row.version == 1 and row.status == "installed"

    watched = cli.run("watch", "--once", "--rpc", chain.rpc_url)
    assert watched.code == 0, watched.text
    assert f"inventory reported to {live_server.url}" in watched.out

    # the owner removes the device: its token is refused; watch still exits on the chain's word alone
    removed = requests.delete(f"{live_server.url}/api/v1/devices/{address}", headers={"Authorization": f"Bearer {owner.token}"}, timeout=10)
    assert removed.status_code == 204
    refused = cli.run("pull", "acme/tiny", "--dir", str(tmp_path / "again"), "--rpc", chain.rpc_url)
    assert refused.code == 1 and "was removed by its owner [device_revoked]" in refused.err, refused.text
    still = cli.run("watch", "--once", "--rpc", chain.rpc_url)
    assert still.code == 0, still.text
    assert "the inventory was not reported" in still.err
