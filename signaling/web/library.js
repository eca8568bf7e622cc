// The library page (/library): staff search, play, describe, share, delete and upload recordings
// and courseware through the staff API (docs/library.md). The admin token is kept in
// sessionStorage. A <video> cannot send an Authorization header, so playback goes through a
// short share link made for the purpose. `window.mcuLibrary` exposes the state for tests.

const $ = (id) => document.getElementById(id);

const TOKEN_KEY = "mcu.libraryToken";
const PAGE_SIZE = 50;
/** Lifetime of the share links the page makes for its own player. */
const PLAYER_TTL = 3600;

const state = {
  token: null,
  items: [],
  total: 0,
  query: {},
  departments: new Set(),
  playing: null, // item id in the player
  editing: null, // item id in the edit dialog
  sharing: null, // item id in the share dialog
};
window.mcuLibrary = state;

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// ---------------------------------------------------------------- the staff API

async function api(method, path, { body, query } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== "") {
      url.searchParams.set(name, value);
    }
  }
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "unreachable", "Cannot reach the server. Check your connection.");
  }
  if (response.status === 204) {
    return null;
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(
      response.status,
      data?.error ?? "error",
      data?.message ?? `${response.status} ${response.statusText}`,
    );
  }
  return data;
}

/** Errors the person can act on; a refused token sends them back to sign-in. */
function explain(error) {
  if (error instanceof ApiError && error.status === 401) {
    signOut("The administrator token was refused. Please enter it again.");
    return "Not signed in.";
  }
  return error.message ?? String(error);
}

// ---------------------------------------------------------------- sign-in

function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function storeToken(token) {
  try {
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token);
    } else {
      sessionStorage.removeItem(TOKEN_KEY);
    }
  } catch {
    // Storage disabled: the token lives as long as the page.
  }
}

async function signIn(token) {
  state.token = token;
  $("token-submit").disabled = true;
  $("token-error").textContent = "";
  try {
    await api("GET", "/api/library", { query: { limit: 1 } });
  } catch (error) {
    state.token = null;
    $("token-submit").disabled = false;
    $("token-error").textContent =
      error.status === 401 ? "That token was refused. Please check it." : error.message;
    $("token").select();
    return;
  }
  $("token-submit").disabled = false;
  storeToken(token);
  $("token").value = "";
  $("sign-in").hidden = true;
  $("library").hidden = false;
  $("sign-out").hidden = false;
  document.body.dataset.signedIn = "true";
  await search();
  $("q").focus();
}

function signOut(message = "") {
  state.token = null;
  storeToken(null);
  closePlayer();
  state.items = [];
  $("results-body").replaceChildren();
  $("library").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  document.body.dataset.signedIn = "false";
  $("token-error").textContent = message;
  $("token").focus();
}

// ---------------------------------------------------------------- search and list

function readQuery() {
  return {
    q: $("q").value.trim(),
    department: $("department").value.trim(),
    from: $("from").value,
    to: $("to").value,
  };
}

async function search(append = false) {
  if (!append) {
    state.query = readQuery();
  }
  if (state.query.from && state.query.to && state.query.from > state.query.to) {
    status("“From” is after “To”.");
    return;
  }
  const offset = append ? state.items.length : 0;
  $("search-button").disabled = true;
  status("Loading…");
  try {
    const page = await api("GET", "/api/library", {
      query: { ...state.query, limit: PAGE_SIZE, offset },
    });
    state.items = append ? [...state.items, ...page.items] : page.items;
    state.total = page.total;
    for (const item of page.items) {
      if (item.department) {
        state.departments.add(item.department);
      }
    }
    renderList();
    status("");
  } catch (error) {
    status(explain(error));
  } finally {
    $("search-button").disabled = false;
  }
}

