// A WHEP client (WebRTC-HTTP Egress Protocol): one receive-only RTCPeerConnection whose offer is
// POSTed to the server's endpoint; the answer comes back in the response and the session's URL in
// its Location header, which DELETE ends. No trickle ICE: the offer is sent after gathering.

import { t } from "./i18n.js";
import { framesProtection, iceGatheringComplete, peerConfiguration } from "./media.js";

/**
 * A refused or failed WHEP request: `status` is the HTTP status (0 when nothing answered);
 * `retryAfter` the seconds a busy server (503) asked to wait, or null.
 */
export class WhepError extends Error {
  constructor(status, message, retryAfter = null) {
    super(message);
    this.name = "WhepError";
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/** Puts the listed codecs first (in that order), keeping every other the browser can receive. */
function preferCodecs(transceiver, mimeTypes) {
  const capabilities = RTCRtpReceiver.getCapabilities?.(transceiver.receiver.track.kind);
  if (!capabilities || typeof transceiver.setCodecPreferences !== "function") {
    return;
  }
  const rank = (codec) => {
    const index = mimeTypes.indexOf(codec.mimeType.toLowerCase());
    return index < 0 ? mimeTypes.length : index;
  };
  const ordered = [...capabilities.codecs].sort((a, b) => rank(a) - rank(b));
  try {
    transceiver.setCodecPreferences(ordered);
  } catch (error) {
    console.warn("WHEP: setCodecPreferences failed; using the browser's order", error);
  }
}

export class WhepSession {
  /**
   * `endpoint`: the WHEP URL; `token`: sent as `Authorization: Bearer`; `audio`, `video`: how
   * many receive-only sections of each kind to offer; `videoCodecs`: MIME types to put first,
   * lower case (e.g. `["video/h264", "video/vp8"]`); `iceServers` for the connection.
   */
  constructor(endpoint, { token = null, audio = 1, video = 1, videoCodecs = [], iceServers = [] }) {
    const protection = framesProtection();
    // In an end-to-end encrypted room the server admits only players that hold the key.
    this.endpoint = protection ? `${endpoint}${endpoint.includes("?") ? "&" : "?"}e2ee=1` : endpoint;
    this.token = token;
    this.location = null; // the session's URL once the server accepted the offer
    this.pc = new RTCPeerConnection(peerConfiguration(iceServers));
    this.audio = [];
    this.video = [];
    for (let i = 0; i < audio; i += 1) {
      this.audio.push(this.pc.addTransceiver("audio", { direction: "recvonly" }));
      protection?.receiver(this.audio[i].receiver);
    }
    for (let i = 0; i < video; i += 1) {
      const transceiver = this.pc.addTransceiver("video", { direction: "recvonly" });
      preferCodecs(transceiver, videoCodecs);
      protection?.receiver(transceiver.receiver);
      this.video.push(transceiver);
    }
  }

  /** Offers, POSTs the offer and applies the answer; rejects with a WhepError if refused. */
  async start() {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await iceGatheringComplete(this.pc);
    let response;
    try {
      response = await this._post(this.endpoint);
      // In a cluster another node may redirect the viewer (307) to the room's home. Browsers
      // drop Authorization when a redirect changes the origin: send it again, there.
      if (response.redirected && response.status === 401 && this.token) {
        response = await this._post(response.url);
      }
    } catch (error) {
      throw new WhepError(0, t("whep.unreachable", { reason: error.message }));
    }
    const text = await response.text();
    if (response.status !== 201) {
      const retryAfter = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
      throw new WhepError(
        response.status,
        text.trim() || t("whep.refused", { status: response.status }),
        Number.isFinite(retryAfter) ? retryAfter : null,
      );
    }
    const location = response.headers.get("Location");
    this.location = location ? new URL(location, response.url || document.baseURI).href : null;
    await this.pc.setRemoteDescription({ type: "answer", sdp: text });
  }

  /**
   * Closes the connection and ends the session on the server. With `keepalive` the DELETE
   * survives the page being unloaded.
   */
  stop({ keepalive = false } = {}) {
    this.pc.close();
    const location = this.location;
    this.location = null;
    if (location === null) {
      return Promise.resolve();
    }
    return fetch(location, { method: "DELETE", headers: this._authorization(), keepalive })
      .then(() => undefined)
      .catch((error) => console.info("WHEP: ending the session failed", error));
  }

  _post(url) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/sdp", ...this._authorization() },
      body: this.pc.localDescription.sdp,
    });
  }

  _authorization() {
    return this.token ? { Authorization: `Bearer ${this.token}` } : {};
  }
}
