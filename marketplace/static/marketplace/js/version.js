// A new version: resumable uploads (tus-js-client), then the pipeline live on the page:
// hashed and inspected -> the vendor signs PublishVersion in the wallet -> anchored -> live.
import { account, api, ensureChain, formatBytes, noWalletMessage, say, sleep, wallet, walletRequest } from "./eth.js";
import { signingStatement, signStatement, storedKey } from "./oms.js";

const app = document.getElementById("version-app");
const status = document.getElementById("pipeline-status");
const vendor = app.dataset.vendor;
const chainId = Number(app.dataset.chainId);
const chunkSize = Number(app.dataset.chunkSize) || 16 * 1024 * 1024;
const uploads = new Map();
const STEPS = ["draft", "hashing", "awaiting_signature", "pending_chain", "live"];

function csrf() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

function showStep(current) {
  const index = STEPS.indexOf(current);
  for (const li of document.querySelectorAll(".pipeline li")) {
    const step = STEPS.indexOf(li.dataset.step);
    li.classList.toggle("done", index > step || current === "live");
    li.classList.toggle("current", step === index && current !== "live");
    if (step === index) li.setAttribute("aria-current", "step");
    else li.removeAttribute("aria-current");
  }
}

// ----------------------------------------------------------------------------- uploads

function row(name) {
  const li = document.createElement("li");
  li.className = "upload";
  li.innerHTML = `<span class="name"></span><progress max="100" value="0"></progress><span class="numbers" aria-live="polite"></span>`;
  li.querySelector(".name").textContent = name;
  document.getElementById("uploads").appendChild(li);
  return li;
}

function refreshFinish() {
  const states = [...uploads.values()].map((u) => u.state);
  const finish = document.getElementById("finish");
  finish.disabled = !states.length || states.some((s) => s !== "done");
}

function startUpload(file) {
  const name = file.webkitRelativePath || file.name;
  if (uploads.has(name) && uploads.get(name).state !== "error") return;
  const li = uploads.has(name) ? uploads.get(name).li : row(name);
  const entry = { li, state: "uploading", started: performance.now(), startedAt: 0 };
  uploads.set(name, entry);
  refreshFinish();
  const numbers = li.querySelector(".numbers");
  const bar = li.querySelector("progress");
  const upload = new window.tus.Upload(file, {
    endpoint: app.dataset.uploadUrl,
    chunkSize,
    retryDelays: [0, 1000, 3000, 5000],
    metadata: { filename: name },
    headers: { "X-CSRFToken": csrf() },
    removeFingerprintOnSuccess: true,
    onProgress(sent, total) {
      const seconds = (performance.now() - entry.started) / 1000;
      const speed = seconds > 0 ? (sent - entry.startedAt) / seconds : 0;
      const left = speed > 0 ? Math.max(0, (total - sent) / speed) : 0;
      bar.value = total ? (100 * sent) / total : 100;
      numbers.textContent = `${formatBytes(sent)} of ${formatBytes(total)} · ${formatBytes(speed)}/s · ${left.toFixed(0)} s left`;
      li.dataset.sent = String(sent);
    },
    onSuccess() {
      entry.state = "done";
      bar.value = 100;
      numbers.textContent = `${formatBytes(file.size)} uploaded`;
      li.classList.add("done");
      refreshFinish();
    },
    onError(error) {
      entry.state = "error";
      let message = error.message || String(error);
      try {
        const body = JSON.parse(error.originalResponse.getBody());
        message = body.message || message;
      } catch (_) {
        /* not a JSON answer */
      }
      numbers.textContent = `Failed: ${message}`;
      li.classList.add("failed");
      refreshFinish();
    },
  });
  upload.findPreviousUploads().then((previous) => {
    if (previous.length) {
      upload.resumeFromPreviousUpload(previous[0]);
      li.dataset.resumed = "true";
    }
    entry.started = performance.now();
    upload.start();
  });
}

function addFiles(files) {
  for (const file of files) startUpload(file);
}

