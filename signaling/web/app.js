// The consultation room page: join screen, room view and the session with the server
// (docs/protocol.md). `window.mcu` exposes the state for tests and diagnostics.

import { ContentView, contentModel } from "./content.js";
import { inviteRole, Lecture } from "./lecture.js";
import {
  blockJoinFor,
  fillDevicePickers,
  lookUpRoom,
  openPreview,
  showInvite,
  showJoinError,
  showRoomName,
} from "./join-screen.js";
import { PublishConnection, SubscribeConnection } from "./media.js";
import { canvasTestPattern, fileFromBase64, Presenter, UploadError } from "./present.js";
import { PresentControls } from "./present-controls.js";
import { RecordingControl } from "./recording.js";
import { ERROR_TEXT, Signaling, signalingUrl } from "./signaling.js";
import { collectStats } from "./stats.js";
import { Grid } from "./tiles.js";
import { ViewControl } from "./view.js";

const $ = (id) => document.getElementById(id);

const params = new URLSearchParams(location.search);
const invite = params.get("invite");
const roomId = roomFromPath(location.pathname) ?? params.get("room");
const videoCodec = (params.get("codec") || "").toLowerCase() === "h264" ? "h264" : "vp8";
// "connection", or "none" on an audience link (`?view`, or a viewer invite, to a lecture or a
// meeting): the stage then comes over WHEP and the page asks for no camera or microphone unless
// invited to speak.
let joinMedia = "connection";

