"""The importer registry: one class per form of ``robench import --from SPEC``, its ``load()`` (at import) and its
``rebuild()`` (at every load) together, registered once (:mod:`~robench.importers.registry`).

- :mod:`~robench.importers.library`: ``torchvision:``, ``timm:``, ``robustbench:``;
- :mod:`~robench.importers.weights`: ``state-dict:FILE`` (state dicts read without unpickling);
- :mod:`~robench.importers.programs`: ``torchscript:FILE``, ``exported:FILE``;
- :mod:`~robench.importers.python`: ``python:MODULE:FUNCTION`` (the user's code);
- :mod:`~robench.importers.wrapper`: the module every import is stored as (normalisation, gray-to-RGB, class map).

Importing a model (checks, the record, the files) is :func:`robench.importing.import_model`. Names are imported on
first use (PEP 562): the forms are listed without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from robench._lazy import lazy_exports

_EXPORTS = {name: "registry" for name in (
    "FORMS", "Importer", "Loaded", "Spec", "arch_label", "importer", "list_forms", "parse_spec", "reads_file",
    "rebuild", "register_form")}
__all__ = ["FORMS", "Importer", "Loaded", "Spec", "arch_label", "importer", "list_forms", "parse_spec", "reads_file",
           "rebuild", "register_form"]

if TYPE_CHECKING:
    from robench.importers.registry import (
        FORMS,
        Importer,
        Loaded,
        Spec,
        arch_label,
        importer,
        list_forms,
        parse_spec,
        reads_file,
        rebuild,
        register_form,
    )


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
