// The room page's screens and what is drawn from the room state (room-state.js): the grid of
// participants, the content area and the controls that depend on it, the view and recording
// controls, our own self view and mute buttons, passing notices and alerts, and the end screen.
// It reads the room state and never changes it; buttons call back through `deps`.

import { ContentView, contentModel } from "./content.js";
import { setText, t } from "./i18n.js";
import { PresentControls } from "./present-controls.js";
import { RecordingControl } from "./recording.js";
import { linkText, participantView } from "./room-state.js";
import { Grid } from "./tiles.js";
import { ViewControl } from "./view.js";

const $ = (id) => document.getElementById(id);

/** `body[data-state]` follows the session: "idle", "joining", "joined", "left" or "error". */
export function showPageState(state) {
  document.body.dataset.state = state;
}

/** Shows one of "join-screen", "room-screen" and "left-screen". */
export function showScreen(id) {
  for (const screen of ["join-screen", "room-screen", "left-screen"]) {
    $(screen).hidden = screen !== id;
  }
}

let noticeTimer = null;

/** A passing message (six seconds). */
export function notice(text) {
  $("notice").textContent = text;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    $("notice").textContent = "";
  }, 6000);
}

/** A message that stays until dismissed: refused uploads, a presentation taken over. */
export function showAlert(text) {
  $("share-error-text").textContent = text;
  $("share-error").hidden = false;
}

export function hideAlert() {
  $("share-error").hidden = true;
  $("share-error-text").textContent = "";
}

/** The banner that asks for a click when the browser blocked sound. */
export function showSoundBanner(shown) {
  $("sound-banner").hidden = !shown;
}

/** The room screen's heading and our own tile, once joined (`chair`: we chair the room). */
export function showRoomHeading(title, chair) {
  $("end-button").hidden = !chair;
  $("room-title").textContent = title;
  setText(document.querySelector("title"), "room.title", { title });
  setText($("self-name"), chair ? "room.you_chair" : "room.you");
}

/** Our own picture: `local` is `{stream, cam}` (cam: the camera track or null). */
export function showSelfVideo(local) {
  $("self-video").srcObject = local.cam ? local.stream : null;
}

/** The microphone and camera buttons, and our own tile's badges. */
export function showOwnControls(local, muted) {
  const mic = $("mic-button");
  mic.disabled = local.mic === null;
  setText(
    mic,
    local.mic === null ? "own.no_mic" : muted.microphone ? "own.unmute_mic" : "own.mute_mic",
  );
  mic.setAttribute("aria-pressed", String(muted.microphone));
  const cam = $("cam-button");
  cam.disabled = local.cam === null;
  setText(
    cam,
    local.cam === null ? "own.no_cam" : muted.camera ? "own.camera_on" : "own.camera_off",
  );
  cam.setAttribute("aria-pressed", String(muted.camera));
  $("self-mic-badge").hidden = !(muted.microphone || local.mic === null);
  $("self-view").classList.toggle("no-video", local.cam === null || muted.camera);
}

/** The room screen's parts that draw the room state, each with its own controls. */
export class RoomView {
  /**
   * `deps`: `{presenter (present.js), send(message), me(), role(), joined(), nameOf(id),
   * participantName(id), demote(participantId), cameraDeviceId(), failed(error)}`.
   */
  constructor(deps) {
    const { presenter } = deps;
    const isChair = () => deps.role() === "chair";
    this.presenter = presenter;
    this.nameOf = (participantId) => deps.nameOf(participantId);
    this.grid = new Grid($("grid"), $("tile-template"), {
      onChairMute: (participantId) =>
        deps.send({
          type: "chair",
          action: "mute",
          participant_id: participantId,
          source: "microphone",
        }),
      onChairRemove: (participantId) => {
        const name = deps.participantName(participantId) ?? t("tile.this_participant");
        if (confirm(t("tile.remove_confirm", { name }))) {
          deps.send({ type: "chair", action: "remove", participant_id: participantId });
        }
      },
      onChairDemote: (participantId) => deps.demote(participantId),
    });
    this.grid.onAudioBlocked = () => showSoundBanner(true);
    this.view = new ViewControl($("stage"), {
      send: (message) => deps.send(message),
      notify: (text) => notice(text),
      isChair,
      onAudioBlocked: () => showSoundBanner(true),
    });
    this.recording = new RecordingControl($("recording-indicator"), $("record-button"), {
      send: (message) => deps.send(message),
      notify: (text) => notice(text),
      alert: (text) => showAlert(text),
      isChair,
    });
    this.contentView = new ContentView($("content"), $("stage"), {
      onPrevious: () => presenter.previousPage(),
      onNext: () => presenter.nextPage(),
    });
    this.presentControls = new PresentControls(presenter, {
      me: () => deps.me(),
      role: () => deps.role(),
      joined: () => deps.joined(),
      nameOf: (participantId) => deps.nameOf(participantId),
      cameraDeviceId: () => deps.cameraDeviceId(),
      showAlert: (text) => showAlert(text),
      hideAlert: () => hideAlert(),
      failed: (error) => deps.failed(error),
    });
  }

  /** A new session: the view and recording controls as `joined` says. */
  reset(joined) {
    this.view.reset(joined);
    this.recording.reset(joined);
  }

  /**
   * Draws the room: a tile per participant, the waiting note, who speaks, the content area and
   * the controls that follow it, and the single picture when it is received.
   */
  render(state) {
    for (const participant of state.participants.values()) {
      this.grid.update(participantView(state, participant));
    }
    $("waiting").hidden = state.participants.size > 0;
    const ownLink = linkText(state.links.get(state.me));
    $("link-status").textContent = ownLink;
    $("link-status").hidden = ownLink === "";
    $("self-view").classList.toggle("speaking", state.activeSpeaker === state.me);
    const content = contentModel(this.presenter, state.received.values(), this.nameOf);
    this.contentView.render(content);
    this.presentControls.render(content);
    this.view.render(state.received.values());
  }

  /** Retries every blocked sound after a click. */
  playAudio() {
    this.grid.playAudio();
    this.view.playAudio();
    showSoundBanner(false);
  }

  /** The session ended: nothing shown, menus closed, no tiles. */
  close() {
    this.contentView.render(null);
    this.view.render([]);
    this.view.setMenuOpen(false);
    this.recording.reset({});
    hideAlert();
    this.grid.clear();
  }
}

/** The end screen: why the session is over (`state`: "left" or "error"). */
export function showEnded(state, text) {
  setText($("left-title"), state === "error" ? "left.disconnected" : "left.title");
  $("left-message").textContent = text;
  showScreen("left-screen");
  $("rejoin-button").focus();
}
