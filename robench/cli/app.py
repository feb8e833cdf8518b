"""The `robench` Typer application: the command tree, --version, completion, and one-line usage errors."""

from __future__ import annotations

import ast
import re
import sys
from enum import Enum
from typing import Any

import typer
from typer.core import TyperGroup

from robench._version import __version__
from robench.cli import attack as attack_cmd
from robench.cli import compare as compare_cmd
from robench.cli import imports as import_cmd
from robench.cli import matrix as matrix_cmd
from robench.cli import plot as plot_cmd
from robench.cli import scores as scores_cmd
from robench.cli import suite as suite_cmd
from robench.cli import train as train_cmd
from robench.cli.render import err, error, setup_logging
from robench.errors import unknown_name

try:  # typer >= 0.20 vendors click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors


def usage_message(e: Exception) -> str:
    """One line for a command-line mistake: a bad choice names the close ones and every valid one."""
    param = getattr(e, "param", None)
    choices = _choices(param)
    ctx = getattr(e, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    given = _given(e)
    if choices and given is not None and given not in choices and not isinstance(e, click_errors.MissingParameter):
        opts = [o for o in getattr(param, "opts", []) if o.startswith("--")] or [param.name]
        return f"{unknown_name(opts[0], given, choices)}{where}"
    return f"{e.format_message()}{where}".replace("\n", " ")


def _choices(param: Any) -> list[str] | None:
    """The valid values of an Enum-typed parameter, else None."""
    kind = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if isinstance(kind, type) and issubclass(kind, Enum):
        return [str(m.value) for m in kind]
    choices = getattr(getattr(param, "type", None), "choices", None)  # typer on click: a click.Choice
    return [str(getattr(c, "value", c)) for c in choices] if choices else None


def _given(e: Exception) -> str | None:
    """The rejected value of a bad choice, read from the parser's message ("'x' is not one of ...")."""
    found = re.search(r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*") is not one of""", str(getattr(e, "message", "")))
    try:
        return str(ast.literal_eval(found.group(1))) if found else None
    except (ValueError, SyntaxError):
        return None


class RobenchGroup(TyperGroup):
    """The root group: command-line mistakes are one line on stderr (exit 2), not a usage box."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode:
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError as e:
            typer.echo(e.ctx.get_help())
            sys.exit(0)
        except click_errors.ClickException as e:
            error(usage_message(e))
            sys.exit(e.exit_code)
        except typer.Abort:
            err.print("aborted")
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(cls=RobenchGroup, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Benchmark how well image classifiers resist adversarial examples.")


def _version(show: bool) -> None:
    if show:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details to stderr."),
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    setup_logging(verbose)


app.command("train")(train_cmd.train)
app.command("models")(train_cmd.models)
app.command("import")(import_cmd.import_cmd)
attack_cmd.register(app)
matrix_cmd.register(app)
scores_cmd.register(app)
plot_cmd.register(app)
app.command("compare")(compare_cmd.compare_cmd)
suite_cmd.register(app)


def main() -> None:
    app()
