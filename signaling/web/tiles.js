// The participant grid: one tile per remote participant. Shared content is not a tile: it has its
// own large area (content.js), and the grid becomes a strip of faces beside it.

import { setAttributeText, setText, t, translate } from "./i18n.js";

/** A chair's mark on the tile of a site whose link gets no forwarded camera (other rungs:
 * `tile.weak_link`). */
const WEAK_LINK_TEXTS = {
  mixed: "tile.weak_link_mixed",
  audio_content: "tile.weak_link_audio",
};

/** Two initials for the placeholder shown when there is no picture. */
function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words[words.length - 1][0] : name.slice(0, 2);
  return letters.toUpperCase();
}

/** Attaches `track` to a media element (or detaches with null), starting playback. */
export function attach(element, track, onBlocked) {
  const current = element.srcObject?.getTracks()[0] ?? null;
  if (current === track) {
    return;
  }
  element.srcObject = track ? new MediaStream([track]) : null;
  if (track) {
    element.play().catch((error) => {
      if (error.name === "NotAllowedError") {
        onBlocked();
      }
    });
  }
}

/**
 * A participant's view model for `Grid.update`:
 * `{id, name, role, speaking, reconnecting, link, micMuted, camMuted, hasMic, hasCam, micTrack,
 * camTrack}` (`link`: `{rung, estimateBps, short}` when the server thins their link, else null)
 * (the two *Track fields are MediaStreamTracks or null).
 */
export class Grid {
  /**
   * @param container the element holding the tiles
   * @param template a <template> with one `.tile`
   * @param actions `{onChairMute(participantId), onChairRemove(participantId),
   *   onChairDemote(participantId)}` (demote: a lecture's speaker back to the audience)
   */
  constructor(container, template, actions) {
    this.container = container;
    this.template = template;
    this.actions = actions;
    this.isChair = false;
    this.isLecture = false;
    this.onAudioBlocked = () => {};
    this.tiles = new Map(); // participant id -> tile element
  }

  setChair(isChair) {
    this.isChair = isChair;
    for (const tile of this.tiles.values()) {
      tile.querySelector(".chair-controls").hidden = !isChair;
    }
  }

  /** In a lecture the chair can send a speaker back to the audience. */
  setLecture(isLecture) {
    this.isLecture = isLecture;
  }

  /** Creates or refreshes a participant's tile. */
  update(view) {
    const tile = this._tile(view.id);
    const name = view.role === "chair" ? t("tile.chair_name", { name: view.name }) : view.name;
    // Their connection was lost; the server keeps them for a while and they come back by themselves.
    // A weak link (told to chairs only) is marked with what it carries, in Mbit/s, and at the
    // last rungs with what the site is sent instead of cameras.
    const rate = view.link?.estimateBps ? (view.link.estimateBps / 1e6).toFixed(1) : "?";
    tile.querySelector(".tile-name").textContent = view.reconnecting
      ? t("tile.reconnecting", { name })
      : view.link
        ? t(WEAK_LINK_TEXTS[view.link.rung] ?? "tile.weak_link", { name, rate })
        : name;
    tile.classList.toggle("reconnecting", Boolean(view.reconnecting));
    tile.classList.toggle("weak-link", Boolean(view.link));
    tile.querySelector(".avatar").textContent = initials(view.name);
    tile.classList.toggle("speaking", Boolean(view.speaking));
    const showVideo = view.camTrack !== null && !view.camMuted;
    tile.classList.toggle("no-video", !showVideo);
    attach(tile.querySelector("video"), showVideo ? view.camTrack : null, () => {});
    attach(tile.querySelector("audio"), view.micTrack, () => this.onAudioBlocked());
    const micOff = !view.hasMic || view.micMuted;
    tile.querySelector(".badge-mic").hidden = !micOff;
    setText(tile.querySelector(".badge-mic"), view.hasMic ? "tile.mic_off" : "own.no_mic");
    tile.querySelector(".badge-cam").hidden = !(view.hasCam && view.camMuted);
    const muteButton = tile.querySelector(".chair-mute");
    muteButton.disabled = micOff;
    setAttributeText(muteButton, "aria-label", "tile.mute_label", { name: view.name });
    setAttributeText(tile.querySelector(".chair-remove"), "aria-label", "tile.remove_label", {
      name: view.name,
    });
    const demote = tile.querySelector(".chair-demote");
    demote.hidden = !(this.isLecture && view.role === "participant");
    setAttributeText(demote, "aria-label", "tile.demote_label", { name: view.name });
    this._refreshCount();
  }

  remove(participantId) {
    this._drop(participantId);
    this._refreshCount();
  }

  clear() {
    for (const key of [...this.tiles.keys()]) {
      this._drop(key);
    }
    this._refreshCount();
  }

  /** Retries playback of every audio element (after a user gesture unblocked autoplay). */
  playAudio() {
    for (const audio of this.container.querySelectorAll("audio")) {
      if (audio.srcObject) {
        audio.play().catch(() => {});
      }
    }
  }

  _tile(participantId) {
    let tile = this.tiles.get(participantId);
    if (tile === undefined) {
      tile = this.template.content.firstElementChild.cloneNode(true);
      translate(tile); // the template holds the page's first (English) words
      tile.dataset.participant = participantId;
      tile.querySelector(".chair-controls").hidden = !this.isChair;
      tile
        .querySelector(".chair-mute")
        .addEventListener("click", () => this.actions.onChairMute(participantId));
      tile
        .querySelector(".chair-remove")
        .addEventListener("click", () => this.actions.onChairRemove(participantId));
      tile
        .querySelector(".chair-demote")
        .addEventListener("click", () => this.actions.onChairDemote(participantId));
      this.tiles.set(participantId, tile);
      this.container.append(tile);
    }
    return tile;
  }

  _drop(key) {
    const tile = this.tiles.get(key);
    if (tile === undefined) {
      return;
    }
    for (const media of tile.querySelectorAll("video, audio")) {
      media.srcObject = null;
    }
    tile.remove();
    this.tiles.delete(key);
  }

  _refreshCount() {
    this.container.dataset.count = String(Math.min(this.tiles.size, 5));
    this.container.classList.toggle("empty", this.tiles.size === 0);
  }
}
