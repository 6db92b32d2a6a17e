"""The buyer's pages in Chromium at desktop and phone widths: a token made on the Tokens page is
shown once and revoked there; the Licences page and the model page's lineage tree render without
script errors or sideways scrolling."""

import re

import pytest

from marketplace.models import ApiToken
from registry.indexer import indexer_run
from tests.conftest import publish, purchase

from .conftest import DESKTOP, PHONE, log_in
from .test_pages import shots_dir

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "correct horse battery staple 9"


@pytest.fixture
def buyer_with_licences(chain, settings, make_party, gguf_file):
    settings.CONFIRMATIONS = 1
    settings.REGISTRY_DEPLOY_BLOCK = chain.deploy_block
    vendor = make_party("vendor", chain.keys[1], vendor_slug="acme")
    root = publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes()}, price=10**15)
    remixer = make_party("remixer", chain.keys[6], vendor_slug="remix-with-a-rather-long-vendor-name")
    derived = publish(remixer, "chat-assistant-quantized-for-phones", {"chat.gguf": gguf_file.read_bytes()}, price=10**16,
                      duration=20 * 86400, parent=root.model, bps=2500)
    buyer = make_party("buyer", chain.keys[2])
    buyer.user.set_password(PASSWORD)
    buyer.user.save()
    purchase(chain, root.model.chain_model_id, buyer.key)
    purchase(chain, derived.model.chain_model_id, buyer.key)
    indexer_run()
    return buyer, derived


def _no_sideways_scroll(page, name: str):
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    wide = page.evaluate(
        """() => [...document.querySelectorAll('body *')].filter(el => el.getBoundingClientRect().right > window.innerWidth)
              .slice(0, 5).map(el => el.tagName + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().right))"""
    )
    assert overflow <= 0, f"{name} scrolls sideways by {overflow}px: {wide}"


@pytest.mark.parametrize("viewport_name", ["desktop", "phone"])
def test_tokens_page_creates_a_token_shown_once_and_revokes_it(buyer_with_licences, live_server, open_page, tmp_path, viewport_name):
    buyer, derived = buyer_with_licences
    folder = shots_dir(tmp_path)
    base = live_server.url
    page = open_page(viewport=DESKTOP if viewport_name == "desktop" else PHONE)
    log_in(page, base, "buyer", PASSWORD)
    page.get_by_role("link", name="Tokens").click()
    page.wait_for_url(f"{base}/portal/tokens")
    page.get_by_label("Name").fill("edge box")
    page.get_by_label("Lifetime (days)").fill("14")
    page.get_by_role("button", name="Create token").click()
    secret_box = page.get_by_label("Your new token")
    secret_box.wait_for()
    secret = secret_box.input_value()
    assert re.fullmatch(r"hm_[0-9a-f]{8}_[A-Za-z0-9_-]+", secret)
    assert page.get_by_text("only this once").is_visible()
    _no_sideways_scroll(page, "tokens (created)")
    page.screenshot(path=str(folder / f"tokens-created-{viewport_name}.png"), full_page=True)
    token = ApiToken.objects.get(user=buyer.user, name="edge box")
    row = page.locator(f"#token-{token.prefix}")
    assert "edge box" in row.inner_text()

    page.goto(f"{base}/portal/tokens")
    assert page.get_by_label("Your new token").count() == 0 and secret not in page.content()  # shown once
    page.get_by_role("button", name=f"Revoke token {token.prefix}").click()
    page.get_by_text(f"Token {token.prefix}… revoked").wait_for()
    assert "revoked" in page.locator(f"#token-{token.prefix}").inner_text()
    token.refresh_from_db()
    assert token.revoked_at is not None
    _no_sideways_scroll(page, "tokens (revoked)")

    page.get_by_role("link", name="Licences").click()
    page.wait_for_url(f"{base}/portal/licences")
    assert page.get_by_text("renewal due").count() == 1 and page.locator("table.purchases tbody tr").count() == 2
    _no_sideways_scroll(page, "licences")
    page.screenshot(path=str(folder / f"licences-{viewport_name}.png"), full_page=True)
    page.goto(f"{base}/{derived.model.repo_id}")
    page.get_by_role("heading", name="Lineage and where your money goes").wait_for()
    _no_sideways_scroll(page, "model page with lineage")
    page.locator(".lineage-box").screenshot(path=str(folder / f"lineage-{viewport_name}.png"))
    page.errors.check()
