"""Runs one target under atheris: ``python -m fuzz.worker NAME [libFuzzer flags] [corpus dirs]``.

The runner (:mod:`fuzz.__main__`) starts one of these per target. The target's module is
imported inside atheris' instrumentation, limited to the prefixes the target names, so coverage
guides the fuzzer through our parsers (and the third-party parser they call) without slowing
every library down.
"""

from __future__ import annotations

import os
import sys
import warnings

import atheris

from .harness import install_logging
from .registry import by_name


def main() -> None:
    """Fuzz the target named by the first argument; the rest goes to libFuzzer."""
    if len(sys.argv) < 2 or sys.argv[1] not in by_name():
        sys.exit(
            f"usage: python -m fuzz.worker NAME [libFuzzer flags]; NAME in {sorted(by_name())}"
        )
    target = by_name()[sys.argv[1]]
    install_logging()
    # Coverage guides the fuzzer through Python bytecode only: fuzz the source of the compiled
    # forwarding path (mcu.infra.native), not its build. tests/unit/test_fuzz_corpus.py replays
    # the corpus on the build the suite runs.
    os.environ["MCU_NATIVE"] = "0"
    # Parsers warn about every oddity of a fuzzed file (pydicom: each bad VR); the output is
    # libFuzzer's, and a warning is not a finding.
    warnings.simplefilter("ignore")
    with atheris.instrument_imports(include=list(target.instrument)):
        function = target.load()
    # libFuzzer's -merge re-runs argv[0]; the runner gives an executable that starts this worker.
    argv0 = os.environ.get("FUZZ_LAUNCHER", sys.argv[0])
    atheris.Setup([argv0, *sys.argv[2:]], function)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
