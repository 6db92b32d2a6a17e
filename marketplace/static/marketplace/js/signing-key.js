// The portal's "Signing key" page: make a P-256 key in this browser (WebCrypto), keep it in
// IndexedDB, export it to / import it from a PKCS#8 PEM file, and register its public key with
// the vendor (`POST /api/v1/vendors/<vendor>/keys`, the session's own vendor).
import { api, say } from "./eth.js";
import { generateKey, importPrivateKeyPem, KeyFileError, privateKeyPem, publicKeyPem, storedKey, storeKey } from "./oms.js";

const app = document.getElementById("oms-key-app");
const vendor = app.dataset.vendor;
const summary = document.getElementById("browser-key");
const status = document.getElementById("key-status");
const generateButton = document.getElementById("key-generate");
const registerButton = document.getElementById("key-register");
const exportButton = document.getElementById("key-export");
const fileInput = document.getElementById("key-file");
let held = null;
let replaceArmed = false;

function registered() {
  // {sha256: "current" | "retired"} from the table the server rendered
  const states = {};
  for (const row of document.querySelectorAll("#registered-keys tr[data-sha256]")) {
    states[row.dataset.sha256] = row.querySelector(".badge") ? "current" : "retired";
  }
  return states;
}

async function show() {
  held = await storedKey(vendor);
  const facts = document.getElementById("browser-key-facts");
  replaceArmed = false;
  if (!held) {
    summary.textContent = "This browser holds no signing key for this vendor. Generate one, or import your key file.";
    facts.hidden = true;
    registerButton.hidden = exportButton.hidden = true;
    generateButton.textContent = "Generate a key";
    app.dataset.browserKey = "";
    return;
  }
  const state = registered()[held.sha256];
  summary.textContent = state === "current"
    ? `This browser holds your current key ${held.sha256.slice(0, 16)}…: new versions are signed with it (model.sig).`
    : state === "retired"
      ? `This browser holds the retired key ${held.sha256.slice(0, 16)}…: register it again to sign new versions with it.`
      : `This browser holds the key ${held.sha256.slice(0, 16)}…, not registered with ${vendor}: register it so new versions name it.`;
  document.getElementById("browser-key-sha").textContent = held.sha256;
  document.getElementById("browser-key-pem").textContent = await publicKeyPem(held.publicKey);
  facts.hidden = false;
  registerButton.hidden = state === "current";
  exportButton.hidden = false;
  generateButton.textContent = "Replace with a new key";
  app.dataset.browserKey = held.sha256;
}

generateButton.addEventListener("click", async () => {
  if (held && !replaceArmed) {
    replaceArmed = true;
    say(status, "Replacing forgets the key this browser holds: export it first if versions name it. Click again to replace it.", "error");
    return;
  }
  try {
    await storeKey(vendor, await generateKey());
    await show();
    say(status, "New key made and kept in this browser. Export it to a file, then register it.", "ok");
  } catch (err) {
    say(status, `This browser could not make a key: ${err.message}`, "error");
  }
});

registerButton.addEventListener("click", async () => {
  registerButton.disabled = true;
  try {
    await api(app.dataset.keysUrl, { method: "POST", body: { public_key_pem: await publicKeyPem(held.publicKey) } });
    window.location.reload(); // the table of registered keys, as the server now lists it
  } catch (err) {
    say(status, err.message, "error");
    registerButton.disabled = false;
  }
});

exportButton.addEventListener("click", async () => {
  const text = await privateKeyPem(held.privateKey);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type: "application/x-pem-file" }));
  link.download = `${vendor}-oms-signing-key.pem`;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  say(status, `Saved as ${link.download}. Keep it like a password: anyone with it signs as ${vendor}.`, "ok");
});

fileInput.addEventListener("change", async () => {
  const file = fileInput.files[0];
  fileInput.value = "";
  if (!file) return;
  try {
    if (file.size > 16 * 1024) throw new KeyFileError("This file is too large to be a P-256 key file.");
    const pair = await importPrivateKeyPem(await file.text());
    const record = await storeKey(vendor, pair);
    await show();
    say(status, `Imported the key ${record.sha256.slice(0, 16)}… from ${file.name}.`, "ok");
  } catch (err) {
    say(status, err instanceof KeyFileError ? err.message : `Could not import ${file.name}: ${err.message}`, "error");
  }
});

show().catch((err) => say(summary, `This browser cannot keep keys here (IndexedDB: ${err.message}).`, "error"));
