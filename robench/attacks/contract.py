"""The attack contract: one :class:`Attack` protocol that every backend's attacks implement, and what they return.

In the spirit of Foolbox 3's ``Attack.run(model, inputs, criterion, *, epsilon)``: an attack is an object with one
``run`` method that takes the model, a batch and the method's parameters and returns the adversarial batch::

    class Attack(Protocol):
        def run(self, model, images, labels, params) -> AttackOutput: ...

- ``model``: an ``nn.Module`` mapping images (N, C, H, W) float32 in [0, 1] to logits (N, K); normalisation is its
  first layer. Set generation hands it over in eval mode with its weights frozen (``requires_grad`` off), under
  the run's autocast precision.
- ``labels``: (N,) int64, the true labels; for a targeted attack (``params["targeted"]``) the target labels.
- ``params``: the method's resolved parameters (``MethodSpec.defaults`` after checking, plus ``fixed`` and
  ``norm``), floats in [0, 1] pixel units where they are pixel quantities.
- returns an :class:`AttackOutput`: the adversarial images (N, C, H, W) on the input's device (set generation
  casts them to float32 and clips them to [0, 1]) and the typed per-example :class:`Extras`. A bare tensor of
  images is accepted too and read as ``AttackOutput(images)``.

Randomness comes from the global torch, numpy and ``random`` RNGs, which set generation seeds per run. Each method
names its attack per backend in the registry (:func:`robench.attacks.registry.register_method`); a new backend is
one module of such objects (:func:`~robench.attacks.registry.register_backend`, docs: "Writing an attack backend").
Nothing here imports torch at import time: the registry is read without it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch import nn

TYPED = ("queries", "l2_trace", "steps_used", "converged")  # the extras with a field of their own


@dataclass(eq=False)
class Extras(Mapping):
    """Per-example extras of one attack run, each (N, ...) with row i belonging to image i; a set stores the kept
    examples' rows under these names (``AdvSet.extra``). Read them as fields (``extra.queries``) or, as a
    read-only mapping of the extras present, by name (``extra["queries"]``, ``dict(extra)``).

    ``queries`` (N,) int64: model evaluations each example used (query-based attacks: Square, HopSkipJump).
    ``l2_trace`` (N, K) float32: each example's L2 norm at ``convergence.checkpoints(steps)`` (Boundary; NaN rows
    were not attacked). ``steps_used`` (N,) int64 and ``converged`` (N,) bool: the steps each example ran and
    whether it converged (Boundary). ``other``: any further per-example tensors, by name.
    """

    queries: torch.Tensor | None = None
    l2_trace: torch.Tensor | None = None
    steps_used: torch.Tensor | None = None
    converged: torch.Tensor | None = None
    other: dict[str, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def of(cls, values: Extras | Mapping[str, torch.Tensor] | None) -> Extras:
        """Extras from a mapping of name to tensor (the typed names fill their fields, the rest go to ``other``)."""
        if isinstance(values, Extras):
            return values
        values = dict(values or {})
        return cls(**{k: values.pop(k) for k in TYPED if k in values}, other=values)

    def as_dict(self) -> dict[str, torch.Tensor]:
        """Every extra present, by name (the typed ones first, in field order)."""
        typed = {f.name: getattr(self, f.name) for f in fields(self) if f.name in TYPED}
        return {**{k: v for k, v in typed.items() if v is not None}, **self.other}

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.as_dict()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Extras:
        """The same extras with ``fn`` applied to each tensor (``lambda t: t[kept].cpu()``)."""
        return Extras.of({k: fn(v) for k, v in self.as_dict().items()})

    @classmethod
    def cat(cls, parts: list[Extras]) -> Extras:
        """The extras of several batches of one attack, concatenated along the examples (none: empty extras)."""
        import torch

        if not parts:
            return cls()
        return cls.of({k: torch.cat([p.as_dict()[k] for p in parts]) for k in parts[0].as_dict()})


@dataclass
class AttackOutput:
    """What an attack returns: the adversarial images ``adv`` (N, C, H, W) and their per-example ``extra``
    (an :class:`Extras`; a mapping of name to tensor is converted)."""

    adv: torch.Tensor
    extra: Extras = field(default_factory=Extras)

    def __post_init__(self) -> None:
        self.extra = Extras.of(self.extra)

    @classmethod
    def of(cls, result: AttackOutput | torch.Tensor) -> AttackOutput:
        """An attack's result as an AttackOutput (a bare tensor is the images, with no extras)."""
        return result if isinstance(result, AttackOutput) else cls(result)


@runtime_checkable
class Attack(Protocol):
    """One attack method as one backend runs it (see the module docstring for the contract)."""

    def run(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
            params: dict[str, Any]) -> AttackOutput:
        """Adversarial images for ``images`` (N, C, H, W) in [0, 1] and ``labels`` (N,), with their extras."""
        ...
