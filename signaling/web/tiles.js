// The participant grid: one tile per remote participant (plus one per shared content track).

/** Two initials for the placeholder shown when there is no picture. */
function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words[words.length - 1][0] : name.slice(0, 2);
  return letters.toUpperCase();
}

/** Attaches `track` to a media element (or detaches with null), starting playback. */
function attach(element, track, onBlocked) {
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
 * `{id, name, role, speaking, micMuted, camMuted, hasMic, hasCam, micTrack, camTrack, contentTrack}`
 * (the three *Track fields are MediaStreamTracks or null).
 */
export class Grid {
  /**
   * @param container the element holding the tiles
   * @param template a <template> with one `.tile`
   * @param actions `{onChairMute(participantId), onChairRemove(participantId)}`
   */
  constructor(container, template, actions) {
    this.container = container;
    this.template = template;
    this.actions = actions;
    this.isChair = false;
    this.onAudioBlocked = () => {};
    this.tiles = new Map(); // key -> tile element; key is the participant id or "<id>:content"
  }

  setChair(isChair) {
    this.isChair = isChair;
    for (const tile of this.tiles.values()) {
      tile.querySelector(".chair-controls").hidden = !isChair || tile.dataset.content === "1";
    }
  }

  /** Creates or refreshes a participant's tile (and their content tile, if they share any). */
  update(view) {
    const tile = this._tile(view.id, false);
    tile.querySelector(".tile-name").textContent =
      view.role === "chair" ? `${view.name} (chair)` : view.name;
    tile.querySelector(".avatar").textContent = initials(view.name);
    tile.classList.toggle("speaking", Boolean(view.speaking));
    const showVideo = view.camTrack !== null && !view.camMuted;
    tile.classList.toggle("no-video", !showVideo);
    attach(tile.querySelector("video"), showVideo ? view.camTrack : null, () => {});
    attach(tile.querySelector("audio"), view.micTrack, () => this.onAudioBlocked());
    const micOff = !view.hasMic || view.micMuted;
    tile.querySelector(".badge-mic").hidden = !micOff;
    tile.querySelector(".badge-mic").textContent = view.hasMic ? "Microphone off" : "No microphone";
    tile.querySelector(".badge-cam").hidden = !(view.hasCam && view.camMuted);
    const muteButton = tile.querySelector(".chair-mute");
    muteButton.disabled = micOff;
    muteButton.setAttribute("aria-label", `Mute ${view.name}'s microphone`);
    tile.querySelector(".chair-remove").setAttribute("aria-label", `Remove ${view.name}`);

    const contentKey = `${view.id}:content`;
    if (view.contentTrack) {
      const content = this._tile(view.id, true);
      content.querySelector(".tile-name").textContent = `${view.name}: shared content`;
      attach(content.querySelector("video"), view.contentTrack, () => {});
    } else if (this.tiles.has(contentKey)) {
      this._drop(contentKey);
    }
    this._refreshCount();
  }

  remove(participantId) {
    this._drop(participantId);
    this._drop(`${participantId}:content`);
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

  _tile(participantId, isContent) {
    const key = isContent ? `${participantId}:content` : participantId;
    let tile = this.tiles.get(key);
    if (tile === undefined) {
      tile = this.template.content.firstElementChild.cloneNode(true);
      tile.dataset.participant = participantId;
      tile.dataset.content = isContent ? "1" : "0";
      if (isContent) {
        tile.classList.add("content");
        tile.querySelector("audio").remove();
        tile.querySelector(".badges").remove();
      }
      tile.querySelector(".chair-controls").hidden = !this.isChair || isContent;
      tile
        .querySelector(".chair-mute")
        .addEventListener("click", () => this.actions.onChairMute(participantId));
      tile
        .querySelector(".chair-remove")
        .addEventListener("click", () => this.actions.onChairRemove(participantId));
      this.tiles.set(key, tile);
      // Shared content goes first: it is what everyone needs to see.
      if (isContent) {
        this.container.prepend(tile);
      } else {
        this.container.append(tile);
      }
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
    const people = [...this.tiles.values()].filter((t) => t.dataset.content !== "1").length;
    this.container.dataset.count = String(Math.min(people, 5));
    this.container.classList.toggle("empty", this.tiles.size === 0);
  }
}
