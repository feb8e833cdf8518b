"""The workspace's typed metadata: what a model, an adversarial set and a dataset reference record.

These records are the only way metadata is read or written: ``model.json`` and ``set.json`` go through
:func:`read_model_record` / :func:`write_model_record` and :func:`read_set_record` / :func:`write_set_record`,
and nothing else in robench opens them or reads their entries by name. Every record carries a schema version
(:data:`SCHEMA`, now 2): files written by an older robench (schema 1, and robench 0.1's files without a ``schema``
key) are migrated when read, and written again in the current schema; files from a newer robench are a one-line
error asking for an upgrade. docs/reference/records.md shows a record of each kind.

- :mod:`~robench.records.model`: :class:`ModelRecord`, with its :class:`ModelConfig` and :class:`DefectSpec`
  (:mod:`~robench.records.config`), :class:`Recipe` and :class:`TrainingHistory` (:mod:`~robench.records.recipe`),
  :class:`Origin` and :class:`ImportDetails` (:mod:`~robench.records.imports`);
- :mod:`~robench.records.sets`: :class:`SetRecord`, with its :class:`SourceRef`, :class:`AttackParams` and
  :class:`SetStats`;
- :mod:`~robench.records.dataset`: :class:`DatasetRef`;
- :mod:`~robench.records.codec`: the schema, the type checks and the one "corrupt record" error.
"""

from __future__ import annotations

from robench.records.codec import SCHEMA
from robench.records.config import DEFECT_KEYS, MASK_MODES, PLACEMENTS, REGULARIZERS, DefectSpec, ModelConfig
from robench.records.dataset import DatasetRef
from robench.records.imports import ImportDetails, Origin
from robench.records.model import (
    CHANCE_LEVEL,
    CHANCE_RATIO,
    MODEL_JSON,
    ModelRecord,
    near_chance,
    read_model_record,
    write_model_record,
)
from robench.records.recipe import SCHEDULES, Epoch, Recipe, TrainingHistory
from robench.records.sets import (
    SET_JSON,
    AttackParams,
    QueryStats,
    SetRecord,
    SetStats,
    SourceRef,
    StepsUsed,
    TraceStats,
    read_set_record,
    write_set_record,
)

__all__ = ["CHANCE_LEVEL", "CHANCE_RATIO", "DEFECT_KEYS", "MASK_MODES", "MODEL_JSON", "PLACEMENTS", "REGULARIZERS",
           "SCHEDULES", "SCHEMA", "SET_JSON", "AttackParams", "DatasetRef", "DefectSpec", "Epoch", "ImportDetails",
           "ModelConfig", "ModelRecord", "Origin", "QueryStats", "Recipe", "SetRecord", "SetStats", "SourceRef",
           "StepsUsed", "TraceStats", "TrainingHistory", "near_chance", "read_model_record", "read_set_record",
           "write_model_record", "write_set_record"]