function renderList() {
  const body = $("results-body");
  body.replaceChildren(...state.items.map(row));
  const shown = state.items.length;
  $("results-count").textContent =
    state.total === 0
      ? "Nothing found."
      : shown < state.total
        ? `Showing ${shown} of ${state.total}.`
        : `${state.total} item${state.total === 1 ? "" : "s"}.`;
  $("more").hidden = shown >= state.total;
  $("departments").replaceChildren(
    ...[...state.departments].sort().map((name) => new Option(name)),
  );
}

function cell(label, content, className = "") {
  const td = document.createElement("td");
  td.dataset.label = label;
  if (className) {
    td.className = className;
  }
  td.append(content);
  return td;
}

function button(text, className, onClick, description) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.className = className;
  if (description) {
    b.setAttribute("aria-label", description);
  }
  b.addEventListener("click", onClick);
  return b;
}

function row(item) {
  const tr = document.createElement("tr");
  tr.dataset.id = item.id;
  const title = document.createElement("div");
  const name = document.createElement("strong");
  name.className = "item-title";
  name.textContent = item.title;
  title.append(name);
  const details = [
    item.kind === "upload" ? kindOfUpload(item) : "Recording",
    item.department,
    item.lecturer,
    ...(item.tags ?? []),
  ].filter(Boolean);
  if (details.length > 0) {
    const small = document.createElement("div");
    small.className = "note";
    small.textContent = details.join(" · ");
    title.append(small);
  }
  tr.append(
    cell("Title", title, "col-title"),
    cell("Room", item.room_id ?? "—"),
    cell("Duration", formatDuration(item.duration_s)),
    cell("Date", formatDate(item.recorded_at)),
    cell("Status", statusBadge(item.status)),
  );
  const actions = document.createElement("div");
  actions.className = "actions";
  const what = `“${item.title}”`;
  const playButton = button("Play", "primary play", () => play(item.id), `Play ${what}`);
  playButton.disabled = !item.play_url;
  const remove = button("Delete", "danger delete", () => removeItem(item.id), `Delete ${what}`);
  remove.disabled = item.status === "recording";
  actions.append(
    playButton,
    button("Edit", "edit", () => openEdit(item.id), `Edit ${what}`),
    button("Share link", "share", () => openShare(item.id), `Share link for ${what}`),
    remove,
  );
  tr.append(cell("Actions", actions, "col-actions"));
  return tr;
}

function kindOfUpload(item) {
  const media = item.files?.[0]?.media_type ?? "";
  return media === "application/pdf" ? "PDF" : "Video";
}

function statusBadge(value) {
  const span = document.createElement("span");
  span.className = `status status-${value}`;
  span.textContent =
    { recording: "Recording…", complete: "Complete", failed: "Failed" }[value] ?? value;
  return span;
}

function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) {
    return "—";
  }
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

function formatDate(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime())
    ? iso
    : date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function itemById(id) {
  return state.items.find((item) => item.id === id) ?? null;
}

function replaceItem(updated) {
  state.items = state.items.map((item) => (item.id === updated.id ? updated : item));
  if (updated.department) {
    state.departments.add(updated.department);
  }
  renderList();
}

let statusTimer = null;
function status(text, sticky = true) {
  $("status").textContent = text;
  clearTimeout(statusTimer);
  if (!sticky) {
    statusTimer = setTimeout(() => {
      $("status").textContent = "";
    }, 6000);
  }
}

// ---------------------------------------------------------------- player

async function shareUrl(id, ttl) {
  const share = await api("POST", `/api/library/${encodeURIComponent(id)}/share`, {
    body: { ttl_seconds: ttl },
  });
  return { url: new URL(share.url, location.origin).href, token: share.token };
}

async function play(id) {
  const item = itemById(id);
  if (item === null) {
    return;
  }
  $("player-error").textContent = "";
  $("player-title").textContent = item.title;
  $("player").hidden = false;
  state.playing = id;
  let share;
  try {
    share = await shareUrl(id, PLAYER_TTL);
  } catch (error) {
    $("player-error").textContent = `Cannot play: ${explain(error)}`;
    return;
  }
  if (state.playing !== id) {
    return; // another item was picked meanwhile
  }
  // What play_url serves: the composite, else the first file.
  const first = item.files.find((f) => f.role === "composite") ?? item.files[0] ?? null;
  showFile(item, first, share);
  renderFiles(item, share);
  $("player").scrollIntoView({ block: "start", behavior: "smooth" });
  $("player-title").focus({ preventScroll: true });
}

