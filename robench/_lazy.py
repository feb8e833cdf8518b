"""Package roots that import their public names on first use (PEP 562), so `import robench` needs no torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str],
                 namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose name ``n`` lives in ``package.exports[n]``.

    A name is imported when first used and then kept in ``namespace`` (the package's globals).
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__


def resolve(reference: str) -> Any:
    """The object a ``"package.module:name"`` reference names (a registry's entry imported on first use)."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)
