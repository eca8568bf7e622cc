// The room as this page knows it (docs/protocol.md): who is in it and what each publishes, what
// the subscribe connection carries, who speaks, what the server calls our own tracks and whether
// our microphone and camera are muted. Pure: `reduce(state, message)` returns the next state and
// the effects the page carries out (app.js). Nothing here touches the DOM, the socket or a peer
// connection, so the reducer is tested as a table (tests/e2e/test_room_state.py).
//
// A state is never changed in place: every change makes new objects along its path, so a state
// someone holds stays what it was. MediaStreamTracks in `received` are opaque values here.

import { errorText, t } from "./i18n.js";

/**
 * The state before a join: `{me, participants, received, ownTracks, activeSpeaker, muted,
 * reconnecting}`.
 * `participants`: id -> `{id, name, role, tracks: Map(trackId -> track)}` (tracks as the server
 * lists them, with `muted`); `received`: track id -> `{trackId, participantId, kind, source, mid,
 * track}`; `ownTracks`: source -> the track id the server gave it; `muted`: `{microphone, camera}`;
 * `reconnecting`: ids of participants whose connection was lost, in the order it happened;
 * `links`: participant id -> `{rung, estimateBps, short}` for links the server thins (our own, and
 * everyone's for a chair), from `link` messages.
 */
export function emptyRoom() {
  return {
    me: null,
    participants: new Map(),
    received: new Map(),
    ownTracks: new Map(),
    activeSpeaker: null,
    muted: { microphone: false, camera: false },
    reconnecting: [],
    links: new Map(),
  };
}

/** The state a `joined` reply starts (the server's list of those already in the room). */
export function joinedRoom(joined) {
  let state = { ...emptyRoom(), me: joined.participant.id };
  for (const participant of joined.participants ?? []) {
    state = withParticipant(state, participant);
  }
  const away = (joined.participants ?? []).filter((p) => p.reconnecting).map((p) => p.id);
  return { ...state, reconnecting: away };
}

/**
 * The state after our session resumed (a `joined` with `resumed`): the room as the server has
 * it now, our mutes as they were, our tracks as the server kept them (the next publish brings
 * them back), nothing received until the new subscribe connection carries it.
 */
export function resumedRoom(state, joined) {
  const ownTracks = new Map((joined.participant.tracks ?? []).map((t) => [t.source, t.id]));
  return { ...joinedRoom(joined), muted: state.muted, ownTracks };
}

/** After the session ended: nothing received or sent; who was there stays for diagnostics. */
export function leftRoom(state) {
  return { ...state, received: new Map(), ownTracks: new Map() };
}

/** Adds (or replaces) a participant as the server describes one (`{id, name, role, tracks?}`). */
export function withParticipant(state, participant) {
  const participants = new Map(state.participants);
  participants.set(participant.id, {
    id: participant.id,
    name: participant.name,
    role: participant.role,
    tracks: new Map((participant.tracks ?? []).map((t) => [t.id, { ...t }])),
  });
  return { ...state, participants };
}

/** The tracks a connection now carries (`[{trackId, participantId, ...}]`), replacing the last. */
export function withReceived(state, carried) {
  return { ...state, received: new Map(carried.map((r) => [r.trackId, r])) };
}

/** What the server calls our published tracks (source -> track id), from a `publish_answer`. */
export function withOwnTracks(state, ownTracks) {
  return { ...state, ownTracks: new Map(ownTracks) };
}

/** Our microphone or camera muted (or not) here, by the person or following the chair. */
export function withOwnMute(state, source, muted) {
  return { ...state, muted: { ...state.muted, [source]: muted } };
}

const render = { type: "render" };
const notice = (text) => ({ type: "notice", text });
const end = (state, text, error) => ({ type: "end", state, text, error });

/** Which part of the page owns the messages the room state does not. */
const FORWARDED = new Map([
  ["room_mode", "view"],
  ["recording", "recording"],
  ["floor", "presenter"],
  ["floor_queued", "presenter"],
  ["slides", "presenter"],
]);

