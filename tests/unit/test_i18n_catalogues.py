"""The pages' message catalogues (signaling/web/i18n/, docs/languages.md) against the code.

A text missing from a catalogue would show its key, or English on a Chinese page; these tests
fail first: every catalogue has exactly the English one's keys, every key the pages' scripts and
HTML name is in them, every error code the server sends a person has words, and no English is
left in the HTML outside the `data-i18n` marks.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest

WEB = Path(str(resources.files("mcu.signaling") / "web"))
LIBRARY_WEB = Path(str(resources.files("mcu.library") / "web"))
SIGNALING = Path(str(resources.files("mcu.signaling")))
CATALOGUES = WEB / "i18n"
LANGUAGES = sorted(p.stem for p in CATALOGUES.glob("*.js"))
SCRIPTS = sorted([*WEB.glob("*.js"), *LIBRARY_WEB.glob("*.js")])
PAGES = [WEB / "room.html", LIBRARY_WEB / "library.html"]
ATTRIBUTES = ("aria-label", "alt", "title", "placeholder")
CJK = re.compile(r"[\u4e00-\u9fff]")


def catalogue(language: str) -> dict[str, str]:
    """A catalogue module's object: plain JSON after `export default`."""
    text = (CATALOGUES / f"{language}.js").read_text()
    body = text.split("export default ", 1)[1].rstrip().removesuffix(";")
    loaded = json.loads(body)
    assert isinstance(loaded, dict)
    return loaded


ENGLISH = catalogue("en")
PREFIXES = sorted({key.split(".", 1)[0] for key in ENGLISH})
# A string literal that names a catalogue key ("join.name"), or starts one built at run time
# (`invite.as.${role}`, `library.status.${value}`).
KEY_LITERAL = re.compile(rf'"((?:{"|".join(PREFIXES)})\.[\w.-]+)"')
KEY_TEMPLATE = re.compile(rf"`((?:{'|'.join(PREFIXES)})\.[\w.-]*)\$\{{")
PLURAL = re.compile(r'\b(?:tn|pluralKey)\(\s*"([\w.-]+)"')


def test_languages_are_english_and_chinese() -> None:
    assert LANGUAGES == ["en", "zh-CN"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_catalogue_has_exactly_the_english_keys(language: str) -> None:
    other = catalogue(language)
    assert sorted(set(ENGLISH) - set(other)) == [], f"missing from {language}"
    assert sorted(set(other) - set(ENGLISH)) == [], f"only in {language}"
    for key, text in other.items():
        assert text.strip(), f"{language}: {key} is empty"
        # A placeholder the code fills must be in every translation, and no other.
        assert set(re.findall(r"\{(\w+)\}", text)) == set(re.findall(r"\{(\w+)\}", ENGLISH[key])), (
            f"{language}: {key} has other placeholders than English"
        )


def test_chinese_is_chinese() -> None:
    chinese = catalogue("zh-CN")
    untranslated = [
        key
        for key, text in chinese.items()
        if not CJK.search(text) and re.search(r"[A-Za-z]{3,}", re.sub(r"\{\w+\}", "", text))
    ]
    # Technical names stay as they are (PDF, HTTP, Mbit/s); anything else is left in English.
    allowed = {"language.name", "whep.refused", "view.high", "view.medium", "view.low"}
    assert sorted(set(untranslated) - allowed) == []
    assert chinese["invite.as.chair"] == "您受邀以主持人身份加入。"
    assert "参与者" in chinese["invite.as.participant"]
    assert "观众" in chinese["invite.as.viewer"]


def keys_used_by_scripts() -> tuple[set[str], set[str]]:
    """(keys the scripts name in full, prefixes of the keys they build at run time)."""
    named: set[str] = set()
    built: set[str] = set()
    for script in SCRIPTS:
        code = script.read_text()
        plural = set(PLURAL.findall(code))
        for key in KEY_LITERAL.findall(code):
            if key in plural:
                named.update({f"{key}.one", f"{key}.other"})
            else:
                named.add(key)
        built.update(KEY_TEMPLATE.findall(code))
    return named, built


def test_every_key_the_scripts_name_is_in_the_catalogues() -> None:
    named, built = keys_used_by_scripts()
    assert len(named) > 100, "the pattern no longer finds the scripts' keys"
    assert sorted(named - set(ENGLISH)) == []
    for prefix in built:
        assert any(key.startswith(prefix) for key in ENGLISH), f"nothing in {prefix}*"


def test_the_roles_refusals_and_statuses_built_at_run_time_have_words() -> None:
    for role in ("chair", "participant", "viewer"):
        assert f"invite.as.{role}" in ENGLISH
    # joinpage.py's reasons of a refused invitation (INVITE_REFUSALS).
    for reason in ("expired", "invalid", "wrong_room", "revoked"):
        assert f"invite.refused.{reason}" in ENGLISH
    for status in ("recording", "complete", "failed"):
        assert f"library.status.{status}" in ENGLISH


def test_every_error_code_the_server_sends_has_words() -> None:
    """Refusals of a join, and errors of the socket's requests, are shown by code."""
    codes: set[str] = set()
    pattern = re.compile(r'(?:Refused|ProtocolError)\(\s*"([a-z_]+)"|\bcode\s*=\s*"([a-z_]+)"')
    for module in SIGNALING.rglob("*.py"):
        for match in pattern.finditer(module.read_text()):
            codes.add(match.group(1) or match.group(2))
    assert {"wrong_password", "bad_invite", "floor_busy", "unknown_document"} <= codes
    assert sorted(code for code in codes if f"error.{code}" not in ENGLISH) == []


class _Page(HTMLParser):
    """Collects text and labelling attributes not under a `data-i18n` mark."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict[str, str | None]]] = []
        self.unmarked: list[str] = []
        self.marked: list[tuple[str, str]] = []
        "(key, the English the HTML shows before the scripts run)"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for attribute in ATTRIBUTES:
            value = found.get(attribute)
            if value and re.search(r"[A-Za-z]{2,}", value):
                key = found.get(f"data-i18n-{attribute}")
                if key is None:
                    self.unmarked.append(f"<{tag} {attribute}={value!r}>")
                else:
                    self.marked.append((key, value))
        if tag not in {"input", "link", "meta", "source", "br", "img"}:
            self.stack.append((tag, found))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        text = " ".join(data.split())
        if not re.search(r"[A-Za-z]{2,}", text) or not self.stack:
            return
        tag, attrs = self.stack[-1]
        if tag in {"script", "style"}:
            return
        if any(t == "noscript" for t, _ in self.stack):
            # No script to translate it: it says it in both languages.
            if not CJK.search(text):
                self.unmarked.append(f"<noscript> {text!r} without Chinese")
            return
        key = attrs.get("data-i18n")
        if key is None:
            self.unmarked.append(f"<{tag}> {text!r}")
        else:
            self.marked.append((key, text))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_html_shows_no_english_outside_the_catalogues(page: Path) -> None:
    parsed = _Page()
    parsed.feed(page.read_text())
    assert parsed.unmarked == []
    assert len(parsed.marked) > 20
    for key, shown in parsed.marked:
        assert key in ENGLISH, f"{page.name}: {key} is in no catalogue"
        # What shows before the scripts run is the catalogue's English.
        assert shown == ENGLISH[key], f"{page.name}: {key}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_page_has_the_language_switch(page: Path) -> None:
    html = page.read_text()
    assert 'id="lang-switch"' in html
    assert re.search(r'src="(?:/library)?/static/[\w-]+\.js"', html)
