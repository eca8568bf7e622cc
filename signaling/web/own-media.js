// Our own camera and microphone: the preview on the join screen, sending them once joined (and
// again when a lecture's chair invites us to speak), the mute buttons, and following a mute the
// chair put on us. Whether each is muted is room state (room-state.js), read and written
// through `deps`, so the reducer can follow the chair's mutes.

import { t } from "./i18n.js";
import { fillDevicePickers, openPreview } from "./join-screen.js";
import { notice, showOwnControls, showSelfVideo } from "./room-view.js";

const SOURCES = ["microphone", "camera"];

export class OwnMedia {
  /**
   * `deps`: `{session (room-session.js), muted() -> {microphone, camera}, setMuted(source,
   * muted), announced(source) (whether the server has our track of that source),
   * stoppedSending(), failed(error)}`.
   */
  constructor(deps) {
    this.deps = deps;
    /** The preview's stream, and its tracks (null when missing). */
    this.stream = new MediaStream();
    this.mic = null;
    this.cam = null;
  }

  /** The track of "microphone" or "camera", or null. */
  trackOf(source) {
    return source === "microphone" ? this.mic : this.cam;
  }

  get cameraDeviceId() {
    return this.cam?.getSettings().deviceId ?? null;
  }

  /** Opens the chosen devices (`{audioId, videoId}`) into the preview, closing the last ones. */
  async preview(choice = {}) {
    Object.assign(this, await openPreview(this.stream, choice));
  }

  /** Lists the devices in the join screen's pickers. */
  fillPickers() {
    return fillDevicePickers(this.mic, this.cam);
  }

  /** Our own tile and the mute buttons. */
  show() {
    showSelfVideo(this);
    this.showControls();
  }

  /** The mute buttons only (setting the self view again would restart its video). */
  showControls() {
    showOwnControls(this, this.deps.muted());
  }

  /** Sends camera and microphone; `open` first asks for them (a page that joined to watch). */
  startSpeaking(open = true) {
    (open ? this.preview() : Promise.resolve())
      .then(() => {
        this.show();
        return this._publish();
      })
      .catch((error) => {
        console.error("publish failed", error);
        this.deps.failed({ code: error.code ?? "publish_failed", message: error.message });
        notice(t("own.not_sent", { reason: error.message }));
      });
  }

  /** Back in a lecture's audience: the server ended our tracks; stop sending, free the devices. */
  stopSpeaking() {
    this.deps.session.closePublish();
    this.deps.stoppedSending();
    this.stop();
    Object.assign(this, { stream: new MediaStream(), mic: null, cam: null });
    this.show();
  }

  /** Frees the devices. */
  stop() {
    for (const track of this.stream.getTracks()) {
      track.stop();
    }
  }

  async _publish() {
    const tracks = SOURCES.map((source) => [source, this.trackOf(source)]).filter(([, t]) => t);
    if (tracks.length === 0) {
      notice(t("own.no_devices"));
      return;
    }
    const { session } = this.deps;
    session.publishConnection().addTracks(this.stream, tracks);
    await session.renegotiatePublish();
    // Mutes chosen while the publish was under way are announced now that the tracks exist.
    for (const source of SOURCES) {
      if (this.deps.muted()[source]) {
        this._announce(source, true);
      }
    }
  }

  /** The sources we have a track of ("microphone", "camera"). */
  sources() {
    return SOURCES.filter((source) => this.trackOf(source) !== null);
  }

  /**
   * After a resume: puts our tracks of `sources` on the new publish connection `publish` (the
   * caller negotiates). Mutes carry over: a muted track stays disabled.
   */
  sendOn(publish, sources) {
    const tracks = sources.map((source) => [source, this.trackOf(source)]).filter(([, t]) => t);
    if (tracks.length > 0) {
      publish.addTracks(this.stream, tracks);
    }
  }

  /** The person pressed the microphone or camera button. */
  toggle(source) {
    const track = this.trackOf(source);
    if (track === null) {
      return;
    }
    const muted = !this.deps.muted()[source];
    this.deps.setMuted(source, muted);
    track.enabled = !muted;
    this._announce(source, muted);
    this.showControls();
  }

  /** Follows a mute the room state took on (the chair's): the track sends silence or black. */
  follow(source, muted) {
    const track = this.trackOf(source);
    if (track) {
      track.enabled = !muted;
    }
  }

  _announce(source, muted) {
    if (this.deps.announced(source)) {
      this.deps.session.send({ type: "mute", source, muted });
    }
  }
}