function fileUrl(file, share) {
  const url = new URL(file.url, location.origin);
  url.searchParams.set("token", share.token);
  return url.href;
}

function showFile(item, file, share) {
  const video = $("player-video");
  const isPdf = file?.media_type === "application/pdf";
  $("player-document").hidden = !isPdf;
  video.hidden = isPdf;
  video.removeAttribute("src");
  video.load();
  if (file === null || file === undefined) {
    $("player-error").textContent = "This item has no files yet.";
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

function renderFiles(item, share) {
  const box = $("player-files");
  const label = box.firstElementChild;
  box.replaceChildren(label);
  box.hidden = item.files.length < 2;
  for (const file of item.files) {
    box.append(
      button(fileLabel(file), "file", () => showFile(item, file, share), `Play ${file.name}`),
    );
  }
}

function fileLabel(file) {
  if (file.role === "composite") {
    return "Everyone (mixed)";
  }
  if (file.role === "slides") {
    return "Slides (PDF)";
  }
  return file.name.replace(/\.mp4$/, "").replace(/^\d+-/, "");
}

function closePlayer() {
  state.playing = null;
  const video = $("player-video");
  video.pause();
  video.removeAttribute("src");
  video.load();
  $("player").hidden = true;
}

function onVideoError() {
  const video = $("player-video");
  if (!video.getAttribute("src")) {
    return;
  }
  const code = video.error?.code;
  $("player-error").textContent =
    code === 4
      ? "This file cannot be played here (not found, not finished yet, or a format the browser lacks)."
      : "Playback failed. Try again.";
}

// ---------------------------------------------------------------- edit, share, delete

function openEdit(id) {
  const item = itemById(id);
  if (item === null) {
    return;
  }
  state.editing = id;
  $("edit-item-title").value = item.title;
  $("edit-department").value = item.department ?? "";
  $("edit-lecturer").value = item.lecturer ?? "";
  $("edit-tags").value = (item.tags ?? []).join(", ");
  $("edit-error").textContent = "";
  $("edit-dialog").showModal();
  $("edit-item-title").focus();
}

function splitTags(text) {
  return text
    .split(",")
    .map((tag) => tag.trim())
    .filter(Boolean);
}

async function saveEdit(event) {
  if (event.submitter?.value !== "save") {
    return; // Cancel closes the dialog
  }
  event.preventDefault();
  const title = $("edit-item-title").value.trim();
  if (!title) {
    $("edit-error").textContent = "A title is required.";
    $("edit-item-title").focus();
    return;
  }
  const body = {
    title,
    department: $("edit-department").value.trim() || null,
    lecturer: $("edit-lecturer").value.trim() || null,
    tags: splitTags($("edit-tags").value),
  };
  $("edit-save").disabled = true;
  try {
    const updated = await api("PATCH", `/api/library/${encodeURIComponent(state.editing)}`, {
      body,
    });
    replaceItem(updated);
    $("edit-dialog").close();
    status(`Saved “${updated.title}”.`, false);
  } catch (error) {
    $("edit-error").textContent = explain(error);
  } finally {
    $("edit-save").disabled = false;
  }
}

function openShare(id) {
  const item = itemById(id);
  if (item === null) {
    return;
  }
  state.sharing = id;
  $("share-title").textContent = `Share link: ${item.title}`;
  $("share-url").value = "";
  $("share-note").textContent = "";
  $("share-dialog").showModal();
  $("share-ttl").focus();
}

async function createShare() {
  const id = state.sharing;
  $("share-create").disabled = true;
  $("share-note").textContent = "";
  try {
    const { url } = await shareUrl(id, Number($("share-ttl").value));
    $("share-url").value = url;
    $("share-url").select();
    $("share-note").textContent = (await copy(url))
      ? "Link copied to the clipboard."
      : "Copy the link above (the browser did not allow copying).";
  } catch (error) {
    $("share-note").textContent = explain(error);
  } finally {
    $("share-create").disabled = false;
  }
}

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    try {
      return document.execCommand("copy");
    } catch {
      return false;
    }
  }
}

