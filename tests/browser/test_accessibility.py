"""Accessibility checked by axe-core (npm devDependency, loaded from node_modules into each page)
against WCAG 2.0/2.1 A and AA: the public pages, the buyer's pages and the vendor portal, at
desktop and phone widths; and every id an aria-describedby or aria-labelledby names exists (the
sign-up form's fields once named help texts that did not). The browser context bypasses the CSP
only so the test can inject axe; the pages themselves keep `script-src 'self'`."""

from pathlib import Path

import pytest

from .conftest import DESKTOP, KEY_PROVIDER, PHONE, KeyWallet, log_in
from .test_pages import PASSWORD, shop  # noqa: F401  (the fixture: a vendor, a derived model, a buyer)

pytestmark = pytest.mark.django_db(transaction=True)

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
RUN_AXE = """async (tags) => {
  const result = await axe.run(document, { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] });
  return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                                         targets: v.nodes.map((n) => n.target.join(" ")) }));
}"""


# ids named by aria-describedby / aria-labelledby that are not in the page (axe checks only some
# elements' references: a form field's dangling aria-describedby passes it)
MISSING_REFERENCES = """() => [...document.querySelectorAll("[aria-describedby], [aria-labelledby]")].flatMap((el) =>
  ["aria-describedby", "aria-labelledby"].flatMap((attribute) =>
    (el.getAttribute(attribute) || "").split(/\\s+/).filter((id) => id && !document.getElementById(id))
      .map((id) => `${el.tagName.toLowerCase()}#${el.id || "?"} ${attribute}="${id}"`)))"""


def check(page, name: str) -> list[str]:
    """axe's violations on the current page, and the ARIA references to missing ids, one readable line each."""
    assert AXE.exists(), "axe-core is missing: run `make install` (npm ci)"
    missing = [f"{name}: {ref} names no element" for ref in page.evaluate(MISSING_REFERENCES)]
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(RUN_AXE, TAGS)
    return missing + [f"{name}: {v['id']} ({v['impact']}): {v['help']} -> {v['targets'][:6]}" for v in violations]


@pytest.fixture
def axe_page(browser):
    contexts = []

    def factory(viewport: dict):
        context = browser.new_context(viewport=viewport, bypass_csp=True)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        page.on("console", lambda msg: page.errors.append(msg.text) if msg.type == "error" and "404" not in msg.text else None)
        return page

    yield factory
    for context in contexts:
        context.close()


@pytest.mark.parametrize("viewport_name", ["desktop", "phone"])
def test_pages_have_no_wcag_a_or_aa_violations(shop, live_server, axe_page, viewport_name):  # noqa: F811
    base = live_server.url
    page = axe_page(DESKTOP if viewport_name == "desktop" else PHONE)
    found: list[str] = []
    public = [
        ("home", "/"), ("catalog filtered", "/models?q=tiny&format=gguf&ordering=-price"), ("model", "/acme/tiny"),
        ("catalog with a form error", "/models?min_parameters=5&max_parameters=1"), ("vendor", "/acme"),
        ("derived model", "/remix/chat"), ("login", "/portal/login"), ("signup", "/portal/signup"),
    ]
    for name, path in public:
        page.goto(base + path)
        found += check(page, name)
    page.goto(base + "/portal/signup")
    page.get_by_label("Username").fill("newcomer")
    page.get_by_role("button", name="Sign up").click()  # no password: the form comes back with its errors
    page.locator(".field.invalid").first.wait_for()
    found += check(page, "signup with errors")

    shop["buyer"].user.set_password(PASSWORD)
    shop["buyer"].user.save()
    log_in(page, base, "buyer", PASSWORD)
    for name, path in [("licences", "/portal/licences"), ("tokens", "/portal/tokens")]:
        page.goto(base + path)
        found += check(page, name)
    page.get_by_label("Name").fill("edge box")
    page.get_by_role("button", name="Create token").click()
    page.get_by_label("Your new token").wait_for()
    found += check(page, "tokens (created)")

    page.context.clear_cookies()
    log_in(page, base, "vendor", PASSWORD)
    portal = [
        ("dashboard", "/portal/"), ("wallet", "/portal/wallet"), ("royalties", "/portal/royalties"),
        ("new model", "/portal/models/new"), ("manage model", "/portal/models/tiny"),
        ("version", f"/portal/models/tiny/versions/{shop['root'].pk}"),
    ]
    for name, path in portal:
        page.goto(base + path)
        if name == "version":
            page.get_by_text("Live as v1").wait_for()
        found += check(page, name)
    assert not found, "accessibility violations (WCAG 2 A/AA):\n" + "\n".join(found)
    assert not page.errors, f"errors in the pages: {page.errors}"


@pytest.mark.parametrize("viewport_name", ["desktop", "phone"])
def test_buy_panel_has_no_wcag_a_or_aa_violations_in_each_state(shop, chain, anvil, live_server, axe_page, viewport_name):  # noqa: F811
    """The Buy panel as a buyer sees it: before connecting, ready to buy, and licensed with the token."""
    page = axe_page(DESKTOP if viewport_name == "desktop" else PHONE)
    wallet = KeyWallet(anvil, chain.keys[4])
    page.expose_function("__keyWallet", wallet.forward)
    page.add_init_script(KEY_PROVIDER)
    page.goto(f"{live_server.url}/acme/tiny")
    found = check(page, "buy (not connected)")
    page.get_by_role("button", name="Connect wallet").click()
    page.locator("#buy-app[data-state='ready']").wait_for(timeout=30_000)
    found += check(page, "buy (ready)")
    page.get_by_role("button", name="Buy for 0.001 ETH").click()
    page.locator("#buy-app[data-state='licensed']").wait_for(timeout=30_000)
    found += check(page, "buy (licensed)")
    assert not found, "accessibility violations (WCAG 2 A/AA):\n" + "\n".join(found)
    assert not page.errors, f"errors in the page: {page.errors}"
