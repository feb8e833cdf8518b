"""Saved models as modules: a record plus its safetensors weights rebuilt into an ``nn.Module``.

The store reads files; this module knows how to turn a :class:`~robench.records.ModelRecord` back into the
network it describes. A record's ``origin.kind`` picks the builder: ``train`` (robench's registered
architectures) is built in, ``import`` is the importer registry's :func:`robench.importers.rebuild`; other kinds
register theirs with :func:`register_builder`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import nn

from robench import store
from robench._lazy import resolve
from robench.context import takes_context
from robench.errors import RobenchError
from robench.models.network import create_model
from robench.records import ModelRecord

Builder = Callable[[ModelRecord], nn.Module]
_BUILDERS: dict[str, Builder | str] = {"import": "robench.importers.registry:rebuild"}  # a str: imported when used


def register_builder(kind: str) -> Callable[[Builder], Builder]:
    """Register ``builder(record) -> nn.Module`` (untrained, weights loaded after) for records of origin ``kind``."""

    def wrap(fn: Builder) -> Builder:
        if kind in _BUILDERS:
            raise ValueError(f"a model builder for origin '{kind}' is already registered")
        _BUILDERS[kind] = fn
        return fn

    return wrap


@register_builder("train")
def _robench_architecture(record: ModelRecord) -> nn.Module:
    return create_model(record.config.arch, **record.config.build_options())


def build(record: ModelRecord) -> nn.Module:
    """The untrained module a record describes (its weights are loaded by :func:`load_model`)."""
    try:
        builder = _BUILDERS[record.origin.kind]
    except KeyError:
        raise RobenchError(f"model '{record.name}' comes from '{record.origin.kind}', which this robench cannot "
                           f"rebuild; upgrade robench or install the extra that provides it") from None
    return (resolve(builder) if isinstance(builder, str) else builder)(record)


@takes_context
def load_model(name_or_path: str | os.PathLike, workspace: str | os.PathLike | None = None,
               device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a saved model and load its weights; returned in eval mode, for (N, C, H, W) input in [0,1].

    The weights file's sha256 is checked against the record, so corruption is reported rather than loaded.
    The record is attached as ``model.robench_record``.
    """
    record = store.read_model(name_or_path, workspace)
    state = store.read_weights(record)
    with torch.random.fork_rng(devices=[]):  # the throw-away initial weights do not draw from the caller's RNG
        model = build(record)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise RobenchError(f"weights of model '{record.name}' do not fit the model in its record "
                           f"({str(err)[:120]})") from None
    model.robench_record = record
    return model.to(device).eval()
