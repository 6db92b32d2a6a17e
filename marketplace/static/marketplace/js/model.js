// Register a model on chain (signed for the relayer, or sent from the wallet) and change its terms.
import { account, api, ensureChain, jsonScript, say, sleep, wallet, noWalletMessage, walletRequest } from "./eth.js";

const app = document.getElementById("model-app");
const status = document.getElementById("model-status-line");
const vendor = app.dataset.vendor;
const chainId = Number(app.dataset.chainId);

async function waitLive() {
  for (let i = 0; i < 120; i += 1) {
    const model = await api(app.dataset.api);
    if (model.status === "live") {
      say(status, "Registered on chain. Reloading…", "ok");
      window.location.reload();
      return;
    }
    if (model.status === "failed") {
      say(status, `The chain refused it: ${model.error ? model.error.message : "unknown error"}`, "error");
      return;
    }
    say(status, "Waiting for the chain…");
    await sleep(1000);
  }
  say(status, "Still waiting for the chain; this page updates when you reload it.");
}

async function withWallet(action) {
  if (!wallet()) {
    say(status, noWalletMessage(), "error");
    return;
  }
  try {
    await ensureChain(chainId);
    await account(vendor);
    await action();
  } catch (err) {
    say(status, err.message, "error");
  }
}

const signButton = document.getElementById("sign-create");
if (signButton) {
  signButton.addEventListener("click", () => withWallet(async () => {
    const typedData = jsonScript("create-typed-data");
    say(status, "Sign the CreateModel message in your wallet…");
    const signature = await walletRequest("eth_signTypedData_v4", [vendor, JSON.stringify(typedData)]);
    await api(app.dataset.signatureUrl, { method: "POST", body: { signature } });
    await waitLive();
  }));
}

const sendButton = document.getElementById("send-create");
if (sendButton) {
  sendButton.addEventListener("click", () => withWallet(async () => {
    const call = jsonScript("create-call");
    say(status, "Confirm the createModel transaction in your wallet…");
    const txHash = await walletRequest("eth_sendTransaction", [{ from: vendor, to: call.to, data: call.data }]);
    say(status, `Sent ${txHash}; waiting for it to be mined…`);
    for (let i = 0; i < 120; i += 1) {
      try {
        await api(app.dataset.registeredUrl, { method: "POST", body: { tx_hash: txHash } });
        await waitLive();
        return;
      } catch (err) {
        if (err.code !== "transaction_pending") throw err;
        await sleep(1000);
      }
    }
  }));
}

const termsForm = document.getElementById("terms-form");
if (termsForm) {
  termsForm.addEventListener("submit", (event) => {
    event.preventDefault();
    withWallet(async () => {
      const call = await api(app.dataset.termsUrl, { method: "POST", form: new FormData(termsForm) });
      const txHash = await walletRequest("eth_sendTransaction", [{ from: call.from, to: call.to, data: call.data }]);
      say(status, `New terms sent (${txHash}); they show here once the chain is indexed.`, "ok");
    });
  });
}

if (document.getElementById("model-status").textContent.trim().toLowerCase().startsWith("waiting for the chain")) {
  waitLive();
}
