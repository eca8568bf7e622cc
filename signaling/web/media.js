// Local devices and the two RTCPeerConnections of docs/protocol.md ("Media model").

import { t } from "./i18n.js";

/** Waits until ICE gathering is complete (no trickle ICE), or `timeoutMs` has passed. */
export function iceGatheringComplete(pc, timeoutMs = 5000) {
  if (pc.iceGatheringState === "complete") {
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") {
        done();
      }
    };
    // Past the timeout, send what was gathered: host candidates come first and suffice on a LAN.
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** Microphones and cameras: `{audio: [{deviceId, label}], video: [...]}`. */
export async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const pick = (kind, fallback) =>
    devices
      .filter((d) => d.kind === kind && d.deviceId)
      .map((d, i) => ({ deviceId: d.deviceId, label: d.label || `${fallback} ${i + 1}` }));
  return { audio: pick("audioinput", t("join.microphone")), video: pick("videoinput", t("join.camera")) };
}

/**
 * Opens the chosen microphone and camera. Falls back to whichever of the two works, so a
 * participant without a camera (or who refused it) can still join; `errors` says what failed.
 */
export async function openLocalMedia({ audioId = "", videoId = "" } = {}) {
  const audio = audioId ? { deviceId: { exact: audioId } } : true;
  const video = {
    width: { ideal: 640 },
    height: { ideal: 360 },
    frameRate: { ideal: 30 },
    ...(videoId ? { deviceId: { exact: videoId } } : {}),
  };
  const errors = [];
  for (const constraints of [{ audio, video }, { audio }, { video }]) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(constraints);
      return { stream, errors };
    } catch (error) {
      errors.push(error);
    }
  }
  return { stream: new MediaStream(), errors };
}

/** Whether this browser can share a screen or window (phones usually cannot). */
export function canShareScreen() {
  return typeof navigator.mediaDevices?.getDisplayMedia === "function";
}

/**
 * Asks the person to pick a screen, window or tab. Resolution is what matters for content
 * (a radiograph, a spreadsheet of lab values), so ask for a lot of pixels and few frames.
 */
export async function openScreen() {
  const stream = await navigator.mediaDevices.getDisplayMedia({
    video: { width: { ideal: 1920 }, height: { ideal: 1080 }, frameRate: { ideal: 15, max: 30 } },
    audio: false,
  });
  return stream.getVideoTracks()[0];
}

/** Opens a second video input (an ultrasound or endoscope capture card, a document camera). */
export async function openCaptureDevice(deviceId) {
  const stream = await navigator.mediaDevices.getUserMedia({
    video: {
      deviceId: { exact: deviceId },
      width: { ideal: 1920 },
      height: { ideal: 1080 },
      frameRate: { ideal: 30 },
    },
    audio: false,
  });
  return stream.getVideoTracks()[0];
}

/**
 * Orders the video codecs of a transceiver: the preferred one first (VP8 by default, or H.264),
 * then the other, with their RTX; the server supports nothing else, so nothing else is offered.
 */
export function preferVideoCodecs(transceiver, preferred = "vp8") {
  if (typeof transceiver.setCodecPreferences !== "function") {
    return;
  }
  const capabilities =
    RTCRtpSender.getCapabilities?.("video") ?? RTCRtpReceiver.getCapabilities("video");
  if (!capabilities) {
    return;
  }
  const codecs = capabilities.codecs;
  const vp8 = codecs.filter((c) => c.mimeType.toLowerCase() === "video/vp8");
  const allH264 = codecs.filter((c) => c.mimeType.toLowerCase() === "video/h264");
  // Constrained baseline / baseline with packetization mode 1 is what the server can depacketise.
  const baseline = allH264.filter((c) => {
    const fmtp = c.sdpFmtpLine || "";
    return /packetization-mode=1/.test(fmtp) && /profile-level-id=42/i.test(fmtp);
  });
  const h264 = baseline.length > 0 ? baseline : allH264;
  const rtx = codecs.filter((c) => c.mimeType.toLowerCase() === "video/rtx");
  const ordered = preferred === "h264" ? [...h264, ...vp8] : [...vp8, ...h264];
  if (ordered.length === 0) {
    return;
  }
  try {
    transceiver.setCodecPreferences([...ordered, ...rtx]);
  } catch (error) {
    // Older browsers validate against receiver capabilities only; their default order is fine.
    console.warn("setCodecPreferences failed; using the browser's codec order", error);
  }
}

