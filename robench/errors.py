"""User-facing errors: one line that names the problem and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RobenchError(Exception):
    """An error caused by the user's input; the CLI prints it as one line and exits non-zero."""


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> RobenchError:
    """Build the error for an unknown registry name, suggesting the closest valid names."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return RobenchError(f"unknown {kind} '{name}': {hint}choose one of {', '.join(choices)}")
