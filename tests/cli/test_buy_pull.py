"""`hallmark buy` pays from the buyer's key through the RPC node; `hallmark pull` downloads with
huggingface_hub and verifies the files against the chain."""

import json

import pytest
from eth_account import Account

from registry import chain as chain_module
from registry.chain import PERPETUAL, to_bytes32
from royalties.models import License

pytestmark = pytest.mark.django_db(transaction=True)


def test_buy_then_pull_downloads_and_verifies(chain, marketplace_cli, live_server, live_version, gguf_file, tmp_path):
    buyer_key = chain.keys[2]
    buyer = Account.from_key(buyer_key).address
    assert marketplace_cli.run("login", key=buyer_key).code == 0
    model_id = live_version.model.chain_model_id

    declined = marketplace_cli.run("buy", "acme/tiny", "--rpc", chain.rpc_url, key=buyer_key, stdin="n\n")
    assert declined.code == 1 and "nothing was bought" in declined.err
    assert "1000000000000000 wei = 0.001 ETH" in declined.out and "royalties" in declined.out
    assert not License.objects.filter(licensee=buyer).exists()

    bought = marketplace_cli.run("buy", "acme/tiny", "--yes", "--rpc", chain.rpc_url, key=buyer_key)
    assert bought.code == 0, bought.text
    assert f"licence: acme/tiny ({model_id}) for {buyer}, perpetual" in bought.out
    assert chain_module.registry_contract().functions.licenseExpiry(to_bytes32(model_id), buyer).call() == PERPETUAL

    # seats for a fleet: three more on the perpetual licence, at three times the price
    zero = marketplace_cli.run("buy", "acme/tiny", "--seats", "0", "--yes", "--rpc", chain.rpc_url, key=buyer_key)
    assert zero.code == 2 and "--seats is a whole number from 1 to 10000" in zero.err
    seats = marketplace_cli.run("buy", "acme/tiny", "--seats", "3", "--yes", "--rpc", chain.rpc_url, key=buyer_key)
    assert seats.code == 0, seats.text
    assert "3000000000000000 wei = 0.003 ETH (3 seats x 1000000000000000 wei)" in seats.out
    assert "seats     4 after this purchase (1 held now)" in seats.out
    assert f"licence: acme/tiny ({model_id}) for {buyer}, perpetual, 4 seats" in seats.out
    assert chain_module.registry_contract().functions.licenseOf(to_bytes32(model_id), buyer).call() == [PERPETUAL, 4]
    assert License.objects.get(licensee=buyer).seats == 4

    target = tmp_path / "pulled"
    pulled = marketplace_cli.run("pull", "acme/tiny", "--dir", str(target), "--rpc", chain.rpc_url)
    assert pulled.code == 0, pulled.text
    assert "verified: 1 file(s) match version 1" in pulled.out
    assert (target / "model.gguf").read_bytes() == gguf_file.read_bytes()
    assert not (target / ".cache").exists()  # pull's own downloader leaves no tool state in the folder
    # the download's receipt (one per granted GET) is in the device's flight recorder, chained
    assert "flight recorder: pull recorded with 1 receipt(s)" in pulled.out, pulled.text
    exported = marketplace_cli.run("recorder", "export", str(tmp_path / "audit"))
    assert exported.code == 0 and "2 line(s) and 1 receipt(s)" in exported.out, exported.text
    saved = json.loads((target / ".hallmark" / "version.json").read_text())
    assert saved["model_id"] == model_id and saved["version"] == 1 and saved["root_digest"] == live_version.root_digest
    assert saved["metadata"] == live_version.metadata and saved["manifest"] == live_version.manifest

    # the same folder checked by name through the marketplace, and by vendor address and slug alone
    chain_only = ("--rpc", chain.rpc_url, "--registry", chain.address)
    by_name = marketplace_cli.run("verify", str(target), "acme/tiny@v1", "--endpoint", live_server.url, *chain_only)
    assert by_name.code == 0, by_name.text
    by_address = marketplace_cli.run("verify", str(target), f"{live_version.model.vendor.address}/tiny@1", *chain_only, "--json")
    assert by_address.code == 0 and json.loads(by_address.out)["outcome"] == "verified"


def test_pull_without_a_licence_is_refused_and_a_missing_rpc_is_a_usage_error(chain, marketplace_cli, live_version, make_party, tmp_path):
    stranger = make_party("stranger", chain.keys[3])
    env = dict(HALLMARK_TOKEN=stranger.token)
    assert marketplace_cli.run("pull", "acme/tiny", "--dir", str(tmp_path / "a"), **env).code == 2
    refused = marketplace_cli.run("pull", "acme/tiny", "--dir", str(tmp_path / "a"), "--rpc", chain.rpc_url, **env)
    assert refused.code == 1 and "none of your wallets holds a licence" in refused.err and "[GatedRepo]" in refused.err
    missing = marketplace_cli.run("pull", "acme/nothing", "--rpc", chain.rpc_url, **env)
    assert missing.code == 1 and "RepoNotFound" in missing.err
