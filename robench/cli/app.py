"""The `robench` Typer application."""

from __future__ import annotations

import typer

from robench._version import __version__
from robench.cli import attack as attack_cmd
from robench.cli import imports as import_cmd
from robench.cli import matrix as matrix_cmd
from robench.cli import suite as suite_cmd
from robench.cli import train as train_cmd
from robench.cli.render import setup_logging

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False,
                  help="Benchmark how well image classifiers resist adversarial examples.")


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details to stderr."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        print(__version__)
        raise typer.Exit()
    setup_logging(verbose)


app.command("train")(train_cmd.train)
app.command("models")(train_cmd.models)
app.command("import")(import_cmd.import_cmd)
attack_cmd.register(app)
matrix_cmd.register(app)
suite_cmd.register(app)


def main() -> None:
    app()
