"""`robench report`: one self-contained HTML page of a workspace's or a suite's results."""

from __future__ import annotations

from pathlib import Path

import typer

from robench.cli.options import SEED, WORKSPACE
from robench.cli.render import check_out, cli_errors, err


@cli_errors
def report_cmd(
    suite_file: str = typer.Argument(None, help="A suite (a TOML file, or the name of a shipped one): show its "
                                                "plan and status and its results (default: the whole workspace)."),
    workspace: Path = WORKSPACE,
    out_path: Path = typer.Option(Path("report.html"), "--out", "-o", help="The HTML file to write (- for stdout)."),
    examples: int = typer.Option(6, "--examples", min=0, help="Example images shown per adversarial set (0: none)."),
    seed: int = SEED,
    dpi: int = typer.Option(100, "--dpi", min=1, help="Resolution of the embedded figures, in dots per inch."),
) -> None:
    """Write one HTML page of a study: the plan and its status (for a suite), each matrix as tables and a heatmap
    (with intervals where the rows have them), training curves, the scores' plots, example images of every set,
    and the provenance of every number (hashes, versions, settings).

    The page is self-contained (figures embedded, no script, no network): it opens offline and can be mailed or
    archived. The same workspace gives the same bytes.
    """
    from robench.files import is_stdout
    from robench.reports import html

    check_out(out_path)
    options = {"examples": examples, "seed": seed, "dpi": dpi}
    if suite_file is not None:
        from robench import suites

        suite = suites.load_suite(suite_file, workspace)
        report = suites.report(suite, **options)
    else:
        report = html.build_report(workspace, **options)
    page = html.render(report)
    if is_stdout(out_path):
        from robench.cli.render import write_stdout

        write_stdout(page)
        return
    html.write_page(out_path, page)
    err.print(f"wrote {out_path} ({len(report.models)} models, {len(report.sets)} sets, "
              f"{len(report.results)} result files)", highlight=False, soft_wrap=True)
