// OpenSSF Model Signing in the browser: the vendor's P-256 signing key (WebCrypto, kept in this
// browser's IndexedDB, exportable to a PKCS#8 PEM file) and the Sigstore bundle (`model.sig`)
// of a version's OMS statement, the same bundle as client/hallmark/oms.py `sign_statement`
// (DSSE envelope over the in-toto statement, DER ECDSA signature, public key hint, no log entry).

export const BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json";
export const DSSE_PAYLOAD_TYPE = "application/vnd.in-toto+json";
const ALGORITHM = { name: "ECDSA", namedCurve: "P-256" };
const DB_NAME = "hallmark-oms";
const STORE = "signing-keys"; // one record per vendor slug: {vendor, privateKey, publicKey, sha256, createdAt}

export class KeyFileError extends Error {}

// ----------------------------------------------------------------------------- bytes

const encoder = new TextEncoder();

function hex(bytes) {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function base64(bytes) {
  let text = "";
  for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
  return btoa(text);
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

async function sha256Hex(bytes) {
  return hex(await crypto.subtle.digest("SHA-256", bytes));
}

// PEM as Python's `cryptography` writes it (64-character lines, final newline): the key hint of a
// bundle is the SHA-256 of this exact text, so it must match the server's and model_signing's
function pem(label, der) {
  const lines = base64(der).match(/.{1,64}/g);
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

// ----------------------------------------------------------------------------- keys

export async function generateKey() {
  return crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
}

export async function publicKeyPem(publicKey) {
  return pem("PUBLIC KEY", await crypto.subtle.exportKey("spki", publicKey));
}

// hex SHA-256 of the DER SubjectPublicKeyInfo: what a version's metadata `signing_key.sha256` names
export async function keySha256(publicKey) {
  return sha256Hex(await crypto.subtle.exportKey("spki", publicKey));
}

export async function privateKeyPem(privateKey) {
  return pem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", privateKey));
}

// {privateKey, publicKey} from the text of a PKCS#8 PEM file (what this page exports, and what
// `hallmark keys init` writes); KeyFileError with what to do otherwise
export async function importPrivateKeyPem(text) {
  if (/-----BEGIN (EC |ENCRYPTED )?PRIVATE KEY-----/.test(text) && !/-----BEGIN PRIVATE KEY-----/.test(text)) {
    throw new KeyFileError(
      "This key file is SEC1 or encrypted; convert it to unencrypted PKCS#8 first: openssl pkcs8 -topk8 -nocrypt -in KEY.pem -out key-pkcs8.pem",
    );
  }
  const found = text.match(/-----BEGIN PRIVATE KEY-----([A-Za-z0-9+/=\s]+)-----END PRIVATE KEY-----/);
  if (!found) throw new KeyFileError("This file holds no private key in PEM (-----BEGIN PRIVATE KEY-----).");
  const der = Uint8Array.from(atob(found[1].replace(/\s+/g, "")), (c) => c.charCodeAt(0));
  let privateKey;
  try {
    privateKey = await crypto.subtle.importKey("pkcs8", der, ALGORITHM, true, ["sign"]);
  } catch (_) {
    throw new KeyFileError("This private key is not a NIST P-256 (prime256v1) key; OpenSSF Model Signing keys here are P-256.");
  }
  // WebCrypto derives no public key from a private one; the JWK form carries its point (x, y)
  const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", privateKey);
  const publicKey = await crypto.subtle.importKey("jwk", { kty, crv, x, y, ext: true }, ALGORITHM, true, ["verify"]);
  return { privateKey, publicKey };
}

// ----------------------------------------------------------------------------- IndexedDB

function openDb() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "vendor" });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function withStore(mode, action) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = action(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

// the vendor's key kept in this browser, or null: {vendor, privateKey, publicKey, sha256, createdAt}
export async function storedKey(vendor) {
  return (await withStore("readonly", (store) => store.get(vendor))) || null;
}

// keep a key pair for the vendor (replacing the one kept before); CryptoKey objects are stored
// as they are (structured clone), so the key never passes through page script as text
export async function storeKey(vendor, { privateKey, publicKey }) {
  const record = { vendor, privateKey, publicKey, sha256: await keySha256(publicKey), createdAt: new Date().toISOString() };
  await withStore("readwrite", (store) => store.put(record));
  return record;
}

// ----------------------------------------------------------------------------- the bundle

// WebCrypto's ECDSA signature is r || s (IEEE P1363, 32 bytes each); Sigstore bundles and
// model_signing carry the DER SEQUENCE { INTEGER r, INTEGER s }
export function p1363ToDer(raw) {
  const half = raw.length / 2;
  const integer = (bytes) => {
    let start = 0;
    while (start < bytes.length - 1 && bytes[start] === 0) start += 1;
    let value = bytes.slice(start);
    if (value[0] & 0x80) value = concat(Uint8Array.of(0), value); // positive
    return concat(Uint8Array.of(0x02, value.length), value);
  };
  const body = concat(integer(raw.slice(0, half)), integer(raw.slice(half)));
  return concat(Uint8Array.of(0x30, body.length), body); // at most 70 bytes: short-form lengths
}

// DSSE v1 pre-authentication encoding (what the key signs)
export function pae(payload) {
  return concat(encoder.encode(`DSSEv1 ${DSSE_PAYLOAD_TYPE.length} ${DSSE_PAYLOAD_TYPE} ${payload.length} `), payload);
}

// the statement a bundle signs: the version's OMS statement (`manifest`, built by the server), with
// the tool state a download leaves in a folder among the paths a verifier ignores
// (hallmark/oms.py `signing_statement`; the server gives the list, `toolStatePaths`)
export function signingStatement(manifest, toolStatePaths) {
  const statement = structuredClone(manifest);
  const serialization = statement.predicate.serialization;
  serialization.ignore_paths = [...serialization.ignore_paths, ...toolStatePaths];
  return statement;
}

export async function signStatement({ privateKey, publicKey }, statement) {
  const payload = encoder.encode(JSON.stringify(statement, null, 2));
  const raw = new Uint8Array(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, privateKey, pae(payload)));
  const hint = await sha256Hex(encoder.encode(await publicKeyPem(publicKey)));
  return {
    mediaType: BUNDLE_MEDIA_TYPE,
    verificationMaterial: { publicKey: { hint }, tlogEntries: [] },
    dsseEnvelope: {
      payload: base64(payload),
      payloadType: DSSE_PAYLOAD_TYPE,
      signatures: [{ sig: base64(p1363ToDer(raw)), keyid: "" }],
    },
  };
}
