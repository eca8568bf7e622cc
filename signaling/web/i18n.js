// The pages' languages (docs/languages.md): every text a person reads comes from a catalogue
// (./i18n/<language>.js), looked up by key. The language is, in order: `?lang=` in the address,
// the one chosen with the page's switch (remembered in localStorage), the browser's preferred
// languages (`navigator.languages`, what it sends as Accept-Language), else English.
//
// Static text in the HTML carries `data-i18n="key"` (and `data-i18n-aria-label`, `-alt`,
// `-title`, `-placeholder` for attributes); the English in the HTML is only what shows before the scripts run.
// Text the code sets goes through `t()`, or `setText()` when a later switch must redo it.

import en from "./i18n/en.js";
import zhCN from "./i18n/zh-CN.js";

/** Catalogues by language tag; the first is the fallback for a key another one lacks. */
export const CATALOGUES = { en, "zh-CN": zhCN };

const STORAGE_KEY = "mcu.lang";
const ATTRIBUTES = ["aria-label", "alt", "title", "placeholder"];

/** The supported tag `tag` stands for (`zh`, `zh-Hans-CN` -> `zh-CN`), or null. */
export function supported(tag) {
  if (typeof tag !== "string" || tag === "") {
    return null;
  }
  const lower = tag.toLowerCase();
  const tags = Object.keys(CATALOGUES);
  const exact = tags.find((known) => known.toLowerCase() === lower);
  const primary = lower.split("-")[0];
  return exact ?? tags.find((known) => known.toLowerCase().split("-")[0] === primary) ?? null;
}

/**
 * The page's language from `?lang=` (`query`), the remembered choice (`stored`) and the
 * browser's list (`preferred`, best first): the first one supported, else English. Pure.
 */
export function chooseLanguage(query, stored, preferred) {
  for (const tag of [query, stored, ...(preferred ?? [])]) {
    const found = supported(tag);
    if (found !== null) {
      return found;
    }
  }
  return "en";
}

function remembered() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null; // storage disabled: the browser's languages decide
  }
}

function queryLanguage() {
  return typeof location === "undefined" ? null : new URLSearchParams(location.search).get("lang");
}

let current = chooseLanguage(
  queryLanguage(),
  remembered(),
  typeof navigator === "undefined" ? [] : navigator.languages,
);
const listeners = [];

/** The page's language tag ("en", "zh-CN"). */
export function language() {
  return current;
}

/**
 * The text of `key` in the page's language, `{name}` replaced by `params.name`. A key missing
 * from the language falls back to English, then to the key itself (the catalogue test keeps
 * both from happening).
 */
export function t(key, params = {}) {
  const text = CATALOGUES[current][key] ?? CATALOGUES.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** `key.one` or `key.other`, as the page's language counts `count`. */
export function pluralKey(key, count) {
  return `${key}.${new Intl.PluralRules(current).select(count) === "one" ? "one" : "other"}`;
}

/** `t` of `pluralKey(key, count)`, with `{count}`. */
export function tn(key, count, params = {}) {
  return t(pluralKey(key, count), { ...params, count });
}

/** Whether the catalogues know `key`. */
export function has(key) {
  return key in CATALOGUES.en;
}

/**
 * What to tell the person about an error the server sent with `code` (the `code` of a
 * WebSocket `error`, an HTTP error body's `error`): the catalogue's `error.<code>`, else the
 * server's own (English) `fallback`, so a code newer than this page still says something.
 */
export function errorText(code, fallback) {
  const key = `error.${code}`;
  return has(key) ? t(key) : (fallback ?? code ?? t("error.internal"));
}

/** Sets `element`'s text to `t(key, params)`, and keeps the key so a switch redoes it. */
export function setText(element, key, params = {}) {
  element.dataset.i18n = key;
  element.dataset.i18nArgs = JSON.stringify(params);
  element.textContent = t(key, params);
}

/** Empties `element`, which a switch then leaves empty. */
export function clearText(element) {
  delete element.dataset.i18n;
  delete element.dataset.i18nArgs;
  element.textContent = "";
}

/** Sets `element`'s `attribute` (aria-label, alt, title) likewise. */
export function setAttributeText(element, attribute, key, params = {}) {
  element.setAttribute(`data-i18n-${attribute}`, key);
  element.setAttribute(`data-i18n-${attribute}-args`, JSON.stringify(params));
  element.setAttribute(attribute, t(key, params));
}

function args(element, name) {
  try {
    return JSON.parse(element.getAttribute(name) ?? "{}");
  } catch {
    return {};
  }
}

/** Puts every marked text and attribute under `root` into the page's language. */
export function translate(root = document) {
  for (const element of root.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n, args(element, "data-i18n-args"));
  }
  for (const attribute of ATTRIBUTES) {
    for (const element of root.querySelectorAll(`[data-i18n-${attribute}]`)) {
      const key = element.getAttribute(`data-i18n-${attribute}`);
      element.setAttribute(attribute, t(key, args(element, `data-i18n-${attribute}-args`)));
    }
  }
  document.documentElement.lang = current;
}

/** Calls `listener(language)` after every switch (for text not kept by `setText`). */
export function onLanguageChange(listener) {
  listeners.push(listener);
}

/** Switches the page to `tag`, remembers it and redraws; a `?lang=` in the address follows. */
export function setLanguage(tag) {
  const found = supported(tag);
  if (found === null || found === current) {
    return;
  }
  current = found;
  try {
    localStorage.setItem(STORAGE_KEY, found);
  } catch {
    // Storage disabled: the choice lasts until the page is left.
  }
  const url = new URL(location.href);
  if (url.searchParams.has("lang")) {
    url.searchParams.set("lang", found); // else the address would undo the choice on reload
    history.replaceState(history.state, "", url);
  }
  translate();
  for (const listener of listeners) {
    listener(found);
  }
}

/**
 * Fills `container` with one button per language, each named in its own language, and marks
 * the current one (`aria-pressed`).
 */
export function languageSwitch(container) {
  const draw = () => {
    container.replaceChildren();
    for (const [tag, catalogue] of Object.entries(CATALOGUES)) {
      const button = document.createElement("button");
      button.type = "button";
      button.lang = tag;
      button.dataset.lang = tag;
      button.textContent = catalogue["language.name"];
      button.setAttribute("aria-pressed", String(tag === current));
      button.addEventListener("click", () => setLanguage(tag));
      container.append(button);
    }
    setAttributeText(container, "aria-label", "language.switch");
  };
  draw();
  onLanguageChange(draw);
}
