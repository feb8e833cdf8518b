"""Writing files: atomic replacement of regular files, write-through for streams, modes from the umask.

FIFOs are made in temporary folders; no test points at a real device file (the tests may run as root).
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from pathlib import Path

import pytest

from robench.errors import RobenchError
from robench.files import atomic_path, is_stdout, write_target


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


class FifoReader:
    """Reads everything written to a FIFO in a background thread (a writer blocks until a reader opens it)."""

    def __init__(self, path: Path) -> None:
        self.data = b""
        self.thread = threading.Thread(target=self._read, args=(path,), daemon=True)
        self.thread.start()

    def _read(self, path: Path) -> None:
        with open(path, "rb") as f:
            self.data = f.read()

    def result(self) -> bytes:
        self.thread.join(10)
        return self.data


def write(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_new_files_honour_the_umask(tmp_path, mask, mode):
    with umask(mask):
        write(tmp_path / "sub" / "x.txt", "a")
    assert stat.S_IMODE((tmp_path / "sub" / "x.txt").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "sub").stat().st_mode) == 0o777 & ~mask


def test_replacing_a_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("old")
    path.chmod(0o600)
    with umask(0o022):
        write(path, "new")
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_fifo_is_written_through_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = FifoReader(fifo)
    write(fifo, "through the pipe\n")
    assert reader.result() == b"through the pipe\n"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]  # no temporary file left beside it


def test_a_symlink_to_a_fifo_stays_a_symlink(tmp_path):
    fifo, link = tmp_path / "pipe", tmp_path / "link"
    os.mkfifo(fifo)
    link.symlink_to(fifo)
    reader = FifoReader(fifo)
    write(link, "via the link")
    assert reader.result() == b"via the link"
    assert link.is_symlink() and stat.S_ISFIFO(os.stat(link).st_mode)


def test_a_symlink_to_a_file_updates_the_target(tmp_path):
    target, link = tmp_path / "real.csv", tmp_path / "link.csv"
    target.write_text("old")
    link.symlink_to(target)
    write(link, "new")
    assert link.is_symlink() and target.read_text() == "new"


def test_a_folder_is_refused_in_one_line(tmp_path):
    with pytest.raises(RobenchError, match="is a folder"):
        write(tmp_path, "x")
    assert tmp_path.is_dir()


def test_failure_leaves_the_old_content(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]


def test_dash_means_stdout():
    assert is_stdout("-") and is_stdout(Path("-")) and not is_stdout("./-") and not is_stdout(None)
    assert write_target("no/such/file.csv") == (Path("no/such/file.csv"), False)


def modes(root: Path) -> dict[str, int]:
    """Permission bits of everything under ``root`` (relative path -> mode)."""
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in sorted(root.rglob("*"))}


def test_every_artifact_honours_the_umask(tmp_path):
    """Models, checkpoints, sets (folders and shards), caches, CSVs and plots: 0644 files, 0755 folders."""
    import robench
    from robench.reports import plots
    from robench.suites import write_result

    ws = tmp_path / "ws"

    class Stop(Exception):
        pass

    def stop_after_one_epoch(kind: str, payload: dict) -> None:
        if kind == "epoch":
            raise Stop

    with umask(0o022):
        common = {"dataset": "digits", "workspace": ws, "preset": "quick", "width": 4, "device": "cpu"}
        with pytest.raises(Stop):
            robench.train("tiny", name="interrupted", epochs=2, callback=stop_after_one_epoch, **common)
        robench.train("tiny", epochs=1, **common)
        robench.attack("tiny", "fgsm", n=16, workspace=ws, device="cpu")
        df = robench.matrix(ws, device="cpu")
        write_result(df, ws / "results" / "m.csv")
        plots.heatmap(df, ws / "results" / "m.svg")
    found = modes(ws)
    assert "models/interrupted/checkpoint.safetensors" in found
    assert any(k.startswith("sets/tiny-fgsm-eps16-n16/part-") for k in found)
    assert any(k.startswith("cache/predictions/") and k.endswith(".safetensors") for k in found)
    assert {"results/m.csv", "results/m.svg", "models/tiny/model.json", "models/tiny/model.safetensors"} <= set(found)
    wrong = {k: oct(m) for k, m in found.items() if m != (0o755 if (ws / k).is_dir() else 0o644)}
    assert not wrong
