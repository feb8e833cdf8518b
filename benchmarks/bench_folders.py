"""Peak memory of a streamed image folder against its size: 20,000 small PNGs vs 2,000 (target: <= 1.2x).

For each folder size, a fresh process trains one epoch of a small model on the folder through the streamed
path (``stream=True``: DataLoader workers decode the PNGs; the epoch ends with the test-split evaluation) and
scores the test split as a test-only folder (``folder_scores``), then reports its peak resident set size
(``ru_maxrss``, per process: the main process, and the largest worker). The in-memory path on the same folders
is measured the same way, as a control that grows with the folder.

    python benchmarks/bench_folders.py                 # 2,000 and 20,000 images, records into docs/benchmarks.md
    python benchmarks/bench_folders.py --sizes 500,5000 --no-record
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def make_folder(root: Path, n: int, size: int = 32, classes: int = 10, seed: int = 0) -> Path:
    """ROOT/{train,test}/<class>/<i>.png: n small RGB PNGs (a class-dependent colour plus noise), 10% test."""
    from PIL import Image

    if (root / "done").exists():
        return root
    rng = np.random.default_rng(seed)
    for i in range(n):
        label = i % classes
        split = "test" if (i // classes) % 10 == 0 else "train"
        base = np.array([25 * label, 255 - 25 * label, 128], dtype=np.float32)
        pixels = np.clip(base + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
        path = root / split / f"c{label}" / f"{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, "RGB").save(path)
    (root / "done").write_text(str(n))
    return root


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def child(root: Path, stream: bool, workers: int, image_size: int) -> dict:
    """Run in a fresh process: one streamed (or in-memory) training epoch and a folder score; peak RSS."""
    import torch

    import robench

    torch.set_num_threads(1)
    baseline = _rss_mb()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as ws:
        record = robench.train("tiny", dataset="folder", data_dir=root, workspace=ws, preset="quick", epochs=1,
                               width=8, batch_size=128, device="cpu", stream=stream,
                               image_size=image_size if stream else None, workers=workers)
        df = robench.folder_scores("tiny", ws, data_dir=root / "test", device="cpu", workers=workers)
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"images": record.dataset.n_train + record.dataset.n_test, "baseline_mb": baseline,
            "peak_mb": self_kb / 1024, "workers_peak_mb": children_kb / 1024, "seconds": time.perf_counter() - t0,
            "accuracy": float(df.accuracy.iloc[0]), "clean_accuracy": record.clean_accuracy}


def measure(root: Path, stream: bool, workers: int, image_size: int) -> dict:
    cmd = [sys.executable, __file__, "--child", str(root), "--workers", str(workers), "--image-size", str(image_size)]
    cmd += ["--stream"] if stream else []
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,20000", help="folder sizes (images), smallest first")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "robench-bench-folders")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.stream, args.workers, args.image_size)))
        return

    from common import machine, record

    sizes = [int(s) for s in args.sizes.split(",")]
    folders = {n: make_folder(args.root / f"pngs-{n}", n) for n in sizes}
    rows = {}
    for stream in (True, False):
        for n in sizes:
            rows[stream, n] = r = measure(folders[n], stream, args.workers, args.image_size)
            print(f"{'streamed' if stream else 'in memory'} {n}: {json.dumps(r)}", flush=True)
    small, large = sizes[0], sizes[-1]
    ratio = rows[True, large]["peak_mb"] / rows[True, small]["peak_mb"]
    lines = ["| path | images | peak RSS, main process (MB) | growth after imports (MB) | peak RSS, largest worker "
             "(MB) | seconds |", "|---|---:|---:|---:|---:|---:|"]
    for (stream, _), r in rows.items():
        lines.append(f"| {'streamed' if stream else 'in memory (control)'} | {r['images']} | {r['peak_mb']:.0f} | "
                     f"{r['peak_mb'] - r['baseline_mb']:.0f} | {r['workers_peak_mb']:.0f} | {r['seconds']:.0f} |")
    body = (f"Machine: {machine()}.\n\n"
            f"Each row is a fresh process (`ru_maxrss` is per process) that trains `tiny` (width 8) for one epoch on a "
            f"folder of {args.image_size}x{args.image_size} RGB PNGs (10 classes, 10% test) and then scores its test "
            f"split with `folder_scores`; streamed rows use `stream=True` at {args.image_size} px with "
            f"{args.workers} DataLoader workers. Peak RSS of the streamed run, {large} images / {small} images: "
            f"**{ratio:.3f}x** (target <= 1.2x).\n\n" + "\n".join(lines) + "\n\n"
            "The in-memory rows are the control: the same folders decoded into one uint8 tensor (the automatic "
            "switch keeps folders this small in memory). Reproduce: `python benchmarks/bench_folders.py`.")
    print(body)
    if not args.no_record:
        record("Streamed folders: memory", body)
    if ratio > 1.2:
        sys.exit(f"streamed peak RSS grew {ratio:.2f}x from {small} to {large} images (target <= 1.2x)")


if __name__ == "__main__":
    main()
