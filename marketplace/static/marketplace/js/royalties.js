// Withdraw credited royalties: a `withdraw()` transaction from the vendor's own wallet.
import { account, ensureChain, jsonScript, noWalletMessage, say, wallet, walletRequest } from "./eth.js";

const app = document.getElementById("withdraw-app");
if (app) {
  const status = document.getElementById("withdraw-status");
  for (const button of app.querySelectorAll("button.withdraw")) {
    button.addEventListener("click", async () => {
      if (!wallet()) {
        say(status, noWalletMessage(), "error");
        return;
      }
      button.disabled = true;
      try {
        await ensureChain(Number(app.dataset.chainId));
        const from = await account(button.dataset.from);
        const call = jsonScript("withdraw-call");
        say(status, "Confirm the withdrawal in your wallet…");
        const txHash = await walletRequest("eth_sendTransaction", [{ from, to: call.to, data: call.data }]);
        say(status, `Withdrawal sent: ${txHash}. Balances update once it is mined and indexed.`, "ok");
      } catch (err) {
        say(status, err.message, "error");
        button.disabled = false;
      }
    });
  }
}
