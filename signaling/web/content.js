// The content area: the shared screen, capture device or slide shown large and never cropped,
// who presents it, the page counter, and a "Maximise" that falls back to a full-window mode.

import { setText, t } from "./i18n.js";

/**
 * What the content area shows, from `ContentView.render(model)`; `model` is null (nothing) or
 * `{track, image, placard, caption, counter, canPage, canPrevious, canNext}`:
 * `track` a MediaStreamTrack to play (remote content, or our own shared stream); `image` a URL
 * (our own uploaded picture); `placard` a text shown instead of a picture; `caption` who presents;
 * `counter` "Page 2 of 5" or null; `canPage` whether the page buttons are ours to use.
 */
export class ContentView {
  /** `root` is the content section; `stage` gets the `has-content` class while it shows. */
  constructor(root, stage, actions) {
    this.root = root;
    this.stage = stage;
    this.actions = actions; // {onPrevious(), onNext()}
    this.video = root.querySelector(".content-video");
    this.image = root.querySelector(".content-image");
    this.placard = root.querySelector(".content-placard");
    this.caption = root.querySelector(".content-caption");
    this.counter = root.querySelector(".slide-counter");
    this.previous = root.querySelector(".slide-previous");
    this.next = root.querySelector(".slide-next");
    this.maxButton = root.querySelector(".content-max");
    this.previous.addEventListener("click", () => this.actions.onPrevious());
    this.next.addEventListener("click", () => this.actions.onNext());
    this.maxButton.addEventListener("click", () => this.toggleMaximised());
    document.addEventListener("fullscreenchange", () => this._refreshMaxButton());
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.root.classList.contains("maximised")) {
        this.setMaximised(false);
      }
    });
    this.shown = false;
  }

  render(model) {
    const shown = model !== null;
    this.shown = shown;
    this.root.hidden = !shown;
    this.stage.classList.toggle("has-content", shown);
    if (!shown) {
      this._play(null);
      this.image.removeAttribute("src");
      this.setMaximised(false);
      return;
    }
    this._play(model.track ?? null);
    this.video.hidden = !model.track;
    if (model.image) {
      if (this.image.getAttribute("src") !== model.image) {
        this.image.src = model.image;
      }
    } else {
      this.image.removeAttribute("src");
    }
    this.image.hidden = !model.image || Boolean(model.track);
    this.placard.hidden = !model.placard || Boolean(model.track) || Boolean(model.image);
    this.placard.textContent = model.placard ?? "";
    this.caption.textContent = model.caption ?? "";
    this.counter.hidden = !model.counter;
    this.counter.textContent = model.counter ?? "";
    this.previous.hidden = !model.canPage;
    this.next.hidden = !model.canPage;
    this.previous.disabled = !model.canPrevious;
    this.next.disabled = !model.canNext;
  }

  /** Full screen where the browser allows it, otherwise the content fills the window. */
  async toggleMaximised() {
    await this.setMaximised(!this.isMaximised);
  }

  get isMaximised() {
    return document.fullscreenElement === this.root || this.root.classList.contains("maximised");
  }

  async setMaximised(on) {
    if (!on) {
      this.root.classList.remove("maximised");
      if (document.fullscreenElement === this.root) {
        await document.exitFullscreen().catch(() => {});
      }
    } else if (!this.isMaximised) {
      let fullscreen = false;
      if (typeof this.root.requestFullscreen === "function" && document.fullscreenEnabled) {
        try {
          await this.root.requestFullscreen({ navigationUI: "hide" });
          fullscreen = true;
        } catch {
          fullscreen = false; // iPhone Safari, or no user gesture: the CSS mode below instead
        }
      }
      if (!fullscreen) {
        this.root.classList.add("maximised");
      }
    }
    this._refreshMaxButton();
  }

  _refreshMaxButton() {
    const on = this.isMaximised;
    setText(this.maxButton, on ? "content.restore" : "content.maximise");
    this.maxButton.setAttribute("aria-pressed", String(on));
  }

  _play(track) {
    const current = this.video.srcObject?.getTracks()[0] ?? null;
    if (current === track) {
      return;
    }
    this.video.srcObject = track ? new MediaStream([track]) : null;
    if (track) {
      this.video.play().catch(() => {}); // muted video: autoplay is always allowed
    }
  }
}

function pageCounter(slides) {
  return slides.page && slides.pages
    ? t("content.page_of", { page: slides.page, pages: slides.pages })
    : null;
}

/**
 * What the content area shows: our own presentation, or the one we receive. `presenter` is the
 * Presenter (present.js), `received` the carried remote tracks (`{participantId, kind, source,
 * track}`), `nameOf(participantId)` a display name.
 */
export function contentModel(presenter, received, nameOf) {
  const active = presenter.active;
  const slides = presenter.slides;
  if (active?.kind === "stream") {
    return { track: active.track, caption: t("content.you_present", { what: active.label }) };
  }
  if (active?.kind === "slides") {
    const page = slides.page ?? 1;
    const pages = slides.pages ?? active.pages;
    // The server sends the presenter its own rendered page back: show exactly what others see.
    const rendered = [...received].find(
      (r) => r.source === "content" && r.kind === "video" && r.trackId === slides.trackId,
    );
    if (rendered !== undefined) {
      return {
        track: rendered.track,
        caption: t("content.you_present", { what: active.name }),
        counter: pageCounter({ page, pages }),
        canPage: true,
        canPrevious: page > 1,
        canNext: page < pages,
      };
    }
    return {
      image: active.preview,
      placard: t("content.others_see", { page, pages, name: active.name }),
      caption: t("content.you_present", { what: active.name }),
      counter: pageCounter({ page, pages }),
      canPage: true,
      canPrevious: page > 1,
      canNext: page < pages,
    };
  }
  const contents = [...received].filter(
    (r) => r.source === "content" && r.kind === "video",
  );
  // During a hand-over two may arrive for a moment: the floor holder's is the one that counts.
  const shown =
    contents.find((r) => r.participantId === presenter.floor.holder) ?? contents.at(-1);
  if (shown === undefined) {
    return null;
  }
  const isSlides = slides.presenter === shown.participantId;
  return {
    track: shown.track,
    caption: t("content.is_presenting", { name: nameOf(shown.participantId) }),
    counter: isSlides ? pageCounter(slides) : null,
    canPage: false,
  };
}
