// Frame encryption of an end-to-end encrypted room (docs/e2ee.md, "Frame format"), run off the
// page's main thread by RTCRtpScriptTransform: one transform per sender ("send") and per
// receiver ("receive"), each given the room's AES-GCM key (a non-extractable CryptoKey) in its
// options. The server forwards what comes out of here and never has the key.
//
// An encrypted frame is
//   clear prefix | AES-GCM ciphertext and 16-byte tag | 12-byte IV | format byte (1)
// The clear prefix is what the server and the receiving browser read before decryption: the
// VP8 payload header (10 bytes of a keyframe, 3 of a delta frame: the keyframe bit, and a
// keyframe's size) and an Opus frame's TOC byte. It is authenticated with the format byte as
// additional data, so changing it fails decryption. The IV is 8 random bytes per sending
// transform then a 32-bit frame counter: unique per frame under one key without coordinating
// the senders.

const FORMAT = 1;
const IV_BYTES = 12;
const SALT_BYTES = 8;
const TAG_BYTES = 16;
const TRAILER_BYTES = IV_BYTES + 1;
const REPORT_MS = 1000;

const counts = { encrypted: 0, decrypted: 0, failed: 0 };
let reporting = null;

/** The bytes left in clear: what the VP8 depacketiser and the server's keyframe test read. */
function clearBytes(frame, size) {
  // Audio frames have no `type`; Opus's first byte (TOC) says the frame's configuration.
  const wanted = frame.type === undefined ? 1 : frame.type === "key" ? 10 : 3;
  return Math.min(wanted, size);
}

function additionalData(data, clear) {
  const aad = new Uint8Array(clear + 1);
  aad.set(data.subarray(0, clear));
  aad[clear] = FORMAT;
  return aad;
}

function sender(key) {
  let salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  let counter = 0;
  return async (frame, controller) => {
    const data = new Uint8Array(frame.data);
    if (data.length === 0) {
      controller.enqueue(frame); // nothing to hide (an empty frame keeps a stream alive)
      return;
    }
    if (counter > 0xffffffff) {
      // 4.5 years of frames at 30/s: a new salt keeps every IV unique under the same key.
      salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
      counter = 0;
    }
    const iv = new Uint8Array(IV_BYTES);
    iv.set(salt);
    new DataView(iv.buffer).setUint32(SALT_BYTES, counter);
    counter += 1;
    const clear = clearBytes(frame, data.length);
    const sealed = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: "AES-GCM", iv, additionalData: additionalData(data, clear), tagLength: 128 },
        key,
        data.subarray(clear),
      ),
    );
    const out = new Uint8Array(clear + sealed.length + TRAILER_BYTES);
    out.set(data.subarray(0, clear));
    out.set(sealed, clear);
    out.set(iv, clear + sealed.length);
    out[out.length - 1] = FORMAT;
    frame.data = out.buffer;
    counts.encrypted += 1;
    controller.enqueue(frame);
  };
}

function receiver(key) {
  return async (frame, controller) => {
    const data = new Uint8Array(frame.data);
    if (data.length === 0) {
      controller.enqueue(frame);
      return;
    }
    const clear = clearBytes(frame, data.length);
    const end = data.length - TRAILER_BYTES;
    if (end - clear < TAG_BYTES || data[data.length - 1] !== FORMAT) {
      counts.failed += 1; // not a frame of ours (plaintext, or another format): never decoded
      return;
    }
    let plain;
    try {
      plain = await crypto.subtle.decrypt(
        {
          name: "AES-GCM",
          iv: data.subarray(end, end + IV_BYTES),
          additionalData: additionalData(data, clear),
          tagLength: 128,
        },
        key,
        data.subarray(clear, end),
      );
    } catch {
      counts.failed += 1; // another key (a mistyped passphrase), or changed on the way
      return;
    }
    const out = new Uint8Array(clear + plain.byteLength);
    out.set(data.subarray(0, clear));
    out.set(new Uint8Array(plain), clear);
    frame.data = out.buffer;
    counts.decrypted += 1;
    controller.enqueue(frame);
  };
}

self.onrtctransform = (event) => {
  const { readable, writable, options } = event.transformer;
  const transform = options.side === "send" ? sender(options.key) : receiver(options.key);
  readable
    .pipeThrough(new TransformStream({ transform }))
    .pipeTo(writable)
    .catch(() => {}); // the connection closed
  // The page shows whether decryption fails (another key), and tests read the counts.
  reporting ??= setInterval(() => self.postMessage({ type: "counts", ...counts }), REPORT_MS);
};
