"""Browser fixtures: Debian's chromium driven by Playwright, with an EIP-1193 wallet injected into
every page that forwards to anvil's unlocked development accounts (a real wallet API over a
real chain). The page reaches the wallet through a Playwright binding, so the portal's CSP
(connect-src 'self') stays on."""

from __future__ import annotations

import json
import os

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import rpc

# Playwright's sync API keeps an asyncio loop in this thread; Django would take every ORM call
# in the test for an async context. The test thread does not share connections with the loop.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

PROVIDER = """
(() => {
  const account = %(account)s;
  const listeners = {};
  window.ethereum = {
    isHallmarkTestWallet: true,
    async request({ method, params }) {
      if (method === "eth_requestAccounts" || method === "eth_accounts") return [account];
      if (method === "wallet_switchEthereumChain") return null;
      const answer = JSON.parse(await window.__anvilRpc(method, JSON.stringify(params || [])));
      if (answer.error) { const e = new Error(answer.error.message); e.code = answer.error.code; throw e; }
      return answer.result;
    },
    on(event, handler) { (listeners[event] = listeners[event] || []).push(handler); },
    removeListener(event, handler) { listeners[event] = (listeners[event] || []).filter((h) => h !== handler); },
  };
})();
"""


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


class PageErrors(list):
    def check(self):
        assert not self, f"errors in the page: {list(self)}"


def _open(browser, anvil, account: str | None, viewport: dict):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    errors = PageErrors()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and "404" not in msg.text and "409" not in msg.text else None)
    if account is not None:
        def forward(method: str, params: str) -> str:
            try:
                return json.dumps({"result": rpc(anvil.rpc_url, method, json.loads(params))})
            except Exception as exc:  # surfaced to the page as a rejected request
                return json.dumps({"error": {"code": -32000, "message": str(exc)}})

        page.expose_function("__anvilRpc", forward)
        page.add_init_script(PROVIDER % {"account": json.dumps(account)})
    page.errors = errors
    return context, page


@pytest.fixture
def open_page(browser, anvil):
    """open_page(account=None or 0x…, viewport=DESKTOP) -> page with the test wallet for `account`."""
    contexts = []

    def factory(account: str | None = None, viewport: dict = DESKTOP):
        context, page = _open(browser, anvil, account, viewport)
        contexts.append(context)
        return page

    yield factory
    for context in contexts:
        context.close()


def sign_up(page, base: str, username: str, password: str = "correct horse battery staple 9"):
    page.goto(f"{base}/portal/signup")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password confirmation").fill(password)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(f"{base}/portal/wallet")


def log_in(page, base: str, username: str, password: str = "correct horse battery staple 9"):
    page.goto(f"{base}/portal/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/portal/")
