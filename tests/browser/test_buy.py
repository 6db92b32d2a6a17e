"""A buyer buys a licence on the model page with their own wallet: an EIP-1193 provider holding a
real anvil key that answers as MetaMask does, the real contract, the real API. Buy, download with
the token made on the page, renew, and the refusals (rejected in the wallet, wrong chain, not
listed, price changed, not enough funds), at desktop and phone widths."""

import hashlib
import urllib.request

import pytest
from eth_account import Account

from registry import chain as chain_module
from tests.conftest import publish

from .conftest import DESKTOP, PHONE

pytestmark = pytest.mark.django_db(transaction=True)

DAY = 86400


@pytest.fixture(autouse=True)
def _confirm_at_once(settings, anvil):
    settings.CONFIRMATIONS = 1
    settings.REGISTRY_DEPLOY_BLOCK = anvil.deploy_block


def set_terms(party, model, *, price: int, duration: int, listed: bool):
    """The vendor changes the terms on chain from their own key (the page still shows the old ones)."""
    contract = chain_module.registry_contract()
    w3 = chain_module.web3()
    tx = contract.functions.setTerms(chain_module.to_bytes32(model.chain_model_id), price, duration, listed).build_transaction(
        {"from": party.address, "nonce": w3.eth.get_transaction_count(party.address)}
    )
    signed = Account.from_key(party.key).sign_transaction(tx)
    assert w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))["status"] == 1


def tidy(page):
    """No console errors, no sideways scrolling."""
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.errors.check()


def state(page, name: str):
    page.locator(f"#buy-app[data-state='{name}']").wait_for(timeout=30_000)


def open_model(open_key_wallet_page, base, key, *, viewport=DESKTOP, chain_id=31337, slug="tiny"):
    page, wallet = open_key_wallet_page(key, viewport=viewport, chain_id=chain_id)
    page.goto(f"{base}/acme/{slug}")
    return page, wallet


def download(base: str, page, path: str) -> bytes:
    revision = page.locator("#buy-revision").inner_text()
    token = page.locator("#buy-token").inner_text()
    assert token.startswith("hm_")
    request = urllib.request.Request(f"{base}/acme/tiny/resolve/{revision}/{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def test_buy_download_and_renew(chain, live_server, open_key_wallet_page, vendor, gguf_file):
    version = publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes()}, price=10**15, duration=30 * DAY)
    base = live_server.url
    buyer = chain.account(3)
    page, wallet = open_model(open_key_wallet_page, base, chain.keys[3])

    page.get_by_role("button", name="Connect wallet").click()
    state(page, "ready")
    assert page.locator("#buy-price").inner_text() == "0.001 ETH"
    assert page.locator("#buy-length").inner_text() == "30 days"
    assert "vendor" in page.locator("#buy-split").inner_text()
    assert "personal_sign" in wallet.calls  # signed in with Ethereum: the page had no session
    page.get_by_role("button", name="Buy for 0.001 ETH").click()
    state(page, "licensed")
    assert page.locator("#buy-licensed").inner_text().startswith("Licensed until ")
    assert page.locator("#buy-repo").inner_text() == "acme/tiny"

    data = download(base, page, "model.gguf")
    assert hashlib.sha256(data).hexdigest() == version.artifacts.get().sha256
    first_expiry = chain_module.registry_contract().functions.licenseExpiry(
        chain_module.to_bytes32(version.model.chain_model_id), buyer.address).call()
    tidy(page)

    page.reload()
    page.get_by_role("button", name="Connect wallet").click()
    state(page, "renew")
    assert "You hold a licence until" in page.locator("#buy-held").inner_text()
    page.get_by_role("button", name="Renew").click()
    state(page, "licensed")
    renewed = chain_module.registry_contract().functions.licenseExpiry(
        chain_module.to_bytes32(version.model.chain_model_id), buyer.address).call()
    assert renewed == first_expiry + 30 * DAY
    tidy(page)


def test_perpetual_on_a_phone_then_already_held(chain, live_server, open_key_wallet_page, vendor, gguf_file):
    publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes()}, price=10**15)
    base = live_server.url
    page, _ = open_model(open_key_wallet_page, base, chain.keys[4], viewport=PHONE)
    page.get_by_role("button", name="Connect wallet").click()
    state(page, "ready")
    assert page.locator("#buy-length").inner_text() == "perpetual"
    page.get_by_role("button", name="Buy for 0.001 ETH").click()
    state(page, "licensed")
    assert page.locator("#buy-licensed").inner_text() == "Licensed: perpetual, it never expires."
    tidy(page)
    page.reload()
    page.get_by_role("button", name="Connect wallet").click()
    state(page, "perpetual-held")
    tidy(page)


def test_rejected_in_the_wallet(chain, live_server, open_key_wallet_page, vendor, gguf_file):
    publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes()}, price=10**15)
    page, wallet = open_model(open_key_wallet_page, live_server.url, chain.keys[5], viewport=PHONE)
    wallet.reject.add("eth_sendTransaction")
    page.get_by_role("button", name="Connect wallet").click()
    state(page, "ready")
    page.get_by_role("button", name="Buy for 0.001 ETH").click()
    state(page, "rejected")
    assert "declined" in page.locator("#buy-status").inner_text()
    assert page.get_by_role("button", name="Buy for 0.001 ETH").is_enabled()
    tidy(page)