const zone = document.getElementById("drop-zone");
const input = document.getElementById("file-input");
if (zone) {
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    addFiles(e.dataTransfer.files);
  });
  zone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      input.click();
    }
  });
  input.addEventListener("change", () => addFiles(input.files));
}

document.getElementById("finish").addEventListener("click", async (event) => {
  event.target.disabled = true;
  try {
    await api(app.dataset.finalizeUrl, { method: "POST", body: {} });
    follow();
  } catch (err) {
    say(status, err.message, "error");
    event.target.disabled = false;
  }
});

// ----------------------------------------------------------------------------- pipeline

let following = false;
let lastStatus = app.dataset.status;

function render(version) {
  showStep(version.status);
  document.getElementById("upload-section").hidden = version.status !== "draft";
  if (version.status === "draft" && version.files.length) {
    for (const file of version.files) {
      if (!uploads.has(file.path)) {
        const li = row(file.path);
        li.classList.add("done");
        li.querySelector("progress").value = 100;
        li.querySelector(".numbers").textContent = `${formatBytes(file.size)} uploaded`;
        uploads.set(file.path, { li, state: "done" });
      }
    }
    refreshFinish();
  }
  const facts = document.getElementById("facts-section");
  if (version.metadata) {
    facts.hidden = false;
    const m = version.metadata;
    const dl = document.getElementById("facts");
    dl.innerHTML = "";
    for (const [label, value] of [
      ["Formats", (m.formats || []).join(", ")],
      ["Architecture", m.architecture],
      ["Quantization", m.quantization],
      ["Parameters", m.parameter_count],
      ["Context length", m.context_length],
    ]) {
      if (value === null || value === undefined || value === "") continue;
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.textContent = String(value);
      dd.dataset.fact = label.toLowerCase();
      dl.append(dt, dd);
    }
    const tbody = document.getElementById("files");
    tbody.innerHTML = "";
    for (const file of version.files) {
      const tr = document.createElement("tr");
      for (const text of [file.path, formatBytes(file.size), file.sha256]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    }
  }
  const sign = document.getElementById("sign-section");
  sign.hidden = version.status !== "awaiting_signature";
  if (!sign.hidden && version.typed_data) {
    document.getElementById("sign-number").textContent = `v${version.typed_data.message.version}`;
    document.getElementById("sign-root").textContent = version.typed_data.message.rootDigest;
    sign.dataset.typed = JSON.stringify(version.typed_data);
  }
  if (!sign.hidden) omsPlan(version).then(showOmsPlan);
  const anchor = document.getElementById("anchor-section");
  anchor.hidden = !version.transaction_hash;
  document.getElementById("anchor-tx").textContent = version.transaction_hash || "";
  document.getElementById("anchor-block").textContent = version.published_block ? String(version.published_block) : "pending";
  document.getElementById("revoke-section").hidden = version.status !== "live";
  const messages = {
    draft: "Upload the files, then finish.",
    hashing: "Hashing and inspecting the files…",
    awaiting_signature: "Check the root digest, then sign in your wallet.",
    pending_chain: "Signed. Our relayer is anchoring it on chain…",
    live: `Live as v${version.number}: verified on chain.`,
    rejected: `Rejected: ${version.error ? version.error.message : ""} Fix the file and start a new version.`,
    failed: `The chain refused it: ${version.error ? version.error.message : ""}`,
  };
  say(status, messages[version.status] || version.status, ["rejected", "failed"].includes(version.status) ? "error" : version.status === "live" ? "ok" : "");
  lastStatus = version.status;
}

async function follow() {
  if (following) return;
  following = true;
  try {
    for (;;) {
      const version = await api(app.dataset.api);
      render(version);
      if (["live", "rejected", "failed", "draft"].includes(version.status)) break;
      if (version.status === "awaiting_signature") break;
      await sleep(1000);
    }
  } catch (err) {
    say(status, err.message, "error");
  } finally {
    following = false;
  }
}

// ----------------------------------------------------------------------------- OMS bundle (model.sig)

// What happens to model.sig when the vendor signs: {state, message, version}. The version's signed
// metadata names the key (`signing_key`, set when it was hashed); only that key may sign it.
async function omsPlan(version) {
  const bound = version.metadata && version.metadata.signing_key && version.metadata.signing_key.sha256;
  let held = null;
  try {
    held = await storedKey(app.dataset.vendorSlug);
  } catch (_) {
    /* no IndexedDB here: treated as no key */
  }
  if (!bound) {
    return {
      state: "none", version,
      message: held
        ? "Published without model.sig: this version names no signing key (it was hashed before your key was registered). Register the key, and the next version is signed."
        : "Published without model.sig (no signing key registered). Add one under Signing key so buyers can check it with model_signing.",
    };
  }
  const short = `${bound.slice(0, 16)}…`;
  if (!held) {
    return {
      state: "missing", version,
      message: `This version names the signing key ${short}, but this browser holds no signing key. Import that key file under Signing key, then sign; or publish without model.sig.`,
    };
  }
  if (held.sha256 !== bound) {
    return {
      state: "mismatch", version,
      message: `This version names the signing key ${short}, but this browser holds ${held.sha256.slice(0, 16)}…: the signature would not match. Import the key file of ${short} under Signing key; or register this browser's key and publish the files again as a new version (its metadata then names it); or publish without model.sig.`,
    };
  }
  return { state: "ready", version, held, message: `model.sig: when you sign, this browser also signs the version's OMS statement with your key ${short}` };
}

function showOmsPlan(plan) {
  const note = document.getElementById("oms-status");
  note.textContent = plan.message;
  note.dataset.state = plan.state;
  note.className = ["missing", "mismatch"].includes(plan.state) ? "help error" : "help";
  document.getElementById("sign-without-bundle").hidden = !["missing", "mismatch"].includes(plan.state);
}

async function signAndSubmit(button, { withBundle }) {
  if (!wallet()) {
    say(status, noWalletMessage(), "error");
    return;
  }
  button.disabled = true;
  try {
    const body = {};
    if (withBundle) {
      const plan = await omsPlan(await api(app.dataset.api));
      showOmsPlan(plan);
      if (["missing", "mismatch"].includes(plan.state)) {
        say(status, `Not signed: ${plan.message}`, "error");
        return;
      }
      if (plan.state === "ready") {
        say(status, "Signing the OMS statement (model.sig) with your P-256 key…");
        const statement = signingStatement(plan.version.manifest, JSON.parse(app.dataset.omsToolState));
        body.oms_bundle = await signStatement(plan.held, statement);
      }
    }
    await ensureChain(chainId);
    await account(vendor);
    const typed = document.getElementById("sign-section").dataset.typed;
    say(status, "Sign PublishVersion in your wallet…");
    body.signature = await walletRequest("eth_signTypedData_v4", [vendor, typed]);
    await api(app.dataset.signatureUrl, { method: "POST", body });
    follow();
  } catch (err) {
    say(status, err.code === "stale_signature_request" ? `${err.message}` : err.message, "error");
    if (err.code === "stale_signature_request") follow();
  } finally {
    button.disabled = false;
  }
}

document.getElementById("sign-version").addEventListener("click", (event) => signAndSubmit(event.target, { withBundle: true }));
document.getElementById("sign-without-bundle").addEventListener("click", (event) => signAndSubmit(event.target, { withBundle: false }));

const revokeForm = document.getElementById("revoke-form");
const revokeStatus = document.getElementById("revoke-status");
revokeForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!wallet()) {
    say(revokeStatus, noWalletMessage(), "error");
    return;
  }
  try {
    await ensureChain(chainId);
    await account(vendor);
    const call = await api(app.dataset.revokeUrl, { method: "POST", form: new FormData(revokeForm) });
    const txHash = await walletRequest("eth_sendTransaction", [{ from: call.from, to: call.to, data: call.data }]);
    say(revokeStatus, `Revocation sent (${txHash}); the version shows as revoked once the chain is indexed.`, "ok");
  } catch (err) {
    say(revokeStatus, err.message, "error");
  }
});

follow();
