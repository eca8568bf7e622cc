// The join screen: the room's title and what an invitation grants, the camera preview, the
// microphone and camera pickers, and the messages under the form (a refused join, the countdown
// after too many attempts).

import { listDevices, openLocalMedia } from "./media.js";

const $ = (id) => document.getElementById(id);

/** Why an invitation cannot be used (`reason` of the server's `bad_invite`), in words. */
export const INVITE_REFUSED_TEXT = {
  expired: "This invitation has expired. Please ask for a new one.",
  invalid: "This invitation link is not valid. Please check the link or ask for a new one.",
  wrong_room: "This invitation is for another room. Please check the link.",
  revoked: "This invitation is no longer valid: the room was set up again. Please ask for a new one.",
};

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
    about.refused = {
      code: "bad_invite",
      text: INVITE_REFUSED_TEXT[body.reason] ?? INVITE_REFUSED_TEXT.invalid,
    };
  }
  return about;
}

/** Heads the page with the room's title (its id small underneath) once known. */
export function showRoomName(roomId, room) {
  const title = room?.title || roomId || "(no room)";
  $("room-label").textContent = title;
  $("room-id").textContent = roomId ?? "";
  $("room-id").parentElement.hidden = !roomId || title === roomId;
  document.title = `${title} – ${room?.kind === "lecture" ? "lecture" : "consultation room"}`;
}

/** "You are invited as chair. …": what the invitation grants, and until when. */
export function showInvite(role, expiresAt) {
  const note = $("invite-note");
  note.hidden = role === null;
  if (role === null) {
    return;
  }
  const until =
    expiresAt instanceof Date && !Number.isNaN(expiresAt.getTime())
      ? ` The invitation is valid until ${expiresAt.toLocaleString(undefined, {
          dateStyle: "medium",
          timeStyle: "short",
        })}.`
      : "";
  note.textContent = `You are invited as ${role}.${until}`;
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
  const missing = [mic ? null : "microphone", cam ? null : "camera"].filter(Boolean);
  if (missing.length === 0) {
    $("preview-note").textContent = "";
  } else {
    const reason = errors.length > 0 ? ` (${errors[errors.length - 1].name})` : "";
    $("preview-note").textContent =
      `No ${missing.join(" or ")} available${reason}. You can still join` +
      (missing.length === 2 ? " to watch and listen." : ".");
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
    fillPicker($("mic-select"), devices.audio, mic?.getSettings().deviceId, "No microphone");
    fillPicker($("cam-select"), devices.video, cam?.getSettings().deviceId, "No camera");
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
      showJoinError("You can try again now.");
      return;
    }
    $("join-button").disabled = true;
    showJoinError(`${text} Please wait ${left} s before trying again.`);
    left -= 1;
  };
  tick();
  countdown = setInterval(tick, 1000);
}

/** The join button's label, and whether it can be pressed. */
export function showJoinButton(text, enabled) {
  $("join-button").textContent = text;
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
  $("password-row").querySelector("label").textContent = "Password";
  $("join-verb").textContent = "Watch";
}

/** The camera preview and the device pickers, shown again. */
export function showDeviceFields() {
  $("preview-box").hidden = false;
  $("device-fields").hidden = false;
}
