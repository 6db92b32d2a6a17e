// Shared helpers for the portal's pages: the browser wallet (EIP-1193) and same-origin requests.
// The portal never holds a key: every signature and transaction happens in the vendor's wallet.

export function wallet() {
  return window.ethereum || null;
}

export function noWalletMessage() {
  return "No browser wallet found. Install or enable an Ethereum wallet (e.g. MetaMask, Rabby, Frame), then reload this page.";
}

export async function walletRequest(method, params = []) {
  const provider = wallet();
  if (!provider) throw new Error(noWalletMessage());
  try {
    return await provider.request({ method, params });
  } catch (err) {
    if (err && err.code === 4001) throw new Error("You declined the request in your wallet.");
    throw new Error((err && err.message) || String(err));
  }
}

export async function account(expected) {
  const accounts = await walletRequest("eth_requestAccounts");
  if (!accounts || !accounts.length) throw new Error("The wallet shared no account.");
  if (expected) {
    const match = accounts.find((a) => a.toLowerCase() === expected.toLowerCase());
    if (!match) throw new Error(`Switch your wallet to the vendor account ${expected}.`);
    return match;
  }
  return accounts[0];
}

export async function ensureChain(chainId) {
  const current = parseInt(await walletRequest("eth_chainId"), 16);
  if (current === Number(chainId)) return;
  try {
    await walletRequest("wallet_switchEthereumChain", [{ chainId: "0x" + Number(chainId).toString(16) }]);
  } catch (err) {
    throw new Error(`Your wallet is on chain ${current}; switch it to chain ${chainId} and try again.`);
  }
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

// `bearer`: an API token to send instead of relying on the session; `withStatus`: answer
// `{status, data}` (e.g. to tell 202 "not mined yet" from 200) instead of the data alone
export async function api(url, { method = "GET", body, form, bearer, withStatus = false } = {}) {
  const headers = { "X-CSRFToken": csrfToken(), Accept: "application/json" };
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  let payload;
  if (form) {
    payload = form;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(url, { method, headers, body: payload, credentials: "same-origin" });
  let data = {};
  try {
    data = await response.json();
  } catch (_) {
    /* empty or non-JSON answer */
  }
  if (!response.ok) {
    const error = new Error(data.message || `The server answered ${response.status}.`);
    error.code = data.code;
    error.status = response.status;
    throw error;
  }
  return withStatus ? { status: response.status, data } : data;
}

export function say(element, text, kind = "") {
  if (!element) return;
  element.textContent = text;
  element.className = "status-line" + (kind ? " " + kind : "");
}

export function jsonScript(id) {
  const node = document.getElementById(id);
  return node ? JSON.parse(node.textContent) : null;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function siweMessage({ domain, address, uri, chainId, nonce }) {
  // EIP-4361, the same text as hallmark.siwe.siwe_message on the server and in the CLI
  const issued = new Date();
  const expires = new Date(issued.getTime() + 10 * 60 * 1000);
  return [
    `${domain} wants you to sign in with your Ethereum account:`,
    address,
    "",
    "Sign in to Hallmark, the edge model marketplace.",
    "",
    `URI: ${uri}`,
    "Version: 1",
    `Chain ID: ${chainId}`,
    `Nonce: ${nonce}`,
    `Issued At: ${issued.toISOString()}`,
    `Expiration Time: ${expires.toISOString()}`,
  ].join("\n");
}

export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
