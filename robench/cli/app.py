"""The `robench` Typer application: the command tree, --version, completion, and one-line usage errors."""

from __future__ import annotations

import ast
import copy
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
from robench.cli import report as report_cmd
from robench.cli import scores as scores_cmd
from robench.cli import suite as suite_cmd
from robench.cli import train as train_cmd
from robench.cli.render import error, errors, setup_logging
from robench.errors import EXIT_FAILED, RobenchError, unknown_name

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


def _verbosity(ctx: Any, param: Any, given: bool) -> None:
    """-v / -q given after a subcommand: the same as before it."""
    if given:
        setup_logging(verbose=param.name == "verbose", quiet=param.name == "quiet")


def _first_sentence(text: str) -> str:
    """A command's summary for the command list: the first sentence of its help, whole (never cut)."""
    paragraph = " ".join(text.strip().split("\n\n")[0].split())
    found = re.search(r"^(.+?\.)(\s|$)", paragraph)
    return (found.group(1) if found else paragraph).rstrip(".") + "."


OUTPUTS = ("out_path", "plot")  # the options naming a file written


def _once(command: Any) -> None:
    """An option that takes one value, given twice (``--out a.csv --out b.json``), is a usage error, not the
    last one silently winning."""
    make_parser = command.make_parser

    def parser(ctx: Any) -> Any:
        built = make_parser(ctx)
        parse_args = built.parse_args

        def parse(args: list[str]) -> Any:
            opts, rest, order = parse_args(args)
            for param in dict.fromkeys(order):
                single = param.param_type_name == "option" and not param.multiple and not param.count
                times = sum(p is param for p in order)
                if single and times > 1 and not param.is_flag:
                    hint = " (one output per run: run it again for another file)" if param.name in OUTPUTS else ""
                    raise click_errors.BadParameter(f"given {times} times; give it once{hint}", ctx, param)
            return opts, rest, order

        built.parse_args = parse
        return built

    command.make_parser = parser


def _conventions(command: Any, flags: tuple = ()) -> None:
    """What every command of the tree shares: summaries cut at a sentence, -v/-q after the subcommand too,
    option values checked against their domains (robench.checks) while parsing, single options given once."""
    from robench.cli.options import checked

    if command.help and not command.short_help:
        command.short_help = _first_sentence(command.help)
    names = {p.name for p in command.params}
    for param in [p for p in flags if p.name not in names]:  # the root's -v / -q, acting when given
        copied = copy.copy(param)
        copied.expose_value, copied.callback = False, _verbosity
        command.params.append(copied)
    for param in command.params:
        param.callback = checked(param.name, param.callback)
        if param.param_type_name == "argument" and param.metavar:  # its metavar says it: no <list[Path]> beside
            param.display_type_rich = lambda ctx=None: None
    _once(command)
    for sub in getattr(command, "commands", {}).values():
        _conventions(sub, flags or tuple(p for p in command.params if p.name in ("verbose", "quiet")))


class RobenchGroup(TyperGroup):
    """The root group: command-line mistakes are one line on stderr (exit 2), not a usage box."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _conventions(self)

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
        except RobenchError as e:  # raised outside a command's own handler (an option's callback)
            error(str(e))
            sys.exit(e.exit_code)
        except typer.Abort:
            errors.print("aborted")
            sys.exit(EXIT_FAILED)
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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors: no progress, notes or warnings."),
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    setup_logging(verbose, quiet)


app.command("train")(train_cmd.train)
app.command("models")(train_cmd.models)
app.command("import")(import_cmd.import_cmd)
attack_cmd.register(app)
matrix_cmd.register(app)
scores_cmd.register(app)
plot_cmd.register(app)
app.command("compare")(compare_cmd.compare_cmd)
suite_cmd.register(app)
app.command("report")(report_cmd.report_cmd)


def main() -> None:
    app()
