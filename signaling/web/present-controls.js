// The presenting controls: the "Present" menu (screen, capture device, file), the device picker,
// "Stop presenting", the floor status line and the page keys. What they do is present.js's.

import { setText, t } from "./i18n.js";
import { canShareScreen, listDevices } from "./media.js";
import { UploadError } from "./present.js";

export class PresentControls {
  /**
   * `presenter` is the session's Presenter; `deps`: `{me(), role(), joined(), nameOf(id),
   * cameraDeviceId(), showAlert(text), hideAlert(), failed(error)}`.
   */
  constructor(presenter, deps) {
    this.presenter = presenter;
    this.deps = deps;
    this.$ = (id) => document.getElementById(id);
    this._bind();
  }

  _bind() {
    const $ = this.$;
    $("present-button").addEventListener("click", (event) => {
      event.stopPropagation();
      this.setMenuOpen($("present-options").hidden);
    });
    $("present-options").addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        this.setMenuOpen(false);
        $("present-button").focus();
      }
    });
    document.addEventListener("click", (event) => {
      if (!event.target.closest?.(".present-menu")) {
        this.setMenuOpen(false);
      }
    });
    $("share-screen").hidden = !canShareScreen();
    $("share-screen").addEventListener("click", () => {
      this.setMenuOpen(false);
      this.deps.hideAlert();
      this.presenter.shareScreen().catch((error) => this.shareFailed(error));
    });
    $("share-device").addEventListener("click", () => {
      this.setMenuOpen(false);
      this.deps.hideAlert();
      this.openDeviceDialog();
    });
    // The form's submit, not the dialog's close event: it runs inside the click (a user gesture
    // for getUserMedia), and headless Chromium was seen not to fire `close` at all.
    $("device-select").form.addEventListener("submit", (event) => this.onDeviceChosen(event));
    $("share-file").addEventListener("click", () => {
      this.setMenuOpen(false);
      this.deps.hideAlert();
      $("file-input").click();
    });
    $("file-input").addEventListener("change", () => {
      const file = $("file-input").files[0];
      $("file-input").value = "";
      if (file) {
        this.presenter.shareFile(file).catch((error) => this.shareFailed(error));
      }
    });
    $("stop-share").addEventListener("click", () => this.presenter.stop());
    document.addEventListener("keydown", (event) => this.onKeyDown(event));
  }

  /** The floor status line: uploading, waiting (with the position), or who presents. */
  statusText(content) {
    if (this.presenter.uploading !== null) {
      return t("present.uploading", { name: this.presenter.uploading });
    }
    if (this.presenter.pending !== null) {
      return this.presenter.queuePosition !== null
        ? t("present.queued", { position: this.presenter.queuePosition })
        : t("present.asking");
    }
    if (this.presenter.showing) {
      return t("present.starting_slides");
    }
    if (this.presenter.active !== null) {
      return t("present.you_present");
    }
    const holder = this.presenter.floor.holder;
    // Once their content is on screen its caption says who presents.
    if (holder !== null && holder !== this.deps.me() && content === null) {
      return this.presenter.floor.mode === null
        ? t("present.has_floor", { name: this.deps.nameOf(holder) })
        : t("present.is_presenting", { name: this.deps.nameOf(holder) });
    }
    return "";
  }

  /** Refreshes the controls; `content` is what the content area shows (contentModel). */
  render(content) {
    this.$("floor-status").textContent = this.statusText(content);
    const busy =
      this.presenter.active !== null ||
      this.presenter.pending !== null ||
      this.presenter.showing ||
      this.presenter.uploading !== null;
    // A lecture's viewer presents nothing (until the chair invites them to speak).
    this.$("present-menu").hidden = busy || this.deps.role() === "viewer";
    if (busy) {
      this.setMenuOpen(false);
    }
    const stop = this.$("stop-share");
    stop.hidden = !busy || this.presenter.uploading !== null;
    setText(stop, this.presenter.active !== null ? "present.stop" : "present.stop_waiting");
    // A chair's request takes the floor over; everyone else queues behind the presenter.
    const holder = this.presenter.floor.holder;
    const other = holder !== null && holder !== this.deps.me();
    setText(
      this.$("present-button"),
      other && this.deps.role() === "chair" ? "present.take_over" : "present.present",
    );
  }

  setMenuOpen(open) {
    const menu = this.$("present-options");
    if (menu.hidden === !open) {
      return;
    }
    menu.hidden = !open;
    this.$("present-button").setAttribute("aria-expanded", String(open));
    if (open) {
      menu.querySelector("button:not([hidden]):not(:disabled)")?.focus();
    }
  }

  /** A share that could not start: say why, unless the person cancelled the browser's picker. */
  shareFailed(error) {
    if (error?.name === "NotAllowedError" || error?.message === "cancelled") {
      return;
    }
    if (error instanceof UploadError || error?.code) {
      return; // already shown by the presenter
    }
    this.deps.failed(error);
    this.deps.showAlert(t("present.could_not_start", { reason: error?.message ?? error }));
  }

  async openDeviceDialog() {
    const select = this.$("device-select");
    let devices = [];
    try {
      devices = (await listDevices()).video;
    } catch (error) {
      console.warn("enumerateDevices failed", error);
    }
    const inUse = this.deps.cameraDeviceId();
    select.replaceChildren();
    for (const device of devices) {
      const label =
        device.deviceId === inUse ? t("present.your_camera", { label: device.label }) : device.label;
      select.append(new Option(label, device.deviceId));
    }
    // Preselect a device other than the camera that shows your face.
    const other = devices.find((d) => d.deviceId !== inUse);
    if (other) {
      select.value = other.deviceId;
    }
    if (devices.length === 0) {
      select.append(new Option(t("present.no_video_input"), ""));
    }
    select.disabled = devices.length === 0;
    this.$("device-share").disabled = devices.length === 0;
    this.$("device-dialog").showModal();
  }

  onDeviceChosen(event) {
    const select = this.$("device-select");
    if (event.submitter?.value !== "share" || !select.value) {
      return; // Cancel: method="dialog" just closes it
    }
    const label = select.selectedOptions[0]?.textContent ?? "";
    this.presenter.shareDevice(select.value, label).catch((error) => this.shareFailed(error));
  }

  /** Page keys move the slides when we present them (not while typing in a field). */
  onKeyDown(event) {
    if (!this.deps.joined() || this.presenter.active?.kind !== "slides") {
      return;
    }
    if (event.ctrlKey || event.altKey || event.metaKey) {
      return;
    }
    if (event.target.closest?.("input, textarea, select, [contenteditable], dialog")) {
      return;
    }
    const pages = this.presenter.slides.pages ?? this.presenter.active.pages;
    const actions = {
      ArrowRight: () => this.presenter.nextPage(),
      ArrowDown: () => this.presenter.nextPage(),
      PageDown: () => this.presenter.nextPage(),
      ArrowLeft: () => this.presenter.previousPage(),
      ArrowUp: () => this.presenter.previousPage(),
      PageUp: () => this.presenter.previousPage(),
      Home: () => this.presenter.goToPage(1),
      End: () => this.presenter.goToPage(pages),
    };
    const action = actions[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  }
}
