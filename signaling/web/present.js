// Presenting on the content channel (docs/protocol.md, "Content"): the floor, a shared screen or
// capture device, and server-rendered slides of an uploaded document. No DOM here: room-view.js
// draws what this module's state says, and the page calls its methods from buttons and keys.

import { errorText, has, t } from "./i18n.js";
import { openCaptureDevice, openScreen } from "./media.js";

/** The server's upload limit (docs/protocol.md); larger files are refused before sending. */
export const MAX_UPLOAD_BYTES = 50 * 1024 * 1024;

/** How long stopping waits for the server to confirm that the floor is given back. */
const RELEASE_WAIT_MS = 5000;

/** What to tell the presenter for an error code of the socket (`present.error.<code>`). */
function presentErrorText(code, fallback) {
  return has(`present.error.${code}`) ? t(`present.error.${code}`) : errorText(code, fallback);
}

/** What to tell the person when an upload is refused with an HTTP `status`. */
function uploadErrorText(status) {
  const key = `upload.error.${status}`;
  return has(key) ? t(key) : t("upload.failed_status", { status });
}

/** An upload the server (or the size check) refused; `status` is the HTTP status. */
export class UploadError extends Error {
  constructor(status, message, detail) {
    super(message);
    this.name = "UploadError";
    this.status = status;
    this.detail = detail ?? null;
  }
}

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A share nobody awaits (a button click) must not report an unhandled rejection.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/**
 * The presenter side of one session. `deps`:
 * `{send(msg), me(), nameOf(participantId), publishConnection(), renegotiate(),
 *   upload(file) -> Response, onChange(), notify(text), fail(text, error)}`.
 *
 * State (read by the page and window.mcu): `floor` `{holder, mode}`, `queuePosition`, `slides`
 * `{presenter, documentId, page, pages, trackId}`, `pending` (a share waiting for the floor),
 * `active` (what this participant shows now: `{kind: "stream", track, label}` or
 * `{kind: "slides", documentId, pages, name, kind, preview}`), `uploading` (a file name).
 */
export class Presenter {
  constructor(deps) {
    this.deps = deps;
    this.floor = { holder: null, mode: null };
    this.queuePosition = null;
    this.slides = { presenter: null, documentId: null, page: null, pages: null, trackId: null };
    this.pending = null;
    this.active = null;
    this.uploading = null;
    this._requests = 0;
    this._interrupted = false;
    this._showing = null;
    this._floorWaiters = new Set();
  }

  /** Takes the floor and slides state of `joined`. */
  reset(joined) {
    this.floor = { holder: joined.floor?.holder ?? null, mode: joined.floor?.mode ?? null };
    this.queuePosition = null;
    this.pending = null;
    this.active = null;
    this.uploading = null;
    this._showing = null;
    this._interrupted = false;
    this._setSlides(joined.slides ?? {});
    for (const waiter of [...this._floorWaiters]) {
      waiter();
    }
  }

  /**
   * Takes the floor and slides state of a resumed session's `joined`. A shared stream goes on
   * (the page sends it again) while the floor is still ours; a share waiting for the floor
   * keeps waiting (the server kept its place in line).
   */
  resume(joined) {
    this.floor = { holder: joined.floor?.holder ?? null, mode: joined.floor?.mode ?? null };
    this._setSlides(joined.slides ?? {});
    if (this.active?.kind === "stream" && !this.holdsFloor) {
      this.active.track.stop();
      this.active = null;
    }
    this.deps.onChange();
  }

  /** Whether slides were asked for and the server has not shown them yet. */
  get showing() {
    return Boolean(this._showing);
  }

  get holdsFloor() {
    return this.floor.holder !== null && this.floor.holder === this.deps.me();
  }

  /** Whether a request with this id came from here (errors are routed back by id). */
  owns(requestId) {
    return typeof requestId === "string" && requestId.startsWith("present-");
  }

  // ------------------------------------------------------------ starting

  /** Share a screen, window or tab (getDisplayMedia must run in the click that asked for it). */
  async shareScreen() {
    const track = await openScreen();
    return this.shareTrack(track, t("present.your_screen"));
  }

  /** Share a second video input (a capture card) as content. */
  async shareDevice(deviceId, label) {
    const track = await openCaptureDevice(deviceId);
    return this.shareTrack(track, label || t("present.a_device"));
  }

