"""``mcu audit verify --data-dir DIR``: check every worker's audit chain and name the first
entry that was altered, removed or reordered. Exit status 0: intact; 1: a chain is broken;
2: nothing to check or a usage error. Safe to run beside a live server (it only reads)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mcu.infra.auditfiles import AUDIT_DIRNAME, chain_dirs, verify_chain

__all__ = ["audit_main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcu audit", description="Work with the audit trail (docs/audit.md)."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    verify = commands.add_parser(
        "verify",
        help="check every worker's hash chain; name the first altered entry",
        description="Check every worker's hash chain under DIR/audit and name the first entry "
        "that was altered, removed or reordered (exit status 1).",
    )
    verify.add_argument(
        "--data-dir",
        metavar="DIR",
        default="data",
        help="the server's data directory (default ./data)",
    )
    return parser


def audit_main(argv: list[str]) -> int:
    """Run ``mcu audit ...`` with ``argv`` (the words after ``audit``); the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed
        return 0 if exc.code in (0, None) else 2
    audit_dir = Path(args.data_dir) / AUDIT_DIRNAME
    chains = chain_dirs(audit_dir)
    if not chains:
        print(f"mcu audit: no audit trail in {audit_dir}", file=sys.stderr)
        return 2
    broken = 0
    for chain in chains:
        report = verify_chain(chain)
        if report.problem is None:
            print(f"{chain.path.name}: ok, {report.entries} entries, head {report.head}")
        else:
            broken += 1
            print(f"{chain.path.name}: ALTERED: {report.problem}")
            print(f"  {report.entries} entries before it are intact (up to hash {report.head})")
    return 1 if broken else 0
