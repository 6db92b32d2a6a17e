// The Buy panel of a model page: the buyer's own wallet (EIP-1193) pays `purchaseLicense`.
// Connect, check the chain (offer to switch), sign in with Ethereum when the page has no session,
// show the price, the licence length, the expiry and who gets what, send the API's transaction,
// follow it until mined, then fill in the download instructions with a token made on the spot.
import { api, noWalletMessage, siweMessage, sleep, wallet } from "./eth.js";

const app = document.getElementById("buy-app");
const $ = (id) => document.getElementById(id);
const status = $("buy-status");
const connectButton = $("buy-connect");
const sendButton = $("buy-send");
const chainId = Number(app.dataset.chainId);
const linked = (app.dataset.wallets || "").split(",").filter(Boolean).map((a) => a.toLowerCase());

const state = { account: null, bearer: null, shownPrice: app.dataset.priceWei, quote: null };

class WalletError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

function show(name, text = "", kind = "") {
  app.dataset.state = name;
  status.textContent = text;
  status.className = "status-line" + (kind ? " " + kind : "");
}

function only(...ids) {
  for (const id of ["buy-chain", "buy-summary", "buy-price-changed", "buy-done"]) $(id).hidden = !ids.includes(id);
}

async function ask(method, params = []) {
  const provider = wallet();
  if (!provider) throw new WalletError(noWalletMessage(), "no_wallet");
  try {
    return await provider.request({ method, params });
  } catch (err) {
    if (err && err.code === 4001) throw new WalletError("You declined the request in your wallet. Nothing was paid.", 4001);
    const message = (err && err.message) || String(err);
    if (/insufficient funds/i.test(message)) throw new WalletError(message, "insufficient_funds");
    throw new WalletError(message, err && err.code);
  }
}

function call(url, { method = "GET", body } = {}) {
  return api(url, { method, body, bearer: state.bearer, withStatus: true });
}

export function formatEth(wei) {
  const value = BigInt(wei);
  const unit = 10n ** 18n;
  const whole = value / unit;
  const fraction = (value % unit).toString().padStart(18, "0").replace(/0+$/, "");
  return `${whole}${fraction ? "." + fraction : ""} ETH`;
}

