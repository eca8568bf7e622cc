// One session with the server (docs/protocol.md): the signalling WebSocket, the publish connection
// (we offer) and the subscribe connection (the server offers), the room's ICE servers and the
// session token that uploads use. It keeps no room state: what the server says goes to
// `deps.onMessage`, and the page's reducer (room-state.js) decides what it means.

import { t } from "./i18n.js";
import { PublishConnection, SubscribeConnection } from "./media.js";
import { UploadError } from "./present.js";
import { ServerError, Signaling } from "./signaling.js";
import { collectStats } from "./stats.js";

/** How long a resume may take to open its socket, and then to be answered, before it is retried. */
const RESUME_STEP_MS = 8000;

export class RoomSession {
  /**
   * `url`: the signalling WebSocket's. `deps`: `{onMessage(message), onClose(), isJoined(),
   * videoCodec(), onTracks(carried), onOwnTracks(Map source -> track id), onMediaLost()}`.
   * `onClose` is called when the current socket closes by itself (not after `disconnect`);
   * `onTracks` gets the subscribe connection's tracks after each offer; `onMediaLost` when the
   * publish or subscribe connection failed (the page resumes the session).
   */
  constructor(url, deps) {
    this.url = url;
    this.deps = deps;
    this.signaling = null;
    this.roomId = null;
    this.sessionToken = null;
    this.participantId = null;
    this.resumeToken = null;
    /** Seconds the server keeps us after a lost connection (0: it does not; join again). */
    this.reconnectGrace = 0;
    this.iceServers = [];
    this.publish = null;
    this.subscribe = null;
    this._publishChain = Promise.resolve();
  }

  /** Opens the WebSocket unless it is open already; resolves once it is. */
  async open() {
    if (this.signaling?.isOpen) {
      return;
    }
    const signaling = new Signaling(this.url);
    signaling.onMessage = (message) => this.deps.onMessage(message);
    signaling.onClose = () => {
      if (signaling === this.signaling) {
        this.deps.onClose();
      }
    };
    this.signaling = signaling;
    await signaling.connect();
  }

  /** Sends a request; resolves with the reply or rejects with a ServerError. */
  request(message) {
    return this.signaling.request(message);
  }

  /** Sends a message without waiting for a reply (nothing when not connected). */
  send(message) {
    this.signaling?.send(message);
  }

  /** What `joined` says the session needs: ICE servers, the room's id and the upload token. */
  enter(joined, roomId) {
    this.iceServers = joined.ice_servers ?? [];
    this.roomId = joined.room?.id ?? roomId;
    this.sessionToken = joined.session_token ?? null;
    this.participantId = joined.participant?.id ?? null;
    this.resumeToken = joined.resume_token ?? null;
    this.reconnectGrace = joined.reconnect_grace ?? 0;
  }

  /** Whether the server would let this session resume after a lost connection. */
  get canResume() {
    return this.resumeToken !== null && this.participantId !== null && this.reconnectGrace > 0;
  }

  /**
   * Comes back as the same participant on a new socket (docs/protocol.md, Resuming a session);
   * resolves with the `joined` reply, or rejects (a ServerError: `resume_failed` when the
   * session is over, `unreachable` or `disconnected` when this try did not get through). The
   * caller has closed the old connections (`close`).
   */
  async resume(media) {
    const request = {
      type: "join",
      room: this.roomId,
      resume: { participant_id: this.participantId, token: this.resumeToken },
    };
    if (media === "none") {
      request.media = "none";
    }
    try {
      // A socket to an unreachable server may take minutes to fail by itself.
      await withinTime(this.open(), RESUME_STEP_MS);
      return await withinTime(this.signaling.request(request), RESUME_STEP_MS);
    } catch (error) {
      this.disconnect();
      throw error;
    }
  }

  /** Closes the WebSocket without telling `onClose`. */
  disconnect() {
    if (this.signaling) {
      this.signaling.onClose = () => {};
      this.signaling.close();
      this.signaling = null;
    }
  }

  /** Ends everything: both peer connections and the socket. */
  close() {
    this.closePublish();
    this.subscribe?.close();
    this.subscribe = null;
    this.disconnect();
  }

