"""How records become JSON and back: the schema version, the field type checks and the one "corrupt record" error.

A record is read in two steps: its class decodes (and migrates) the JSON of the schema it was written in, then
:func:`check_types` walks the result and refuses any field, at any depth, that is not of its declared type. Any
failure on the way is the same one-line error, whatever the JSON held (:func:`decoded`).
"""

from __future__ import annotations

import functools
import os
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

from robench.errors import RobenchError
from robench.files import read_json

SCHEMA = 2  # 2: typed config (geometry + defect), recipe, history, import details, set parameters and stats
T = TypeVar("T")


def known(cls: type, data: dict) -> dict:
    """The entries of ``data`` that are fields of dataclass ``cls``."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def unknown(cls: type, data: dict) -> dict:
    """The entries of ``data`` that are not fields of dataclass ``cls``."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k not in names}


def obj(data: Any, name: str, optional: bool = False) -> dict:
    """``data`` when it is a JSON object (None too, as {}, when ``optional``); else the TypeError naming field
    ``name``."""
    if data is None and optional:
        return {}
    if not isinstance(data, dict):
        raise TypeError(f"field '{name}' holds {type(data).__name__}, not an object")
    return data


def array(data: Any, name: str) -> list:
    """``data`` when it is a JSON array (None as []); else the TypeError naming field ``name``."""
    if not isinstance(data, (list, type(None))):
        raise TypeError(f"field '{name}' holds {type(data).__name__}, not a list")
    return data or []


def plain(cls: type[T], data: Any, name: str) -> T:
    """A flat record (fields of JSON types only) from its JSON object; unknown entries are left out."""
    return cls(**known(cls, obj(data, name)))


def check_schema(data: dict, path: Path | str) -> int:
    """The schema a record was written in (0: robench 0.1, before typed records); one this robench cannot read is
    a one-line error."""
    version = data.get("schema", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise RobenchError(f"corrupt record {path} (field 'schema' holds {version!r}, not a version number); "
                           f"re-create it")
    if version > SCHEMA:
        raise RobenchError(f"{path} was written by a newer robench (schema {version}, this one reads up to "
                           f"{SCHEMA}); upgrade robench with `pip install -U robench`")
    return version


@contextmanager
def decoded(what: str, path: Path | str) -> Iterator[None]:
    """Turn any failure to decode a record into the one "corrupt <what> record" error."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, RobenchError) as err:
        raise RobenchError(f"corrupt {what} record {path} ({type(err).__name__}: {err}); re-create it") from None


def read_record(cls: type[T], data: dict, path: Path | str, what: str,
                decode: Callable[[dict, int], dict]) -> T:
    """A saved record from JSON: schema checked, ``decode(data, version)`` gives its fields (decoded and migrated
    to the current schema), and every field, nested records included, has its declared type."""
    version = check_schema(data, path)
    with decoded(what, path):
        record = cls(**{**known(cls, data), **decode(data, version), "schema": SCHEMA, "path": None})
        check_types(record)
        return record


def read_file(cls: type[T], directory: str | os.PathLike, name: str) -> T:
    """The record of class ``cls`` in ``directory/name``, with ``path`` set to ``directory``."""
    path = Path(directory) / name
    record = cls.from_json(read_json(path), path)
    record.path = Path(directory)
    return record


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def conforms(value: Any, hint: Any) -> bool:
    """True when a decoded ``value`` is a ``hint`` (str, int, float, X | None, list[X], tuple[X, ...], dict[K, V], a
    class, Any)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple):
        return isinstance(value, origin) and all(conforms(v, args[0]) for v in value) if args else \
            isinstance(value, origin)
    if origin is dict:
        return isinstance(value, dict) and all(conforms(k, args[0]) and conforms(v, args[1])
                                               for k, v in value.items())
    return isinstance(value, origin or hint)


def check_types(record: Any) -> None:
    """Raise TypeError naming the first field of ``record`` (or of a record inside it) not of its declared type."""
    for f in fields(record):
        value, hint = getattr(record, f.name), _hints(type(record))[f.name]
        if not conforms(value, hint):
            raise TypeError(f"field '{f.name}' holds {type(value).__name__} {value!r:.40}, not {hint}")
        for inner in value if isinstance(value, (list, tuple)) else [value]:
            if is_dataclass(inner) and not isinstance(inner, type):
                check_types(inner)


def without_none(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without its None entries (what optional fields write: nothing when unset)."""
    return {k: v for k, v in data.items() if v is not None}