/**
 * The next state after a server message, and what the page must do about it: `{state, effects}`.
 * Effects, in order:
 * `{type: "render"}` draw the room again; `{type: "controls"}` redraw our own mute buttons;
 * `{type: "notice", text}` a passing message; `{type: "answer", offer}` answer a subscribe offer;
 * `{type: "drop_tile", participantId}`; `{type: "content_ended"}` the server ended our content;
 * `{type: "local_mute", source, muted}` follow a mute on our own track;
 * `{type: "fail", error}` remember `{code, message}` as the latest error;
 * `{type: "end", state, text, error}` the session is over ("left" or "error");
 * `{type: "forward", to, message}` hand the message to "view", "recording", "presenter" or
 * "lecture" (which takes everything else, and ignores what it does not know).
 * Errors answering the presenter's own requests never get here: they are the presenter's.
 */
export function reduce(state, message) {
  switch (message.type) {
    case "subscribe_offer":
      return { state, effects: [{ type: "answer", offer: message }] };
    case "participant_joined":
      return {
        state: withParticipant(state, message.participant),
        effects: [notice(t("room.joined", { name: message.participant.name })), render],
      };
    case "participant_left":
      return participantLeft(state, message);
    case "participant_reconnecting":
      return reconnecting(state, message.participant_id, true);
    case "participant_back":
      return reconnecting(state, message.participant_id, false);
    case "track_published":
      return trackPublished(state, message);
    case "track_unpublished":
      return trackUnpublished(state, message);
    case "track_muted":
      return message.participant_id === state.me
        ? ownTrackMuted(state, message)
        : trackMuted(state, message);
    case "link":
      return { state: withLink(state, message), effects: [render] };
    case "active_speaker": {
      const activeSpeaker = message.participant_id ?? null;
      return { state: { ...state, activeSpeaker }, effects: [render] };
    }
    case "removed": {
      const error = { code: "removed", message: message.reason ?? "removed" };
      return { state, effects: [end("left", t("left.removed"), error)] };
    }
    case "room_ended": {
      const error = { code: "room_ended", message: message.reason ?? "ended" };
      return { state, effects: [end("left", t("left.room_ended"), error)] };
    }
    case "error": {
      const error = { code: message.code, message: message.message };
      if (message.code === "not_joined") {
        return { state, effects: [end("error", t("left.session_ended"), error)] };
      }
      const text = errorText(message.code, message.message);
      return { state, effects: [{ type: "fail", error }, notice(text)] };
    }
    default: {
      // Lecture events; pong and replies matched by id reach the lecture too, which ignores them.
      const to = FORWARDED.get(message.type) ?? "lecture";
      return { state, effects: [{ type: "forward", to, message }] };
    }
  }
}

function participantLeft(state, message) {
  const gone = state.participants.get(message.participant_id);
  const participants = new Map(state.participants);
  participants.delete(message.participant_id);
  const received = new Map(
    [...state.received].filter(([, r]) => r.participantId !== message.participant_id),
  );
  const effects = [{ type: "drop_tile", participantId: message.participant_id }];
  if (gone) {
    const demoted = message.reason === "demoted";
    effects.push(notice(t(demoted ? "room.demoted" : "room.left", { name: gone.name })));
  }
  effects.push(render);
  const away = state.reconnecting.filter((id) => id !== message.participant_id);
  return { state: { ...state, participants, received, reconnecting: away }, effects };
}

/** What the server sends over someone's link (ours, or anyone's for a chair) and why. */
function withLink(state, message) {
  const links = new Map(state.links);
  if (message.rung === "full" && !message.short) {
    links.delete(message.participant_id);
  } else {
    links.set(message.participant_id, {
      rung: message.rung,
      estimateBps: message.estimate_bps ?? null,
      short: Boolean(message.short),
    });
  }
  return { ...state, links };
}

/** What each rung of a thinned link says to its own participant (docs/thin-links.md). */
const LINK_TEXTS = {
  fewer_frames: "link.fewer_frames",
  fewest_frames: "link.fewer_frames",
  speaker_only: "link.speaker_only",
  mixed: "link.mixed",
  audio_content: "link.audio_content",
};

