"""Human-readable labels of attack settings: pixel fractions ('16/255'), table labels and short figure titles."""

from __future__ import annotations

import json
from typing import Any

from robench.records import AttackParams

PIXEL_KEYS = ("eps", "step")
METHOD_NAMES = {"fgsm": "FGSM", "pgd": "PGD", "mifgsm": "MI-FGSM", "difgsm": "DI-FGSM", "tifgsm": "TI-FGSM",
                "vmifgsm": "VMI-FGSM", "mdti": "M-DI-TI-FGSM", "cw": "C&W", "apgd": "APGD", "autoattack": "AutoAttack",
                "boundary": "Boundary", "square": "Square", "hopskipjump": "HopSkipJump", "noise": "Gaussian noise"}
SYMBOLS = {"eps": "ε", "sigma": "σ"}


def param_text(key: str, value: Any, linf: bool = True) -> str:
    """One parameter's value as the papers write it: Linf pixel quantities as k/255 where they are whole pixels
    (under an L2 budget, ``linf=False``, eps and step are norms and stay numbers)."""
    pixels = value * 255 if isinstance(value, float) and key in PIXEL_KEYS and linf else 0.0
    if pixels >= 0.5 and abs(pixels - round(pixels)) < 1e-4:
        return f"{round(value * 255)}/255"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, str) else json.dumps(value)


def _term(key: str, value: Any, linf: bool) -> str:
    if key in ("steps", "queries"):
        return f"{value} {key}"
    if key == "target":
        return f"targeted ({value})"
    if isinstance(value, bool):
        return key.replace("_", " ") if value else "no " + key.replace("_", " ")
    return f"{SYMBOLS.get(key, key)}={param_text(key, value, linf)}"


def short_titles(configs: list[tuple[str, dict]],
                 always: tuple[str, ...] = ("eps", "sigma", "steps", "queries", "target")) -> list[str]:
    """Short titles of attack configurations (method, params): 'PGD ε=16/255, 20 steps', 'PGD L2 ε=0.5, ...',
    'Square ε=16/255, 5000 queries'.

    Shows the budget (and an L2 norm), the step count, a query budget and a target, plus any other parameter that
    differs between configurations of the same method, so no two different configurations get the same title.
    """
    configs = [(method, {k: v for k, v in params.items() if v is not None}) for method, params in configs]
    varying: dict[str, set[str]] = {}
    for method, params in configs:
        for other, other_params in configs:
            if other == method:
                varying.setdefault(method, set()).update(k for k, _ in params.items() ^ other_params.items())
    titles = []
    for method, params in configs:
        linf = AttackParams(params).linf
        keys = [k for k in always if k in params]
        keys += sorted(k for k in varying.get(method, ()) if k not in (*always, "norm", "targeted") and k in params)
        name = METHOD_NAMES.get(method, method.upper()) + ("" if linf else " L2")
        titles.append(" ".join([name, ", ".join(_term(k, params[k], linf) for k in keys)]).strip())
    return titles
