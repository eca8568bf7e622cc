// The consultation room page: it puts the parts together, runs the join and carries out what the
// server's messages mean. What each message does to the room is room-state.js's (a pure reducer
// returning effects); the session with the server is room-session.js's, the drawing
// room-view.js's. `window.mcu` (room-handle.js) exposes the state for tests and diagnostics.

import { e2eeJoinFields, e2eeStatus, prepareE2ee, showE2eeBadge } from "./e2ee-join.js";
import { errorText, languageSwitch, onLanguageChange, t, translate } from "./i18n.js";
import { inviteRole, Lecture } from "./lecture.js";
import {
  blockJoinFor,
  hidePassword,
  lookUpRoom,
  showDeviceFields,
  showInvite,
  showJoinButton,
  showJoinError,
  showRoomName,
  showWatchOnly,
} from "./join-screen.js";
import { useRelayOnly } from "./media.js";
import { OwnMedia } from "./own-media.js";
import { Presenter, UploadError } from "./present.js";
import { recordMessage, roomHandle } from "./room-handle.js";
import {
  emptyRoom,
  joinedRoom,
  leftRoom,
  reduce,
  resumedRoom,
  withOwnMute,
  withOwnTracks,
  withParticipant,
  withReceived,
} from "./room-state.js";
import { Reconnector } from "./reconnect.js";
import { RoomSession } from "./room-session.js";
import {
  hideAlert,
  notice,
  RoomView,
  showAlert,
  showEnded,
  showPageState,
  showRoomHeading,
  showScreen,
} from "./room-view.js";
import { signalingUrl } from "./signaling.js";

const $ = (id) => document.getElementById(id);

const params = new URLSearchParams(location.search);
const invite = params.get("invite");
// An access token from the hospital's platform (`?token=`): it names the person and the role.
const token = params.get("token");
const roomId = roomFromPath(location.pathname) ?? params.get("room");
const videoCodec = (params.get("codec") || "").toLowerCase() === "h264" ? "h264" : "vp8";
// `?ice=relay`: every connection goes through the TURN relay the server hands out (checking a
// hospital's relay path; with no relay configured nothing connects).
useRelayOnly(params.get("ice") === "relay");
// "connection", or "none" on an audience link (`?view`, or a viewer invite, to a lecture or a
// meeting): the stage then comes over WHEP and the page asks for no camera or microphone unless
// invited to speak.
let joinMedia = "connection";

/** The room as the server has told it (room-state.js); replaced, never changed in place. */
let room = emptyRoom();

/** Test and diagnostics handle; the parts it reads are made below. */
const mcu = roomHandle({
  room: () => room,
  presenter: () => presenter,
  views: () => views,
  lecture: () => lecture,
  stats: () => stats(),
  leave: () => leave(),
  send: (message) => session.send(message),
});
mcu.e2ee = e2eeStatus; // end-to-end encryption: the key's source and frame counts, or null
window.mcu = mcu;

const isJoined = () => mcu.state === "joined";

const session = new RoomSession(signalingUrl(location), {
  onMessage: (message) => handleMessage(message),
  // Gone without our `leave` (a network blip, the server restarting): come back on our own.
  onClose: () => connectionLost(),
  isJoined,
  videoCodec: () => lecture.videoCodec(videoCodec),
  onTracks: (carried) => {
    room = withReceived(room, carried);
    render();
  },
  onOwnTracks: (ownTracks) => {
    room = withOwnTracks(room, ownTracks);
  },
  onMediaLost: () => connectionLost(),
});

const reconnector = new Reconnector({
  session,
  media: () => joinMedia,
  onChange: (reconnecting) => {
    mcu.connection = reconnecting ? "reconnecting" : "connected";
    document.body.dataset.connection = mcu.connection;
    if (reconnecting) {
      notice(t("connection.lost"));
    }
  },
  onResumed: (joined) => resumeRoom(joined),
  onGaveUp: (error) =>
    isJoined() // not when a join afresh was refused: then say so all the same
      ? endSession("error", errorText("disconnected"), error)
      : showEnded("error", errorText("disconnected")),
  rejoin: () => rejoin(),
});

const own = new OwnMedia({
  session,
  muted: () => room.muted,
  setMuted: (source, muted) => {
    room = withOwnMute(room, source, muted);
  },
  announced: (source) => room.ownTracks.has(source),
  stoppedSending: () => {
    room = withOwnTracks(room, new Map());
  },
  failed: (error) => {
    mcu.lastError = error;
  },
});