async function removeItem(id) {
  const item = itemById(id);
  if (item === null || !confirm(`Delete “${item.title}” and its files? This cannot be undone.`)) {
    return;
  }
  try {
    await api("DELETE", `/api/library/${encodeURIComponent(id)}`);
  } catch (error) {
    status(
      error.code === "recording" ? "It is still being recorded; stop it first." : explain(error),
    );
    return;
  }
  if (state.playing === id) {
    closePlayer();
  }
  state.items = state.items.filter((other) => other.id !== id);
  state.total = Math.max(0, state.total - 1);
  renderList();
  status(`Deleted “${item.title}”.`, false);
}

// ---------------------------------------------------------------- upload

function upload(event) {
  event.preventDefault();
  const file = $("upload-file").files[0];
  const title = $("upload-title").value.trim();
  const error = $("upload-error");
  error.textContent = "";
  if (!file) {
    error.textContent = "Choose an MP4 video or a PDF.";
    $("upload-file").focus();
    return;
  }
  if (!title) {
    error.textContent = "A title is required.";
    $("upload-title").focus();
    return;
  }
  const url = new URL("/api/library", location.origin);
  const query = {
    title,
    department: $("upload-department").value.trim(),
    lecturer: $("upload-lecturer").value.trim(),
    tags: splitTags($("upload-tags").value).join(","),
  };
  for (const [name, value] of Object.entries(query)) {
    if (value) {
      url.searchParams.set(name, value);
    }
  }
  // XMLHttpRequest, not fetch: it reports upload progress (files can be large).
  const request = new XMLHttpRequest();
  const progress = $("upload-progress");
  request.open("POST", url);
  request.setRequestHeader("Authorization", `Bearer ${state.token}`);
  request.responseType = "json";
  request.upload.addEventListener("progress", (e) => {
    if (e.lengthComputable) {
      progress.value = e.loaded / e.total;
    }
  });
  const done = () => {
    progress.hidden = true;
    $("upload-submit").disabled = false;
  };
  request.addEventListener("load", () => {
    done();
    if (request.status === 201) {
      $("upload-form").reset();
      status(`Uploaded “${request.response.title}”.`, false);
      search();
      return;
    }
    if (request.status === 401) {
      signOut("The administrator token was refused. Please enter it again.");
      return;
    }
    error.textContent = request.response?.message ?? `Upload failed (${request.status}).`;
  });
  request.addEventListener("error", () => {
    done();
    error.textContent = "The upload was interrupted. Check your connection and try again.";
  });
  progress.value = 0;
  progress.hidden = false;
  $("upload-submit").disabled = true;
  request.send(file);
}

// ---------------------------------------------------------------- start

function main() {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    if (!token) {
      $("token-error").textContent = "Please enter the administrator token.";
      $("token").focus();
      return;
    }
    signIn(token);
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
  $("search-form").addEventListener("reset", () => setTimeout(() => search(), 0));
  $("more").addEventListener("click", () => search(true));
  $("player-close").addEventListener("click", closePlayer);
  $("player-video").addEventListener("error", onVideoError);
  $("edit-form").addEventListener("submit", saveEdit);
  $("share-create").addEventListener("click", createShare);
  $("upload-form").addEventListener("submit", upload);
  $("upload-file").addEventListener("change", () => {
    const file = $("upload-file").files[0];
    if (file && !$("upload-title").value.trim()) {
      $("upload-title").value = file.name.replace(/\.(mp4|pdf)$/i, "").replace(/[_-]+/g, " ");
    }
  });

  const token = storedToken();
  if (token) {
    signIn(token);
  } else {
    $("token").focus();
  }
}

main();
