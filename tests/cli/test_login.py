"""`hallmark login`: Sign-In with Ethereum against the live server; the token is kept 0600."""

import json
import stat

import pytest
import requests
from eth_account import Account

from marketplace.models import ApiToken, SiweNonce

pytestmark = pytest.mark.django_db(transaction=True)


def test_login_keeps_the_token_in_a_private_file_and_never_prints_it(chain, marketplace_cli, live_server):
    key = chain.keys[4]
    address = Account.from_key(key).address
    result = marketplace_cli.run("login", key=key)
    assert result.code == 0, result.text

    config = marketplace_cli.config
    saved = json.loads((config / "credentials.json").read_text())
    entry = saved["tokens"][live_server.url]
    assert saved["endpoint"] == live_server.url and entry["wallet"] == address
    assert stat.S_IMODE((config / "credentials.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(config.stat().st_mode) == 0o700
    assert address in result.out and f"token {entry['prefix']}…" in result.out
    assert entry["token"] not in result.text and key[2:] not in result.text

    wallets = requests.get(f"{live_server.url}/api/v1/auth/wallets", headers={"Authorization": f"Bearer {entry['token']}"})
    assert wallets.status_code == 200 and [w["address"] for w in wallets.json()] == [address]


def test_login_with_an_encrypted_keystore_and_show_token(chain, marketplace_cli, tmp_path):
    key = chain.keys[5]
    keystore = tmp_path / "key.json"
    keystore.write_text(json.dumps(Account.encrypt(key, "correct horse", kdf="pbkdf2", iterations=1000)))

    wrong = marketplace_cli.run("login", "--keystore", str(keystore), HALLMARK_KEYSTORE_PASSWORD="wrong")
    assert wrong.code == 1 and "cannot decrypt" in wrong.err
    assert not (marketplace_cli.config / "credentials.json").exists()

    result = marketplace_cli.run("login", "--keystore", str(keystore), "--show-token", HALLMARK_KEYSTORE_PASSWORD="correct horse")
    assert result.code == 0, result.text
    token = json.loads((marketplace_cli.config / "credentials.json").read_text())["tokens"][marketplace_cli.env["HALLMARK_ENDPOINT"]]["token"]
    assert token in result.out.splitlines() and key[2:] not in result.text


def test_login_without_a_key_or_endpoint_is_a_usage_error(cli, chain):
    assert cli.run("login", "--endpoint", "http://127.0.0.1:9").code == 2
    no_endpoint = cli.run("login", key=chain.keys[4])
    assert no_endpoint.code == 2 and "--endpoint" in no_endpoint.err


def test_login_refuses_a_sign_in_message_for_another_domain_and_signs_nothing(chain, marketplace_cli, settings):
    settings.SIWE_DOMAIN = "evil.example"  # what a relay for another site would ask for
    result = marketplace_cli.run("login", key=chain.keys[4])
    assert result.code == 9, result.text
    assert "refusing to sign" in result.err and "'evil.example'" in result.err and "Nothing was signed" in result.err
    assert not (marketplace_cli.config / "credentials.json").exists()
    assert not SiweNonce.objects.filter(used_at__isnull=False).exists() and not ApiToken.objects.exists()


def test_a_saved_token_the_marketplace_no_longer_knows_says_to_run_hallmark_login(chain, marketplace_cli, live_version, tmp_path):
    from marketplace import services

    assert marketplace_cli.run("login", key=chain.keys[2]).code == 0
    token = ApiToken.objects.get(name__startswith="hallmark-cli on ")  # the one `login` saved
    services.api_token_revoke(token=token)  # as in the portal; `make clean-data` forgets it altogether
    pull = ("pull", "acme/tiny", "--dir", str(tmp_path / "pulled"), "--rpc", chain.rpc_url)
    revoked = marketplace_cli.run(*pull)
    assert revoked.code == 1, revoked.text
    assert revoked.err.strip() == (
        "error: the API token is unknown or revoked [invalid_token]: run `hallmark login` to sign in again and save a new token"
    )

    ApiToken.objects.all().delete()  # the database reset under the saved token
    unknown = marketplace_cli.run(*pull, "--endpoint", marketplace_cli.env["HALLMARK_ENDPOINT"])
    assert unknown.code == 1 and f"run `hallmark login --endpoint {marketplace_cli.env['HALLMARK_ENDPOINT']}`" in unknown.err

    from_env = marketplace_cli.run(*pull, HALLMARK_TOKEN="hm_no-such-token")
    assert from_env.code == 1 and "[invalid_token]" in from_env.err
    assert "unset HALLMARK_TOKEN` and run `hallmark login`" in from_env.err and "create a new one" not in from_env.err
