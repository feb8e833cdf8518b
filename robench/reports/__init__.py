"""Reports: tidy score frames as wide tables (csv/json/markdown/latex) and matplotlib figures."""

from robench.reports.plots import examples_grid, folder_plot, heatmap, noise_plot, shuffle_plot, tradeoff_plot
from robench.reports.tables import FORMATS, marked, render, wide

__all__ = ["FORMATS", "examples_grid", "folder_plot", "heatmap", "marked", "noise_plot", "render", "shuffle_plot",
           "tradeoff_plot", "wide"]
