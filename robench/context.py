"""Where and how a call runs: the workspace, the data folder, the device, the precision, the DataLoader workers
and the progress callback, as one object, :class:`RunContext`, that every public function takes as ``context=``.

A notebook or a suite makes one context and passes it to each call instead of repeating six keywords::

    ctx = robench.RunContext(workspace="ws", device="cuda:1", precision="bf16")
    record = robench.train("resnet18", keep=0.1, context=ctx)
    adv = robench.attack(record.name, "pgd", context=ctx)
    df = robench.matrix(sets=adv.name, context=ctx)

The six keywords keep working on their own, and beside a context: **a keyword given with a value (not None)
overrides that one field of the context for that call** (``context=ctx, device="cpu"`` runs on the CPU); a field
left None means the function's own default. A function uses the fields it takes (``import_model`` has no
callback, say) and ignores the others. There is no global context: what a call uses is in its arguments.

Nothing here imports torch.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

from robench.checks import check, shown
from robench.errors import ArgumentError, UsageError
from robench.events import Callback

F = TypeVar("F", bound=Callable[..., Any])

FIELDS = ("workspace", "data_dir", "device", "precision", "workers", "callback")
PRECISIONS = ("fp32", "bf16", "fp16")  # autocast dtypes (robench.runtime.precision_dtype)


@dataclass(frozen=True)
class RunContext:
    """Where and how calls run; None in a field means each function's own default.

    ``workspace``: the folder models and sets are saved in (default: ``$ROBENCH_WORKSPACE``, else ``./workspace``);
    ``data_dir``: where datasets are found; ``device``: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` (default: CUDA when
    present); ``precision``: ``fp32``, ``bf16`` or ``fp16`` autocast (default: bf16 for training on CUDA, fp32
    otherwise); ``workers``: DataLoader workers decoding streamed folders (default: from the core count);
    ``callback(kind, payload)``: progress events (:mod:`robench.events`).
    """

    workspace: str | os.PathLike | None = None
    data_dir: str | os.PathLike | None = None
    device: str | None = None
    precision: str | None = None
    workers: int | None = None
    callback: Callback | None = None

    def __post_init__(self) -> None:
        for name in ("device", "workers"):
            check(name, getattr(self, name), f"RunContext.{name}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise UsageError(f"RunContext.precision = {shown(self.precision)}: choose one of {', '.join(PRECISIONS)}")
        if self.callback is not None and not callable(self.callback):
            raise UsageError(f"RunContext.callback = {self.callback!r}: expected a function (kind, payload)")

    def with_keywords(self, **keywords: Any) -> RunContext:
        """This context with every keyword given a value (not None) in place of its field."""
        unknown = sorted(set(keywords) - set(FIELDS))
        if unknown:
            raise ArgumentError(f"RunContext has no field {unknown[0]!r}; its fields are {', '.join(FIELDS)}")
        given = {k: v for k, v in keywords.items() if v is not None}
        return replace(self, **given) if given else self

    def keywords(self) -> dict[str, Any]:
        """The fields that are set (not None), as keywords."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def resolve(context: RunContext | None, **keywords: Any) -> RunContext:
    """The context a call runs in: ``context`` (or an empty one) with the keywords given a value in its place."""
    if context is not None and not isinstance(context, RunContext):
        raise UsageError(f"context = {context!r}: expected a robench.RunContext (or pass the keywords "
                         f"{', '.join(FIELDS)} themselves)")
    return (context or RunContext()).with_keywords(**keywords)


def takes_context(fn: F) -> F:
    """Decorate a public function that takes some of the keywords of :data:`FIELDS`: it also takes ``context``
    (a :class:`RunContext`), whose fields fill in the keywords the call leaves out or gives as None.

    The function itself keeps its keywords (its body sees plain values); its signature, as ``inspect`` and
    :func:`robench.checks.checked` see it, gains ``context``.
    """
    signature = inspect.signature(fn)
    taken = [name for name in FIELDS if name in signature.parameters]
    params = list(signature.parameters.values())
    at = next((i for i, p in enumerate(params) if p.kind is p.VAR_KEYWORD), len(params))
    params.insert(at, inspect.Parameter("context", inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=RunContext | None))

    @functools.wraps(fn)
    def wrapper(*args: Any, context: RunContext | None = None, **kwargs: Any) -> Any:
        if context is None:
            return fn(*args, **kwargs)
        try:
            bound = signature.bind_partial(*args, **kwargs)
        except TypeError as err:
            raise ArgumentError(f"{fn.__name__}(): {err}") from None
        merged = resolve(context, **{name: bound.arguments.get(name) for name in taken})
        bound.arguments.update({name: getattr(merged, name) for name in taken if getattr(merged, name) is not None})
        return fn(*bound.args, **bound.kwargs)

    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**fn.__annotations__, "context": RunContext | None}
    return wrapper  # type: ignore[return-value]
