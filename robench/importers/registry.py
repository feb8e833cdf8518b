"""The import forms: one :class:`Importer` class per form of ``robench import --from SPEC``, registered once here.

An importer holds both halves of a form: :meth:`Importer.load` builds the network when the model is imported
(``robench import``), :meth:`Importer.rebuild` builds the same untrained network from the stored record each time
the model is loaded (its weights are loaded after). A form is registered by :func:`register_form` with its usage
(what ``--help`` and errors show), the shape of its argument (a name, a file, or ``MODULE:FUNCTION``) and its
importer, given as a class or as ``"module:Class"``, resolved when first used: this registry imports no torch, so
the CLI reads :data:`FORMS` without it. :func:`parse_spec` is the one parser of a SPEC.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from robench._lazy import resolve
from robench.errors import RobenchError, unknown_name

if TYPE_CHECKING:  # the registry is read without torch (``robench import --help`` lists the forms)
    from torch import nn

    from robench.datasets import DatasetInfo
    from robench.records import ModelRecord


@dataclass(frozen=True)
class Spec:
    """A parsed ``--from`` SPEC: ``form`` (a key of :data:`FORMS`), the model ``name`` (or python module),
    ``option`` (torchvision weights, ``pretrained``, or the python function) or the ``file``."""

    form: str
    text: str
    name: str = ""
    option: str | None = None
    file: Path | None = None


@dataclass
class Loaded:
    """A network as a SPEC gives it, with what the record needs about it."""

    net: nn.Module | None
    details: dict[str, Any] = field(default_factory=dict)
    preset: tuple[list[float], list[float]] | None = None  # the weights' own normalisation
    versions: dict[str, str] = field(default_factory=dict)
    programs: dict[str, bytes] = field(default_factory=dict)  # files beside the weights, by file name
    config: dict[str, Any] = field(default_factory=dict)  # identity of the network in the record's config
    form: str | None = None  # the form that rebuilds it, when not the SPEC's own (state-dict into torchvision)
    label: str | None = None  # its architecture as listings show it, when not the SPEC's


class Importer:
    """One import form. ``options`` of :meth:`load` are ``robench import``'s form options (``gray_to_rgb``,
    ``threat_model``, ``rb_dataset``, ``arch``); ``record.origin.details`` hold what :meth:`load` recorded.
    ``wrapped``: the rebuilt network goes into the stored wrapper (False: it is a plain robench model)."""

    wrapped: ClassVar[bool] = True

    def load(self, spec: Spec, data: DatasetInfo, options: dict[str, Any]) -> Loaded:
        raise NotImplementedError

    def rebuild(self, record: ModelRecord) -> nn.Module:
        raise NotImplementedError


Argument = Literal["name", "file", "module:function"]


@dataclass(frozen=True)
class Form:
    """A registered form: its ``usage``, the shape of its ``argument``, the ``options`` a name may carry after a
    second colon (None: any, e.g. torchvision weights) and its ``importer`` (a class, or ``"module:Class"``)."""

    name: str
    usage: str
    argument: Argument
    importer: type[Importer] | str
    options: tuple[str, ...] | None = ()

    def resolve(self) -> Importer:
        return (resolve(self.importer) if isinstance(self.importer, str) else self.importer)()


_FORMS: dict[str, Form] = {}
_IMPORTERS: dict[str, Importer] = {}


def register_form(name: str, usage: str, importer: type[Importer] | str, *, argument: Argument = "name",
                  options: tuple[str, ...] | None = ()) -> Form:
    """Register the import form ``name`` (``NAME:...`` in a SPEC); see :class:`Form`."""
    if name in _FORMS:
        raise ValueError(f"an import form '{name}' is already registered")
    _FORMS[name] = form = Form(name, usage, argument, importer, options)
    return form


class _Usages(Mapping):
    """:data:`FORMS`: form name -> usage, a live view of the registry."""

    def __getitem__(self, name: str) -> str:
        return _FORMS[name].usage

    def __iter__(self) -> Iterator[str]:
        return iter(_FORMS)

    def __len__(self) -> int:
        return len(_FORMS)


FORMS: Mapping[str, str] = _Usages()


def list_forms() -> list[str]:
    return list(_FORMS)


def importer(form: str) -> Importer:
    """The importer of a registered form (its class instantiated once)."""
    if form not in _FORMS:
        raise unknown_name("import form", form, _FORMS)
    if form not in _IMPORTERS:
        _IMPORTERS[form] = _FORMS[form].resolve()
    return _IMPORTERS[form]


def reads_file(form: str) -> bool:
    """Whether the form's argument is a file (stored beside the weights, hashed in the record)."""
    return form in _FORMS and _FORMS[form].argument == "file"


