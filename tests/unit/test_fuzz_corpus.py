"""Every fuzz corpus input and every fixed crash reproducer, replayed through its target.

The targets (``fuzz/targets/``) run here in-process without atheris' instrumentation: a target
returns when the code under test accepted or properly refused the input, and raises otherwise.
``fuzz/regressions/<target>/`` holds the inputs that once crashed; ``fuzz/README.md`` explains
how a reproducer gets there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.registry import TARGETS, Target

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"

# The inputs are malformed on purpose; parsers warning about them (pydicom on every odd
# element) is expected, not news.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _inputs(folder: str, target: Target) -> list[Path]:
    path = FUZZ / folder / target.name
    return sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else []


REGRESSIONS = [
    pytest.param(target, path, id=f"{target.name}/{path.name}")
    for target in TARGETS
    for path in _inputs("regressions", target)
]


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_corpus_replays_without_a_crash(target: Target) -> None:
    inputs = _inputs("corpus", target)
    assert inputs, f"fuzz/corpus/{target.name}/ is empty: run python -m fuzz.seeds"
    run = target.load()
    for path in inputs:
        try:
            run(path.read_bytes())
        except Exception as exc:
            pytest.fail(f"fuzz/corpus/{target.name}/{path.name}: {exc!r}")


@pytest.mark.parametrize(("target", "path"), REGRESSIONS)
def test_fixed_crash_stays_fixed(target: Target, path: Path) -> None:
    target.load()(path.read_bytes())


def test_every_regression_folder_names_a_target() -> None:
    names = {target.name for target in TARGETS}
    folders = (FUZZ / "regressions").iterdir() if (FUZZ / "regressions").is_dir() else []
    assert {folder.name for folder in folders if folder.is_dir()} <= names
