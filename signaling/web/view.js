// The "View" control: individual streams (every participant's own tracks, forwarded) or a single
// picture (the server's mix: one composite video and one sound, for a site on a slow line), and the
// chair's default for the room. docs/protocol.md, "Mixed mode".

import { setText, t } from "./i18n.js";
import { attach } from "./tiles.js";

/** The single picture's qualities: what `subscription` asks for. */
export const QUALITIES = {
  high: { resolution: "1280x720", bitrate: 1_500_000 },
  medium: { resolution: "960x540", bitrate: 1_000_000 },
  low: { resolution: "640x360", bitrate: 500_000 },
};

/** The participant id of the mixed tracks in `subscribe_offer`. */
export const MIX = "mix";

export class ViewControl {
  /**
   * `stage` gets the `mixed` class while the single picture shows. `deps`: `{send(message),
   * notify(text), isChair(), onAudioBlocked()}`.
   */
  constructor(stage, deps) {
    this.stage = stage;
    this.deps = deps;
    this.$ = (id) => document.getElementById(id);
    this.video = this.$("mix").querySelector("video");
    this.audio = this.$("mix").querySelector("audio");
    this.reset({});
    this._bind();
  }

  /** A new session: the mode `joined` says, nothing chosen yet (the room's default applies). */
  reset(joined) {
    this.roomMode = joined.mode === "mixed" ? "mixed" : "forwarded";
    this.chosen = null; // "forwarded" | "mixed" once the person picks; null follows the room
    this.layout = "grid";
    this.quality = "high";
    this._refreshControls();
  }

  /** What this participant receives: "forwarded" or "mixed". */
  get mode() {
    return this.chosen ?? this.roomMode;
  }

  /** `window.mcu.view`. */
  get state() {
    return { mode: this.mode, layout: this.layout, resolution: QUALITIES[this.quality].resolution };
  }

  /** The person picked a mode. */
  choose(mode) {
    this.chosen = mode;
    this._send(mode);
    this._refreshControls();
  }

  /** The chair changed the room's default. */
  onRoomMode(message) {
    this.roomMode = message.mode === "mixed" ? "mixed" : "forwarded";
    const set = t(this.roomMode === "mixed" ? "view.chair_set_mixed" : "view.chair_set_forwarded");
    const own = this.chosen !== null && this.chosen !== this.roomMode;
    this.deps.notify(own ? `${set} ${t("view.keep_choice")}` : set);
    this._refreshControls();
  }

  /** Shows the mix when the subscribe connection carries it; the grid otherwise. */
  render(received) {
    const mix = [...received].filter((r) => r.participantId === MIX);
    const video = mix.find((r) => r.kind === "video")?.track ?? null;
    const audio = mix.find((r) => r.kind === "audio")?.track ?? null;
    this.$("mix").hidden = video === null;
    this.stage.classList.toggle("mixed", video !== null);
    attach(this.video, video, () => {});
    attach(this.audio, audio, () => this.deps.onAudioBlocked());
    this._refreshControls();
  }

  /** Retries the mix's sound after a user gesture unblocked autoplay. */
  playAudio() {
    if (this.audio.srcObject) {
      this.audio.play().catch(() => {});
    }
  }

  setMenuOpen(open) {
    const panel = this.$("view-options");
    if (panel.hidden === !open) {
      return;
    }
    panel.hidden = !open;
    this.$("view-button").setAttribute("aria-expanded", String(open));
    if (open) {
      panel.querySelector("input:checked")?.focus();
    }
  }

  _send(mode) {
    const { resolution, bitrate } = QUALITIES[this.quality];
    this.deps.send({ type: "subscription", mode, layout: this.layout, resolution, bitrate });
  }

  _bind() {
    const $ = this.$;
    $("view-button").addEventListener("click", (event) => {
      event.stopPropagation();
      this.setMenuOpen($("view-options").hidden);
    });
    $("view-options").addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        this.setMenuOpen(false);
        $("view-button").focus();
      }
    });
    document.addEventListener("click", (event) => {
      if (!event.target.closest?.(".view-menu")) {
        this.setMenuOpen(false);
      }
    });
    for (const radio of document.querySelectorAll('input[name="view-mode"]')) {
      radio.addEventListener("change", () => this.choose(radio.value));
    }
    // Layout and quality keep the mode as it is (following the room stays following).
    $("view-layout").addEventListener("change", () => {
      this.layout = $("view-layout").value;
      this._send(this.chosen ?? "room");
    });
    $("view-quality").addEventListener("change", () => {
      this.quality = $("view-quality").value;
      this._send(this.chosen ?? "room");
    });
    $("room-mode-button").addEventListener("click", () => {
      const mode = this.roomMode === "mixed" ? "forwarded" : "mixed";
      this.deps.send({ type: "chair", action: "room_mode", mode });
    });
  }

  _refreshControls() {
    const $ = this.$;
    const mixed = this.mode === "mixed";
    $("view-forwarded").checked = !mixed;
    $("view-mixed").checked = mixed;
    $("view-layout").value = this.layout;
    $("view-quality").value = this.quality;
    $("view-layout").disabled = !mixed;
    $("view-quality").disabled = !mixed;
    setText($("view-note"), this.chosen === null ? "view.following_room" : "view.own_choice");
    const chair = this.deps.isChair();
    $("room-mode-button").hidden = !chair;
    setText(
      $("room-mode-button"),
      this.roomMode === "mixed" ? "view.room_forwarded" : "view.room_mixed",
    );
  }
}
