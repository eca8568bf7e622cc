// Lecture rooms (docs/protocol.md): what the lecturer and speakers see (the audience's size, the
// raised hands and the chair's promote/demote), and the audience's side of the page: watching the
// stage over WHEP, raising a hand, and speaking when the chair asks. A meeting's viewers (a viewer
// invite) watch the same way, and its participants see who watches ("Watched by N: names").

import { clearText, errorText, pluralKey, setAttributeText, setText, t, tn } from "./i18n.js";
import { nextRetry } from "./backoff.js";
import { WhepSession } from "./whep.js";

/** Receive-only sections a viewer's WHEP session offers of each kind (stage slots it can show). */
export const STAGE_SECTIONS = 3;
/** How many times the audience page asks a busy server (503) again before giving up. */
const BUSY_RETRIES = 12;
/**
 * How long a lost WHEP session is asked for again (a new POST, with backoff) before the page
 * gives up: an outage, a restarting server or worker. Longer than a room's grace period, since
 * a player's session can always be made anew.
 */
const WHEP_RECOVERY_MS = 120000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
/**
 * The role an invite token names, read without checking its signature (the token's payload is
 * signed, not secret), or null. Only a hint for the page's first screen: the server decides.
 */
export async function inviteRole(token) {
  if (!token) {
    return null;
  }
  try {
    const compressed = token.startsWith(".");
    const encoded = (compressed ? token.slice(1) : token).split(".")[0];
    const base64 = encoded.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const json = compressed
      ? await new Response(
          new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate")),
        ).text()
      : new TextDecoder().decode(bytes);
    const role = JSON.parse(json).role;
    return typeof role === "string" ? role : null;
  } catch {
    return null;
  }
}

export class Lecture {
  /**
   * `deps`: `{send(message), notify(text), me(), role(), setRole(role),
   * ensureParticipant(id, name), setReceived(list), startSpeaking(), stopSpeaking(), render()}`.
   * `setReceived` gets the WHEP session's tracks in the subscribe connection's form
   * (`{trackId, participantId, kind, source, mid, track}`).
   */
  constructor(deps) {
    this.deps = deps;
    this.$ = (id) => document.getElementById(id);
    this.whep = null;
    this._bind();
    this.reset({}, {});
  }

  /** A new session: what `joined` says; `watch` when the page receives over WHEP. */
  reset(joined, { watch = false, token = null, iceServers = [], roomId = null }) {
    this.stop();
    this.kind = joined.room?.kind ?? "meeting";
    this.viewers = joined.viewers ?? 0;
    this.watchers = joined.watchers ?? [];
    this.hands = joined.hands ?? [];
    this.stage = { video: joined.stage?.video ?? [], audio: joined.stage?.audio ?? [] };
    this.handRaised = false;
    // A lecture's audience page, or a meeting watched with a viewer invite.
    this.watch = watch && (this.isLecture || this.deps.role() === "viewer");
    this.whepState = this.watch ? "starting" : null;
    clearText(this.$("lecture-status"));
    setText(this.$("waiting"), this.isLecture ? "lecture.waiting" : "room.waiting");
    this._renderHands();
    if (this.watch) {
      this._watch(roomId, token, iceServers);
    }
    this._render();
  }

  /**
   * A resumed session's `joined` (the same participant): the audience, hands and stage as they
   * are now, and our raised hand as the server kept it. The WHEP session, if any, goes on: it
   * has a connection of its own, recovered by itself if it was lost too.
   */
  resume(joined) {
    this.viewers = joined.viewers ?? 0;
    this.watchers = joined.watchers ?? [];
    this.hands = joined.hands ?? [];
    this.stage = { video: joined.stage?.video ?? [], audio: joined.stage?.audio ?? [] };
    this.handRaised = Boolean(joined.hand_raised);
    this._renderHands();
    this._mapStage();
    this._render();
  }

  get isLecture() {
    return this.kind === "lecture";
  }

  /** `window.mcu.lecture`. */
  get state() {
    return {
      kind: this.kind,
      viewers: this.viewers,
      watchers: this.watchers.map((w) => w.name),
      hands: this.hands.map((h) => ({ ...h })),
      stage: this.stage,
      handRaised: this.handRaised,
      whep: this.whepState,
    };
  }

  /** The video codec a publisher in this room should put first (lectures forward H.264). */
  videoCodec(fallback) {
    return this.isLecture ? "h264" : fallback;
  }

