"""The browser pages' files as they load them (signaling/web/ and library/web/, no build step).

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
LIBRARY_WEB = Path(str(resources.files("mcu.library") / "web"))
IMPORT = re.compile(
    r'^\s*(?:import|export)\b[^;]*?\bfrom "\./([\w.-]+\.js)";', re.MULTILINE | re.DOTALL
)
PRELOAD = re.compile(r'<link rel="modulepreload" href="(?:/library)?/static/([\w.-]+\.js)" />')
ENTRY = re.compile(r'<script type="module" src="(?:/library)?/static/([\w.-]+\.js)"></script>')
PAGES = {"room.html": WEB, "library.html": LIBRARY_WEB}


def imports_of(name: str, web: Path = WEB) -> set[str]:
    """Every module `name` (in `web`) imports, directly or through others."""
    found: set[str] = set()
    todo = [name]
    while todo:
        for imported in IMPORT.findall((web / todo.pop()).read_text()):
            if imported not in found:
                found.add(imported)
                todo.append(imported)
    found.discard(name)
    return found


@pytest.mark.parametrize("page", ["room.html", "library.html"])
def test_pages_preload_exactly_what_their_entry_imports(page: str) -> None:
    html = (PAGES[page] / page).read_text()
    (entry,) = ENTRY.findall(html)
    imported = imports_of(entry, PAGES[page])
    assert imported, "the entry imports nothing: the pattern no longer matches the code"
    assert sorted(PRELOAD.findall(html)) == sorted(imported)


@pytest.mark.parametrize("web", [WEB, LIBRARY_WEB], ids=["signaling", "library"])
def test_every_imported_module_is_there(web: Path) -> None:
    modules = list(web.glob("*.js"))
    assert modules
    for module in modules:
        for imported in IMPORT.findall(module.read_text()):
            assert (web / imported).is_file(), f"{module.name} imports missing {imported}"