def bad_spec(text: str, why: str = "") -> RobenchError:
    return RobenchError(f"cannot read --from '{text}'{why}: use one of {'; '.join(FORMS.values())}")


def parse_spec(text: str) -> Spec:
    """``'torchvision:resnet18'`` -> Spec(form='torchvision', name='resnet18'); an unknown form or a missing
    file is a RobenchError listing every form."""
    form, sep, rest = str(text).partition(":")
    if not sep or form not in _FORMS or not rest:
        raise bad_spec(text)
    entry = _FORMS[form]
    if entry.argument == "file":
        path = Path(rest).expanduser()
        if not path.is_file():
            raise RobenchError(f"--from {text}: no such file {path}")
        return Spec(form, text, file=path)
    if entry.argument == "module:function":
        module, sep, function = rest.rpartition(":")
        if not sep or not module or not function.isidentifier():
            raise bad_spec(text, f" ({form} needs MODULE:FUNCTION)")
        return Spec(form, text, name=module, option=function)
    name, _, option = rest.partition(":")
    if not name or (option and entry.options is not None and option not in entry.options):
        raise bad_spec(text)
    return Spec(form, text, name=name, option=option or None)


def rebuild(record: ModelRecord) -> nn.Module:
    """The untrained module an imported model's record describes (weights are loaded after): the form's network,
    in the stored wrapper (a robench architecture imported from a state dict is a plain robench model)."""
    from robench.importers.wrapper import wrap_net

    details = record.origin.details
    form = details.form
    if form not in _FORMS:
        raise RobenchError(f"model '{record.name}' was imported as '{form}', which this robench cannot rebuild; "
                           f"upgrade robench")
    form_importer = importer(form)
    net = form_importer.rebuild(record)
    return wrap_net(net, details, record.config) if form_importer.wrapped else net


def arch_label(spec: Spec) -> str:
    """What `robench models` shows as the architecture: ``torchvision:resnet18``, ``torchscript:model.pt`` ..."""
    if reads_file(spec.form) and spec.file is not None:
        return f"{spec.form}:{spec.file.name}"
    if spec.form in _FORMS and _FORMS[spec.form].argument == "module:function":
        return f"{spec.form}:{spec.name}:{spec.option}"
    return f"{spec.form}:{spec.name}"


register_form("torchvision", "torchvision:NAME[:WEIGHTS]", "robench.importers.library:Torchvision", options=None)
register_form("timm", "timm:NAME[:pretrained]", "robench.importers.library:Timm", options=("pretrained",))
register_form("robustbench", "robustbench:NAME", "robench.importers.library:RobustBench")
register_form("state-dict", "state-dict:FILE (with --arch ARCH)", "robench.importers.weights:StateDict",
              argument="file")
register_form("torchscript", "torchscript:FILE", "robench.importers.programs:TorchScript", argument="file")
register_form("exported", "exported:FILE", "robench.importers.programs:Exported", argument="file")
register_form("python", "python:MODULE:FUNCTION", "robench.importers.python:Python", argument="module:function")