function formatTime(seconds) {
  return new Date(seconds * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

function short(address) {
  return `${address.slice(0, 6)}…${address.slice(-4)}`;
}

function utf8Hex(text) {
  return "0x" + Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("");
}

// --------------------------------------------------------------------------- connect, chain, sign in

async function connect() {
  connectButton.disabled = true;
  try {
    const accounts = await ask("eth_requestAccounts");
    if (!accounts || !accounts.length) throw new WalletError("The wallet shared no account.");
    state.account = accounts[0];
    const current = parseInt(await ask("eth_chainId"), 16);
    if (current !== chainId) {
      $("buy-chain-text").textContent = `Your wallet is on network ${current}; this marketplace uses network ${chainId}.`;
      only("buy-chain");
      show("wrong-chain", "Switch your wallet's network to go on.", "error");
      return;
    }
    await signedIn();
  } catch (err) {
    fail(err);
  } finally {
    connectButton.disabled = false;
  }
}

async function switchChain() {
  try {
    await ask("wallet_switchEthereumChain", [{ chainId: "0x" + chainId.toString(16) }]);
    only();
    await signedIn();
  } catch (err) {
    fail(err);
  }
}

async function signedIn() {
  if (!state.bearer && !linked.includes(state.account.toLowerCase())) {
    show("signing-in", "Sign the sign-in message in your wallet…");
    const nonce = (await call(app.dataset.nonceUrl, { method: "POST", body: {} })).data;
    const checksum = await fetch(`/api/v1/auth/checksum/${state.account}`, { credentials: "same-origin" });
    if (!checksum.ok) throw new Error("Could not read the wallet address.");
    const address = (await checksum.json()).address;
    const message = siweMessage({ domain: nonce.domain, address, uri: nonce.uri, chainId: nonce.chain_id, nonce: nonce.nonce });
    const signature = await ask("personal_sign", [utf8Hex(message), state.account]);
    const answer = (await call(app.dataset.siweUrl, { method: "POST", body: { message, signature, token_name: "buy page sign-in" } })).data;
    state.bearer = answer.token;
  }
  await quote();
}

// --------------------------------------------------------------------------- the offer

async function quote() {
  show("quoting", "Asking the chain for the current terms…");
  const query = new URLSearchParams({ licensee: state.account, max_price_wei: state.shownPrice });
  let offer;
  try {
    offer = (await call(`${app.dataset.purchaseUrl}?${query}`)).data;
  } catch (err) {
    if (err.code === "not_listed") {
      only();
      show("not-listed", "Not for sale right now: the vendor has taken this model off sale.", "error");
      return;
    }
    if (err.code === "already_licensed") {
      only();
      show("perpetual-held", "This wallet already holds a perpetual licence: nothing to buy. Make a token under Tokens to download.", "ok");
      return;
    }
    throw err;
  }
  if (offer.price_wei !== state.shownPrice) {
    $("buy-price-changed-text").textContent =
      `The price changed since this page loaded: it was ${formatEth(state.shownPrice)}, it is now ${formatEth(offer.price_wei)}.`;
    state.pendingPrice = offer.price_wei;
    only("buy-price-changed");
    show("price-changed", "Check the new price before you buy.", "error");
    return;
  }
  state.quote = offer;
  await render(offer);
}

async function render(offer) {
  const duration = Number(app.dataset.duration);
  $("buy-account").textContent = state.account;
  $("buy-price").textContent = formatEth(offer.price_wei);
  $("buy-length").textContent = offer.perpetual ? "perpetual" : `${Math.round(duration / 86400)} day${duration === 86400 ? "" : "s"}`;
  $("buy-expiry").textContent = offer.perpetual ? "never expires" : formatTime(offer.expires_at);
  const split = $("buy-split");
  split.replaceChildren();
  for (const credit of offer.royalties) {
    const li = document.createElement("li");
    li.textContent = `${credit.role} ${short(credit.payee)}: ${formatEth(credit.amount_wei)}`;
    split.appendChild(li);
  }
  const held = $("buy-held");
  // a timed licence still running: the new one starts where it ends (expires_at = current + length)
  // (the API counts from the latest block's time when no licence runs: compare with the same clock)
  const currentEnd = offer.perpetual ? null : offer.expires_at - duration;
  const latest = currentEnd === null ? null : await ask("eth_getBlockByNumber", ["latest", false]);
  const renewing = currentEnd !== null && currentEnd > parseInt(latest.timestamp, 16);
  held.hidden = !renewing;
  held.textContent = renewing ? `You hold a licence until ${formatTime(currentEnd)}. Renewing adds ${$("buy-length").textContent} to it.` : "";
  sendButton.textContent = renewing ? "Renew" : `Buy for ${formatEth(offer.price_wei)}`;
  only("buy-summary");
  connectButton.hidden = true;
  const balance = BigInt(await ask("eth_getBalance", [state.account, "latest"]));
  if (balance < BigInt(offer.transaction.value)) {
    sendButton.disabled = true;
    show("no-funds", `Not enough funds: this wallet holds ${formatEth(balance)}, the licence costs ${formatEth(offer.price_wei)} plus the network fee.`, "error");
    return;
  }
  sendButton.disabled = false;
  show(renewing ? "renew" : "ready", renewing ? "Already licensed: you can renew." : "Ready: one click, then confirm in your wallet.");
}

// --------------------------------------------------------------------------- send and follow

async function send() {
  const offer = state.quote;
  sendButton.disabled = true;
  try {
    show("confirming", "Confirm the purchase in your wallet…");
    const tx = offer.transaction;
    const txHash = await ask("eth_sendTransaction", [{ from: state.account, to: tx.to, data: tx.data, value: tx.value }]);
    show("pending", `Sent (${short(txHash)}): waiting for it to be mined…`);
    const confirmation = await follow(txHash);
    await done(confirmation, txHash);
  } catch (err) {
    sendButton.disabled = false;
    fail(err);
  }
}

async function follow(txHash) {
  for (let i = 0; i < 600; i += 1) {
    const answer = await call(app.dataset.purchasesUrl, { method: "POST", body: { tx_hash: txHash } });
    if (answer.status === 200) return answer.data;
    await sleep(1000);
  }
  throw new Error(`Still not mined: ${txHash}. Reload this page later.`);
}

async function done(confirmation, txHash) {
  const licence = confirmation.licenses.find((l) => l.licensee.toLowerCase() === state.account.toLowerCase()) || confirmation.licenses[0];
  const until = licence.perpetual ? "Licensed: perpetual, it never expires." : `Licensed until ${licence.expires_at.slice(0, 16).replace("T", " ")} UTC.`;
  $("buy-licensed").textContent = until;
  const token = (await call(app.dataset.tokensUrl, { method: "POST", body: { name: `download ${app.dataset.repo}` } })).data.token;
  const endpoint = app.dataset.endpoint;
  $("buy-repo").textContent = app.dataset.repo;
  $("buy-endpoint").textContent = endpoint;
  $("buy-revision").textContent = app.dataset.revision;
  $("buy-token").textContent = token;
  $("buy-snippet").textContent = [
    "from huggingface_hub import snapshot_download",
    `snapshot_download("${app.dataset.repo}", revision="${app.dataset.revision}",`,
    `    endpoint="${endpoint}", token="${token}")`,
  ].join("\n");
  only("buy-done");
  connectButton.hidden = true;
  let current = confirmation;
  while (!current.confirmed) {
    show("unconfirmed", `Unconfirmed: ${current.depth} of ${current.confirmations} blocks deep. The licence works already.`);
    await sleep(2000);
    current = (await call(app.dataset.purchasesUrl, { method: "POST", body: { tx_hash: txHash } })).data;
  }
  show("licensed", "Confirmed on chain.", "ok");
}

function fail(err) {
  connectButton.hidden = !$("buy-summary").hidden || !$("buy-done").hidden;
  if (err.code === 4001) {
    show("rejected", err.message, "error");
  } else if (err.code === "insufficient_funds") {
    show("no-funds", "Not enough funds in this wallet for the price and the network fee.", "error");
  } else if (err.code === "no_wallet") {
    show("no-wallet", err.message, "error");
  } else {
    show("error", err.message, "error");
  }
}

// --------------------------------------------------------------------------- wiring

if (connectButton) {
  if (!wallet()) {
    connectButton.disabled = true;
    show("no-wallet", noWalletMessage(), "error");
  }
  connectButton.addEventListener("click", connect);
  $("buy-switch").addEventListener("click", switchChain);
  sendButton.addEventListener("click", send);
  $("buy-accept-price").addEventListener("click", async () => {
    state.shownPrice = state.pendingPrice;
    try {
      await quote();
    } catch (err) {
      fail(err);
    }
  });
}