/**
 * "all", or "relay" for a page opened with `?ice=relay`: its connections then use only the TURN
 * relays the server handed out, so a hospital's IT team can check that path from one browser.
 */
let iceTransportPolicy = "all";

/** Uses only TURN relays (`true`) or every way to the server (`false`) from now on. */
export function useRelayOnly(relay) {
  iceTransportPolicy = relay ? "relay" : "all";
}

/**
 * The end-to-end encryption of an e2ee room (e2ee.js `FrameProtection`), or null: every sender
 * and receiver of the page's connections is then given its frame transform.
 */
let frameProtection = null;

/** Encrypts and decrypts every frame of the page's connections from now on (null: stop adding). */
export function protectFrames(protection) {
  frameProtection = protection;
}

/** The page's frame protection, or null outside an end-to-end encrypted room. */
export function framesProtection() {
  return frameProtection;
}

/** The configuration of every peer connection of the page; `iceServers` as `joined` gave them. */
export function peerConfiguration(iceServers) {
  return { iceServers, iceTransportPolicy, bundlePolicy: "max-bundle" };
}

/** The publish connection: the client offers sendonly sections, the server answers. */
export class PublishConnection {
  constructor(iceServers, videoCodec = "vp8") {
    this.pc = new RTCPeerConnection(peerConfiguration(iceServers));
    this.videoCodec = videoCodec;
    this.transceivers = new Map(); // source -> RTCRtpTransceiver
  }

  /** Adds one sendonly transceiver per track: `tracks` maps a source to a MediaStreamTrack. */
  addTracks(stream, tracks) {
    for (const [source, track] of tracks) {
      const init = { direction: "sendonly", streams: [stream] };
      let transceiver;
      try {
        // Three temporal layers: the server sends a thin link the lower ones only (fewer
        // frames, each decodable) rather than more than it carries (docs/thin-links.md).
        transceiver = this.pc.addTransceiver(
          track,
          source === "camera" ? { ...init, sendEncodings: [{ scalabilityMode: "L1T3" }] } : init,
        );
      } catch {
        transceiver = this.pc.addTransceiver(track, init); // a browser without the mode
      }
      frameProtection?.sender(transceiver.sender);
      if (track.kind === "video") {
        preferVideoCodecs(transceiver, this.videoCodec);
      }
      this.transceivers.set(source, transceiver);
    }
  }

  /**
   * Sends `track` as the `content` source. The content section is made once and reused: stopping
   * sets it inactive, so sharing again does not grow the SDP by a section each time.
   */
  async setContent(track) {
    const existing = this.transceivers.get("content");
    if (existing !== undefined) {
      await existing.sender.replaceTrack(track);
      existing.direction = "sendonly";
      return existing;
    }
    const transceiver = this.pc.addTransceiver(track, {
      direction: "sendonly",
      streams: [new MediaStream([track])],
    });
    frameProtection?.sender(transceiver.sender);
    preferVideoCodecs(transceiver, this.videoCodec);
    this.transceivers.set("content", transceiver);
    return transceiver;
  }

  /** Stops sending content; the next offer has the section inactive and no longer lists it. */
  async clearContent() {
    const transceiver = this.transceivers.get("content");
    if (transceiver === undefined) {
      return;
    }
    transceiver.direction = "inactive";
    await transceiver.sender.replaceTrack(null);
  }

