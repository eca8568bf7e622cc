// The room page's part of an end-to-end encrypted room (docs/e2ee.md): reading the key from the
// link's fragment or asking for the shared passphrase, turning on the frame transforms
// (e2ee.js) before any connection exists, and the "End-to-end encrypted" badges.

import { t } from "./i18n.js";
import { canEncrypt, FrameProtection, fragmentKey, importRoomKey, passphraseKey } from "./e2ee.js";
import { framesProtection, protectFrames } from "./media.js";
import { notice } from "./room-view.js";

const $ = (id) => document.getElementById(id);

/** Whether the room (as the join page learnt it) is end-to-end encrypted. */
let roomIsE2ee = false;
/** The key read from the fragment, until the join turns it into the page's protection. */
let fragment = null;

/**
 * Prepares the join screen for `room` (`GET /rooms/{id}`'s answer, or null when the server
 * could not say). Resolves with null, or with why this page cannot join it: `{code, text}`.
 */
export async function prepareE2ee(room) {
  roomIsE2ee = room?.e2ee === true;
  if (!roomIsE2ee) {
    return null;
  }
  if (!canEncrypt()) {
    return { code: "e2ee_unsupported", text: t("e2ee.unsupported") };
  }
  const found = fragmentKey(location.hash);
  if (found.invalid) {
    return { code: "e2ee_bad_key", text: t("e2ee.bad_key") };
  }
  $("e2ee-note").hidden = false;
  if (found.raw !== null) {
    fragment = await importRoomKey(found.raw);
  } else {
    // No key in the link: the participants share a passphrase instead.
    $("e2ee-row").hidden = false;
    $("e2ee-passphrase").required = true;
  }
  return null;
}

/**
 * Before the join: in an end-to-end encrypted room, the key is made (a passphrase is stretched
 * here, which takes a moment) and every connection of the page will encrypt with it. Resolves
 * with the fields the `join` message adds (`{e2ee: true}`), or `{error}` (a text) when the
 * passphrase is missing.
 */
export async function e2eeJoinFields(roomId) {
  if (!roomIsE2ee) {
    return {};
  }
  if (framesProtection() === null) {
    let key = fragment;
    let source = "fragment";
    if (key === null) {
      const passphrase = $("e2ee-passphrase").value;
      if (!passphrase) {
        $("e2ee-passphrase").focus();
        return { error: t("e2ee.need_passphrase") };
      }
      key = await passphraseKey(passphrase, roomId);
      source = "passphrase";
    }
    const protection = new FrameProtection(key, source);
    protection.onUndecryptable = () => notice(t("e2ee.undecryptable"));
    protectFrames(protection);
  }
  return { e2ee: true };
}

/** The room screen's badge, from `joined.room.e2ee`. */
export function showE2eeBadge(joined) {
  $("e2ee-badge").hidden = joined.room?.e2ee !== true;
}

/** `window.mcu.e2ee`: `{keySource, encrypted, decrypted, failed}`, or null in another room. */
export function e2eeStatus() {
  const protection = framesProtection();
  return protection === null ? null : { keySource: protection.keySource, ...protection.counts };
}
