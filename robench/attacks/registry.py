"""The attack registry: one :class:`MethodSpec` per method, naming its parameters and, per backend, its attack.

Adding a method is one :func:`register_method` call: its parameters with their defaults (pixel units, images in
[0, 1]) and, per backend, the :class:`~robench.attacks.contract.Attack` that runs it. Backends are modules of such
attacks (``art_backend``, ``foolbox_backend``, ``torchattacks_backend``, and ``robench``: the native torch loop of
``torch_backend``, robench's Square Attack and Gaussian noise), each with a ``version()``; a new one is one module
and a :func:`register_backend` call (:func:`register_attack` adds its attack to an existing method). Every attack
has the one contract ``run(model, images, labels, params) -> AttackOutput``; a targeted attack gets the target
labels as ``labels`` and ``params["targeted"] = True``. The registry itself imports neither torch nor an attack
library: an attack may be named (an attribute of its backend's module), resolved when it runs.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from robench.attacks.contract import Attack, Extras
from robench.errors import RobenchError, lookup


@dataclass(frozen=True)
class Backend:
    """An attack library behind one module of :class:`~robench.attacks.contract.Attack` objects, imported on first
    use; the module also offers ``version() -> str`` (recorded with every set)."""

    name: str
    module: str
    description: str = ""

    @property
    def adapter(self) -> Any:
        return importlib.import_module(self.module)

    def version(self) -> str:
        return self.adapter.version()

    def resolve(self, attack: Attack | str) -> Attack:
        """A method's attack on this backend: an Attack as it is, a name looked up in the backend's module."""
        found = getattr(self.adapter, attack) if isinstance(attack, str) else attack
        if not isinstance(found, Attack):
            raise TypeError(f"backend {self.name}: {attack!r} is not an Attack (an object with run(model, images, "
                            f"labels, params))")
        return found


BACKENDS: dict[str, Backend] = {
    "art": Backend("art", "robench.attacks.art_backend", "Adversarial Robustness Toolbox"),
    "foolbox": Backend("foolbox", "robench.attacks.foolbox_backend", "Foolbox 3 (eagerpy, PyTorch)"),
    "robench": Backend("robench", "robench.attacks.torch_backend", "built-in torch loop (no attack library needed)"),
    "torchattacks": Backend("torchattacks", "robench.attacks.torchattacks_backend", "torchattacks"),
}
NORMS = ("linf", "l2")
AUTOATTACK_PARTS = ("apgd-ce", "apgd-t", "fab-t", "square")  # the standard AutoAttack's attacks, in order


@dataclass(frozen=True)
class MethodSpec:
    """One attack method.

    ``defaults`` lists every tunable parameter (floats in [0, 1] pixel units where they are pixel
    quantities); ``fixed`` holds settings recorded with each set but not tunable; ``attacks`` maps backend name
    to the :class:`~robench.attacks.contract.Attack` that runs the method there (or the name of one in the
    backend's module, imported only when the attack runs); ``refused`` explains backends deliberately left out.
    ``norms`` lists the norms ``--norm`` may pick (the first, ``norm``, is the default); ``l2_defaults``
    replace defaults under ``--norm l2`` (there eps and step are L2 norms of the whole perturbation, in [0, 1]
    image units, not per-pixel amounts); ``choices`` the allowed values of string parameters; ``targeted``
    says whether ``--target`` works; ``rgb_only`` names backends that take 3-channel images only.
    """

    name: str
    summary: str
    norm: str
    defaults: dict[str, Any]
    attacks: dict[str, Attack | str]
    default_backend: str
    fixed: dict[str, Any] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    pixel_params: tuple[str, ...] = ()
    name_params: tuple[str, ...] = ()
    norms: tuple[str, ...] = ()
    l2_defaults: dict[str, Any] = field(default_factory=dict)
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    targeted: bool = False
    rgb_only: tuple[str, ...] = ()
    summarise: Callable[[Extras, dict, tuple[int, ...]], dict] | None = None

    @property
    def backends(self) -> tuple[str, ...]:
        return tuple(sorted(self.attacks))

    def attack(self, backend: str) -> Attack:
        """The Attack that runs this method on ``backend`` (see :func:`resolve_backend` for the checked choice)."""
        return BACKENDS[backend].resolve(self.attacks[backend])

    @property
    def supported_norms(self) -> tuple[str, ...]:
        return self.norms or (self.norm,)

    def defaults_for(self, norm: str) -> dict[str, Any]:
        """Every parameter's default under ``norm`` (``l2_defaults`` replace the defaults under l2)."""
        return {**self.defaults, **(self.l2_defaults if norm == "l2" else {})}


_METHODS: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add a method to the registry; a duplicate name is an error."""
    if spec.name in _METHODS:
        raise ValueError(f"attack method '{spec.name}' is already registered")
    if spec.default_backend not in spec.attacks or not set(spec.attacks) <= set(BACKENDS):
        raise ValueError(f"method '{spec.name}': backends must be among {sorted(BACKENDS)} and include the default")
    _METHODS[spec.name] = spec
    return spec


def register_backend(name: str, module: str, description: str = "") -> Backend:
    """Add a backend: ``module`` (a dotted name, imported when an attack runs) holds its attacks and ``version()``.
    A duplicate name is an error."""
    if name in BACKENDS:
        raise ValueError(f"attack backend '{name}' is already registered")
    BACKENDS[name] = Backend(name, module, description)
    return BACKENDS[name]


def register_attack(method: str, backend: str, attack: Attack | str) -> None:
    """Let ``backend`` run the registered ``method`` with ``attack`` (an Attack, or the name of one in the
    backend's module); a backend that already runs the method is an error."""
    spec = method_spec(method)
    lookup(BACKENDS, "backend", backend)
    if backend in spec.attacks:
        raise ValueError(f"backend '{backend}' already runs '{method}'")
    spec.attacks[backend] = attack


def list_methods() -> list[str]:
    """Names of every registered attack method, sorted."""
    return sorted(_METHODS)


def list_backends() -> list[str]:
    return sorted(BACKENDS)


def method_spec(name: str) -> MethodSpec:
    """The registry entry of ``name``; unknown names raise a RobenchError with suggestions."""
    return lookup(_METHODS, "attack method", name)


def resolve_backend(spec: MethodSpec, backend: str | None) -> Backend:
    """The backend to use: the given one if it implements ``spec``, else the method's default."""
    if backend is None:
        return BACKENDS[spec.default_backend]
    chosen = lookup(BACKENDS, "backend", backend)
    if backend not in spec.attacks:
        why = f" ({spec.refused[backend]})" if backend in spec.refused else ""
        raise RobenchError(f"backend {backend} does not implement {spec.name}{why}; "
                           f"use --backend {' or '.join(spec.backends)}")
    return chosen


def check_channels(spec: MethodSpec, backend: Backend, channels: int) -> None:
    """A one-line error when ``backend`` cannot run ``spec`` on images with ``channels`` channels."""
    if backend.name in spec.rgb_only and channels != 3:
        others = [b for b in spec.backends if b not in spec.rgb_only]
        raise RobenchError(f"{backend.name}'s {spec.name} takes 3-channel images only, the source's have {channels}; "
                           f"use --backend {' or '.join(others)}")


# ---------------------------------------------------------------- parameters


def parse_number(value: float | int | str, key: str = "value") -> float:
    """A float from a number or a fraction string: ``16/255`` or ``0.0627``."""
    if isinstance(value, bool):
        raise RobenchError(f"--{_opt(key)} expects a number, got {value}")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise RobenchError(f"--{_opt(key)} expects a number or a fraction like 16/255, got '{value}'") from None


def _opt(key: str) -> str:
    return key.replace("_", "-")


def _as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise RobenchError(f"--{_opt(key)} expects true or false, got '{value}'")


def _as_int(value: Any, key: str) -> int:
    number = parse_number(value, key)
    if not math.isfinite(number) or number != int(number):
        raise RobenchError(f"--{_opt(key)} expects a whole number, got '{value}'")
    return int(number)


# (low, high, low inclusive) per parameter; everything not listed must be >= 0
_RANGES: dict[str, tuple[float, float, bool]] = {
    "eps": (0.0, 1.0, True), "step": (0.0, 1.0, False), "sigma": (0.0, 1.0, True),
    "steps": (1, 100_000, True), "init_directions": (1, 100_000, True), "binary_search_steps": (1, 100, True),
    "initial_const": (0.0, math.inf, False),
    "spherical_step": (0.0, 1.0, False), "source_step": (0.0, 1.0, False),
    "diversity": (0.0, 1.0, True), "resize": (0.0, 1.0, False), "kernel": (1, 63, True), "nsig": (0.0, 10.0, False),
    "samples": (1, 1000, True), "beta": (0.0, 100.0, False), "restarts": (1, 100, True), "queries": (1, 10**7, True),
    "tolerance": (0.0, math.inf, False), "p_init": (0.0, 1.0, False), "gamma": (0.0, math.inf, False),
    "grad_evals": (1, 100_000, True), "max_grad_evals": (1, 1_000_000, True), "settle": (1, 100_000, True),
}


def _check_range(key: str, value: float, spec: MethodSpec, norm: str = "linf") -> None:
    low, high, inclusive = _RANGES.get(key, (0.0, math.inf, True))
    l2 = norm == "l2" and key in spec.pixel_params
    if l2:
        low, high = 0.0, 1e4
    ok = math.isfinite(value) and (value >= low if inclusive else value > low) and value <= high
    if key == "kernel" and ok and int(value) % 2 == 0:
        raise RobenchError(f"--kernel must be an odd size (e.g. 5 or 7) for {spec.name}, got {value:g}")
    if not ok:
        left = "[" if inclusive else "("
        unit = " (pixel units: e.g. 16/255 or 0.0627)" if key in spec.pixel_params else ""
        unit = " (an L2 norm in [0, 1] image units, e.g. 0.5)" if l2 else unit
        raise RobenchError(f"--{_opt(key)} must be in {left}{low:g}, {high:g}] for {spec.name}{unit}, got {value:g}")


def _norm(spec: MethodSpec, value: Any) -> str:
    norm = spec.norm if value is None else str(value).strip().lower()
    if norm not in spec.supported_norms:
        raise RobenchError(f"{spec.name} does not support --norm {norm}: "
                           f"use --norm {' or '.join(spec.supported_norms)}")
    return norm


def resolve_params(spec: MethodSpec, **given: Any) -> dict[str, Any]:
    """Every parameter of ``spec``: the given ones (None = default), converted and checked.

    ``norm`` picks one of ``spec.supported_norms`` (under ``l2``, ``spec.l2_defaults`` replace the defaults).
    """
    norm = _norm(spec, given.pop("norm", None))
    params = spec.defaults_for(norm)
    for key, value in given.items():
        if value is None:
            continue
        if key not in spec.defaults:
            choices = ", ".join(f"--{_opt(k)}" for k in spec.defaults) or "none"
            raise RobenchError(f"{spec.name} takes no --{_opt(key)}: its parameters are {choices}")
        default = spec.defaults[key]
        if isinstance(default, bool):
            params[key] = _as_bool(value, key)
            continue
        if isinstance(default, str):
            params[key] = _as_choice(spec, key, value)
            continue
        number = _as_int(value, key) if isinstance(default, int) else parse_number(value, key)
        _check_range(key, number, spec, norm)
        params[key] = number
    fixed = {**spec.fixed, "norm": norm} if spec.norm != "none" else dict(spec.fixed)
    return {**params, **fixed}


def _as_choice(spec: MethodSpec, key: str, value: Any) -> str:
    """A string parameter: one of ``spec.choices[key]``, or a comma-separated subset when the default is a list."""
    text = str(value).strip().lower()
    allowed = spec.choices.get(key)
    if allowed is None:
        return text
    items = [t.strip() for t in text.split(",")] if "," in spec.defaults[key] else [text]
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        several = " (comma-separated)" if "," in spec.defaults[key] else ""
        raise RobenchError(f"--{_opt(key)} of {spec.name} must be among {', '.join(allowed)}{several}, got '{value}'")
    return ",".join(items)


def _fmt(key: str, value: Any, spec: MethodSpec, linf: bool = True) -> str:
    if isinstance(value, bool):
        return "" if value else "no"
    if isinstance(value, str):
        return value.replace(",", "+")
    if key in spec.pixel_params and linf:
        return f"{round(value * 255, 2):g}"
    return f"{value:g}"


_SHORT = {"queries": "q", "tolerance": "tol",
          "random_start": "rs", "confidence": "conf", "binary_search_steps": "bss", "initial_const": "c",
          "spherical_step": "sph", "source_step": "src", "init_directions": "dirs"}


def name_suffix(spec: MethodSpec, params: dict[str, Any]) -> str:
    """``method-eps16`` plus the parameters that differ from their defaults, for default set names.

    Under ``--norm l2`` the name says so and eps is the L2 norm itself: ``pgd-l2-eps0.5``.
    """
    norm = params.get("norm", spec.norm)
    linf = norm != "l2"
    defaults = spec.defaults_for(norm)
    parts = [spec.name] + ([] if linf or spec.norm == "l2" else ["l2"])
    parts += [f"{_SHORT.get(k, k)}{_fmt(k, params[k], spec, linf)}" for k in spec.name_params]
    for key, default in defaults.items():
        if key not in spec.name_params and params[key] != default:
            parts.append(f"{_SHORT.get(key, key)}{_fmt(key, params[key], spec, linf)}")
    return "-".join(parts)


# ---------------------------------------------------------------- the methods

_LINF = {"norm": "linf", "targeted": False}
_TRANSFER = {"eps": 16 / 255, "step": 1 / 255, "steps": 20}
_DI = {"diversity": 0.5, "resize": 0.9}
_TI = {"kernel": 7, "nsig": 3.0}
_L2 = {"eps": 0.5, "step": 0.05}  # RobustBench's CIFAR-10 L2 budget; eps and step are L2 norms in image units


register_method(MethodSpec(
    "fgsm", "Fast gradient sign method (one signed-gradient step of size eps); --norm l2 gives FGM "
            "(one L2-normalised step)", "linf",
    defaults={"eps": 16 / 255}, fixed=_LINF, pixel_params=("eps",), name_params=("eps",), norms=NORMS,
    l2_defaults={"eps": 0.5}, targeted=True,
    attacks={"foolbox": "fgsm", "art": "fgsm", "robench": "fgsm"},
    default_backend="robench",
))
register_method(MethodSpec(
    "pgd", "Basic iterative method / PGD (Linf, or --norm l2); no random start unless --random-start", "linf",
    defaults={"eps": 16 / 255, "step": 1 / 255, "steps": 20, "random_start": False}, fixed=_LINF,
    pixel_params=("eps", "step"), name_params=("eps",), norms=NORMS, l2_defaults=_L2, targeted=True,
    attacks={"foolbox": "pgd", "art": "pgd", "robench": "pgd"},
    default_backend="robench",
))
register_method(MethodSpec(
    "mifgsm", "Momentum iterative FGSM (Dong et al.: L1-normalised gradients accumulated), Linf; --decay is "
              "the momentum", "linf",
    defaults={**_TRANSFER, "decay": 1.0}, fixed=_LINF, pixel_params=("eps", "step"), name_params=("eps",),
    targeted=True,
    attacks={"art": "mifgsm", "foolbox": "mifgsm", "robench": "mifgsm"},
    default_backend="robench",
))
register_method(MethodSpec(
    "difgsm", "Input diversity (DI2-FGSM, Xie et al.): each step's gradient through a randomly shrunk and padded "
              "copy (probability --diversity, size in [--resize, 1) of the image); --decay 1 gives M-DI2-FGSM",
    "linf", defaults={**_TRANSFER, "decay": 0.0, **_DI}, fixed=_LINF, pixel_params=("eps", "step"),
    name_params=("eps",), targeted=True,
    attacks={"robench": "difgsm", "torchattacks": "difgsm"},
    default_backend="robench",
))
register_method(MethodSpec(
    "tifgsm", "Translation-invariant FGSM (Dong et al. 2019): each step's gradient smoothed with a --kernel x "
              "--kernel Gaussian (over +-nsig sigmas)", "linf",
    defaults={**_TRANSFER, "decay": 0.0, **_TI}, fixed=_LINF, pixel_params=("eps", "step"), name_params=("eps",),
    targeted=True,
    attacks={"robench": "tifgsm", "torchattacks": "tifgsm"},
    default_backend="robench", rgb_only=("torchattacks",),
))
register_method(MethodSpec(
    "vmifgsm", "Variance-tuned MI-FGSM (Wang & He): the gradient corrected by the mean gradient of --samples "
               "neighbours within --beta * eps", "linf",
    defaults={**_TRANSFER, "decay": 1.0, "samples": 20, "beta": 1.5}, fixed=_LINF, pixel_params=("eps", "step"),
    name_params=("eps",), targeted=True,
    attacks={"robench": "vmifgsm", "torchattacks": "vmifgsm"},
    default_backend="robench",
))
register_method(MethodSpec(
    "mdti", "The usual combination M-DI2-TI-FGSM: momentum, input diversity and translation invariance together",
    "linf", defaults={**_TRANSFER, "decay": 1.0, **_DI, **_TI}, fixed=_LINF, pixel_params=("eps", "step"),
    name_params=("eps",), targeted=True,
    attacks={"robench": "mdti", "torchattacks": "mdti"},
    default_backend="robench", rgb_only=("torchattacks",),
))
register_method(MethodSpec(
    "cw", "Carlini-Wagner L2 (minimises the L2 norm); --step is the optimiser's learning rate", "l2",
    defaults={"confidence": 0.0, "steps": 100, "binary_search_steps": 5, "step": 0.01, "initial_const": 0.01},
    fixed={"norm": "l2", "targeted": False}, targeted=True,
    attacks={"foolbox": "cw", "art": "cw"}, default_backend="foolbox",
))
register_method(MethodSpec(
    "apgd", "Auto-PGD (Croce & Hein): step size adapted per example, --loss ce (APGD-CE) or dlr (APGD-DLR); "
            "Linf or --norm l2", "linf",
    defaults={"eps": 8 / 255, "steps": 100, "loss": "ce", "restarts": 1}, fixed=_LINF, pixel_params=("eps",),
    name_params=("eps",), norms=NORMS, l2_defaults={"eps": 0.5}, choices={"loss": ("ce", "dlr")},
    attacks={"torchattacks": "apgd", "art": "apgd"}, default_backend="torchattacks",
))
register_method(MethodSpec(
    "autoattack", "AutoAttack, standard version (RobustBench): APGD-CE, APGD-T, FAB-T and Square, each on the "
                  "inputs the earlier ones left; --attacks picks a subset, --steps and --queries shorten it", "linf",
    defaults={"eps": 8 / 255, "steps": 100, "queries": 5000,
              "attacks": ",".join(AUTOATTACK_PARTS)},
    fixed=_LINF, pixel_params=("eps",), name_params=("eps",), norms=NORMS, l2_defaults={"eps": 0.5},
    choices={"attacks": AUTOATTACK_PARTS},
    attacks={"torchattacks": "autoattack"}, default_backend="torchattacks",
    refused={"art": "ART's AutoAttack is not the standard version (no APGD-T or FAB-T)",
             "foolbox": "Foolbox has no AutoAttack"},
))
def _boundary_stats(extra: Extras, params: dict, shape: tuple[int, ...]) -> dict:
    """The score's median at every doubling of steps over the kept examples, and whether it converged; the steps
    the kept examples ran (median, mean, max, of the cap) and how many converged."""
    import numpy as np
    import torch

    from robench.attacks.convergence import SETTLED, checkpoints, trace

    steps = checkpoints(params["steps"])
    l2 = extra.l2_trace if extra.l2_trace is not None else torch.empty(0, len(steps))
    stats = {"trace": trace(l2.cpu(), steps, math.prod(shape), params["tolerance"],
                            params.get("settle", SETTLED)).to_json()}
    used = extra.steps_used
    if used is not None:
        used, converged = used.cpu().double().numpy(), extra.converged.cpu().numpy().astype(bool)
        summary = {"over": "kept examples", "n": len(used), "cap": params["steps"],
                   "early_stop": bool(params.get("early_stop")), "converged": int(converged.sum())}
        if len(used):
            summary.update(median=float(np.median(used)), mean=float(used.mean()), max=int(used.max()))
        stats["steps_used"] = summary
    return stats


def _query_stats(extra: Extras, params: dict, shape: tuple[int, ...]) -> dict:
    """Median (and mean, max) of the queries the kept examples used."""
    import numpy as np
    import torch

    q = (extra.queries if extra.queries is not None else torch.empty(0)).double().cpu().numpy()
    summary = {"over": "kept examples", "n": len(q), "budget": params["queries"]}
    if len(q):
        summary.update(median=float(np.median(q)), mean=float(q.mean()), max=int(q.max()))
    return {"queries": summary}


register_method(MethodSpec(
    "boundary", "Boundary attack (decision-based), started from blended uniform noise; records the score's median "
    "at every doubling of --steps and whether it converged (see --param tolerance); with early_stop (default) "
    "each example stops at the first doubling where it converged, --steps being the cap", "l2",
    defaults={"steps": 25000, "spherical_step": 0.01, "source_step": 0.01, "init_directions": 1000,
              "tolerance": 0.05, "early_stop": True, "settle": 5000},
    fixed={"norm": "l2", "targeted": False, "init": "LinearSearchBlendedUniformNoiseAttack", "init_steps": 50},
    attacks={"foolbox": "boundary"}, default_backend="foolbox",
    refused={"art": "ART's BoundaryAttack runs one sample at a time"}, summarise=_boundary_stats,
))
register_method(MethodSpec(
    "square", "Square Attack (score-based random search, Andriushchenko et al.), Linf or --norm l2, within "
    "--queries per example", "linf",
    defaults={"eps": 16 / 255, "queries": 5000, "p_init": 0.8}, norms=NORMS, l2_defaults={"eps": 0.5},
    fixed={"targeted": False, "restarts": 1, "loss": "margin"},
    pixel_params=("eps",), name_params=("eps",), attacks={"robench": "square", "art": "square"},
    default_backend="robench", refused={"foolbox": "Foolbox 3 has no Square Attack"}, summarise=_query_stats,
))
register_method(MethodSpec(
    "hopskipjump", "HopSkipJump (decision-based, Chen et al.), L2 or --norm linf, from blended uniform noise, "
    "within --queries per example; keeps examples within --eps", "l2",
    defaults={"eps": 16 / 255, "queries": 1000, "gamma": 1.0, "grad_evals": 100, "max_grad_evals": 10000,
              "init_directions": 100},
    norms=("l2", "linf"), l2_defaults={"eps": 0.5},
    fixed={"targeted": False, "init": "LinearSearchBlendedUniformNoiseAttack", "init_steps": 50,
           "stepsize_search": "geometric_progression", "hsj_steps": 1_000_000},
    pixel_params=("eps",), name_params=("eps",), attacks={"foolbox": "hopskipjump"},
    default_backend="foolbox",
    refused={"art": "ART's HopSkipJump runs one sample at a time and draws its start from an unseeded RNG"},
    summarise=_query_stats,
))
register_method(MethodSpec(
    "noise", "Additive Gaussian noise N(0, sigma^2) per pixel, clipped to [0, 1]", "none",
    defaults={"sigma": 0.08}, fixed={"distribution": "gaussian", "clip": [0.0, 1.0]}, name_params=("sigma",),
    attacks={"robench": "noise"}, default_backend="robench",
    refused={"art": "noise is not an attack-library method", "foolbox": "noise is not an attack-library method"},
))