  /** Whether the content section is sending. */
  get sendsContent() {
    const transceiver = this.transceivers.get("content");
    return transceiver !== undefined && transceiver.direction === "sendonly";
  }

  /**
   * Keeps the content at full resolution when bandwidth is short (fewer frames instead of a
   * blurred picture) where the browser supports choosing; the content hint says the same.
   */
  async preferResolutionForContent() {
    const sender = this.transceivers.get("content")?.sender;
    if (!sender || typeof sender.getParameters !== "function") {
      return;
    }
    try {
      const parameters = sender.getParameters();
      if (parameters.degradationPreference === "maintain-resolution") {
        return;
      }
      parameters.degradationPreference = "maintain-resolution";
      await sender.setParameters(parameters);
    } catch (error) {
      console.info("degradationPreference not supported; the content hint applies", error);
    }
  }

  /** Creates the offer and gathers; returns the `publish` message's `sdp` and `tracks`. */
  async offer() {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await iceGatheringComplete(this.pc);
    const tracks = [];
    for (const [source, transceiver] of this.transceivers) {
      // The protocol lists every sending section, and only those: an inactive one is unpublished.
      if (transceiver.mid !== null && transceiver.direction === "sendonly") {
        tracks.push({ mid: transceiver.mid, source });
      }
    }
    return { sdp: this.pc.localDescription.sdp, tracks };
  }

  async applyAnswer(sdp) {
    await this.pc.setRemoteDescription({ type: "answer", sdp });
  }

  close() {
    this.pc.close();
  }
}

/**
 * The subscribe connection: the server offers one sendonly section per remote track. After each
 * offer, `onTracks(list)` receives every carried track as
 * `{trackId, participantId, kind, source, mid, track}` (track: the MediaStreamTrack).
 */
export class SubscribeConnection {
  constructor(iceServers, onTracks) {
    this.pc = new RTCPeerConnection(peerConfiguration(iceServers));
    this.onTracks = onTracks;
    this.byMid = new Map(); // mid -> track description from the latest offer
    this._queue = Promise.resolve();
    // The mapping is rebuilt from the transceivers after every offer (below), which also covers
    // a mid whose track changed without a new ontrack event; ontrack only refreshes it early.
    this.pc.addEventListener("track", () => this._report());
  }

  /** Applies a `subscribe_offer` and resolves with the answer SDP (after gathering). */
  answer(offer) {
    const run = async () => {
      this.byMid = new Map(offer.tracks.map((t) => [t.mid, t]));
      await this.pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
      for (const transceiver of this.pc.getTransceivers()) {
        frameProtection?.receiver(transceiver.receiver); // before any frame can arrive
      }
      await this.pc.setLocalDescription(await this.pc.createAnswer());
      await iceGatheringComplete(this.pc);
      this._report();
      return this.pc.localDescription.sdp;
    };
    // Offers are handled strictly in order; the server waits for each answer anyway.
    const result = this._queue.then(run);
    this._queue = result.catch(() => {});
    return result;
  }

  /** Which track id a receiving mid carries now, or undefined. */
  trackIdOfMid(mid) {
    return this.byMid.get(mid)?.track_id;
  }

  /** The latest offer's description of a mid (`{mid, track_id, participant_id, kind, source}`). */
  describeMid(mid) {
    return this.byMid.get(mid);
  }

  _report() {
    const carried = [];
    for (const transceiver of this.pc.getTransceivers()) {
      const description = transceiver.mid !== null ? this.byMid.get(transceiver.mid) : undefined;
      if (description === undefined || transceiver.receiver.track === null) {
        continue;
      }
      carried.push({
        trackId: description.track_id,
        participantId: description.participant_id,
        kind: description.kind,
        source: description.source,
        mid: transceiver.mid,
        track: transceiver.receiver.track,
      });
    }
    this.onTracks(carried);
  }

  close() {
    this.pc.close();
  }
}
