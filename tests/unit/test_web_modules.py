"""The browser pages' files as they load them (signaling/web/ and library/web/, no build step).

Each page preloads every module its entry imports, directly or not, so a slow line fetches them
at once; a module added or dropped without its `<link rel="modulepreload">` would quietly cost
round trips again. Every import must name a file that is there (and installed with the package).
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from urllib.parse import urljoin

import pytest

WEB = Path(str(resources.files("mcu.signaling") / "web"))
LIBRARY_WEB = Path(str(resources.files("mcu.library") / "web"))
# The URL prefix each folder is served under; the library page also imports the room client's
# shared modules (/static/i18n.js and its catalogues).
SERVED = {"/static/": WEB, "/library/static/": LIBRARY_WEB}
IMPORT = re.compile(
    r'^\s*(?:import|export)\b[^;]*?\bfrom "((?:\./|/static/)[\w./-]+\.js)";',
    re.MULTILINE | re.DOTALL,
)
PRELOAD = re.compile(r'<link rel="modulepreload" href="((?:/library)?/static/[\w./-]+\.js)" />')
ENTRY = re.compile(r'<script type="module" src="((?:/library)?/static/[\w.-]+\.js)"></script>')
PAGES = {"room.html": WEB, "library.html": LIBRARY_WEB}


def file_of(url: str) -> Path:
    """The installed file served at `url`."""
    prefix = max((p for p in SERVED if url.startswith(p)), key=len)
    return SERVED[prefix] / url.removeprefix(prefix)


def imports_of(url: str) -> set[str]:
    """The URL of every module the one at `url` imports, directly or through others."""
    found: set[str] = set()
    todo = [url]
    while todo:
        current = todo.pop()
        for imported in IMPORT.findall(file_of(current).read_text()):
            resolved = urljoin(current, imported)
            if resolved not in found:
                found.add(resolved)
                todo.append(resolved)
    found.discard(url)
    return found


@pytest.mark.parametrize("page", ["room.html", "library.html"])
def test_pages_preload_exactly_what_their_entry_imports(page: str) -> None:
    html = (PAGES[page] / page).read_text()
    (entry,) = ENTRY.findall(html)
    imported = imports_of(entry)
    assert imported, "the entry imports nothing: the pattern no longer matches the code"
    assert any("/" in url.removeprefix("/static/") for url in imports_of("/static/app.js"))
    assert sorted(PRELOAD.findall(html)) == sorted(imported)


@pytest.mark.parametrize("web", [WEB, LIBRARY_WEB], ids=["signaling", "library"])
def test_every_imported_module_is_there(web: Path) -> None:
    modules = list(web.rglob("*.js"))
    assert modules
    prefix = next(p for p, folder in SERVED.items() if folder == web)
    for module in modules:
        url = prefix + module.relative_to(web).as_posix()
        for imported in IMPORT.findall(module.read_text()):
            target = file_of(urljoin(url, imported))
            assert target.is_file(), f"{module.name} imports missing {imported}"
