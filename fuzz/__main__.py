"""Run every fuzz target (or some) for a time budget and report what each found.

    python -m fuzz --budget 60                 # each target ~60 s (slow ones a share of it)
    python -m fuzz --budget 3 --jobs 2         # two targets at a time (what CI runs)
    python -m fuzz --budget 5 --only rtcp relay  # a few targets, briefly
    python -m fuzz --list                      # the targets and what they cover
    python -m fuzz --minimise                  # fold what the last runs found into fuzz/corpus

Each target runs in its own subprocess (:mod:`fuzz.worker`) under atheris/libFuzzer with
``-max_total_time``, ``-rss_limit_mb`` and a per-input timeout. It reads the kept corpus
(``fuzz/corpus/<target>/``, in the repository) and writes what it discovers to a work folder
(``fuzz/.work/<target>/``, not kept) so the repository corpus only changes by ``--minimise``.
Crashing, leaking and hanging inputs are written to ``fuzz/crashes/<target>/``. The exit status
is 1 if any target found one.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .registry import TARGETS, Target, by_name

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
WORK = HERE / ".work"
CRASHES = HERE / "crashes"
REGRESSIONS = HERE / "regressions"
DICTS = HERE / "dicts"

# libFuzzer's status lines: "#4096 pulse  cov: 173 ft: 269 corp: 62/2441b ... exec/s: 4369".
_STATUS = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/", re.MULTILINE)
_DONE = re.compile(r"^Done (\d+) runs in (\d+) second", re.MULTILINE)
_ARTIFACT = re.compile(r"^(crash|leak|timeout|oom)-")


@dataclass
class Result:
    """What one target's run produced."""

    target: str
    executions: int
    seconds: float
    coverage: int
    features: int
    corpus: int
    findings: list[Path]
    exit_code: int

    @property
    def failed(self) -> bool:
        """A crash, leak, hang or out-of-memory input, or a worker that did not finish cleanly."""
        return bool(self.findings) or self.exit_code != 0


def _artifacts(folder: Path) -> set[Path]:
    if not folder.is_dir():
        return set()
    return {path for path in folder.iterdir() if _ARTIFACT.match(path.name)}


def _worker(target: Target, *flags: str) -> list[str]:
    return [sys.executable, "-m", "fuzz.worker", target.name, *flags]


def run_target(target: Target, budget: float, *, verbose: bool) -> Result:
    """Fuzz one target for its share of ``budget`` seconds."""
    seconds = max(1, round(budget * target.budget_share))
    work = WORK / target.name
    kept = CORPUS / target.name
    crashes = CRASHES / target.name
    for folder in (work, kept, crashes):
        folder.mkdir(parents=True, exist_ok=True)
    before = _artifacts(crashes)
    command = _worker(
        target,
        f"-max_total_time={seconds}",
        f"-rss_limit_mb={target.rss_limit_mb}",
        f"-timeout={target.timeout_s}",
        f"-max_len={target.max_len}",
        f"-artifact_prefix={crashes}/",
        "-print_final_stats=1",
        *_dictionary(target, work.parent),
        str(work),
        str(kept),
    )
    started = time.monotonic()
    # Hard stop well past the budget: a worker stuck outside libFuzzer's own limits.
    limit = seconds + 60 + target.timeout_s
    try:
        completed = subprocess.run(
            command,
            cwd=HERE.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=limit,
            check=False,
        )
        output, exit_code = completed.stdout, completed.returncode
    except subprocess.TimeoutExpired as exc:
        raw = exc.stdout or ""
        output = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        exit_code = -1
    elapsed = time.monotonic() - started
    if verbose or exit_code != 0:
        sys.stdout.write(_tail(output, 60 if exit_code else 20))
    statuses = _STATUS.findall(output)
    done = _DONE.search(output)
    executions = int(done.group(1)) if done else int(statuses[-1][0]) if statuses else 0
    coverage, features, corpus = (int(v) for v in statuses[-1][1:]) if statuses else (0, 0, 0)
    findings = sorted(_artifacts(crashes) - before)
    return Result(target.name, executions, elapsed, coverage, features, corpus, findings, exit_code)


