"""User-facing errors: one line that names the problem and the fix.

Exit codes of the ``robench`` command (see docs/reference/conventions.md): 0 success; 1 the command was well
formed but its work failed (a missing model, a corrupt record, a file that cannot be written); 2 a usage error,
the command line itself is wrong (an unknown option or name of a choice, a value out of its domain, a device
this machine lacks, options that contradict each other); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class RobenchError(Exception):
    """An error caused by the user's input; the CLI prints it as one line and exits with ``exit_code`` (1)."""

    exit_code = EXIT_FAILED


class UsageError(RobenchError):
    """A value the caller passed is outside what the function takes (exit code 2 on the command line)."""

    exit_code = EXIT_USAGE


class ArgumentError(UsageError, TypeError):
    """A call's arguments do not fit the function's signature: a TypeError to Python, a usage error to the CLI."""


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> RobenchError:
    """Build the error for an unknown registry name, suggesting the closest valid names."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return RobenchError(f"unknown {kind} '{name}': {hint}choose one of {', '.join(choices)}")


def lookup(registry: Mapping[str, T], kind: str, name: str) -> T:
    """``registry[name]``; an unknown name is :func:`unknown_name`'s error."""
    try:
        return registry[name]
    except KeyError:
        raise unknown_name(kind, name, registry) from None