  /**
   * Publishes `track` as content once the floor is ours. Every stream share (screen, device, the
   * test canvas) comes through here. Resolves when the content is published; rejects if it could
   * not be (cancelled, refused, pre-empted while starting).
   */
  async shareTrack(track, label) {
    // Radiographs and slides need sharp edges more than smooth motion.
    if (!track.contentHint) {
      track.contentHint = "detail";
    }
    await this.stop({ quiet: true });
    const share = { kind: "stream", track, label, ...deferred() };
    track.addEventListener("ended", () => {
      // The browser's own "Stop sharing" button, or the capture device was unplugged.
      if (this.pending === share || this.active === share) {
        this.deps.notify(t("present.sharing_stopped"));
        this.stop({ quiet: true });
      }
    });
    this.pending = share;
    this._claimFloor();
    return share.promise;
  }

  /** Uploads `file` and shows its first page once the floor is ours; resolves with the upload. */
  async shareFile(file) {
    if (this.uploading !== null) {
      throw new UploadError(0, t("upload.busy"));
    }
    if (file.size > MAX_UPLOAD_BYTES) {
      const error = new UploadError(413, uploadErrorText(413));
      this.deps.fail(error.message, error);
      throw error;
    }
    this.uploading = file.name || t("present.the_file");
    this.deps.onChange();
    let document;
    try {
      document = await this._upload(file);
    } catch (error) {
      this.deps.fail(error.message, error);
      throw error;
    } finally {
      this.uploading = null;
      this.deps.onChange();
    }
    await this.stop({ quiet: true });
    const share = {
      kind: "slides",
      documentId: document.document_id,
      pages: document.pages,
      name: file.name || t("present.the_document"),
      documentKind: document.kind,
      preview: /png|jpe?g|image/i.test(document.kind ?? "") ? URL.createObjectURL(file) : null,
      ...deferred(),
    };
    this.pending = share;
    this._claimFloor();
    await share.promise;
    return { documentId: document.document_id, pages: document.pages, kind: document.kind };
  }

  async _upload(file) {
    let response;
    try {
      response = await this.deps.upload(file);
    } catch (error) {
      if (error instanceof UploadError) {
        throw error;
      }
      throw new UploadError(0, t("upload.unreachable"), error.message);
    }
    if (response.status === 201) {
      return response.json();
    }
    let detail = null;
    try {
      const body = await response.json();
      detail = body.message ?? body.error ?? null;
    } catch {
      detail = null;
    }
    const text = uploadErrorText(response.status);
    // The server's reason is worth adding where it names a limit ("600 pages, at most 500").
    const specific = detail && response.status === 422;
    throw new UploadError(response.status, specific ? `${text} (${detail})` : text, detail);
  }

  _claimFloor() {
    if (this.holdsFloor) {
      this._proceed();
    } else {
      this._send({ type: "floor", action: "request" });
    }
    this.deps.onChange();
  }

  /** The floor is ours and a share waits: start showing it. */
  async _proceed() {
    const share = this.pending;
    if (share === null) {
      return;
    }
    this.pending = null;
    this.queuePosition = null;
    if (share.kind === "slides") {
      // Active once the `slides` broadcast names us (onSlides); refused by an `error` (onError).
      this._showing = share;
      this._send({ type: "slides", action: "show", document_id: share.documentId, page: 1 });
      return;
    }
    this.active = share;
    this.deps.onChange();
    const publish = this.deps.publishConnection();
    try {
      await publish.setContent(share.track);
      await this.deps.renegotiate();
      if (this.active !== share) {
        throw new Error("the presentation was stopped while starting");
      }
      await publish.preferResolutionForContent();
      share.resolve();
    } catch (error) {
      if (this.active === share) {
        this.active = null;
        share.track.stop();
        await publish.clearContent();
        this.deps.renegotiate().catch(() => {});
        this.deps.fail(
          has(`present.error.${error.code}`)
            ? t(`present.error.${error.code}`)
            : t("present.not_sent", { reason: error.message }),
          error,
        );
      }
      share.reject(error);
    }
    this.deps.onChange();
  }

  // ------------------------------------------------------------ stopping

