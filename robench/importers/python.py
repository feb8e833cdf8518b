"""The user's own code: ``python:MODULE:FUNCTION``, a function returning an ``nn.Module``.

The one form that runs Python: the function is called at import and again at every load (it is their code).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import sys
from contextlib import contextmanager
from pathlib import Path

from torch import nn

from robench.datasets import DatasetInfo
from robench.errors import RobenchError
from robench.importers.registry import Importer, Loaded, Spec
from robench.records import ModelRecord

log = logging.getLogger(__name__)


@contextmanager
def _cwd_on_path():
    """The working directory importable for the call (as `python -m` has it), sys.path restored after."""
    saved = list(sys.path)
    sys.path.insert(0, str(Path.cwd()))
    try:
        yield
    finally:
        sys.path[:] = saved


def call_python(module: str, function: str) -> tuple[nn.Module, str | None]:
    """Run the user's ``module:function()`` (their code) -> (the nn.Module it returns, sha256 of the module's file)."""
    with _cwd_on_path():
        try:
            mod = importlib.import_module(module)
        except ImportError as err:
            raise RobenchError(f"cannot import python module '{module}' ({err}); run from its folder or put it on "
                               f"PYTHONPATH") from None
        except SyntaxError as err:
            raise RobenchError(f"python module '{module}' has a syntax error ({err.msg}, {err.filename} line "
                               f"{err.lineno}); fix the file") from None
        except Exception as err:  # the module's own code failed while importing
            raise RobenchError(f"importing python module '{module}' raised {type(err).__name__}: {err}") from None
    fn = getattr(mod, function, None)
    if not callable(fn):
        raise RobenchError(f"python module '{module}' has no function '{function}'")
    try:
        net = fn()
    except Exception as err:
        raise RobenchError(f"{module}:{function}() raised {type(err).__name__}: {err}") from None
    if not isinstance(net, nn.Module):
        raise RobenchError(f"{module}:{function}() returned {type(net).__name__}, not a torch nn.Module")
    source = getattr(mod, "__file__", None)
    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest() if source and Path(source).is_file() else None
    return net, digest


class Python(Importer):
    def load(self, spec: Spec, data: DatasetInfo, options: dict) -> Loaded:
        net, digest = call_python(spec.name, spec.option or "")
        return Loaded(net, {"module": spec.name, "function": spec.option, "module_sha256": digest})

    def rebuild(self, record: ModelRecord) -> nn.Module:
        details = record.origin.details
        net, digest = call_python(details.module or "", details.function or "")
        if details.module_sha256 and digest != details.module_sha256:
            log.warning("the code of %s changed since model %s was imported; its stored weights are loaded into "
                        "what %s:%s() returns now", details.module, record.name, details.module, details.function)
        return net
