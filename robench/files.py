"""Atomic file writes: a temporary file beside the target, renamed over it only on success.

The ground floor of the layering: the store, the records and the reports all write through here.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from robench.errors import RobenchError


def umask() -> int:
    """The process umask (read without changing it for longer than the call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, else delete it.

    New files get the usual permissions (0666 minus the umask), not mkstemp's 0600.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise RobenchError(f"cannot write to {path.parent} ({err.strerror}); choose a writable --workspace") from None
    os.close(fd)
    os.chmod(tmp, 0o666 & ~umask())
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike) -> dict:
    """A JSON object from ``path``; a missing or corrupt file is a RobenchError naming it."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RobenchError(f"missing file {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RobenchError(f"corrupt metadata file {path} ({err}); delete it and re-create it") from None
    if not isinstance(data, dict):
        raise RobenchError(f"corrupt metadata file {path} (not a JSON object); delete it and re-create it")
    return data
