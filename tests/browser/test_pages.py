"""Every main page at phone and desktop width: no script errors, no sideways scrolling, and a
screenshot (to SCREENSHOT_DIR, which `make screenshots` points at docs/screenshots/). Also: the
royalties page shows a buyer's purchase, and the vendor withdraws from it in the wallet."""

import os
from pathlib import Path

import pytest

from registry.indexer import indexer_run
from tests.conftest import publish, purchase

from .conftest import DESKTOP, PHONE, log_in

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "correct horse battery staple 9"


@pytest.fixture
def shop(chain, settings, make_party, gguf_file):
    """A vendor with a published model (card, lineage), a derived model by another vendor, and sales."""
    settings.CONFIRMATIONS = 1
    settings.REGISTRY_DEPLOY_BLOCK = chain.deploy_block
    vendor = make_party("vendor", chain.keys[1], vendor_slug="acme")
    vendor.user.set_password(PASSWORD)
    vendor.user.save()
    root = publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes(), "README.md": b"# Tiny\n"}, price=10**15,
                   description="A tiny llama for phones.")
    remixer = make_party("remixer", chain.keys[6], vendor_slug="remix")
    derived = publish(remixer, "chat", {"chat.gguf": gguf_file.read_bytes()}, price=10**16, duration=30 * 86400, parent=root.model, bps=2500)
    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, root.model.chain_model_id, buyer.key)
    purchase(chain, derived.model.chain_model_id, buyer.key)
    indexer_run()
    return {"vendor": vendor, "root": root, "derived": derived, "buyer": buyer}


def shots_dir(tmp_path) -> Path:
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("viewport_name", ["desktop", "phone"])
def test_main_pages_render_cleanly_at_both_widths(shop, live_server, open_page, tmp_path, viewport_name):
    viewport = DESKTOP if viewport_name == "desktop" else PHONE
    base = live_server.url
    page = open_page(account=shop["vendor"].address, viewport=viewport)
    folder = shots_dir(tmp_path)
    public = [("home", "/"), ("catalog", "/models?format=gguf&ordering=-price"), ("model", "/acme/tiny"), ("derived-model", "/remix/chat"), ("login", "/portal/login"), ("signup", "/portal/signup")]
    for name, path in public:
        page.goto(base + path)
        _check_and_shoot(page, folder, name, viewport_name)
    log_in(page, base, "vendor", PASSWORD)
    portal = [
        ("portal", "/portal/"), ("wallet", "/portal/wallet"), ("new-model", "/portal/models/new"),
        ("manage-model", "/portal/models/tiny"), ("version", f"/portal/models/tiny/versions/{shop['root'].pk}"),
        ("royalties", "/portal/royalties"),
    ]
    for name, path in portal:
        page.goto(base + path)
        if name == "version":
            page.get_by_text("Live as v1").wait_for()
        _check_and_shoot(page, folder, name, viewport_name)
    page.errors.check()


def _check_and_shoot(page, folder: Path, name: str, viewport_name: str, element: str | None = None):
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{name} scrolls sideways by {overflow}px at {viewport_name} width"
    assert page.locator("h1").count() >= 1, f"{name} has no heading"
    unlabeled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
              .filter(el => !el.labels?.length && !el.getAttribute('aria-label')).map(el => el.name || el.id)"""
    )
    assert not unlabeled, f"{name}: form fields without a label: {unlabeled}"
    if element:  # one panel of the page
        page.locator(element).screenshot(path=str(folder / f"{name}-{viewport_name}.png"))
    else:
        page.screenshot(path=str(folder / f"{name}-{viewport_name}.png"), full_page=True)


def test_royalties_page_shows_a_buyers_purchase_and_withdraws_in_the_wallet(shop, chain, live_server, open_page):
    base = live_server.url
    page = open_page(account=shop["vendor"].address)
    log_in(page, base, "vendor", PASSWORD)
    page.goto(f"{base}/portal/royalties")
    sales = page.locator("#sales tbody tr")
    assert sales.count() == 1 and "acme/tiny" in sales.first.inner_text() and "\t1\t" in sales.first.inner_text()
    assert "remix/chat" in page.locator("body").inner_text()  # royalties from the derived model
    page.locator("button.withdraw").first.click()
    page.get_by_text("Withdrawal sent").wait_for()
    from registry import chain as chain_mod

    assert chain_mod.registry_contract().functions.creditOf(shop["vendor"].address).call() == 0
    page.errors.check()


@pytest.mark.parametrize("viewport_name", ["desktop", "phone"])
def test_buyer_pages_render_cleanly_at_both_widths(shop, live_server, open_page, tmp_path, viewport_name):
    """The buyer's Licences and Tokens pages (signed in), screenshots beside the vendor's pages."""
    shop["buyer"].user.set_password(PASSWORD)
    shop["buyer"].user.save()
    page = open_page(viewport=DESKTOP if viewport_name == "desktop" else PHONE)
    log_in(page, live_server.url, "buyer", PASSWORD)
    for name in ("licences", "tokens"):
        page.goto(f"{live_server.url}/portal/{name}")
        _check_and_shoot(page, shots_dir(tmp_path), name, viewport_name)
    page.errors.check()


@pytest.mark.parametrize("viewport_name", ["desktop", "phone"])
def test_buy_panel_before_and_after_a_purchase(shop, chain, live_server, open_key_wallet_page, tmp_path, viewport_name):
    """Screenshots of the model page's Buy panel: connected and ready to buy, then licensed (token shown)."""
    folder = shots_dir(tmp_path)
    page, _ = open_key_wallet_page(chain.keys[3], viewport=DESKTOP if viewport_name == "desktop" else PHONE)
    page.goto(f"{live_server.url}/acme/tiny")
    page.get_by_role("button", name="Connect wallet").click()
    page.locator("#buy-app[data-state='ready']").wait_for(timeout=30_000)
    _check_and_shoot(page, folder, "buy-ready", viewport_name, element="#buy-app")
    page.get_by_role("button", name="Buy for 0.001 ETH").click()
    page.locator("#buy-app[data-state='licensed']").wait_for(timeout=30_000)
    assert page.locator("#buy-token").inner_text().startswith("hm_")
    _check_and_shoot(page, folder, "buy-licensed", viewport_name, element="#buy-app")
    page.errors.check()