const presenter = new Presenter({
  send: (message) => session.send(message),
  me: () => mcu.participantId,
  nameOf: (participantId) => nameOf(participantId),
  publishConnection: (create = true) => session.publishConnection(create),
  renegotiate: () => session.renegotiatePublish(),
  upload: (file) => session.upload(file),
  onChange: () => {
    if (isJoined()) {
      render();
    }
  },
  notify: (text, important = false) => (important ? showAlert(text) : notice(text)),
  fail: (text, error) => {
    mcu.lastError = {
      code: error?.code ?? (error instanceof UploadError ? "upload_failed" : "present_failed"),
      message: text,
      ...(error instanceof UploadError ? { status: error.status } : {}),
    };
    showAlert(text);
  },
});

const views = new RoomView({
  presenter,
  send: (message) => session.send(message),
  me: () => mcu.participantId,
  role: () => mcu.role,
  joined: isJoined,
  nameOf: (participantId) => nameOf(participantId),
  participantName: (participantId) => room.participants.get(participantId)?.name,
  demote: (participantId) => lecture.demote(participantId),
  cameraDeviceId: () => own.cameraDeviceId,
  failed: (error) => {
    mcu.lastError = { code: "present_failed", message: error?.message ?? String(error) };
  },
});

const lecture = new Lecture({
  send: (message) => session.send(message),
  notify: (text) => notice(text),
  me: () => mcu.participantId,
  role: () => mcu.role,
  setRole: (role) => {
    mcu.role = role;
  },
  ensureParticipant: (id, name) => {
    if (!room.participants.has(id)) {
      room = withParticipant(room, { id, name, role: "participant" });
    }
  },
  setReceived: (list) => {
    room = withReceived(room, list);
    render();
  },
  startSpeaking: () => own.startSpeaking(),
  stopSpeaking: () => own.stopSpeaking(),
  render: () => isJoined() && render(),
});

/** Where `forward` effects go: the parts of the page that keep their own state. */
const forwardTo = {
  view: (message) => views.view.onRoomMode(message),
  recording: (message) => views.recording.onRecording(message),
  presenter: (message) => presenter.handle(message),
  lecture: (message) => lecture.handle(message),
};

function roomFromPath(pathname) {
  const match = /^\/r\/([^/]+)\/?$/.exec(pathname);
  return match ? decodeURIComponent(match[1]) : null;
}

function setState(state) {
  mcu.state = state;
  showPageState(state);
}

function nameOf(participantId) {
  if (participantId === mcu.participantId) {
    return t("room.you");
  }
  return room.participants.get(participantId)?.name ?? t("room.someone");
}

function render() {
  views.render(room);
}

// ---------------------------------------------------------------- join screen

async function join() {
  if (mcu.state === "joining" || isJoined()) {
    return;
  }
  const name = $("name").value.trim();
  if (!roomId) {
    showJoinError(t("join.no_room"));
    return;
  }
  if (!name && !token) {
    showJoinError(t("join.need_name"));
    $("name").focus();
    return;
  }
  if (!invite && !token && !$("password").value) {
    showJoinError(t("join.need_password"));
    $("password").focus();
    return;
  }
  const e2ee = await e2eeJoinFields(roomId); // the key, before any connection exists
  if (e2ee.error) return showJoinError(e2ee.error);
  setState("joining");
  showJoinError("");
  showJoinButton("join.joining", false);
  try {
    await session.open();
    const request = { type: "join", room: roomId, ...e2ee };
    if (name) {
      request.name = name.slice(0, 64); // a token's name, when it has one, wins at the server
    }
    if (joinMedia === "none") {
      request.media = "none";
    }
    if (token) {
      request.token = token;
    } else if (invite) {
      request.invite = invite;
    } else {
      request.password = $("password").value;
    }
    const joined = await session.request(request);
    enterRoom(joined);
  } catch (error) {
    joinFailed(error);
  }
}

function joinFailed(error) {
  const code = error.code ?? "internal";
  mcu.lastError = { code, message: error.message };
  setState("error");
  showJoinButton("join.join", true);
  if (code === "rate_limited") {
    mcu.lastError.retryAfter = error.retryAfter ?? null;
    blockJoinFor(error.retryAfter, errorText("rate_limited"));
  } else {
    showJoinError(errorText(code, error.message ?? t("join.failed")));
  }
  if (code === "wrong_password") {
    $("password").select();
  }
}

/** The join screen stays, saying why this link cannot get anyone in; the button stays off. */
function refuseJoin(error, text) {
  setState("error");
  mcu.lastError = error;
  showJoinError(text);
  showJoinButton("join.join", false);
}

// ---------------------------------------------------------------- in the room