/** The words for what our own link gets (`link` of `state.links`), or "" when it gets all. */
export function linkText(link) {
  if (link === undefined) {
    return "";
  }
  // A rung this page does not know yet (a newer server) still says the link is weak.
  return t(LINK_TEXTS[link.rung] ?? "link.fewer_frames");
}

/** Someone's connection was lost (`away`), or they are back: their tile says so meanwhile. */
function reconnecting(state, participantId, away) {
  const participant = state.participants.get(participantId);
  if (participant === undefined || state.reconnecting.includes(participantId) === away) {
    return { state, effects: [] };
  }
  const others = state.reconnecting.filter((id) => id !== participantId);
  const text = away ? `${participant.name} is reconnecting…` : `${participant.name} is back.`;
  return {
    state: { ...state, reconnecting: away ? [...others, participantId] : others },
    effects: [notice(text), render],
  };
}

/** `state` with `change(tracks)` applied to a copy of one participant's tracks (if present). */
function withTracksOf(state, participantId, change) {
  const participant = state.participants.get(participantId);
  if (participant === undefined) {
    return state;
  }
  const tracks = new Map(participant.tracks);
  change(tracks);
  const participants = new Map(state.participants);
  participants.set(participantId, { ...participant, tracks });
  return { ...state, participants };
}

function trackPublished(state, message) {
  const next = withTracksOf(state, message.track.participant_id, (tracks) =>
    tracks.set(message.track.id, { ...message.track }),
  );
  return { state: next, effects: [render] };
}

function trackUnpublished(state, message) {
  let next = withTracksOf(state, message.participant_id, (tracks) =>
    tracks.delete(message.track_id),
  );
  const received = new Map(next.received);
  received.delete(message.track_id);
  next = { ...next, received };
  const effects = [];
  if (message.participant_id === state.me && message.track_id === state.ownTracks.get("content")) {
    // The server ended our content (a chair took over): stop sending it.
    const ownTracks = new Map(state.ownTracks);
    ownTracks.delete("content");
    next = { ...next, ownTracks };
    effects.push({ type: "content_ended" });
  }
  effects.push(render);
  return { state: next, effects };
}

function trackMuted(state, message) {
  const next = withTracksOf(state, message.participant_id, (tracks) => {
    const track = tracks.get(message.track_id);
    if (track !== undefined) {
      tracks.set(message.track_id, { ...track, muted: message.muted });
    }
  });
  return { state: next, effects: [render] };
}

/** The chair muted us (or the server echoes our mute): follow it so the button tells the truth. */
function ownTrackMuted(state, message) {
  const { source, muted } = message;
  if ((source !== "microphone" && source !== "camera") || muted === state.muted[source]) {
    return { state, effects: [{ type: "controls" }] };
  }
  const effects = [{ type: "local_mute", source, muted }];
  if (source === "microphone" && message.by === "chair" && muted) {
    effects.push(notice(t("room.chair_muted_you")));
  }
  effects.push({ type: "controls" });
  return { state: withOwnMute(state, source, muted), effects };
}

/**
 * A remote participant as the grid shows it (tiles.js, `Grid.update`): names, who speaks, what
 * they publish and whether it is muted, and the tracks we receive of theirs (or null).
 */
export function participantView(state, participant) {
  const published = (source) => [...participant.tracks.values()].find((t) => t.source === source);
  const media = (source) => {
    for (const received of state.received.values()) {
      if (received.participantId === participant.id && received.source === source) {
        return received.track;
      }
    }
    return null;
  };
  const mic = published("microphone");
  const cam = published("camera");
  const micTrack = media("microphone");
  const camTrack = media("camera");
  return {
    id: participant.id,
    name: participant.name,
    role: participant.role,
    speaking: state.activeSpeaker === participant.id,
    reconnecting: state.reconnecting.includes(participant.id),
    link: state.links.get(participant.id) ?? null,
    hasMic: mic !== undefined || micTrack !== null,
    hasCam: cam !== undefined || camTrack !== null,
    micMuted: mic?.muted ?? false,
    camMuted: cam?.muted ?? false,
    micTrack,
    camTrack,
  };
}
