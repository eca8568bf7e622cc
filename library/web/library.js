// The library page (/library): staff search, play, describe, share, delete and upload recordings
// and courseware through the staff API (docs/library.md). The admin token is kept in
// sessionStorage (library-api.js); the list and the player are library-list.js's and
// library-player.js's. `window.mcuLibrary` exposes the state for tests.

import {
  errorText,
  languageSwitch,
  onLanguageChange,
  t,
  translate,
} from "/static/i18n.js";
import { api as callApi, ApiError, shareUrl, storedToken, storeToken } from "./library-api.js";
import { renderList as drawList } from "./library-list.js";
import { Player } from "./library-player.js";

const $ = (id) => document.getElementById(id);

const PAGE_SIZE = 50;

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

const player = new Player(state, {
  share: (id, ttl) => shareUrl(state.token, id, ttl),
  explain: (error) => explain(error),
});

/** Calls the staff API with the page's token (library-api.js). */
function api(method, path, options) {
  return callApi(state.token, method, path, options);
}

/** Errors the person can act on; a refused token sends them back to sign-in. */
function explain(error) {
  if (error instanceof ApiError && error.status === 401) {
    signOut(t("library.token_expired"));
    return t("library.not_signed_in");
  }
  // The server's code in the page's language; its own (English) words for a code this page lacks.
  return error instanceof ApiError ? errorText(error.code, error.message) : String(error);
}

// ---------------------------------------------------------------- sign-in

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
      error.status === 401 ? t("library.token_refused") : explain(error);
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
  player.close();
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
    status(t("library.dates_reversed"));
    return;
  }
  const offset = append ? state.items.length : 0;
  $("search-button").disabled = true;
  status(t("library.loading"));
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
  drawList(state, {
    play: (id) => {
      const item = itemById(id);
      if (item !== null) {
        player.play(item);
      }
    },
    edit: (id) => openEdit(id),
    share: (id) => openShare(id),
    remove: (id) => removeItem(id),
  });
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
    $("edit-error").textContent = t("library.title_required");
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
    status(t("library.saved", { title: updated.title }), false);
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
  $("share-title").textContent = t("library.share_title", { title: item.title });
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
    const { url } = await shareUrl(state.token, id, Number($("share-ttl").value));
    $("share-url").value = url;
    $("share-url").select();
    $("share-note").textContent = t((await copy(url)) ? "library.copied" : "library.copy_yourself");
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
  if (item === null || !confirm(t("library.delete_confirm", { title: item.title }))) {
    return;
  }
  try {
    await api("DELETE", `/api/library/${encodeURIComponent(id)}`);
  } catch (error) {
    status(explain(error)); // "recording": still being recorded, stop it first
    return;
  }
  if (state.playing === id) {
    player.close();
  }
  state.items = state.items.filter((other) => other.id !== id);
  state.total = Math.max(0, state.total - 1);
  renderList();
  status(t("library.deleted", { title: item.title }), false);
}

// ---------------------------------------------------------------- upload

function upload(event) {
  event.preventDefault();
  const file = $("upload-file").files[0];
  const title = $("upload-title").value.trim();
  const error = $("upload-error");
  error.textContent = "";
  if (!file) {
    error.textContent = t("library.choose_file");
    $("upload-file").focus();
    return;
  }
  if (!title) {
    error.textContent = t("library.title_required");
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
      status(t("library.uploaded", { title: request.response.title }), false);
      search();
      return;
    }
    if (request.status === 401) {
      signOut(t("library.token_expired"));
      return;
    }
    const body = request.response;
    error.textContent = body?.error
      ? errorText(body.error, body.message)
      : t("library.upload_failed", { status: request.status });
  });
  request.addEventListener("error", () => {
    done();
    error.textContent = t("library.upload_interrupted");
  });
  progress.value = 0;
  progress.hidden = false;
  $("upload-submit").disabled = true;
  request.send(file);
}

// ---------------------------------------------------------------- start

function main() {
  translate();
  languageSwitch($("lang-switch"));
  onLanguageChange(() => renderList());
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    if (!token) {
      $("token-error").textContent = t("library.need_token");
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
    $("token-submit").disabled = false;
    $("token").focus();
  }
}

main();