function enterRoom(joined) {
  const watching = joined.room?.kind === "lecture" || joined.participant.role === "viewer";
  if (joinMedia === "none" && !watching) {
    rejoinWithConnection(); // a meeting's participant on an audience link: join it properly
    return;
  }
  // Synchronous up to publish: messages after `joined` (offers, joins) find the session ready.
  room = joinedRoom(joined);
  mcu.role = joined.participant.role;
  mcu.lastError = null;
  session.enter(joined, roomId);
  presenter.reset(joined);
  views.reset(joined);
  setState("joined");
  lecture.reset(joined, {
    watch: joinMedia === "none",
    token: session.sessionToken,
    iceServers: session.iceServers,
    roomId: session.roomId,
  });
  views.grid.setLecture(lecture.isLecture);
  try {
    localStorage.setItem("mcu.name", joined.participant.name);
  } catch {
    // Storage may be disabled; remembering the name is only a convenience.
  }
  const isChair = joined.participant.role === "chair";
  views.grid.setChair(isChair);
  showRoomHeading(joined.room?.title || joined.room?.id || roomId, isChair);
  showE2eeBadge(joined);
  own.show();
  showScreen("room-screen");
  render();
  if (mcu.role !== "viewer") {
    own.startSpeaking(joinMedia === "none");
  }
}

function connectionLost() {
  if (isJoined()) {
    reconnector.start();
  }
}

/** Back after a lost connection: the same participant, the room as the server has it now. */
function resumeRoom(joined) {
  if (!isJoined()) {
    return;
  }
  recordMessage(mcu, joined);
  // Synchronous up to publish, as in enterRoom: the new subscribe offer follows at once.
  session.enter(joined, roomId);
  room = resumedRoom(room, joined);
  mcu.role = joined.participant.role;
  for (const participantId of [...views.grid.tiles.keys()]) {
    if (!room.participants.has(participantId)) {
      views.grid.remove(participantId); // left while we were away
    }
  }
  presenter.resume(joined);
  views.reset(joined);
  lecture.resume(joined);
  views.grid.setChair(mcu.role === "chair");
  render();
  notice(t("connection.back"));
  sendAgain(joined);
}

/** Sends again, on a new publish connection, what the server kept of ours (by source). */
function sendAgain(joined) {
  const kept = new Set((joined.participant.tracks ?? []).map((t) => t.source));
  const stream = presenter.active?.kind === "stream" ? presenter.active.track : null;
  const sources = own.sources().filter((source) => kept.has(source));
  if (sources.length === 0 && !(stream && kept.has("content"))) {
    return;
  }
  const publish = session.publishConnection();
  own.sendOn(publish, sources);
  const content = stream && kept.has("content") ? publish.setContent(stream) : null;
  Promise.resolve(content)
    .then(() => session.renegotiatePublish())
    .catch((error) => {
      console.error("sending again failed", error);
      notice(t("own.republish_failed", { reason: errorText(error.code, error.message) }));
    });
}

function rejoinWithConnection() {
  session.send({ type: "leave" });
  session.disconnect();
  joinMedia = "connection";
  setState("idle");
  showDeviceFields();
  own
    .preview()
    .then(() => own.fillPickers())
    .then(join);
}

function handleMessage(message) {
  if (!isJoined()) {
    if (message.type === "error") {
      console.warn("server error", message);
    }
    return;
  }
  recordMessage(mcu, message);
  if (message.type === "error" && presenter.owns(message.id)) {
    presenter.onError(message); // refused a request of the presenter's own
    return;
  }
  const { state, effects } = reduce(room, message);
  room = state;
  for (const effect of effects) {
    apply(effect);
  }
}

/** Carries out one effect of the reducer (room-state.js lists them). */
function apply(effect) {
  switch (effect.type) {
    case "render":
      render();
      break;
    case "controls":
      own.showControls();
      break;
    case "notice":
      notice(effect.text);
      break;
    case "answer":
      session.answerSubscribe(effect.offer).catch((error) => {
        console.error("subscribe offer failed", error);
        notice(t("room.receive_failed", { reason: error.message }));
      });
      break;
    case "drop_tile":
      views.grid.remove(effect.participantId);
      break;
    case "content_ended":
      presenter.onOwnContentUnpublished();
      break;
    case "local_mute":
      own.follow(effect.source, effect.muted);
      break;
    case "fail":
      mcu.lastError = effect.error;
      break;
    case "end":
      endSession(effect.state, effect.text, effect.error);
      break;
    case "forward":
      forwardTo[effect.to](effect.message);
      break;
    default:
      console.warn("unknown effect", effect);
      break;
  }
}

// ---------------------------------------------------------------- controls

function endRoom() {
  if (confirm(t("room.end_confirm"))) {
    session.send({ type: "chair", action: "end" });
  }
}

