"""The domains of robench's arguments, checked in one place: by the CLI's options, the suite schema and the
library's public functions at their boundary.

A keyword means one thing everywhere (``batch_size`` in Python is ``--batch-size`` on the command line and
``batch_size`` in a suite), so each keyword with a restricted domain is listed once, in :data:`DOMAINS`, with
its kind: a count (an integer >= 1), a natural number (>= 0), a fraction in (0, 1], a probability in [0, 1], a
positive or non-negative finite number, a list of those, a device name, an existing file. :func:`check` raises a
:class:`~robench.errors.UsageError` naming the keyword, the value and what it takes.

Nothing here imports torch: the CLI checks its options before any heavy import. Whether a device exists on this
machine is checked by :func:`robench.runtime.pick_device`, which needs torch.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from robench.errors import ArgumentError, UsageError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Domain:
    """What a keyword takes: ``kind`` (int, float, str or path), bounds, and the words that describe it."""

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    each: bool = False  # a list of such values
    text: str = ""

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not in this domain, else None."""
        if self.each:
            if not isinstance(value, (list, tuple)):
                return f"expected a list, {self.text}"
            if not value:
                return f"expected at least one value, {self.text}"
            return next((f"{shown(v)} in it: {p}" for v in value if (p := _one(self, v))), None)
        return _one(self, value)


def _one(domain: Domain, value: Any) -> str | None:
    if domain.kind == "device":
        return None if isinstance(value, str) and DEVICE.match(value.strip()) else \
            "not a device; use cpu, cuda, cuda:N (e.g. cuda:0) or mps"
    if domain.kind == "file":
        if not isinstance(value, (str, os.PathLike)) or not str(value):
            return "expected a file name"
        path = Path(value)
        if path.is_dir():
            return "is a folder; give the file inside it"
        return None if path.is_file() else "no such file; give the path of an existing file"
    if isinstance(value, str) and domain.kind in ("int", "float"):  # text for a number (--param KEY=VALUE)
        try:
            value = int(value) if domain.kind == "int" else float(value)
        except ValueError:
            return None  # a form the function parses itself (e.g. a fraction, 8/255), checked there
    if domain.kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        return f"expected a whole number ({domain.text})"
    if domain.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number ({domain.text})"
        if not math.isfinite(value):
            return f"expected a finite number ({domain.text})"
    low_bad = domain.low is not None and (value <= domain.low if domain.low_open else value < domain.low)
    high_bad = domain.high is not None and (value >= domain.high if domain.high_open else value > domain.high)
    return f"expected {domain.text}" if low_bad or high_bad else None


COUNT = Domain("int", low=1, text="a whole number >= 1")
NATURAL = Domain("int", low=0, text="a whole number >= 0")
FRACTION = Domain("float", low=0, high=1, low_open=True, text="a number in (0, 1]")
PROBABILITY = Domain("float", low=0, high=1, text="a number in [0, 1]")
BELOW_ONE = Domain("float", low=0, high=1, high_open=True, text="a number in [0, 1)")
POSITIVE = Domain("float", low=0, low_open=True, text="a number > 0")
NONNEGATIVE = Domain("float", low=0, text="a number >= 0")
DEVICE_NAME = Domain("device")
FILE = Domain("file")

# cpu, cuda, cuda:N, mps, xpu, xpu:N, meta: what torch.device accepts that robench runs on
DEVICE = re.compile(r"^(cpu|mps|meta|cuda(:\d+)?|xpu(:\d+)?)$")


def _each(domain: Domain) -> Domain:
    return Domain(domain.kind, domain.low, domain.high, domain.low_open, domain.high_open, True, domain.text)


