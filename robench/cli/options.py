"""What every command shares: value choices as enums (so --help lists them), and the common options.

Short flags mean one thing across all commands: -w workspace, -o out, -f format, -n n, -M models, -S sets,
-s source, -m method, -p param, -v verbose, -V version, -h help. Old spellings stay as hidden options for one
release (see ``render.deprecated``).
"""

from __future__ import annotations

from enum import Enum

import typer

from robench.cli import names


def choices(name: str, values: tuple[str, ...] | list[str]) -> type[Enum]:
    """A str-valued Enum whose members are ``values``, for Typer to list and check."""
    return Enum(name, [(v, v) for v in values], type=str)  # type: ignore[return-value]


def value(choice: Enum | str | None) -> str | None:
    """The plain string of an enum choice (None stays None)."""
    return choice.value if isinstance(choice, Enum) else choice


Arch = choices("Arch", names.ARCHITECTURES)
Dataset = choices("Dataset", names.DATASETS)
Preset = choices("Preset", names.PRESETS)
Placement = choices("Placement", names.PLACEMENTS)
MaskMode = choices("MaskMode", names.MASK_MODES)
Regularizer = choices("Regularizer", names.REGULARIZERS)
Augment = choices("Augment", names.AUGMENTS)
Method = choices("Method", names.METHODS)
Backend = choices("Backend", names.BACKENDS)
Norm = choices("Norm", names.NORMS)
Loss = choices("Loss", names.LOSSES)
BoundaryMode = choices("BoundaryMode", names.BOUNDARY_MODES)
Value = choices("Value", names.CELL_VALUES)
Precision = choices("Precision", names.PRECISIONS)
Format = choices("Format", ("table", "csv", "json", "markdown", "latex"))
FigureFormat = choices("FigureFormat", names.FIGURE_FORMATS)
CiMethod = choices("CiMethod", ("wilson", "bootstrap", "none"))
CiStyle = choices("CiStyle", ("none", "pm", "interval"))

WORKSPACE = typer.Option(None, "--workspace", "-w", envvar="ROBENCH_WORKSPACE",
                         help="Workspace folder (default: ./robench-workspace).")
DATA_DIR = typer.Option(None, "--data-dir", envvar="ROBENCH_DATA", help="Data folder (default: ~/.cache/robench/data).")
DEVICE = typer.Option(None, "--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present).")
PRECISION = typer.Option("fp32", "--precision", help="Autocast precision of every forward pass (attacks and "
                                                       "predictions); recorded with the results.")
WORKERS = typer.Option(None, "--workers", envvar="ROBENCH_WORKERS", min=0,
                       help="DataLoader workers decoding image files (default: CPU cores - 1, at most 8).")
SEED = typer.Option(0, "--seed", help="Seed of the sample choice, noise and permutations.")
MODELS = typer.Option("*", "--models", "-M", help="Models: glob patterns, comma-separated (default: all).")
SETS = typer.Option("*", "--sets", "-S", help="Adversarial sets: glob patterns, comma-separated (default: all).")
OUT = typer.Option(None, "--out", "-o", help="Write the result here (- for stdout); the suffix picks the format "
                                             "(.csv .json .md .tex) unless --format says.")
FORMAT = typer.Option(None, "--format", "-f", help="table (the terminal's, default), csv or json (tidy rows, one "
                                                   "record per row), markdown or latex (the table as shown).")
PLOT = typer.Option(None, "--plot", help="Also draw the figure to this file; the suffix picks the format "
                                         "(.png .svg .pdf .eps; default .png).")
DPI = typer.Option(150, "--dpi", min=1, help="Resolution of raster figures (PNG), in dots per inch.")
MIN_N = typer.Option(30, "--min-n", min=0, help="Cells resting on fewer images than this show their n (and are "
                                                "greyed in figures).")
SHOW_N = typer.Option(False, "--show-n", help="Show n (the images a cell rests on) in every cell.")
FIGURE_OUT = typer.Option(None, "--out", "-o", help="Figure file (- for stdout); the suffix picks the format "
                                                    "(default: ./<figure>.png).")
FIGURE_FORMAT = typer.Option(None, "--format", "-f", help="Figure format when the --out name has no suffix "
                                                          "(default png).")

CI = typer.Option("wilson", "--ci", help="Interval of every rate: wilson (score interval), bootstrap (percentile, "
                                       "seeded) or none; recorded in the ci_low/ci_high columns.")
CI_LEVEL = typer.Option(0.95, "--ci-level", min=0.5, max=0.999, help="Confidence level of the intervals.")
CI_STYLE = typer.Option("none", "--ci-style", help="Show each cell's interval in tables and figures: pm (34.9 ±3.9, "
                                                   "half the interval's width), interval (34.9 [31.1, 39.0]) or none.")

# hidden old spellings, kept for one release
TARGETS = typer.Option(None, "--targets", "-t", hidden=True, help="Old name of --models.")
MODEL = typer.Option(None, "--model", hidden=True, help="Old name of --models.")