function leave() {
  if (!isJoined()) {
    return;
  }
  session.send({ type: "leave" });
  endSession("left", t("left.you_left"), null);
}

/** Tears the session down and shows the end screen. */
/** The session is gone with the node that held it (docs/cluster.md): join afresh, in place. */
async function rejoin() {
  if (isJoined()) {
    leaveRoomState();
    setState("idle");
  }
  await join(); // as the join screen's button: the name, password, invite or token it holds
  return isJoined();
}

function endSession(state, text, error) {
  if (!isJoined()) {
    return;
  }
  setState(state);
  reconnector.stop();
  mcu.lastError = error;
  leaveRoomState();
  showEnded(state, text);
}

function leaveRoomState() {
  for (const share of [presenter.active, presenter.pending]) {
    share?.track?.stop();
  }
  presenter.reset({});
  lecture.reset({}, {});
  views.close();
  session.close();
  room = leftRoom(room);
  own.stop();
}

async function stats() {
  return {
    state: mcu.state,
    ...(await session.stats(lecture.receivers())),
    whepConnection: lecture.whep?.pc.connectionState ?? null,
  };
}

// ---------------------------------------------------------------- start

/**
 * What an access token says about its holder (`name`, `role`), read without checking it: only
 * to fill in the form and pick the page; the server verifies the token when it is used.
 */
function tokenClaims(jwt) {
  try {
    const payload = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(payload + "=".repeat((4 - (payload.length % 4)) % 4)), (c) =>
      c.charCodeAt(0),
    );
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return {
      name: typeof claims.name === "string" ? claims.name : null,
      role: typeof claims.role === "string" ? claims.role : null,
    };
  } catch {
    return { name: null, role: null };
  }
}

async function main() {
  translate();
  languageSwitch($("lang-switch"));
  // What the code drew from the room state is drawn again in the new language.
  onLanguageChange(() => {
    if (isJoined()) {
      own.showControls();
      render();
    }
  });
  setState("idle");
  showScreen("join-screen");
  showRoomName(roomId, null);
  if (invite || token) {
    hidePassword();
  }
  const claims = tokenClaims(token);
  let savedName = "";
  try {
    savedName = localStorage.getItem("mcu.name") ?? "";
  } catch {
    savedName = "";
  }
  // On a slow link people type before the scripts arrive: keep what they typed.
  if (!$("name").value) {
    $("name").value = claims.name ?? params.get("name") ?? savedName;
  }

  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    join();
  });
  $("mic-button").addEventListener("click", () => own.toggle("microphone"));
  $("cam-button").addEventListener("click", () => own.toggle("camera"));
  $("leave-button").addEventListener("click", leave);
  $("end-button").addEventListener("click", endRoom);
  $("rejoin-button").addEventListener("click", () => location.reload());
  $("enable-sound").addEventListener("click", () => views.playAudio());
  $("share-error-close").addEventListener("click", hideAlert);
  const onPick = () =>
    own.preview({ audioId: $("mic-select").value, videoId: $("cam-select").value });
  $("mic-select").addEventListener("change", onPick);
  $("cam-select").addEventListener("change", onPick);
  window.addEventListener("pagehide", () => {
    if (isJoined()) {
      session.send({ type: "leave" });
    }
    lecture.stop({ keepalive: true });
  });

  if (!roomId) {
    refuseJoin({ code: "no_room", message: "no room in the URL" }, t("join.no_room"));
    return;
  }
  const about = await lookUpRoom(roomId, invite);
  if (about.refused !== null) {
    // Said before anyone types: this link cannot get them in.
    const { code, text } = about.refused;
    refuseJoin({ code, message: code }, text ?? errorText(code));
    return;
  }
  showRoomName(roomId, about.room);
  const unusable = await prepareE2ee(about.room); // no key, or a browser that cannot encrypt
  if (unusable !== null) return refuseJoin({ code: unusable.code, message: unusable.code }, unusable.text);
  // The server's word when it could give it; otherwise the token's own (unverified) hint.
  const role = invite ? (about.role ?? (await inviteRole(invite))) : (claims.role ?? null);
  showInvite(about.role, about.expiresAt);
  joinMedia = params.has("view") || role === "viewer" ? "none" : "connection";
  if (joinMedia === "none") {
    // The audience watches: no camera or microphone prompt unless the chair invites them to speak.
    showWatchOnly();
  } else {
    await own.preview();
    await own.fillPickers();
  }
  showJoinButton("join.join", true);
  // "Click to join" links carry everything needed: join at once.
  if ((invite || token) && params.get("name")) {
    join();
  }
}

main();
