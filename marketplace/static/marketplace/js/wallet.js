// Link a wallet to the signed-in account with Sign-In with Ethereum (EIP-4361, personal_sign).
import { account, api, ensureChain, noWalletMessage, say, siweMessage, wallet, walletRequest } from "./eth.js";

const app = document.getElementById("wallet-app");
const status = document.getElementById("wallet-status");
const button = document.getElementById("link-wallet");

if (!wallet()) {
  say(status, noWalletMessage(), "error");
  button.disabled = true;
}

button.addEventListener("click", async () => {
  button.disabled = true;
  try {
    const chainId = Number(app.dataset.chainId);
    await ensureChain(chainId);
    const address = await account();
    say(status, "Sign the message in your wallet…");
    const nonce = await api(app.dataset.nonceUrl, { method: "POST", body: {} });
    // the address as the wallet gave it; the server compares checksummed forms
    const checksummed = await checksum(address);
    const message = siweMessage({ domain: nonce.domain, address: checksummed, uri: nonce.uri, chainId: nonce.chain_id, nonce: nonce.nonce });
    const signature = await walletRequest("personal_sign", [utf8Hex(message), address]);
    const linked = await api(app.dataset.siweUrl, { method: "POST", body: { message, signature, issue_token: false } });
    say(status, `Linked ${linked.wallet}.`, "ok");
    const list = document.getElementById("linked-wallets");
    list.innerHTML = "";
    for (const w of linked.wallets) {
      const li = document.createElement("li");
      const code = document.createElement("code");
      code.textContent = w;
      li.appendChild(code);
      list.appendChild(li);
    }
  } catch (err) {
    say(status, err.message, "error");
  } finally {
    button.disabled = false;
  }
});

function utf8Hex(text) {
  return "0x" + Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function checksum(address) {
  // EIP-55 needs keccak-256, which browsers lack; the server tells us the checksummed form
  const answer = await fetch(`/api/v1/auth/checksum/${address}`, { credentials: "same-origin" });
  if (!answer.ok) throw new Error("Could not read the wallet address.");
  return (await answer.json()).address;
}
