"""The browser client's files as the pages load them (signaling/web/, no build step).

Each page preloads every module its entry imports, directly or not, so a slow line fetches them
at once; a module added or dropped without its `<link rel="modulepreload">` would quietly cost
round trips again. Every import must name a file that is there (and installed with the package).
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

WEB = Path(str(resources.files("mcu.signaling") / "web"))
IMPORT = re.compile(
    r'^\s*(?:import|export)\b[^;]*?\bfrom "\./([\w.-]+\.js)";', re.MULTILINE | re.DOTALL
)
PRELOAD = re.compile(r'<link rel="modulepreload" href="/static/([\w.-]+\.js)" />')
ENTRY = re.compile(r'<script type="module" src="/static/([\w.-]+\.js)"></script>')


def imports_of(name: str) -> set[str]:
    """Every module `name` imports, directly or through others."""
    found: set[str] = set()
    todo = [name]
    while todo:
        for imported in IMPORT.findall((WEB / todo.pop()).read_text()):
            if imported not in found:
                found.add(imported)
                todo.append(imported)
    found.discard(name)
    return found


@pytest.mark.parametrize("page", ["room.html", "library.html"])
def test_pages_preload_exactly_what_their_entry_imports(page: str) -> None:
    html = (WEB / page).read_text()
    (entry,) = ENTRY.findall(html)
    imported = imports_of(entry)
    assert imported, "the entry imports nothing: the pattern no longer matches the code"
    assert sorted(PRELOAD.findall(html)) == sorted(imported)


def test_every_imported_module_is_there() -> None:
    for module in WEB.glob("*.js"):
        for imported in IMPORT.findall(module.read_text()):
            assert (WEB / imported).is_file(), f"{module.name} imports missing {imported}"


def test_the_library_page_shares_no_module_with_the_room_page() -> None:
    # The library page may move to a folder of its own.
    assert imports_of("library.js").isdisjoint(imports_of("app.js") | {"app.js"})