  /** Handles a lecture event; false for any other message. */
  handle(message) {
    switch (message.type) {
      case "viewers":
        this.viewers = message.count;
        this.watchers = message.watchers ?? [];
        break;
      case "hands":
        this._onHands(message.hands ?? []);
        break;
      case "stage":
        this.stage = { video: message.video ?? [], audio: message.audio ?? [] };
        this._mapStage();
        break;
      case "role":
        if (message.participant_id !== this.deps.me()) {
          return true;
        }
        this._onRole(message.role);
        break;
      default:
        return false;
    }
    this._render();
    return true;
  }

  toggleHand() {
    if (this.deps.role() !== "viewer") {
      return;
    }
    this.handRaised = !this.handRaised;
    this.deps.send({ type: "hand", raised: this.handRaised });
    this.deps.notify(t(this.handRaised ? "lecture.hand_is_raised" : "lecture.hand_lowered"));
    this._render();
  }

  /** The WHEP connection for statistics: `[{pc, describeMid}]` (empty when not watching). */
  receivers() {
    if (this.whep === null) {
      return [];
    }
    return [{ pc: this.whep.pc, describeMid: (mid) => this._describeMid(mid) }];
  }

  /** Ends the WHEP session (the page is leaving: `keepalive` lets the DELETE outlive it). */
  stop({ keepalive = false } = {}) {
    const whep = this.whep;
    this.whep = null;
    if (whep !== null) {
      this.whepState = "closed";
      whep.stop({ keepalive });
    }
  }

  // ------------------------------------------------------------ the audience's side

  async _watch(roomId, token, iceServers) {
    // A server at capacity answers 503 with Retry-After; ask again a bounded number of times.
    for (let attempt = 1; ; attempt += 1) {
      const outcome = await this._watchOnce(roomId, token, iceServers);
      if (typeof outcome !== "number" || attempt >= BUSY_RETRIES) {
        return outcome;
      }
      const busy = this.whep;
      this.deps.notify(t("lecture.busy"));
      await new Promise((resolve) => setTimeout(resolve, outcome * 1000));
      if (this.whep !== busy) {
        return null; // left meanwhile, or another session started
      }
    }
  }

  /**
   * One WHEP attempt: "ok", "failed", the seconds to wait before another when the server was
   * busy, or null when the page left (or another session began) meanwhile.
   */
  async _watchOnce(roomId, token, iceServers) {
    const whep = new WhepSession(`/whep/${encodeURIComponent(roomId)}`, {
      token,
      audio: STAGE_SECTIONS,
      video: STAGE_SECTIONS,
      videoCodecs: ["video/h264", "video/vp8"],
      iceServers,
    });
    this.whep = whep;
    whep.pc.addEventListener("connectionstatechange", () => {
      if (this.whep !== whep) {
        return;
      }
      this.whepState = whep.pc.connectionState;
      if (whep.pc.connectionState === "failed") {
        this._recover(whep, roomId, token, iceServers);
      }
    });
    try {
      await whep.start();
    } catch (error) {
      if (this.whep !== whep) {
        return null;
      }
      if (error.status === 503 && error.retryAfter !== null) {
        whep.pc.close();
        return Math.min(Math.max(error.retryAfter, 1), 30);
      }
      console.error("WHEP failed", error);
      this.whepState = "failed";
      this.deps.notify(
        t("lecture.not_received", { reason: errorText(error.code, error.message) }),
      );
      return "failed";
    }
    if (this.whep === whep) {
      this._mapStage();
    }
    return "ok";
  }

  /**
   * The WHEP session `lost` failed (an outage, its worker restarted): POST a new one, with
   * backoff and jitter (backoff.js), until one is up or WHEP_RECOVERY_MS have passed.
   */
  async _recover(lost, roomId, token, iceServers) {
    this.deps.notify(t("lecture.whep_interrupted"));
    lost.stop(); // the server may still hold it (a blip it did not notice): end it there too
    const deadline = performance.now() + WHEP_RECOVERY_MS;
    for (let attempt = 1; ; attempt += 1) {
      const wait = nextRetry({ attempt, now: performance.now(), deadline, random: Math.random() });
      if (wait === null) {
        this.whepState = "failed";
        this.deps.notify(t("lecture.whep_failed"));
        return;
      }
      await sleep(wait);
      if (this.whep !== lost) {
        return; // left meanwhile, or another session began
      }
      const outcome = await this._watch(roomId, token, iceServers);
      if (outcome === "ok") {
        this.deps.notify(t("lecture.whep_back"));
        return;
      }
      if (outcome === null) {
        return;
      }
      this.whep = lost; // still lost: this loop owns the next try
    }
  }