  // ------------------------------------------------------------ sending

  /**
   * The publish connection, made on first use (`create`) while joined: someone who joined
   * without camera and microphone has none until they present.
   */
  publishConnection(create = true) {
    if (this.publish === null && create && this.deps.isJoined()) {
      const publish = new PublishConnection(this.iceServers, this.deps.videoCodec());
      publish.pc.addEventListener("connectionstatechange", () => {
        if (publish.pc.connectionState === "failed" && this.publish === publish) {
          this.deps.onMediaLost();
        }
      });
      this.publish = publish;
    }
    return this.publish;
  }

  /** Stops sending altogether (back in a lecture's audience, or the session ended). */
  closePublish() {
    this.publish?.close();
    this.publish = null;
  }

  /**
   * Sends a `publish` with the complete list of what the publish connection sends (the protocol
   * wants the full list each time). One negotiation at a time, in the order asked.
   */
  renegotiatePublish() {
    const run = () => this._negotiatePublish();
    const result = this._publishChain.then(run, run);
    this._publishChain = result.catch(() => {});
    return result;
  }

  async _negotiatePublish() {
    const publish = this.publish;
    if (publish === null || !this.deps.isJoined()) {
      return;
    }
    const offer = await publish.offer();
    if (!this.deps.isJoined() || this.publish !== publish) {
      return;
    }
    let answer;
    try {
      answer = await this.signaling.request({
        type: "publish",
        sdp: offer.sdp,
        tracks: offer.tracks,
      });
    } catch (error) {
      // Refused (floor_busy, bad_sdp): back to the last agreed state, so the next offer is clean.
      if (publish.pc.signalingState === "have-local-offer") {
        await publish.pc.setLocalDescription({ type: "rollback" }).catch(() => {});
      }
      throw error;
    }
    await publish.applyAnswer(answer.sdp);
    const ownTracks = new Map();
    for (const { mid, track_id: trackId } of answer.tracks) {
      const listed = offer.tracks.find((t) => t.mid === mid);
      if (listed) {
        ownTracks.set(listed.source, trackId);
      }
    }
    this.deps.onOwnTracks(ownTracks);
  }

  /** Uploads a document to share (docs/protocol.md, "Content"); resolves with the Response. */
  upload(file) {
    if (!this.sessionToken) {
      throw new UploadError(0, t("upload.not_accepted"));
    }
    return fetch(`/rooms/${encodeURIComponent(this.roomId)}/documents`, {
      method: "POST",
      headers: { Authorization: `Bearer ${this.sessionToken}` },
      body: file,
    });
  }

  // ------------------------------------------------------------ receiving

  /** Answers a `subscribe_offer` (made on the first); rejects when it cannot be applied. */
  async answerSubscribe(offer) {
    if (this.subscribe === null) {
      const subscribe = new SubscribeConnection(this.iceServers, (carried) =>
        this.deps.onTracks(carried),
      );
      subscribe.pc.addEventListener("connectionstatechange", () => {
        if (subscribe.pc.connectionState === "failed" && this.subscribe === subscribe) {
          this.deps.onMediaLost();
        }
      });
      this.subscribe = subscribe;
    }
    const sdp = await this.subscribe.answer(offer);
    this.send({ type: "subscribe_answer", sdp });
  }

  /**
   * Statistics of what we send and receive: `receivers` (`[{pc, describeMid}]`, a WHEP session's)
   * and the subscribe connection, with the two connections' states.
   */
  async stats(receivers) {
    const subscribe = this.subscribe;
    const all = [...receivers];
    if (subscribe !== null) {
      all.push({ pc: subscribe.pc, describeMid: (mid) => subscribe.describeMid(mid) });
    }
    return {
      ...(await collectStats(all, this.publish)),
      publishConnection: this.publish?.pc.connectionState ?? null,
      subscribeConnection: subscribe?.pc.connectionState ?? null,
    };
  }
}

/** `promise`, or a ServerError `unreachable` once `ms` have passed without it settling. */
function withinTime(promise, ms) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new ServerError("unreachable", "The server did not answer in time.")),
      ms,
    );
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