def test_wrong_chain_offers_to_switch(chain, live_server, open_key_wallet_page, vendor, gguf_file):
    publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes()}, price=10**15)
    page, wallet = open_model(open_key_wallet_page, live_server.url, chain.keys[6], chain_id=1)
    page.get_by_role("button", name="Connect wallet").click()
    state(page, "wrong-chain")
    assert "network 1" in page.locator("#buy-chain-text").inner_text()
    page.get_by_role("button", name="Switch network").click()
    state(page, "ready")
    assert wallet.chain_id == 31337
    tidy(page)


def test_not_listed(chain, live_server, open_key_wallet_page, vendor, gguf_file):
    version = publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes()}, price=10**15)
    page, _ = open_model(open_key_wallet_page, live_server.url, chain.keys[7], viewport=PHONE)
    set_terms(vendor, version.model, price=10**15, duration=0, listed=False)  # after the page loaded
    page.get_by_role("button", name="Connect wallet").click()
    state(page, "not-listed")
    assert "Not for sale" in page.locator("#buy-status").inner_text()
    tidy(page)

    model = version.model
    model.listed = False  # once the indexer copied it: the page offers nothing to buy
    model.save(update_fields=["listed"])
    page.reload()
    assert page.locator("[data-state='not-listed']").first.is_visible()
    assert page.get_by_role("button", name="Connect wallet").count() == 0
    tidy(page)


def test_price_changed_since_the_page_loaded(chain, live_server, open_key_wallet_page, vendor, gguf_file):
    version = publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes()}, price=10**15)
    page, _ = open_model(open_key_wallet_page, live_server.url, chain.keys[8])
    set_terms(vendor, version.model, price=2 * 10**15, duration=0, listed=True)
    page.get_by_role("button", name="Connect wallet").click()
    state(page, "price-changed")
    assert "it was 0.001 ETH, it is now 0.002 ETH" in page.locator("#buy-price-changed-text").inner_text()
    page.get_by_role("button", name="Review the new price").click()
    state(page, "ready")
    page.get_by_role("button", name="Buy for 0.002 ETH").click()
    state(page, "licensed")
    tidy(page)


def test_not_enough_funds(chain, live_server, open_key_wallet_page, vendor, gguf_file):
    publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes()}, price=10**15)
    poor = Account.create()
    chain.rpc("anvil_setBalance", [poor.address, "0x0"])
    page, _ = open_model(open_key_wallet_page, live_server.url, poor.key.hex(), viewport=PHONE)
    page.get_by_role("button", name="Connect wallet").click()
    state(page, "no-funds")
    assert "Not enough funds" in page.locator("#buy-status").inner_text()
    assert page.locator("#buy-send").is_disabled()
    tidy(page)


def test_without_a_wallet(chain, live_server, open_page, vendor, gguf_file):
    publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes()}, price=10**15)
    page = open_page(account=None)
    page.goto(f"{live_server.url}/acme/tiny")
    state(page, "no-wallet")
    assert "No browser wallet found" in page.locator("#buy-status").inner_text()
    assert page.get_by_role("button", name="Connect wallet").is_disabled()
    tidy(page)


def test_a_signed_in_buyer_with_a_linked_wallet_signs_nothing_but_the_purchase(chain, live_server, open_key_wallet_page, vendor, make_party, gguf_file):
    from .conftest import log_in

    version = publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes()}, price=10**15)
    buyer = make_party("buyer", chain.keys[3])
    buyer.user.set_password("correct horse battery staple 9")
    buyer.user.save()
    base = live_server.url
    page, wallet = open_key_wallet_page(chain.keys[3])
    log_in(page, base, "buyer")
    page.goto(f"{base}/acme/tiny")
    page.get_by_role("button", name="Connect wallet").click()
    state(page, "ready")
    page.get_by_role("button", name="Buy for 0.001 ETH").click()
    state(page, "licensed")
    assert "personal_sign" not in wallet.calls  # the session's linked wallet: no sign-in message
    assert hashlib.sha256(download(base, page, "model.gguf")).hexdigest() == version.artifacts.get().sha256
    assert buyer.user.api_tokens.filter(name="download acme/tiny").exists()
    tidy(page)


def test_the_page_follows_an_unconfirmed_purchase_until_confirmed(chain, settings, live_server, open_key_wallet_page, vendor, gguf_file):
    publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes()}, price=10**15)
    settings.CONFIRMATIONS = 2
    page, _ = open_model(open_key_wallet_page, live_server.url, chain.keys[3])
    page.get_by_role("button", name="Connect wallet").click()
    state(page, "ready")
    page.get_by_role("button", name="Buy for 0.001 ETH").click()
    state(page, "unconfirmed")
    assert "1 of 2 blocks deep" in page.locator("#buy-status").inner_text()
    assert page.locator("#buy-token").inner_text().startswith("hm_")  # usable already
    chain.rpc("evm_mine")
    state(page, "licensed")
    tidy(page)
