// The library's result list: one table row per item (title and details, room, duration, date,
// status, and the actions), the count line and the department suggestions.

import { has, language, t, tn } from "/static/i18n.js";

const $ = (id) => document.getElementById(id);

/** A button with its click handler and, when given, an accessible description. */
export function button(text, className, onClick, description) {
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

function cell(label, content, className = "") {
  const td = document.createElement("td");
  td.dataset.label = label;
  if (className) {
    td.className = className;
  }
  td.append(content);
  return td;
}

/**
 * Draws the list: `state` is the page's `{items, total, departments}`; `actions`:
 * `{play(id), edit(id), share(id), remove(id)}`.
 */
export function renderList(state, actions) {
  const body = $("results-body");
  body.replaceChildren(...state.items.map((item) => row(item, actions)));
  const shown = state.items.length;
  $("results-count").textContent =
    state.total === 0
      ? t("library.nothing_found")
      : shown < state.total
        ? t("library.showing", { shown, total: state.total })
        : tn("library.items", state.total);
  $("more").hidden = shown >= state.total;
  $("departments").replaceChildren(
    ...[...state.departments].sort().map((name) => new Option(name)),
  );
}

function row(item, actions) {
  const tr = document.createElement("tr");
  tr.dataset.id = item.id;
  const title = document.createElement("div");
  const name = document.createElement("strong");
  name.className = "item-title";
  name.textContent = item.title;
  title.append(name);
  const details = [
    item.kind === "upload" ? kindOfUpload(item) : t("library.kind_recording"),
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
    cell(t("library.col_title"), title, "col-title"),
    cell(t("library.col_room"), item.room_id ?? "—"),
    cell(t("library.col_duration"), formatDuration(item.duration_s)),
    cell(t("library.col_date"), formatDate(item.recorded_at)),
    cell(t("library.col_status"), statusBadge(item.status)),
  );
  const buttons = document.createElement("div");
  buttons.className = "actions";
  const what = { title: item.title };
  const playButton = button(t("library.play"), "primary play", () => actions.play(item.id), t("library.play_label", what));
  playButton.disabled = !item.play_url;
  const remove = button(
    t("library.delete"),
    "danger delete",
    () => actions.remove(item.id),
    t("library.delete_label", what),
  );
  remove.disabled = item.status === "recording";
  buttons.append(
    playButton,
    button(t("library.edit"), "edit", () => actions.edit(item.id), t("library.edit_label", what)),
    button(t("library.share"), "share", () => actions.share(item.id), t("library.share_label", what)),
    remove,
  );
  tr.append(cell(t("library.col_actions"), buttons, "col-actions"));
  return tr;
}

function kindOfUpload(item) {
  const media = item.files?.[0]?.media_type ?? "";
  return media === "application/pdf" ? "PDF" : t("library.kind_video");
}

function statusBadge(value) {
  const span = document.createElement("span");
  span.className = `status status-${value}`;
  const key = `library.status.${value}`;
  span.textContent = has(key) ? t(key) : value;
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
    : date.toLocaleString(language(), { dateStyle: "medium", timeStyle: "short" });
}
