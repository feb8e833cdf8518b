"""Writing files: atomically where the target is (or will be) a regular file, through it where it is a stream.

The ground floor of the layering: the store, the records, the reports and the CLI all write through here.
Several processes may share a workspace: every file is replaced by an atomic rename (a reader sees the old or the
new file, never a part), and whatever must not be made twice at once (a set, a model) is claimed first with
:func:`claim`, an exclusive lock (``fcntl``/``LockFileEx`` through filelock) that the OS releases when its holder
dies, so a killed run never leaves a stale claim.
``-`` as an output path means standard output to the CLI (:func:`is_stdout`); the library never prints.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from robench.errors import RobenchError

STDOUT = "-"
_PSEUDO = ("/proc/", "/dev/")  # links into these name streams (/dev/stdout -> /proc/self/fd/1), never replace them


def umask() -> int:
    """The process umask (read without changing it for longer than the call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def is_stdout(path: str | os.PathLike | None) -> bool:
    """True when an output path means standard output (``-``)."""
    return path is not None and os.fspath(path) == STDOUT


def write_target(path: str | os.PathLike) -> tuple[Path, bool]:
    """Where a write to ``path`` lands, and whether it goes *through* the path instead of replacing it.

    A new path or a regular file is replaced atomically (a symlink to a regular file: its target is, and the
    link stays). A FIFO or a character device (a terminal, ``/dev/stdout`` on a pipe) is written through.
    Anything else (a folder, a block device, a socket) is a RobenchError: it is never replaced.
    """
    path = Path(path)
    try:
        st = os.stat(path)  # follows symlinks
    except FileNotFoundError:
        return (Path(os.path.realpath(path)) if path.is_symlink() else path), False
    except OSError as err:
        raise RobenchError(f"cannot write to {path} ({err.strerror})") from None
    real = os.path.realpath(path)
    if stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
        return path, True
    if stat.S_ISREG(st.st_mode):
        if path.is_symlink() and real.startswith(_PSEUDO):
            return path, True  # e.g. /dev/stdout redirected to a file: write into the open file, do not swap it
        return Path(real) if path.is_symlink() else path, False
    what = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file, FIFO or terminal"
    raise RobenchError(f"refusing to write to {path}: it is {what}; give a file name")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a path to write ``path``'s new content to.

    For a regular (or new) file: a temporary file beside it, renamed over it only on success, else deleted;
    new files get the usual permissions (0666 minus the umask), not mkstemp's 0600. For a FIFO or a character
    device: the path itself, written through (see :func:`write_target`).
    """
    target, through = write_target(path)
    if through:
        yield target
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as err:
        raise RobenchError(f"cannot write to {target.parent} ({err.strerror}); choose a writable folder") from None
    os.close(fd)
    try:
        mode = os.stat(target).st_mode & 0o7777  # replacing a file keeps its permissions
    except FileNotFoundError:
        mode = 0o666 & ~umask()
    try:
        yield Path(tmp)
        os.chmod(tmp, mode)  # after writing: some writers (safetensors) replace the file they are given
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class Busy(RobenchError):
    """What :func:`claim` raises when another process (or thread) holds the lock."""


class claim:  # noqa: N801  (used as a function: `with claim(path):`)
    """An exclusive lock on ``path``, across processes and threads, taken when made; release it with
    :meth:`release` or by leaving a ``with`` block.

    The lock file is ``.NAME.lock`` beside ``path`` (its folder is made). ``wait``: block until the lock is free;
    else raise :class:`Busy` at once when someone holds it.
    """

    def __init__(self, path: str | os.PathLike, wait: bool = False) -> None:
        from filelock import FileLock, Timeout

        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RobenchError(f"cannot write to {path.parent} ({err.strerror}); choose a writable folder") from None
        self._lock: Any = FileLock(path.parent / f".{path.name}.lock", timeout=-1 if wait else 0,
                                   is_singleton=False, thread_local=False)
        try:
            self._lock.acquire()
        except Timeout:
            raise Busy(f"{path} is being written by another process") from None

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


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
