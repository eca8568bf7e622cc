// The library's player: an item's video (or a link to its PDF) in the page, with a button per
// file when an item has several. A <video> cannot send an Authorization header, so playback goes
// through a short share link made for the purpose.

import { t } from "/static/i18n.js";
import { button } from "./library-list.js";

const $ = (id) => document.getElementById(id);

/** Lifetime of the share links the page makes for its own player. */
const PLAYER_TTL = 3600;

export class Player {
  /**
   * `state`: the page's state, whose `playing` (the item id in the player) this keeps. `deps`:
   * `{share(id, ttl) -> {url, token}, explain(error) -> text}`.
   */
  constructor(state, deps) {
    this.state = state;
    this.deps = deps;
    $("player-close").addEventListener("click", () => this.close());
    $("player-video").addEventListener("error", () => this._onVideoError());
  }

  /** Plays `item` (from the list): its composite, else its first file. */
  async play(item) {
    const id = item.id;
    $("player-error").textContent = "";
    $("player-title").textContent = item.title;
    $("player").hidden = false;
    this.state.playing = id;
    let share;
    try {
      share = await this.deps.share(id, PLAYER_TTL);
    } catch (error) {
      $("player-error").textContent = t("library.cannot_play", { reason: this.deps.explain(error) });
      return;
    }
    if (this.state.playing !== id) {
      return; // another item was picked meanwhile
    }
    // What play_url serves: the composite, else the first file.
    const first = item.files.find((f) => f.role === "composite") ?? item.files[0] ?? null;
    this._showFile(item, first, share);
    this._renderFiles(item, share);
    $("player").scrollIntoView({ block: "start", behavior: "smooth" });
    $("player-title").focus({ preventScroll: true });
  }

  close() {
    this.state.playing = null;
    const video = $("player-video");
    video.pause();
    video.removeAttribute("src");
    video.load();
    $("player").hidden = true;
  }

  _showFile(item, file, share) {
    const video = $("player-video");
    const isPdf = file?.media_type === "application/pdf";
    $("player-document").hidden = !isPdf;
    video.hidden = isPdf;
    video.removeAttribute("src");
    video.load();
    if (file === null || file === undefined) {
      $("player-error").textContent = t("library.no_files");
      return;
    }
    const src = file.url ? fileUrl(file, share) : share.url;
    if (isPdf) {
      $("player-document-link").href = src;
      return;
    }
    video.src = src;
    video.play().catch(() => {
      // Autoplay refused: the controls are there to start it.
    });
  }

  _renderFiles(item, share) {
    const box = $("player-files");
    const label = box.firstElementChild;
    box.replaceChildren(label);
    box.hidden = item.files.length < 2;
    for (const file of item.files) {
      const show = () => this._showFile(item, file, share);
      box.append(button(fileLabel(file), "file", show, t("library.play_label", { title: file.name })));
    }
  }

  _onVideoError() {
    const video = $("player-video");
    if (!video.getAttribute("src")) {
      return;
    }
    const code = video.error?.code;
    $("player-error").textContent = t(code === 4 ? "library.not_playable" : "library.playback_failed");
  }
}

function fileUrl(file, share) {
  const url = new URL(file.url, location.origin);
  url.searchParams.set("token", share.token);
  return url.href;
}

function fileLabel(file) {
  if (file.role === "composite") {
    return t("library.file_composite");
  }
  if (file.role === "slides") {
    return t("library.file_slides");
  }
  return file.name.replace(/\.mp4$/, "").replace(/^\d+-/, "");
}
