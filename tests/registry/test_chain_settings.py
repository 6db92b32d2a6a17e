"""Keys and deployments: dev keys only on 31337, deploy_registry records what it deployed."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from registry import chain as chain_mod
from registry.chain import ChainMisconfigured
from registry.services import registry_has_code


def test_well_known_anvil_keys_are_refused_off_the_dev_chain():
    key = chain_mod.development_keys()[0]
    assert chain_mod.guard_key(key, 31337).address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    with pytest.raises(ChainMisconfigured, match="development key"):
        chain_mod.guard_key(key, 11155111)


def test_relayer_with_no_key_configured_is_refused_off_the_dev_chain(settings):
    settings.CHAIN_ID = 8453
    settings.RELAYER_PRIVATE_KEY = ""
    settings.RELAYER_KEYSTORE = ""
    chain_mod._load_relayer.cache_clear()
    with pytest.raises(ChainMisconfigured, match="RELAYER_PRIVATE_KEY"):
        chain_mod.relayer_account()
    settings.RELAYER_PRIVATE_KEY = chain_mod.development_keys()[1]
    with pytest.raises(ChainMisconfigured):
        chain_mod.relayer_account()
    chain_mod._load_relayer.cache_clear()


def test_deploy_registry_command_deploys_and_records(chain, settings, tmp_path, capsys):
    settings.DEPLOYMENTS_DIR = tmp_path
    call_command("deploy_registry", "--rpc-url", chain.rpc_url, "--json", "--fee-bps", "300")
    record = json.loads(capsys.readouterr().out)
    assert record["chain_id"] == 31337 and record["platform_fee_bps"] == 300
    assert json.loads((tmp_path / "31337.json").read_text())["address"] == record["address"]
    assert registry_has_code(record["address"], chain.rpc_url)
    call_command("deploy_registry", "--rpc-url", chain.rpc_url, "--if-missing", "--json")
    assert json.loads(capsys.readouterr().out)["address"] == record["address"]  # reused, not redeployed


def test_deploy_registry_refuses_a_fee_above_the_cap(chain, settings, tmp_path):
    settings.DEPLOYMENTS_DIR = tmp_path
    with pytest.raises(CommandError, match="contract_reverted|PlatformFeeTooHigh"):
        call_command("deploy_registry", "--rpc-url", chain.rpc_url, "--fee-bps", "5000")
    assert not (tmp_path / "31337.json").exists()


def test_unreachable_rpc_is_a_clear_command_error(settings, tmp_path):
    from tests.conftest import free_port

    settings.DEPLOYMENTS_DIR = tmp_path
    with pytest.raises(CommandError, match="chain_unavailable"):
        call_command("deploy_registry", "--rpc-url", f"http://127.0.0.1:{free_port()}")


def test_wrong_chain_id_is_refused(chain, settings):
    from tests.conftest import reset_chain_caches

    settings.CHAIN_ID = 1
    reset_chain_caches()
    with pytest.raises(ChainMisconfigured, match="chain id 31337"):
        chain_mod.check_chain_id()
    settings.CHAIN_ID = 31337
    reset_chain_caches()
