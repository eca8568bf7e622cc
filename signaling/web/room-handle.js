// `window.mcu`, the room page's handle for tests and diagnostics: the session's state, the latest
// error, the room as received, what the content area and the view show, the latest server
// messages, a getStats() summary, and hooks that drive the page as a person would.

import { canvasTestPattern, fileFromBase64 } from "./present.js";

/** How many server messages `messages` keeps. */
const MESSAGE_LOG_LENGTH = 200;

/**
 * The handle over the page's parts, each read when asked for (the handle exists before them).
 * `page`: `{room() (room-state.js), presenter(), views() (room-view.js), lecture(), stats(),
 * leave(), send(message)}`. The page writes `state`, `lastError` and `role`.
 */
export function roomHandle(page) {
  const presenter = () => page.presenter();
  return {
    /** "idle" | "joining" | "joined" | "left" | "error" */
    state: "idle",
    /** "connected", or "reconnecting" while a lost connection is being resumed. */
    connection: "connected",
    /** `{code, message, retryAfter?}` of the latest failure, or null. */
    lastError: null,
    get participantId() {
      return page.room().me;
    },
    role: null,
    get participants() {
      return [...page.room().participants.values()].map((p) => ({ id: p.id, name: p.name }));
    },
    /** Who holds the content floor: `{holder, mode, queuePosition}` (queuePosition: ours, if waiting). */
    get floor() {
      return { ...presenter().floor, queuePosition: presenter().queuePosition };
    },
    /** The slides being shown: `{presenter, documentId, page, pages, trackId}`. */
    get slides() {
      return { ...presenter().slides };
    },
    /** What we present: "stream", "slides", "waiting" (for the floor) or null. */
    get presenting() {
      const { active, pending, showing } = presenter();
      if (active !== null) {
        return active.kind;
      }
      return pending !== null || showing ? "waiting" : null;
    },
    /** The remote tracks the subscribe connection carries now. */
    get received() {
      return [...page.room().received.values()].map((r) => ({
        trackId: r.trackId,
        participantId: r.participantId,
        kind: r.kind,
        source: r.source,
        readyState: r.track.readyState,
      }));
    },
    /** Whether the content area is on screen, and what it says. */
    get contentView() {
      return {
        shown: page.views().contentView.shown,
        caption: document.querySelector("#content .content-caption").textContent,
        counter: document.querySelector("#content .slide-counter").textContent,
      };
    },
    /** What this participant receives: `{mode: "forwarded" | "mixed", layout, resolution}`. */
    get view() {
      return page.views().view.state;
    },
    /** Whether the room is being recorded: `{active, recordingId, startedAt, error}`. */
    get recording() {
      return page.views().recording.state;
    },
    /**
     * Lecture and watching state: `{kind, viewers, watchers (names; meetings only), hands, stage,
     * handRaised, whep}` (whep: the WHEP connection state).
     */
    get lecture() {
      return page.lecture().state;
    },
    /** The latest server messages (SDP left out), oldest first, for tests and diagnostics. */
    messages: [],
    stats: () => page.stats(),
    leave: () => page.leave(),
    shareScreen: () => presenter().shareScreen(),
    stopSharing: () => presenter().stop(),
    nextPage: () => presenter().nextPage(),
    previousPage: () => presenter().previousPage(),
    /**
     * Test hook: shares a moving 1280x720 test pattern through the same path as "Share screen"
     * (headless browsers have no screen to pick). Resolves once the content is published.
     */
    shareCanvasForTest: () => presenter().shareTrack(canvasTestPattern(), "a test pattern"),
    /**
     * Test hook: states what this page wishes to receive (`{sources, participants}`, as the
     * protocol's `subscription`): `{participants: []}` makes a tab that only publishes.
     */
    subscribeForTest: (wish) => page.send({ type: "subscription", ...wish }),
    /** Test hook: shares a file given as base64 through the same path as "Share file". */
    shareFileForTest: (base64, name) => presenter().shareFile(fileFromBase64(base64, name)),
  };
}

/** Keeps a server message in the handle's `messages`, SDP left out, the oldest dropped. */
export function recordMessage(handle, message) {
  const entry = { ...message };
  if ("sdp" in entry) {
    entry.sdp = `(${entry.sdp.length} characters)`;
  }
  handle.messages.push(entry);
  if (handle.messages.length > MESSAGE_LOG_LENGTH) {
    handle.messages.splice(0, handle.messages.length - MESSAGE_LOG_LENGTH);
  }
}
