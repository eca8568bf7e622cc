// The join screen: the room's title and what an invitation grants, the camera preview, the
// microphone and camera pickers, and the messages under the form (a refused join, the countdown
// after too many attempts).

import { has, language, onLanguageChange, setText, t } from "./i18n.js";
import { listDevices, openLocalMedia } from "./media.js";

const $ = (id) => document.getElementById(id);

const LOOKUP_TIMEOUT_MS = 15000;

async function getJson(url, headers = {}) {
  try {
    const response = await fetch(url, {
      headers,
      cache: "no-store",
      signal: AbortSignal.timeout(LOOKUP_TIMEOUT_MS),
    });
    return { status: response.status, body: await response.json().catch(() => ({})) };
  } catch {
    return { status: 0, body: {} }; // unreachable or too slow: the page goes on without
  }
}

/**
 * What the server tells anyone holding this link (docs/api.md, "Public room information"):
 * `{room: {id, title, kind} | null, role, expiresAt, refused: {code, text} | null}`. `room` is
 * null and `role` unverified when the server could not say (busy, offline, locked out); then
 * the join itself decides.
 */
export async function lookUpRoom(roomId, invite) {
  const path = `/rooms/${encodeURIComponent(roomId)}`;
  const { status, body } = invite
    ? await getJson(`${path}/invite`, { Authorization: `Bearer ${invite}` })
    : await getJson(path);
  const about = { room: null, role: null, expiresAt: null, refused: null };
  if (status === 200) {
    about.room = invite ? body.room : body;
    about.role = invite ? body.role : null;
    about.expiresAt = invite ? new Date(body.expires_at) : null;
  } else if (status === 404) {
    about.refused = { code: "unknown_room" };
  } else if (status === 403 && body.error === "bad_invite") {
    // Why the invitation cannot be used (`reason`), in words.
    const key = `invite.refused.${body.reason}`;
    about.refused = { code: "bad_invite", text: t(has(key) ? key : "invite.refused.invalid") };
  }
  return about;
}

/** Heads the page with the room's title (its id small underneath) once known. */
export function showRoomName(roomId, room) {
  const title = room?.title || roomId || t("join.no_room_title");
  $("room-label").textContent = title;
  $("room-id").textContent = roomId ?? "";
  $("room-id").parentElement.hidden = !roomId || title === roomId;
  const kind = room?.kind === "lecture" ? "join.title_lecture" : "join.title_meeting";
  setText(document.querySelector("title"), kind, { title });
}

let shownInvite = null;

// The invitation's sentence is built from parts (and a date in the language's format).
onLanguageChange(() => {
  if (shownInvite !== null) {
    showInvite(shownInvite.role, shownInvite.expiresAt);
  }
});

/** "You are invited as chair. …": what the invitation grants, and until when. */
export function showInvite(role, expiresAt) {
  shownInvite = { role, expiresAt };
  const note = $("invite-note");
  note.hidden = role === null;
  if (role === null) {
    return;
  }
  const until =
    expiresAt instanceof Date && !Number.isNaN(expiresAt.getTime())
      ? t("invite.until", {
          time: expiresAt.toLocaleString(language(), { dateStyle: "medium", timeStyle: "short" }),
        })
      : "";
  const key = `invite.as.${role}`;
  // A role newer than this page: the server's word for it.
  const sentence = has(key) ? t(key) : t("invite.as_other", { role });
  note.textContent = until ? `${sentence} ${until}` : sentence;
}

/**
 * Stops `previous` (a MediaStream), opens the chosen devices and shows the preview, saying what
 * is missing. Resolves with `{stream, mic, cam}` (mic and cam: tracks or null).
 */
export async function openPreview(previous, choice = {}) {
  for (const track of previous.getTracks()) {
    track.stop();
  }
  const { stream, errors } = await openLocalMedia(choice);
  const mic = stream.getAudioTracks()[0] ?? null;
  const cam = stream.getVideoTracks()[0] ?? null;
  $("preview").srcObject = cam ? stream : null;
  $("preview-box").classList.toggle("no-video", cam === null);
  if (mic && cam) {
    $("preview-note").textContent = "";
  } else {
    const missing = !mic && !cam ? "both" : mic ? "camera" : "microphone";
    const reason = errors.length > 0 ? errors[errors.length - 1].name : "";
    setText($("preview-note"), `join.no_${missing}${reason ? "_because" : ""}`, { reason });
  }
  return { stream, mic, cam };
}

function fillPicker(select, devices, currentId, noneLabel) {
  select.replaceChildren();
  if (devices.length === 0) {
    select.append(new Option(noneLabel, ""));
    select.disabled = true;
    return;
  }
  select.disabled = false;
  for (const device of devices) {
    select.append(new Option(device.label, device.deviceId, false, device.deviceId === currentId));
  }
}

/** Lists the devices in the pickers, selecting the ones `mic` and `cam` (tracks) come from. */
export async function fillDevicePickers(mic, cam) {
  try {
    const devices = await listDevices();
    fillPicker($("mic-select"), devices.audio, mic?.getSettings().deviceId, t("join.none_mic"));
    fillPicker($("cam-select"), devices.video, cam?.getSettings().deviceId, t("join.none_cam"));
  } catch (error) {
    console.warn("enumerateDevices failed", error);
  }
}

export function showJoinError(text) {
  $("join-error").textContent = text;
}

let countdown = null;

/** Disables the join button for `seconds`, counting down after `text` ("Too many attempts."). */
export function blockJoinFor(seconds, text) {
  clearInterval(countdown);
  let left = Math.max(1, Math.ceil(seconds || 30));
  const tick = () => {
    if (left <= 0) {
      clearInterval(countdown);
      $("join-button").disabled = false;
      showJoinError(t("join.try_again_now"));
      return;
    }
    $("join-button").disabled = true;
    showJoinError(`${text} ${t("join.wait", { seconds: left })}`);
    left -= 1;
  };
  tick();
  countdown = setInterval(tick, 1000);
}

/** The join button's label (a catalogue key), and whether it can be pressed. */
export function showJoinButton(key, enabled) {
  setText($("join-button"), key);
  $("join-button").disabled = !enabled;
}

/** An invitation admits without the room password: no field for it. */
export function hidePassword() {
  $("password-row").hidden = true;
  $("password").required = false;
}

/** The audience's join screen: no camera or microphone prompt, "Watch" rather than "Join". */
export function showWatchOnly() {
  $("preview-box").hidden = true;
  $("device-fields").hidden = true;
  $("join-screen").classList.add("watch-only");
  setText($("password-row").querySelector("label"), "join.password_viewer");
  setText($("join-verb"), "join.watch");
}

/** The camera preview and the device pickers, shown again. */
export function showDeviceFields() {
  $("preview-box").hidden = false;
  $("device-fields").hidden = false;
}
