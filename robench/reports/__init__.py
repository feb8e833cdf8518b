"""Reports: tidy score frames as wide tables (csv/json/markdown/latex), matplotlib figures and the HTML report.

Names are imported on first use (PEP 562): the tables need no torch or matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from robench._lazy import lazy_exports

_EXPORTS = {"examples_grid": "plots", "folder_plot": "plots", "heatmap": "plots", "noise_plot": "plots",
            "shuffle_plot": "plots", "tradeoff_plot": "plots", "FORMATS": "tables", "marked": "tables",
            "render": "tables", "wide": "tables", "write_report": "html"}
__all__ = ["FORMATS", "examples_grid", "folder_plot", "heatmap", "marked", "noise_plot", "render", "shuffle_plot",
           "tradeoff_plot", "wide", "write_report"]

if TYPE_CHECKING:
    from robench.reports.html import write_report
    from robench.reports.plots import examples_grid, folder_plot, heatmap, noise_plot, shuffle_plot, tradeoff_plot
    from robench.reports.tables import FORMATS, marked, render, wide

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
