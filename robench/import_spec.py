"""The ``--from`` SPEC of ``robench import``: its forms, parsed and checked without importing torch, so a
mistyped SPEC or a missing file is answered at once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from robench.errors import RobenchError

FORMS = {
    "torchvision": "torchvision:NAME[:WEIGHTS]",
    "timm": "timm:NAME[:pretrained]",
    "robustbench": "robustbench:NAME",
    "state-dict": "state-dict:FILE (with --arch ARCH)",
    "torchscript": "torchscript:FILE",
    "exported": "exported:FILE",
    "python": "python:MODULE:FUNCTION",
}
FILE_FORMS = ("state-dict", "torchscript", "exported")


@dataclass(frozen=True)
class Spec:
    """A parsed ``--from`` SPEC: ``form`` (a key of :data:`FORMS`), the model ``name`` (or python module),
    ``option`` (torchvision weights, ``pretrained``, or the python function) or the ``file``."""

    form: str
    text: str
    name: str = ""
    option: str | None = None
    file: Path | None = None


def _bad_spec(text: str, why: str = "") -> RobenchError:
    return RobenchError(f"cannot read --from '{text}'{why}: use one of {'; '.join(FORMS.values())}")


def parse_spec(text: str) -> Spec:
    """``'torchvision:resnet18'`` -> Spec(form='torchvision', name='resnet18'); an unknown form or a missing
    file is a RobenchError listing every form."""
    form, sep, rest = str(text).partition(":")
    if not sep or form not in FORMS or not rest:
        raise _bad_spec(text)
    if form in FILE_FORMS:
        path = Path(rest).expanduser()
        if not path.is_file():
            raise RobenchError(f"--from {text}: no such file {path}")
        return Spec(form, text, file=path)
    if form == "python":
        module, sep, function = rest.rpartition(":")
        if not sep or not module or not function.isidentifier():
            raise _bad_spec(text, " (python needs MODULE:FUNCTION)")
        return Spec(form, text, name=module, option=function)
    name, _, option = rest.partition(":")
    if not name or (form == "timm" and option not in ("", "pretrained")) or (form == "robustbench" and option):
        raise _bad_spec(text)
    return Spec(form, text, name=name, option=option or None)