  /** Stop presenting, or stop waiting for the floor. */
  async stop({ quiet = false } = {}) {
    const pending = this.pending;
    const active = this.active;
    const showing = this._showing;
    this.pending = null;
    this.active = null;
    this._showing = null;
    if (pending !== null) {
      pending.track?.stop();
      pending.reject(new Error("cancelled"));
      if (this.queuePosition !== null || this.holdsFloor) {
        this._send({ type: "floor", action: "release" });
      }
      this.queuePosition = null;
    }
    if (showing) {
      showing.reject(new Error("cancelled"));
    }
    if (active?.kind === "stream") {
      active.track.stop();
      const publish = this.deps.publishConnection(false);
      if (publish?.sendsContent) {
        await publish.clearContent();
        try {
          // Unpublishing the content gives the floor back (the server says so in a `floor`).
          await this.deps.renegotiate();
        } catch (error) {
          console.warn("unpublishing content failed", error);
        }
      }
      if (this.holdsFloor && this.pending === null && this.active === null) {
        this._send({ type: "floor", action: "release" });
      }
    } else if (active?.kind === "slides" || showing) {
      // Stopping slides releases the floor too.
      this._send({ type: "slides", action: "stop" });
    }
    if (active !== null || showing) {
      // Until the server confirms, the floor still looks ours: a share started meanwhile would
      // publish at once and then be ended by the late release.
      await this._floorReleased();
    }
    for (const share of [active, pending, showing]) {
      if (share?.preview) {
        URL.revokeObjectURL(share.preview);
      }
    }
    if (!quiet && active !== null) {
      this.deps.notify(t("present.you_stopped"));
    }
    this.deps.onChange();
  }

  /** The server ended our content (pre-emption, or it unpublished the track): stop sending. */
  async _lost() {
    const active = this.active;
    this.active = null;
    this._interrupted = true;
    if (active?.kind === "stream") {
      active.track.stop();
      const publish = this.deps.publishConnection(false);
      if (publish?.sendsContent) {
        await publish.clearContent();
        this.deps.renegotiate().catch((error) => console.warn("renegotiation failed", error));
      }
    }
    if (active?.preview) {
      URL.revokeObjectURL(active.preview);
    }
    this.deps.onChange();
  }

