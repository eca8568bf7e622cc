// The join screen: the camera preview, the microphone and camera pickers, and the messages under
// the form (a refused join, the countdown after too many attempts).

import { listDevices, openLocalMedia } from "./media.js";

const $ = (id) => document.getElementById(id);

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
