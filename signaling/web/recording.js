// Recording: the "● Recording" indicator everyone sees while the room records, and the chair's
// "Record" / "Stop recording" button. docs/protocol.md, "Recording".

import { language, setText, t } from "./i18n.js";

/** How long the button waits for the server's `recording` event before it can be pressed again. */
const PENDING_MS = 8000;

export class RecordingControl {
  /**
   * `indicator`: the element shown while recording; `button`: the chair's toggle.
   * `deps`: `{send(message), notify(text), alert(text), isChair()}`.
   */
  constructor(indicator, button, deps) {
    this.indicator = indicator;
    this.button = button;
    this.deps = deps;
    this.pendingTimer = null;
    this.button.addEventListener("click", () => this.toggle());
    this.reset({});
  }

  /** A new session: the state `joined.recording` carries (nothing recorded when absent). */
  reset(joined) {
    const state = joined.recording ?? {};
    this.active = state.active === true;
    this.recordingId = this.active ? (state.recording_id ?? null) : null;
    this.startedAt = this.active ? (state.started_at ?? null) : null;
    this.error = null;
    this._settle();
  }

  /** `window.mcu.recording`. */
  get state() {
    return {
      active: this.active,
      recordingId: this.recordingId,
      startedAt: this.startedAt,
      error: this.error,
    };
  }

  /** The server's `recording` event. */
  onRecording(message) {
    const wasActive = this.active;
    this.active = message.active === true;
    this.recordingId = message.recording_id ?? null;
    this.startedAt = this.active ? (message.started_at ?? null) : null;
    this.error = message.error ?? null;
    this._settle();
    if (this.error) {
      this.deps.alert(t("recording.failed", { reason: this.error }));
    } else if (this.active && !wasActive) {
      this.deps.notify(t("recording.started"));
    } else if (!this.active && wasActive) {
      this.deps.notify(t("recording.stopped"));
    }
  }

  /** The chair pressed the button: ask the server to start or stop. */
  toggle() {
    if (!this.deps.isChair() || this.pendingTimer !== null) {
      return;
    }
    this.deps.send({ type: "chair", action: "record", active: !this.active });
    this.button.disabled = true;
    setText(this.button, this.active ? "recording.stopping" : "recording.starting");
    // A refusal arrives as an `error` (shown by the page); let the chair try again after a while.
    this.pendingTimer = setTimeout(() => this._settle(), PENDING_MS);
  }

  /** Shows the state: indicator for everyone, the button for the chair. */
  render() {
    this.indicator.hidden = !this.active;
    this.indicator.title = this.startedAt
      ? t("recording.since", { time: new Date(this.startedAt).toLocaleTimeString(language()) })
      : "";
    this.button.hidden = !this.deps.isChair();
    if (this.pendingTimer === null) {
      this.button.disabled = false;
      setText(this.button, this.active ? "recording.stop" : "recording.record");
    }
    this.button.classList.toggle("recording", this.active);
    document.body.classList.toggle("is-recording", this.active);
  }

  _settle() {
    clearTimeout(this.pendingTimer);
    this.pendingTimer = null;
    this.render();
  }
}