  /** Resolves once the floor is no longer ours (or after RELEASE_WAIT_MS). */
  _floorReleased() {
    if (!this.holdsFloor) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const waiter = () => {
        clearTimeout(timer);
        this._floorWaiters.delete(waiter);
        resolve();
      };
      const timer = setTimeout(waiter, RELEASE_WAIT_MS);
      this._floorWaiters.add(waiter);
    });
  }

  // ------------------------------------------------------------ slides

  /** Show another page of the document we present (1-based). */
  goToPage(page) {
    if (this.active?.kind !== "slides") {
      return;
    }
    const pages = this.slides.pages ?? this.active.pages;
    if (!Number.isInteger(page) || page < 1 || page > pages || page === this.slides.page) {
      return;
    }
    this._send({ type: "slides", action: "page", page });
  }

  nextPage() {
    this.goToPage((this.slides.page ?? 0) + 1);
  }

  previousPage() {
    this.goToPage((this.slides.page ?? 2) - 1);
  }

  // ------------------------------------------------------------ server events

  /** Handles a content event: `floor`, `floor_queued` or `slides`. */
  handle(message) {
    switch (message.type) {
      case "floor":
        this.onFloor(message);
        break;
      case "floor_queued":
        this.onQueued(message);
        break;
      case "slides":
        this.onSlides(message);
        break;
      default:
        break;
    }
  }

  onFloor(message) {
    const me = this.deps.me();
    const wasMine = this.floor.holder === me;
    this.floor = { holder: message.holder ?? null, mode: message.mode ?? null };
    if (this.floor.holder !== me) {
      for (const waiter of [...this._floorWaiters]) {
        waiter();
      }
    }
    if (this.floor.holder === me) {
      this.queuePosition = null;
      if (this.pending !== null) {
        this._proceed();
      } else if (this.active === null && !this._showing && this.floor.mode === null) {
        // Granted from the line after we stopped wanting it: hand it on at once.
        this._send({ type: "floor", action: "release" });
      }
    } else if (wasMine) {
      const lostSomething = this.active !== null || this._interrupted || this._showing;
      if (this.active !== null) {
        this._lost();
      }
      if (this._showing) {
        this._showing.reject(new Error("the floor was lost"));
        this._showing = null;
      }
      if (lostSomething && message.reason === "preempted" && this.floor.holder !== null) {
        const name = this.deps.nameOf(this.floor.holder);
        this.deps.notify(t("present.taken_over", { name }), true);
      } else if (this.pending !== null && message.reason === "preempted") {
        this.deps.notify(t("present.chair_took_floor"), true);
      }
      this._interrupted = false;
    }
    this.deps.onChange();
  }

  onQueued(message) {
    if (this.pending === null) {
      // Queued for a share we no longer want.
      this._send({ type: "floor", action: "release" });
      return;
    }
    this.queuePosition = message.position ?? null;
    this.deps.onChange();
  }

  onSlides(message) {
    this._setSlides(message);
    const me = this.deps.me();
    if (message.presenter === me) {
      const showing = this._showing;
      if (showing && showing.documentId === message.document_id) {
        this._showing = null;
        this.active = showing;
        showing.resolve();
      }
    } else if (this.active?.kind === "slides") {
      // Our slides ended without us asking (a chair took over): the `floor` event says who.
      this._lost();
    }
    this.deps.onChange();
  }

  /** Our own content track was unpublished by the server. */
  onOwnContentUnpublished() {
    if (this.active?.kind === "stream") {
      this._lost();
    }
  }

  /** An `error` answering one of our requests. */
  onError(message) {
    const text = presentErrorText(message.code, message.message);
    const error = Object.assign(new Error(text), { code: message.code });
    const showing = this._showing;
    if (showing) {
      this._showing = null;
      showing.reject(error);
      if (showing.preview) {
        URL.revokeObjectURL(showing.preview);
      }
      if (this.holdsFloor && this.active === null) {
        this._send({ type: "floor", action: "release" });
      }
    } else if (this.pending !== null && message.code === "floor_busy") {
      const pending = this.pending;
      this.pending = null;
      pending.track?.stop();
      pending.reject(error);
    }
    this.deps.fail(text, error);
    this.deps.onChange();
  }

  _setSlides(message) {
    this.slides = {
      presenter: message.presenter ?? null,
      documentId: message.document_id ?? null,
      page: message.page ?? null,
      pages: message.pages ?? null,
      trackId: message.track_id ?? null,
    };
  }

  _send(message) {
    this._requests += 1;
    this.deps.send({ ...message, id: `present-${this._requests}` });
  }
}

/** A File made from base64 text (the test hook that shares a file without a file picker). */
export function fileFromBase64(base64, name) {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) {
    bytes[i] = binary.charCodeAt(i);
  }
  return new File([bytes], name);
}

/**
 * A moving, high-contrast 1280x720 test pattern as a video track (for headless tests, which have
 * no screen to share). Fine lines and text make any loss of resolution visible.
 */
export function canvasTestPattern(width = 1280, height = 720, fps = 15) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  const track = canvas.captureStream(fps).getVideoTracks()[0];
  let frame = 0;
  const draw = () => {
    context.fillStyle = "#fff";
    context.fillRect(0, 0, width, height);
    context.fillStyle = "#000";
    const cell = 40;
    const shift = (frame * 4) % (cell * 2);
    for (let y = 0; y < height; y += cell) {
      for (let x = -cell * 2; x < width; x += cell) {
        if (((x + y) / cell) % 2 === 0) {
          context.fillRect(x + shift, y, cell, cell);
        }
      }
    }
    for (let x = 0; x < width; x += 4) {
      context.fillRect(x, height - 60, 1, 60); // one-pixel lines: blurred by any downscale
    }
    context.fillStyle = "#d00";
    context.fillRect((frame * 8) % width, 0, 24, height);
    context.fillStyle = "#000";
    context.fillRect(20, 20, 360, 70);
    context.fillStyle = "#fff";
    context.font = "48px sans-serif";
    context.fillText(`frame ${frame}`, 36, 72);
    frame += 1;
  };
  draw();
  const timer = setInterval(() => {
    if (track.readyState === "ended") {
      clearInterval(timer);
      return;
    }
    draw();
  }, 1000 / fps);
  track.contentHint = "detail";
  return track;
}
