"""An argument parser whose errors never repeat a value from the command line.

Flags carry secrets (the admin token, API keys): argparse's own messages quote them back, for
example the value after a mistyped ``--admin-tokn``, and error messages end up in terminals'
scrollback, CI logs and service journals.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from typing import NoReturn

__all__ = ["CommandLineError", "QuietArgumentParser"]


class CommandLineError(Exception):
    """A command line was refused; the message names options, never values."""


class QuietArgumentParser(argparse.ArgumentParser):
    """Reports bad flags as :class:`CommandLineError`, naming options but never a value: after
    a mistyped ``--admin-tokn`` comes the token itself."""

    _values: tuple[str, ...] = ()

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """Parse, refusing unknown options by their names only."""
        args = list(sys.argv[1:] if args is None else args)
        # Everything that is not an option name may be a secret: a value, or --flag=value's.
        self._values = tuple(
            value
            for value in (a.partition("=")[2] if a.startswith("-") else a for a in args)
            if value
        )
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            names = [a.partition("=")[0] for a in extras if a.startswith("-")]
            known = [o for action in self._actions for o in action.option_strings]
            hints = [difflib.get_close_matches(name, known, n=1, cutoff=0.75) for name in names]
            said = ", ".join(
                name + (f" (did you mean {hint[0]}?)" if hint else "")
                for name, hint in zip(names, hints, strict=True)
            )
            hidden = len(extras) - len(names)
            parts = [f"unknown option {said}"] if said else []
            if hidden:
                parts.append(f"{hidden} unexpected value{'s' * (hidden != 1)} (not shown)")
            raise CommandLineError("command line: " + "; ".join(parts))
        return parsed

    def error(self, message: str) -> NoReturn:
        for value in sorted(self._values, key=len, reverse=True):
            message = message.replace(value, "<value not shown>")
        raise CommandLineError(f"command line: {message}")