  /** Maps the WHEP sections to the stage: the i-th video section carries `stage.video[i]`. */
  _mapStage() {
    if (this.whep === null) {
      return;
    }
    const received = [];
    for (const [kind, transceivers] of [
      ["video", this.whep.video],
      ["audio", this.whep.audio],
    ]) {
      transceivers.forEach((transceiver, i) => {
        const track = this.stage[kind][i];
        if (track === undefined || track.participant_id === this.deps.me()) {
          return; // an empty slot, or our own picture and voice (once we speak)
        }
        this.deps.ensureParticipant(track.participant_id, track.name);
        received.push({
          trackId: track.id,
          participantId: track.participant_id,
          kind,
          source: track.source,
          mid: transceiver.mid,
          track: transceiver.receiver.track,
        });
      });
    }
    this.deps.setReceived(received);
  }

  _describeMid(mid) {
    for (const kind of ["video", "audio"]) {
      const index = this.whep?.[kind].findIndex((t) => t.mid === mid) ?? -1;
      const track = index >= 0 ? this.stage[kind][index] : undefined;
      if (track !== undefined) {
        return { track_id: track.id, participant_id: track.participant_id, source: track.source };
      }
    }
    return undefined;
  }

  _onRole(role) {
    this.deps.setRole(role);
    this.handRaised = false;
    if (role === "viewer") {
      clearText(this.$("lecture-status"));
      this.deps.stopSpeaking();
      this.deps.notify(t("lecture.back_in_audience"));
    } else {
      setText(this.$("lecture-status"), "lecture.may_speak");
      this.deps.notify(t("lecture.invited_to_speak"));
      this.deps.startSpeaking();
    }
    this._mapStage();
  }

  // ------------------------------------------------------------ the lecturer's side

  _onHands(hands) {
    const before = new Set(this.hands.map((h) => h.participant_id));
    const raised = hands.filter((h) => !before.has(h.participant_id));
    this.hands = hands;
    this._renderHands();
    if (raised.length === 1) {
      this.deps.notify(t("lecture.hand_raised", { name: raised[0].name }));
    } else if (raised.length > 1) {
      this.deps.notify(tn("lecture.more_hands", raised.length));
    }
  }

  promote(participantId) {
    this.deps.send({ type: "chair", action: "promote", participant_id: participantId });
  }

  demote(participantId) {
    this.deps.send({ type: "chair", action: "demote", participant_id: participantId });
  }

  _bind() {
    this.$("hand-button").addEventListener("click", () => this.toggleHand());
    this.$("hands-list").addEventListener("click", (event) => {
      const button = event.target.closest?.("button[data-participant]");
      if (button) {
        button.disabled = true; // until the next `hands` says what happened
        this.promote(button.dataset.participant);
      }
    });
  }

  /** The chair's list of raised hands (rebuilt only when it changes, so focus stays put). */
  _renderHands() {
    const $ = this.$;
    setText($("hands-title"), "lecture.hands_count", { count: this.hands.length });
    const items = this.hands.map((h) => {
      const item = document.createElement("li");
      const name = document.createElement("span");
      name.className = "hand-name";
      name.textContent = h.name;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "primary";
      button.dataset.participant = h.participant_id;
      setText(button, "lecture.promote");
      setAttributeText(button, "aria-label", "lecture.promote_label", { name: h.name });
      item.append(name, button);
      return item;
    });
    // Keep keyboard users in the list when the hand they acted on leaves it.
    const hadFocus = $("hands-list").contains(document.activeElement);
    $("hands-list").replaceChildren(...items);
    if (hadFocus) {
      $("hands-list").querySelector("button")?.focus();
    }
  }

  _render() {
    const $ = this.$;
    const role = this.deps.role();
    const lecture = this.isLecture;
    const viewer = role === "viewer";
    document.body.dataset.lecture = lecture ? role : "";
    const count = $("viewer-count");
    if (lecture) {
      count.hidden = viewer || role === null;
      setText(count, pluralKey("lecture.viewers", this.viewers), { count: this.viewers });
    } else {
      // A consultation is private: its participants always see who watches it.
      count.hidden = viewer || role === null || this.viewers === 0;
      const names = this.watchers.map((w) => w.name).join(t("list.separator"));
      setText(count, names ? "lecture.watched_by_names" : "lecture.watched_by", {
        count: this.viewers,
        names,
      });
    }

    const hand = $("hand-button");
    hand.hidden = !(lecture && viewer);
    setText(hand, this.handRaised ? "lecture.lower_hand" : "lecture.raise_hand");
    hand.setAttribute("aria-pressed", String(this.handRaised));

    $("hands").hidden = !(lecture && role === "chair") || this.hands.length === 0;

    // A viewer sends nothing (present-controls.js hides Present); a page that watches over WHEP
    // has no subscription to choose.
    for (const id of ["mic-button", "cam-button", "self-view"]) {
      $(id).hidden = viewer;
    }
    $("view-menu").hidden = viewer || this.watch;
    this.deps.render();
  }
}
