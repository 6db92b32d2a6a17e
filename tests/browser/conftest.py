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


# ------------------------------------------------------------- a key-backed MetaMask-like wallet

KEY_PROVIDER = """
(() => {
  window.ethereum = {
    isMetaMask: true,
    async request({ method, params }) {
      const answer = JSON.parse(await window.__keyWallet(method, JSON.stringify(params || [])));
      if (answer.error) { const e = new Error(answer.error.message); e.code = answer.error.code; throw e; }
      return answer.result;
    },
    on() {},
    removeListener() {},
  };
})();
"""


class KeyWallet:
    """An EIP-1193 wallet holding one real key, answering as MetaMask does: `eth_requestAccounts`,
    `eth_chainId`, `wallet_switchEthereumChain`, `personal_sign` [hexMessage, address],
    `eth_signTypedData_v4` [address, jsonString], `eth_sendTransaction` (signed here, sent raw), and
    `{code: 4001}` for a method in `reject`. Anything else goes to anvil."""

    def __init__(self, anvil, key: str, chain_id: int = 31337):
        from eth_account import Account

        self.anvil = anvil
        self.account = Account.from_key(key)
        self.address = self.account.address
        self.chain_id = chain_id
        self.reject: set[str] = set()
        self.calls: list[str] = []

    def handle(self, method: str, params: list):
        from eth_account.messages import encode_defunct

        self.calls.append(method)
        if method in self.reject:
            raise WalletRejection
        if method in ("eth_requestAccounts", "eth_accounts"):
            return [self.address]
        if method == "eth_chainId":
            return hex(self.chain_id)
        if method == "wallet_switchEthereumChain":
            wanted = int(params[0]["chainId"], 16)
            if wanted != 31337:
                raise WalletFailure(4902, f"Unrecognized chain ID {params[0]['chainId']}.")
            self.chain_id = wanted
            return None
        if method == "personal_sign":
            message, address = params
            assert address.lower() == self.address.lower(), "personal_sign takes [hexMessage, address]"
            return "0x" + self.account.sign_message(encode_defunct(hexstr=message)).signature.hex().removeprefix("0x")
        if method == "eth_signTypedData_v4":
            address, typed = params
            assert address.lower() == self.address.lower(), "eth_signTypedData_v4 takes [address, jsonString]"
            return "0x" + self.account.sign_typed_data(full_message=json.loads(typed)).signature.hex().removeprefix("0x")
        if method == "eth_sendTransaction":
            return self._send(params[0])
        return rpc(self.anvil.rpc_url, method, params)

    def _send(self, tx: dict) -> str:
        assert tx["from"].lower() == self.address.lower()
        base = {"from": self.address, "to": tx["to"], "data": tx.get("data", "0x"), "value": tx.get("value", "0x0")}
        gas = int(rpc(self.anvil.rpc_url, "eth_estimateGas", [base]), 16)
        signed = self.account.sign_transaction({
            "to": tx["to"], "data": base["data"], "value": int(base["value"], 16), "gas": gas,
            "gasPrice": int(rpc(self.anvil.rpc_url, "eth_gasPrice"), 16), "chainId": 31337,
            "nonce": int(rpc(self.anvil.rpc_url, "eth_getTransactionCount", [self.address, "pending"]), 16),
        })
        return rpc(self.anvil.rpc_url, "eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex().removeprefix("0x")])

    def forward(self, method: str, params: str) -> str:
        try:
            return json.dumps({"result": self.handle(method, json.loads(params))})
        except WalletRejection:
            return json.dumps({"error": {"code": 4001, "message": "MetaMask Tx Signature: User denied transaction signature."}})
        except WalletFailure as exc:
            return json.dumps({"error": {"code": exc.code, "message": exc.message}})
        except Exception as exc:  # a node error, as MetaMask passes it on
            detail = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {"message": str(exc)}
            return json.dumps({"error": {"code": -32000, "message": detail.get("message", str(exc))}})


class WalletRejection(Exception):
    pass


class WalletFailure(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@pytest.fixture
def open_key_wallet_page(browser, anvil):
    """open_key_wallet_page(key, viewport=DESKTOP, chain_id=31337) -> (page, KeyWallet)."""
    contexts = []

    def factory(key: str, viewport: dict = DESKTOP, chain_id: int = 31337):
        context, page = _open(browser, anvil, None, viewport)
        contexts.append(context)
        key_wallet = KeyWallet(anvil, key, chain_id)
        page.expose_function("__keyWallet", key_wallet.forward)
        page.add_init_script(KEY_PROVIDER)
        return page, key_wallet

    yield factory
    for context in contexts:
        context.close()
