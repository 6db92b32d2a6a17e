"""Which key signs: `--keystore` on the command line wins; $HALLMARK_KEYSTORE and
$HALLMARK_PRIVATE_KEY both set are refused (exit 10, nothing signed); the source and its address
are said on stderr, never the key."""

import json

import pytest
from eth_account import Account

from marketplace.models import ApiToken

pytestmark = pytest.mark.django_db(transaction=True)

KEY_SOURCE_CONFLICT = 10


@pytest.fixture
def vendor_keystore(chain, tmp_path):
    path = tmp_path / "vendor-key.json"
    path.write_text(json.dumps(Account.encrypt(chain.keys[1], "demo only", kdf="pbkdf2", iterations=1000)))
    return path


def test_both_key_variables_set_are_refused_and_nothing_is_signed(chain, marketplace_cli, vendor_keystore):
    both = dict(key=chain.keys[4], HALLMARK_KEYSTORE=str(vendor_keystore), HALLMARK_KEYSTORE_PASSWORD="demo only")
    login = marketplace_cli.run("login", **both)
    assert login.code == KEY_SOURCE_CONFLICT, login.text
    assert "$HALLMARK_KEYSTORE and $HALLMARK_PRIVATE_KEY" in login.err and "unset HALLMARK_KEYSTORE" in login.err
    assert "--keystore PATH" in login.err and "Nothing was signed" in login.err
    assert not (marketplace_cli.config / "credentials.json").exists() and not ApiToken.objects.exists()

    buy = marketplace_cli.run("buy", "acme/tiny", "--yes", "--rpc", chain.rpc_url, **both)  # refused before any request
    assert buy.code == KEY_SOURCE_CONFLICT and "Nothing was signed" in buy.err
    assert chain.keys[4][2:] not in login.text + buy.text


def test_the_command_line_keystore_wins_over_both_variables_and_says_so(chain, marketplace_cli, vendor_keystore, live_server):
    vendor = Account.from_key(chain.keys[1]).address
    result = marketplace_cli.run(
        "login", "--keystore", str(vendor_keystore),
        key=chain.keys[4], HALLMARK_KEYSTORE="elsewhere.json", HALLMARK_KEYSTORE_PASSWORD="demo only",
    )
    assert result.code == 0, result.text
    said = [line for line in result.err.splitlines() if line.startswith("key: ")]
    assert said == [f"key: {vendor} from the keystore {vendor_keystore} (--keystore, not $HALLMARK_KEYSTORE or $HALLMARK_PRIVATE_KEY)"]
    saved = json.loads((marketplace_cli.config / "credentials.json").read_text())
    assert saved["tokens"][live_server.url]["wallet"] == vendor


def test_each_source_is_said_with_its_address_and_never_the_key(chain, marketplace_cli, vendor_keystore):
    buyer = Account.from_key(chain.keys[4]).address
    from_hex = marketplace_cli.run("login", key=chain.keys[4])
    assert from_hex.code == 0, from_hex.text
    assert f"key: {buyer} from $HALLMARK_PRIVATE_KEY\n" in from_hex.err
    assert chain.keys[4][2:] not in from_hex.text.lower()

    vendor = Account.from_key(chain.keys[1]).address
    from_keystore = marketplace_cli.run("login", HALLMARK_KEYSTORE=str(vendor_keystore), HALLMARK_KEYSTORE_PASSWORD="demo only")
    assert from_keystore.code == 0, from_keystore.text
    assert f"key: {vendor} from the keystore {vendor_keystore} ($HALLMARK_KEYSTORE)\n" in from_keystore.err