# keyword -> its domain; the CLI option --a-b is keyword a_b. A keyword not listed here takes any value of its type.
DOMAINS: dict[str, Domain] = {
    **dict.fromkeys(("n", "batch_size", "epochs", "steps", "queries", "width", "widen", "ensemble", "image_size",
                     "samples", "kernel", "dpi", "binary_search_steps", "restarts", "block_size"), COUNT),
    **dict.fromkeys(("seed", "mask_seed", "workers", "min_n", "examples"), NATURAL),
    **dict.fromkeys(("keep", "keep_top", "drop_keep"), FRACTION),
    "diversity": PROBABILITY, "label_smoothing": BELOW_ONE,
    "ci_level": Domain("float", low=0, high=1, low_open=True, high_open=True, text="a number in (0, 1)"),
    **dict.fromkeys(("lr", "upsample", "tolerance"), POSITIVE),
    **dict.fromkeys(("confidence", "decay"), NONNEGATIVE),
    "sigmas": _each(NONNEGATIVE), "ks": _each(COUNT), "seeds": _each(NATURAL), "milestones": _each(NATURAL),
    "strides": _each(COUNT),
    "std": _each(POSITIVE), "mean": _each(PROBABILITY),
    # robench run's Ray resources
    **dict.fromkeys(("num_cpus", "matrix_shards"), COUNT), "cpus_per_step": POSITIVE,
    **dict.fromkeys(("num_gpus", "gpus_per_train", "gpus_per_import", "gpus_per_attack", "gpus_per_matrix",
                     "gpus_per_score"), NONNEGATIVE),
    "device": DEVICE_NAME, "class_map": FILE,
}


def problem(name: str, value: Any) -> str | None:
    """Why ``value`` is not a valid ``name`` (None and keywords without a domain are always valid), else None."""
    domain = DOMAINS.get(name)
    if value is None or domain is None:
        return None
    return domain.problem(value)


def check(name: str, value: Any, label: str | None = None) -> Any:
    """``value`` when it is in the domain of keyword ``name``, else a UsageError naming ``label`` (default:
    the keyword)."""
    why = problem(name, value)
    if why:
        raise UsageError(f"{label or name} = {shown(value)}: {why}")
    return value


def shown(value: Any) -> str:
    """A value as an error message quotes it: text and paths in quotes, numbers and lists as written."""
    return repr(str(value)) if isinstance(value, (str, os.PathLike)) else repr(value)


def numbers(text: str | None, name: str) -> list[int] | list[float] | None:
    """The comma-separated numbers of ``text`` (``"0,0.04"``, ``"150, 250"``) for keyword ``name`` (a list
    domain of :data:`DOMAINS`), checked; None for no text."""
    if text is None:
        return None
    domain = DOMAINS[name]
    if isinstance(text, (list, tuple)):  # already numbers (the Python API)
        return check(name, list(text))
    kind = int if domain.kind == "int" else float
    try:
        values = [kind(v) for v in str(text).replace(" ", "").split(",") if v]
    except ValueError:
        whole = "whole " if kind is int else ""
        raise UsageError(f"{name} = {shown(text)}: expected comma-separated {whole}numbers, e.g. "
                         f"{'2,4,8' if kind is int else '0,0.04,0.08'}") from None
    why = problem(name, values)
    if why:
        raise UsageError(f"{name} = {shown(text)}: {why}")
    return values


def check_all(values: dict[str, Any]) -> None:
    """Check every keyword of ``values`` that has a domain (see :func:`check`)."""
    for name, value in values.items():
        check(name, value)


def checked(fn: F) -> F:
    """Decorate a public function: its arguments (``**kwargs`` included) are checked against :data:`DOMAINS`
    before it runs."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as err:
            raise ArgumentError(f"{fn.__name__}(): {err}") from None
        for name, value in bound.arguments.items():
            kind = signature.parameters[name].kind
            check_all(value if kind is inspect.Parameter.VAR_KEYWORD else {name: value})
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def writable(path: str | os.PathLike, what: str = "--workspace") -> Path:
    """``path`` when it (or, where it does not exist yet, its nearest existing parent) is a folder this process
    can write in; else a RobenchError naming the fix. Nothing is created."""
    from robench.errors import RobenchError

    path = Path(path)
    probe = path
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    if os.path.lexists(probe) and not probe.is_dir():
        raise RobenchError(f"cannot write to {path}: {probe} is not a folder; choose another {what}")
    if not os.access(probe if str(probe) else ".", os.W_OK | os.X_OK):
        raise RobenchError(f"cannot write to {path}: {probe} is not writable; choose a writable {what}")
    return path