def _dictionary(target: Target, folder: Path) -> list[str]:
    """The ``-dict`` flag for the target's dictionaries (libFuzzer takes one file: joined)."""
    if not target.dictionaries:
        return []
    joined = folder / f"{target.name}.dict"
    joined.write_text(
        "".join((DICTS / name).read_text(encoding="utf-8") for name in target.dictionaries),
        encoding="utf-8",
    )
    return [f"-dict={joined}"]


def _tail(output: str, lines: int) -> str:
    kept = output.splitlines()[-lines:]
    return "".join(f"    | {line}\n" for line in kept)


def minimise(target: Target) -> int:
    """Replace the kept corpus by a minimal one covering it and the work folder; its size."""
    kept = CORPUS / target.name
    work = WORK / target.name
    kept.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{target.name}-") as scratch:
        merged = Path(scratch) / "merged"
        merged.mkdir()
        launcher = Path(scratch) / "worker.sh"
        launcher.write_text(
            f'#!/bin/sh\nexec {shlex.join(_worker(target))} "$@"\n', encoding="utf-8"
        )
        launcher.chmod(0o700)
        subprocess.run(
            _worker(
                target,
                "-merge=1",
                f"-rss_limit_mb={target.rss_limit_mb}",
                f"-timeout={target.timeout_s}",
                f"-max_len={target.max_len}",
                str(merged),
                str(kept),
                str(work),
            ),
            cwd=HERE.parent,
            env={**os.environ, "FUZZ_LAUNCHER": str(launcher)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        seeds = {p.name for p in kept.iterdir() if p.name.startswith("seed-")}
        for path in kept.iterdir():
            if not path.name.startswith("seed-"):
                path.unlink()
        for path in merged.iterdir():
            if path.name not in seeds:
                shutil.copy(path, kept / path.name)
    return sum(1 for _ in kept.iterdir())


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--budget", type=float, default=60.0, help="seconds per target (default 60)"
    )
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these targets")
    parser.add_argument(
        "--jobs", type=int, default=1, help="targets fuzzed at once (default 1; at most cores)"
    )
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    parser.add_argument(
        "--minimise", action="store_true", help="merge the work corpus into fuzz/corpus and exit"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show libFuzzer's output")
    args = parser.parse_args(argv)
    targets = by_name()
    unknown = sorted(set(args.only or ()) - set(targets))
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; see --list")
    chosen = [targets[name] for name in args.only] if args.only else list(TARGETS)
    if args.list:
        for target in chosen:
            print(f"{target.name:18} {target.covers}")
        return 0
    if args.minimise:
        for target in chosen:
            print(f"{target.name}: {minimise(target)} inputs kept", flush=True)
        return 0

    def run(target: Target) -> Result:
        result = run_target(target, args.budget, verbose=args.verbose)
        with report:
            print(f"-- {target.name}", flush=True)
            for finding in result.findings:
                print(f"    finding: {finding.relative_to(HERE.parent)}", flush=True)
        return result

    report = threading.Lock()
    # Each target is its own process: --jobs N runs N at once (one per core at most is useful).
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(run, chosen))
    print(_table(results))
    failed = [result.target for result in results if result.failed]
    if failed:
        print(f"FAILED: {', '.join(failed)} (reproducers in fuzz/crashes/<target>/)")
        return 1
    print(f"no crash in {len(results)} targets")
    return 0


def _table(results: list[Result]) -> str:
    header = (
        f"{'target':18} {'execs':>10} {'exec/s':>8} {'cov':>6} {'ft':>7} {'corpus':>7} "
        f"{'crashes':>7}"
    )
    rows = [header, "-" * len(header)]
    for r in results:
        rate = r.executions / r.seconds if r.seconds else 0.0
        rows.append(
            f"{r.target:18} {r.executions:>10} {rate:>8.0f} {r.coverage:>6} {r.features:>7} "
            f"{r.corpus:>7} {len(r.findings) + (r.exit_code != 0 and not r.findings):>7}"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
