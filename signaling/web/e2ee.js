// End-to-end encrypted rooms (docs/e2ee.md): the room key, and the frame transforms that use it.
//
// The key comes from the link's fragment (`#key=` and 43 base64url characters: 256 bits), which
// browsers never send to a server, or from a passphrase the participants agreed on, stretched
// with PBKDF2 (salt: the room id). It is imported as a non-extractable CryptoKey and kept only
// in this page's memory and its frame worker's; nothing is written to any storage, so a
// reload reads the fragment again or asks for the passphrase again.

export const PBKDF2_ITERATIONS = 600000; // OWASP's figure for PBKDF2-HMAC-SHA256 (2023)
const KEY_BYTES = 32;

/** Whether this browser can transform encoded frames in a worker (RTCRtpScriptTransform). */
export function canEncrypt() {
  return typeof RTCRtpScriptTransform === "function" && typeof Worker === "function";
}

function fromBase64Url(text) {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) {
    return null;
  }
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  try {
    return Uint8Array.from(atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4)), (c) =>
      c.charCodeAt(0),
    );
  } catch {
    return null;
  }
}

function toBase64Url(bytes) {
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

/**
 * The raw key of a fragment (`location.hash`): `{raw}` (32 bytes), `{raw: null}` when it has
 * no `key`, `{invalid: true}` when its key is not 256 bits of base64url.
 */
export function fragmentKey(hash) {
  const value = new URLSearchParams((hash ?? "").replace(/^#/, "")).get("key");
  if (value === null) {
    return { raw: null };
  }
  const raw = fromBase64Url(value);
  return raw !== null && raw.length === KEY_BYTES ? { raw } : { invalid: true };
}

/** A new random room key as a link's fragment (`#key=...`), for whoever shares the link. */
export function newKeyFragment() {
  return `#key=${toBase64Url(crypto.getRandomValues(new Uint8Array(KEY_BYTES)))}`;
}

/** The room key from 32 raw bytes: AES-GCM 256, usable only to encrypt and decrypt. */
export function importRoomKey(raw) {
  return crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
}

/** The room key from a shared passphrase: PBKDF2-HMAC-SHA256 with the room id as salt. */
export async function passphraseKey(passphrase, roomId) {
  const encoder = new TextEncoder();
  const material = await crypto.subtle.importKey(
    "raw",
    encoder.encode(passphrase.normalize("NFC")),
    "PBKDF2",
    false,
    ["deriveKey"],
  );
  return crypto.subtle.deriveKey(
    { name: "PBKDF2", hash: "SHA-256", salt: encoder.encode(roomId), iterations: PBKDF2_ITERATIONS },
    material,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

/**
 * Encrypts what the page sends and decrypts what it receives, with one worker
 * (e2ee-worker.js) for every transform. `counts` is the worker's latest report: frames
 * `encrypted`, `decrypted` and `failed` (could not be decrypted: another key, or not encrypted).
 */
export class FrameProtection {
  constructor(key, keySource) {
    this.key = key;
    this.keySource = keySource; // "fragment" or "passphrase", for the page and tests
    this.counts = { encrypted: 0, decrypted: 0, failed: 0 };
    this.worker = new Worker("/static/e2ee-worker.js", { name: "e2ee" });
    this.worker.addEventListener("message", (event) => {
      if (event.data?.type === "counts") {
        const failedBefore = this.counts.failed;
        this.counts = { encrypted: event.data.encrypted, decrypted: event.data.decrypted, failed: event.data.failed };
        if (this.counts.failed > failedBefore && this.counts.decrypted === 0) {
          this.onUndecryptable?.();
        }
      }
    });
    this._done = new WeakSet();
    this.onUndecryptable = null;
  }

  /** Encrypts every frame `sender` sends from now on (once per sender). */
  sender(sender) {
    this._attach(sender, "send");
  }

  /** Decrypts every frame `receiver` receives from now on (once per receiver). */
  receiver(receiver) {
    this._attach(receiver, "receive");
  }

  _attach(target, side) {
    if (this._done.has(target)) {
      return;
    }
    this._done.add(target);
    target.transform = new RTCRtpScriptTransform(this.worker, { side, key: this.key });
  }
}