/** Test and diagnostics handle: session state, the latest error, and a getStats() summary. */
const mcu = {
  /** "idle" | "joining" | "joined" | "left" | "error" */
  state: "idle",
  /** `{code, message, retryAfter?}` of the latest failure, or null. */
  lastError: null,
  participantId: null,
  role: null,
  get participants() {
    return [...session.participants.values()].map((p) => ({ id: p.id, name: p.name }));
  },
  /** Who holds the content floor: `{holder, mode, queuePosition}` (queuePosition: ours, if waiting). */
  get floor() {
    return { ...presenter.floor, queuePosition: presenter.queuePosition };
  },
  /** The slides being shown: `{presenter, documentId, page, pages, trackId}`. */
  get slides() {
    return { ...presenter.slides };
  },
  /** What we present: "stream", "slides", "waiting" (for the floor) or null. */
  get presenting() {
    if (presenter.active !== null) {
      return presenter.active.kind;
    }
    return presenter.pending !== null || presenter.showing ? "waiting" : null;
  },
  /** The remote tracks the subscribe connection carries now. */
  get received() {
    return [...session.received.values()].map((r) => ({
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
      shown: contentView.shown,
      caption: document.querySelector("#content .content-caption").textContent,
      counter: document.querySelector("#content .slide-counter").textContent,
    };
  },
  /** What this participant receives: `{mode: "forwarded" | "mixed", layout, resolution}`. */
  get view() {
    return view.state;
  },
  /** Whether the room is being recorded: `{active, recordingId, startedAt, error}`. */
  get recording() {
    return recording.state;
  },
  /**
   * Lecture and watching state: `{kind, viewers, watchers (names; meetings only), hands, stage,
   * handRaised, whep}` (whep: the WHEP connection state).
   */
  get lecture() {
    return lecture.state;
  },
  /** The latest server messages (SDP left out), oldest first, for tests and diagnostics. */
  messages: [],
  stats: () => stats(),
  leave: () => leave(),
  shareScreen: () => presenter.shareScreen(),
  stopSharing: () => presenter.stop(),
  nextPage: () => presenter.nextPage(),
  previousPage: () => presenter.previousPage(),
  /**
   * Test hook: shares a moving 1280x720 test pattern through the same path as "Share screen"
   * (headless browsers have no screen to pick). Resolves once the content is published.
   */
  shareCanvasForTest: () => presenter.shareTrack(canvasTestPattern(), "a test pattern"),
  /** Test hook: shares a file given as base64 through the same path as "Share file". */
  shareFileForTest: (base64, name) => presenter.shareFile(fileFromBase64(base64, name)),
};
window.mcu = mcu;

const session = {
  signaling: null,
  roomId: roomId,
  sessionToken: null,
  iceServers: [],
  participants: new Map(), // id -> {id, name, role, tracks: Map(trackId -> track)}
  received: new Map(), // track id -> {trackId, participantId, kind, source, mid, track}
  ownTracks: new Map(), // source -> track id, from publish_answer
  publish: null,
  subscribe: null,
  activeSpeaker: null,
};

const local = { stream: new MediaStream(), mic: null, cam: null, micMuted: false, camMuted: false };

const grid = new Grid($("grid"), $("tile-template"), {
  onChairMute: (participantId) =>
    session.signaling?.send({
      type: "chair",
      action: "mute",
      participant_id: participantId,
      source: "microphone",
    }),
  onChairRemove: (participantId) => {
    const name = session.participants.get(participantId)?.name ?? "this participant";
    if (confirm(`Remove ${name} from the room?`)) {
      session.signaling?.send({ type: "chair", action: "remove", participant_id: participantId });
    }
  },
  onChairDemote: (participantId) => lecture.demote(participantId),
});
grid.onAudioBlocked = () => {
  $("sound-banner").hidden = false;
};

const view = new ViewControl($("stage"), {
  send: (message) => session.signaling?.send(message),
  notify: (text) => notice(text),
  isChair: () => mcu.role === "chair",
  onAudioBlocked: () => {
    $("sound-banner").hidden = false;
  },
});

const recording = new RecordingControl($("recording-indicator"), $("record-button"), {
  send: (message) => session.signaling?.send(message),
  notify: (text) => notice(text),
  alert: (text) => showAlert(text),
  isChair: () => mcu.role === "chair",
});

const contentView = new ContentView($("content"), $("stage"), {
  onPrevious: () => presenter.previousPage(),
  onNext: () => presenter.nextPage(),
});

const presenter = new Presenter({
  send: (message) => session.signaling?.send(message),
  me: () => mcu.participantId,
  nameOf: (participantId) => nameOf(participantId),
  publishConnection: (create = true) => publishConnection(create),
  renegotiate: () => renegotiatePublish(),
  upload: (file) => uploadDocument(file),
  onChange: () => {
    if (mcu.state === "joined") {
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

const presentControls = new PresentControls(presenter, {
  me: () => mcu.participantId,
  role: () => mcu.role,
  joined: () => mcu.state === "joined",
  nameOf: (participantId) => nameOf(participantId),
  cameraDeviceId: () => local.cam?.getSettings().deviceId ?? null,
  showAlert: (text) => showAlert(text),
  hideAlert: () => hideAlert(),
  failed: (error) => {
    mcu.lastError = { code: "present_failed", message: error?.message ?? String(error) };
  },
});

const lecture = new Lecture({
  send: (message) => session.signaling?.send(message),
  notify: (text) => notice(text),
  me: () => mcu.participantId,
  role: () => mcu.role,
  setRole: (role) => {
    mcu.role = role;
  },
  ensureParticipant: (id, name) => {
    if (!session.participants.has(id)) {
      addParticipant({ id, name, role: "participant" });
    }
  },
  setReceived: (list) => {
    session.received = new Map(list.map((r) => [r.trackId, r]));
    render();
  },
  startSpeaking: () => startSpeaking(),
  stopSpeaking: () => stopSpeaking(),
  render: () => mcu.state === "joined" && render(),
});

function roomFromPath(pathname) {
  const match = /^\/r\/([^/]+)\/?$/.exec(pathname);
  return match ? decodeURIComponent(match[1]) : null;
}

function setState(state) {
  mcu.state = state;
  document.body.dataset.state = state;
}

function showScreen(id) {
  for (const screen of ["join-screen", "room-screen", "left-screen"]) {
    $(screen).hidden = screen !== id;
  }
}

let noticeTimer = null;
function notice(text) {
  $("notice").textContent = text;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    $("notice").textContent = "";
  }, 6000);
}

/** A message that stays until dismissed: refused uploads, a presentation taken over. */
function showAlert(text) {
  $("share-error-text").textContent = text;
  $("share-error").hidden = false;
}

function hideAlert() {
  $("share-error").hidden = true;
  $("share-error-text").textContent = "";
}

function nameOf(participantId) {
  if (participantId === mcu.participantId) {
    return "You";
  }
  return session.participants.get(participantId)?.name ?? "Someone";
}

// ---------------------------------------------------------------- join screen

async function startPreview(choice = {}) {
  Object.assign(local, await openPreview(local.stream, choice));
}

async function join() {
  if (mcu.state === "joining" || mcu.state === "joined") {
    return;
  }
  const name = $("name").value.trim();
  if (!roomId) {
    showJoinError("This link names no room.");
    return;
  }
  if (!name) {
    showJoinError("Please enter your name.");
    $("name").focus();
    return;
  }
  if (!invite && !$("password").value) {
    showJoinError("Please enter the room password.");
    $("password").focus();
    return;
  }
  setState("joining");
  showJoinError("");
  $("join-button").disabled = true;
  $("join-button").textContent = "Joining…";
  try {
    if (!session.signaling?.isOpen) {
      const signaling = new Signaling(signalingUrl(location));
      signaling.onMessage = handleMessage;
      signaling.onClose = () => handleClose(signaling);
      session.signaling = signaling;
      await signaling.connect();
    }
    const request = { type: "join", room: roomId, name: name.slice(0, 64) };
    if (joinMedia === "none") {
      request.media = "none";
    }
    if (invite) {
      request.invite = invite;
    } else {
      request.password = $("password").value;
    }
    const joined = await session.signaling.request(request);
    enterRoom(joined);
  } catch (error) {
    joinFailed(error);
  }
}

function joinFailed(error) {
  const code = error.code ?? "internal";
  mcu.lastError = { code, message: error.message };
  setState("error");
  $("join-button").textContent = "Join";
  $("join-button").disabled = false;
  if (code === "rate_limited") {
    mcu.lastError.retryAfter = error.retryAfter ?? null;
    blockJoinFor(error.retryAfter, ERROR_TEXT.rate_limited);
  } else {
    showJoinError(ERROR_TEXT[code] ?? error.message ?? "Could not join the room.");
  }
  if (code === "wrong_password") {
    $("password").select();
  }
}

// ---------------------------------------------------------------- in the room

function enterRoom(joined) {
  const watching = joined.room?.kind === "lecture" || joined.participant.role === "viewer";
  if (joinMedia === "none" && !watching) {
    rejoinWithConnection(); // a meeting's participant on an audience link: join it properly
    return;
  }
  // Synchronous up to publish: messages after `joined` (offers, joins) find the session ready.
  mcu.participantId = joined.participant.id;
  mcu.role = joined.participant.role;
  mcu.lastError = null;
  session.iceServers = joined.ice_servers ?? [];
  session.roomId = joined.room?.id ?? roomId;
  session.sessionToken = joined.session_token ?? null;
  presenter.reset(joined);
  view.reset(joined);
  recording.reset(joined);
  session.participants = new Map();
  for (const participant of joined.participants) {
    addParticipant(participant);
  }
  setState("joined");
  lecture.reset(joined, {
    watch: joinMedia === "none",
    token: session.sessionToken,
    iceServers: session.iceServers,
    roomId: session.roomId,
  });
  grid.setLecture(lecture.isLecture);
  try {
    localStorage.setItem("mcu.name", joined.participant.name);
  } catch {
    // Storage may be disabled; remembering the name is only a convenience.
  }
  const isChair = joined.participant.role === "chair";
  grid.setChair(isChair);
  $("end-button").hidden = !isChair;
  $("room-title").textContent = joined.room?.title || joined.room?.id || roomId;
  document.title = `${$("room-title").textContent} – consultation room`;
  $("self-video").srcObject = local.cam ? local.stream : null;
  $("self-name").textContent = isChair ? `You (chair)` : "You";
  showScreen("room-screen");
  updateControls();
  render();
  if (mcu.role !== "viewer") {
    startSpeaking(joinMedia === "none");
  }
}

function rejoinWithConnection() {
  session.signaling.send({ type: "leave" });
  session.signaling.onClose = () => {};
  session.signaling.close();
  session.signaling = null;
  joinMedia = "connection";
  setState("idle");
  $("preview-box").hidden = false;
  $("device-fields").hidden = false;
  startPreview()
    .then(() => fillDevicePickers(local.mic, local.cam))
    .then(join);
}

/** Sends camera and microphone; `open` first asks for them (a page that joined to watch). */
function startSpeaking(open = true) {
  (open ? startPreview() : Promise.resolve())
    .then(() => {
      $("self-video").srcObject = local.cam ? local.stream : null;
      updateControls();
      return publishLocal();
    })
    .catch((error) => {
      console.error("publish failed", error);
      mcu.lastError = { code: error.code ?? "publish_failed", message: error.message };
      notice(`Your camera and microphone could not be sent: ${error.message}`);
    });
}

/** Back in a lecture's audience: the server ended our tracks; stop sending, free the devices. */
function stopSpeaking() {
  session.publish?.close();
  session.publish = null;
  session.ownTracks.clear();
  for (const track of local.stream.getTracks()) {
    track.stop();
  }
  Object.assign(local, { stream: new MediaStream(), mic: null, cam: null });
  $("self-video").srcObject = null;
  updateControls();
}

function addParticipant(participant) {
  session.participants.set(participant.id, {
    id: participant.id,
    name: participant.name,
    role: participant.role,
    tracks: new Map((participant.tracks ?? []).map((t) => [t.id, { ...t }])),
  });
}

async function publishLocal() {
  const tracks = [];
  if (local.mic) {
    tracks.push(["microphone", local.mic]);
  }
  if (local.cam) {
    tracks.push(["camera", local.cam]);
  }
  if (tracks.length === 0) {
    notice("You joined without camera or microphone.");
    return;
  }
  publishConnection().addTracks(local.stream, tracks);
  await renegotiatePublish();
  // Mutes chosen while the publish was under way are announced now that the tracks exist.
  if (local.micMuted) {
    announceMute("microphone", true);
  }
  if (local.camMuted) {
    announceMute("camera", true);
  }
}

/**
 * The publish connection, made on first use: someone who joined without camera and microphone
 * has none until they present.
 */
function publishConnection(create = true) {
  if (session.publish === null && create && mcu.state === "joined") {
    const publish = new PublishConnection(session.iceServers, lecture.videoCodec(videoCodec));
    publish.pc.addEventListener("connectionstatechange", () => {
      if (publish.pc.connectionState === "failed" && mcu.state === "joined") {
        notice("Sending your camera and microphone failed (network).");
      }
    });
    session.publish = publish;
  }
  return session.publish;
}

let publishChain = Promise.resolve();

/**
 * Sends a `publish` with the complete list of what the publish connection sends (the protocol
 * wants the full list each time). One negotiation at a time, in the order asked.
 */
function renegotiatePublish() {
  const run = () => negotiatePublish();
  const result = publishChain.then(run, run);
  publishChain = result.catch(() => {});
  return result;
}

async function negotiatePublish() {
  const publish = session.publish;
  if (publish === null || mcu.state !== "joined") {
    return;
  }
  const offer = await publish.offer();
  if (mcu.state !== "joined" || session.publish !== publish) {
    return;
  }
  let answer;
  try {
    answer = await session.signaling.request({
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
  session.ownTracks = ownTracks;
}

function uploadDocument(file) {
  if (!session.sessionToken) {
    throw new UploadError(0, "This server does not accept shared files.");
  }
  return fetch(`/rooms/${encodeURIComponent(session.roomId)}/documents`, {
    method: "POST",
    headers: { Authorization: `Bearer ${session.sessionToken}` },
    body: file,
  });
}

const MESSAGE_LOG_LENGTH = 200;

function recordMessage(message) {
  const entry = { ...message };
  if ("sdp" in entry) {
    entry.sdp = `(${entry.sdp.length} characters)`;
  }
  mcu.messages.push(entry);
  if (mcu.messages.length > MESSAGE_LOG_LENGTH) {
    mcu.messages.splice(0, mcu.messages.length - MESSAGE_LOG_LENGTH);
  }
}

function ensureSubscribe() {
  if (session.subscribe === null) {
    session.subscribe = new SubscribeConnection(session.iceServers, (carried) => {
      session.received = new Map(carried.map((c) => [c.trackId, c]));
      render();
    });
  }
  return session.subscribe;
}

function handleMessage(message) {
  if (mcu.state !== "joined") {
    if (message.type === "error") {
      console.warn("server error", message);
    }
    return;
  }
  recordMessage(message);
  switch (message.type) {
    case "subscribe_offer": {
      const subscribe = ensureSubscribe();
      subscribe
        .answer(message)
        .then((sdp) => session.signaling?.send({ type: "subscribe_answer", sdp }))
        .catch((error) => {
          console.error("subscribe offer failed", error);
          notice(`Receiving media failed: ${error.message}`);
        });
      break;
    }
    case "participant_joined":
      addParticipant(message.participant);
      notice(`${message.participant.name} joined.`);
      render();
      break;
    case "participant_left": {
      const gone = session.participants.get(message.participant_id);
      session.participants.delete(message.participant_id);
      for (const [trackId, received] of session.received) {
        if (received.participantId === message.participant_id) {
          session.received.delete(trackId);
        }
      }
      grid.remove(message.participant_id);
      if (gone) {
        const demoted = message.reason === "demoted";
        notice(demoted ? `${gone.name} is back in the audience.` : `${gone.name} left.`);
      }
      render();
      break;
    }
    case "track_published": {
      const owner = session.participants.get(message.track.participant_id);
      owner?.tracks.set(message.track.id, { ...message.track });
      render();
      break;
    }
    case "track_unpublished": {
      session.participants.get(message.participant_id)?.tracks.delete(message.track_id);
      session.received.delete(message.track_id);
      if (
        message.participant_id === mcu.participantId &&
        message.track_id === session.ownTracks.get("content")
      ) {
        // The server ended our content (a chair took over): stop sending it.
        session.ownTracks.delete("content");
        presenter.onOwnContentUnpublished();
      }
      render();
      break;
    }
    case "room_mode":
      view.onRoomMode(message);
      break;
    case "recording":
      recording.onRecording(message);
      break;
    case "floor":
      presenter.onFloor(message);
      break;
    case "floor_queued":
      presenter.onQueued(message);
      break;
    case "slides":
      presenter.onSlides(message);
      break;
    case "track_muted":
      onTrackMuted(message);
      break;
    case "active_speaker":
      session.activeSpeaker = message.participant_id ?? null;
      render();
      break;
    case "removed":
      endSession("left", "The chair removed you from the room.", {
        code: "removed",
        message: message.reason ?? "removed",
      });
      break;
    case "room_ended":
      endSession("left", "The room has ended. Thank you.", {
        code: "room_ended",
        message: message.reason ?? "ended",
      });
      break;
    case "error":
      if (presenter.owns(message.id)) {
        presenter.onError(message);
        break;
      }
      mcu.lastError = { code: message.code, message: message.message };
      if (message.code === "not_joined") {
        endSession("error", "The server ended your session.", mcu.lastError);
      } else {
        notice(ERROR_TEXT[message.code] ?? message.message ?? message.code);
      }
      break;
    default:
      lecture.handle(message); // lecture events; pong and replies matched by id are ignored
      break;
  }
}

function onTrackMuted(message) {
  if (message.participant_id === mcu.participantId) {
    // The chair muted us: follow locally so the button tells the truth; we may unmute again.
    if (message.source === "microphone" && message.muted !== local.micMuted) {
      local.micMuted = message.muted;
      if (local.mic) {
        local.mic.enabled = !message.muted;
      }
      if (message.by === "chair" && message.muted) {
        notice("The chair muted your microphone.");
      }
    } else if (message.source === "camera" && message.muted !== local.camMuted) {
      local.camMuted = message.muted;
      if (local.cam) {
        local.cam.enabled = !message.muted;
      }
    }
    updateControls();
    return;
  }
  const track = session.participants.get(message.participant_id)?.tracks.get(message.track_id);
  if (track) {
    track.muted = message.muted;
  }
  render();
}

function handleClose(signaling) {
  if (signaling !== session.signaling) {
    return;
  }
  if (mcu.state === "joined") {
    endSession("error", ERROR_TEXT.disconnected, { code: "disconnected", message: "socket closed" });
  }
}

/** The view model of one remote participant for the grid. */
function viewOf(participant) {
  const published = (source) => [...participant.tracks.values()].find((t) => t.source === source);
  const media = (source) => {
    for (const received of session.received.values()) {
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
    speaking: session.activeSpeaker === participant.id,
    hasMic: mic !== undefined || micTrack !== null,
    hasCam: cam !== undefined || camTrack !== null,
    micMuted: mic?.muted ?? false,
    camMuted: cam?.muted ?? false,
    micTrack,
    camTrack,
  };
}

function render() {
  for (const participant of session.participants.values()) {
    grid.update(viewOf(participant));
  }
  $("waiting").hidden = session.participants.size > 0;
  $("self-view").classList.toggle("speaking", session.activeSpeaker === mcu.participantId);
  const content = contentModel(presenter, session.received.values(), nameOf);
  contentView.render(content);
  presentControls.render(content);
  view.render(session.received.values());
}

// ---------------------------------------------------------------- controls

function announceMute(source, muted) {
  if (session.ownTracks.has(source)) {
    session.signaling?.send({ type: "mute", source, muted });
  }
}

function updateControls() {
  const mic = $("mic-button");
  mic.disabled = local.mic === null;
  mic.textContent =
    local.mic === null
      ? "No microphone"
      : local.micMuted
        ? "Unmute microphone"
        : "Mute microphone";
  mic.setAttribute("aria-pressed", String(local.micMuted));
  const cam = $("cam-button");
  cam.disabled = local.cam === null;
  cam.textContent =
    local.cam === null ? "No camera" : local.camMuted ? "Turn camera on" : "Turn camera off";
  cam.setAttribute("aria-pressed", String(local.camMuted));
  $("self-mic-badge").hidden = !(local.micMuted || local.mic === null);
  $("self-view").classList.toggle("no-video", local.cam === null || local.camMuted);
}

function toggleMic() {
  if (local.mic === null) {
    return;
  }
  local.micMuted = !local.micMuted;
  local.mic.enabled = !local.micMuted;
  announceMute("microphone", local.micMuted);
  updateControls();
}

function toggleCamera() {
  if (local.cam === null) {
    return;
  }
  local.camMuted = !local.camMuted;
  local.cam.enabled = !local.camMuted;
  announceMute("camera", local.camMuted);
  updateControls();
}

function endRoom() {
  if (confirm("End the consultation for everyone?")) {
    session.signaling?.send({ type: "chair", action: "end" });
  }
}

function leave() {
  if (mcu.state !== "joined") {
    return;
  }
  session.signaling?.send({ type: "leave" });
  endSession("left", "You left the room.", null);
}

/** Tears the session down and shows the end screen. */
function endSession(state, message, error) {
  if (mcu.state !== "joined") {
    return;
  }
  setState(state);
  mcu.lastError = error;
  for (const share of [presenter.active, presenter.pending]) {
    share?.track?.stop();
  }
  presenter.reset({});
  contentView.render(null);
  view.render([]);
  view.setMenuOpen(false);
  recording.reset({});
  lecture.reset({}, {});
  hideAlert();
  session.publish?.close();
  session.subscribe?.close();
  session.publish = null;
  session.subscribe = null;
  session.received.clear();
  session.ownTracks.clear();
  if (session.signaling) {
    session.signaling.onClose = () => {};
    session.signaling.close();
    session.signaling = null;
  }
  for (const track of local.stream.getTracks()) {
    track.stop();
  }
  grid.clear();
  $("left-title").textContent = state === "error" ? "Disconnected" : "You are out of the room";
  $("left-message").textContent = message;
  showScreen("left-screen");
  $("rejoin-button").focus();
}

async function stats() {
  const subscribe = session.subscribe;
  const receivers = lecture.receivers();
  if (subscribe !== null) {
    receivers.push({ pc: subscribe.pc, describeMid: (mid) => subscribe.describeMid(mid) });
  }
  return {
    state: mcu.state,
    ...(await collectStats(receivers, session.publish)),
    publishConnection: session.publish?.pc.connectionState ?? null,
    subscribeConnection: subscribe?.pc.connectionState ?? null,
    whepConnection: lecture.whep?.pc.connectionState ?? null,
  };
}

// ---------------------------------------------------------------- start

async function main() {
  setState("idle");
  showScreen("join-screen");
  showRoomName(roomId, null);
  if (invite) {
    $("password-row").hidden = true;
    $("password").required = false;
  }
  let savedName = "";
  try {
    savedName = localStorage.getItem("mcu.name") ?? "";
  } catch {
    savedName = "";
  }
  // On a slow link people type before the scripts arrive: keep what they typed.
  if (!$("name").value) {
    $("name").value = params.get("name") ?? savedName;
  }

  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    join();
  });
  $("mic-button").addEventListener("click", toggleMic);
  $("cam-button").addEventListener("click", toggleCamera);
  $("leave-button").addEventListener("click", leave);
  $("end-button").addEventListener("click", endRoom);
  $("rejoin-button").addEventListener("click", () => location.reload());
  $("enable-sound").addEventListener("click", () => {
    grid.playAudio();
    view.playAudio();
    $("sound-banner").hidden = true;
  });
  $("share-error-close").addEventListener("click", hideAlert);
  const onPick = () =>
    startPreview({ audioId: $("mic-select").value, videoId: $("cam-select").value });
  $("mic-select").addEventListener("change", onPick);
  $("cam-select").addEventListener("change", onPick);
  window.addEventListener("pagehide", () => {
    if (mcu.state === "joined") {
      session.signaling?.send({ type: "leave" });
    }
    lecture.stop({ keepalive: true });
  });

  if (!roomId) {
    refuseJoin({ code: "no_room", message: "no room in the URL" }, "This link names no room.");
    return;
  }
  const about = await lookUpRoom(roomId, invite);
  if (about.refused !== null) {
    // Said before anyone types: this link cannot get them in.
    const { code, text } = about.refused;
    refuseJoin({ code, message: code }, text ?? ERROR_TEXT[code]);
    return;
  }
  showRoomName(roomId, about.room);
  // The server's word when it could give it; otherwise the token's own (unverified) hint.
  const role = invite ? (about.role ?? (await inviteRole(invite))) : null;
  showInvite(about.role, about.expiresAt);
  joinMedia = params.has("view") || role === "viewer" ? "none" : "connection";
  if (joinMedia === "none") {
    // The audience watches: no camera or microphone prompt unless the chair invites them to speak.
    $("preview-box").hidden = true;
    $("device-fields").hidden = true;
    $("join-screen").classList.add("watch-only");
    $("password-row").querySelector("label").textContent = "Password";
    $("join-verb").textContent = "Watch";
  } else {
    await startPreview();
    await fillDevicePickers(local.mic, local.cam);
  }
  $("join-button").textContent = "Join";
  $("join-button").disabled = false;
  // "Click to join" links carry everything needed: join at once.
  if (invite && params.get("name")) {
    join();
  }
}

/** The join screen stays, saying why this link cannot get anyone in; the button stays off. */
function refuseJoin(error, text) {
  setState("error");
  mcu.lastError = error;
  showJoinError(text);
  $("join-button").textContent = "Join";
  $("join-button").disabled = true;
}

main();
