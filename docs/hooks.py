"""mkdocs hooks: the reference pages made from the code at build time, so they cannot drift from it.

- ``reference/commands.md``: every command, argument and option of the Typer app (walked as its click tree);
- ``reference/suite-schema.md``: every section and key a suite file takes (``robench.suites.sections()`` and
  ``score_fields()``), with their types;
- ``assets/layers.svg``: the package's floors, drawn from the floors ``tests/test_layers.py`` enforces.

``mkdocs.yml`` names this file under ``hooks:``; tests/test_docs.py imports it to compare the pages with the app.
"""

from __future__ import annotations

import html
import os
import re
import types
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def on_files(files, config):
    """Add the generated pages and the layer diagram to the site (mkdocs hook)."""
    from mkdocs.structure.files import File

    for uri, make in GENERATED.items():
        files.append(File.generated(config, uri, content=make()))
    return files


# ---------------------------------------------------------------- commands


def command_tree() -> list[tuple[str, Any, Any]]:
    """(command path, click command, its context) for the app and every visible subcommand, depth first."""
    import typer.main

    from robench.cli.app import app

    found = []

    def walk(command, name, parent):
        # as the app makes them: its context settings (-h for help, ...) apply
        ctx = command.context_class(command, info_name=name, parent=parent, **command.context_settings)
        found.append((ctx.command_path, command, ctx))
        for sub_name, sub in getattr(command, "commands", {}).items():
            if not sub.hidden:
                walk(sub, sub_name, ctx)

    walk(typer.main.get_command(app), "robench", None)
    return found


def visible_params(command, ctx) -> list[tuple[Any, tuple[str, str]]]:
    """(param, (its flags and metavar, its help)) of every parameter ``--help`` shows (hidden ones left out)."""
    rows = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is not None:
            rows.append((param, record))
    return rows


def prose(text: str) -> str:
    """Help text as Markdown: paragraphs escaped, click's no-rewrap blocks (``\\b``) as literal text."""
    out = []
    for para in re.split(r"\n\s*\n", text.strip()):
        if para.startswith("\b"):
            out.append("```text\n" + para[1:].strip("\n") + "\n```")
        else:
            out.append(re.sub(r"([\\`*_\[\]#|])", r"\\\1", html.escape(" ".join(para.split()), quote=False)))
    return "\n\n".join(out)


def cell(text: str) -> str:
    return re.sub(r"([\\`*_\[\]|])", r"\\\1", html.escape(" ".join(text.split()), quote=False))


def commands_page() -> str:
    """The command reference: usage, help, arguments and options of every command, in the app's order."""
    lines = ["# Commands", "",
             "Generated from the command-line application when the documentation is built: this is what "
             "`robench COMMAND --help` prints. The guides explain when to use each.", ""]
    for path, command, ctx in command_tree():
        level = "##" if path.count(" ") <= 1 else "###"  # robench and its commands; then subcommands
        lines += [f"{level} `{path}`", ""]
        if command.help:
            lines += [prose(command.help), ""]
        usage = " ".join([path, *command.collect_usage_pieces(ctx)])
        lines += ["```text", usage, "```", ""]
        subs = {n: c for n, c in getattr(command, "commands", {}).items() if not c.hidden}
        if subs:
            lines += ["| command | what |", "|---|---|"]
            lines += [f"| [`{path} {n}`](#{slug(path + ' ' + n)}) | {cell(c.get_short_help_str(300))} |"
                      for n, c in subs.items()]
            lines.append("")
        params = visible_params(command, ctx)
        if params:
            lines += ["| argument or option | what |", "|---|---|"]
            lines += [f"| `{flags}` | {cell(help_text)} |" for _, (flags, help_text) in params]
            lines.append("")
    return "\n".join(lines)


def slug(text: str) -> str:
    """The anchor mkdocs gives a heading (its default toc slugify)."""
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", text).strip().lower())


# ---------------------------------------------------------------- suite schema

SECTION_TEXT = {
    "study": "The study: its name, description, default dataset, workspace and data folder.",
    "train": "Defaults for every `[[models]]` entry: any option of `robench train` (`robench.train`).",
    "models": "One entry per model to train (a list value expands into a grid).",
    "imports": "Models robench did not train (`robench import`, `robench.import_model`): a name, `from` (the "
               "SPEC) and the import's options.",
    "attack": "Defaults for every `[[attacks]]` entry: any option of `robench attack` and every method's "
              "parameters.",
    "attacks": "One entry per adversarial set (a list value expands into a grid; `source` as a list makes one "
               "set per source, `ensemble` fuses several sources).",
    "matrix": "The cross-model matrix (`robench.matrix`) and where its table and heatmap go.",
    "scores": "One entry per score; `kind` picks the score, and the keys it takes are listed below.",
    "executor": "How `robench run` runs the steps (the same as its command-line options; an option given there wins): "
                "the engine and the resources of each kind of step. See [Clusters](../guides/clusters.md).",
}


def type_name(kind: Any) -> str:
    """A TOML-minded name of a type annotation: one of `a`, `b`; integer; list of text; ..."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return "any"
    if kind is type(None):
        return "none"
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):  # None is the unset default: TOML has no null, leave the key out
        return " or ".join(dict.fromkeys(type_name(a) for a in args if a is not type(None)))
    if origin in (list, tuple) or (origin is not None and getattr(origin, "__name__", "") in ("Sequence",)):
        return "list of " + (type_name(args[0]) if args else "any")
    names = {str: "text", int: "integer", float: "number", bool: "true/false", dict: "table", os.PathLike: "path"}
    if (origin or kind) in names:
        return names[origin or kind]
    return f"`{getattr(kind, '__name__', str(kind))}`"


def _keys_table(fields: dict[str, Any], required: tuple[str, ...] = ()) -> list[str]:
    lines = ["| key | type |", "|---|---|"]
    for key, kind in sorted(fields.items()):
        lines.append(f"| `{key}`{' (required)' if key in required else ''} | {type_name(kind)} |")
    return [*lines, ""]


def suite_schema_page() -> str:
    """Every section and key a suite file takes, from the schema the loader checks files against."""
    from robench.suites import SCORE_KINDS, score_fields, sections

    lines = ["# Suite schema", "",
             "Generated from `robench.suites.sections()` and `robench.suites.score_fields()` when the documentation "
             "is built: these are exactly the keys `robench run` accepts. A key's type comes from the signature of "
             "the function the section feeds; choices come from the registries. Every key is optional unless marked "
             "required; a key left out takes the function's default (see [Commands](commands.md) for the same option "
             "on the command line). How to write a suite: [Suites](../guides/suites.md).", ""]
    for name, section in sections().items():
        header = f"[[{name}]]" if section.many else f"[{name}]"
        lines += [f"## `{header}`", ""]
        notes = [SECTION_TEXT.get(name, "")]
        if section.grid:
            notes.append("A list value expands into a grid (the cartesian product of entries), except for keys "
                         "whose type is a list.")
        lines += [" ".join(n for n in notes if n), ""]
        if name == "scores":
            for kind in SCORE_KINDS:
                lines += [f"### `kind = \"{kind}\"`", ""]
                lines += _keys_table(score_fields(kind), section.required)
        else:
            lines += _keys_table(section.fields, section.required)
    return "\n".join(lines)


# ---------------------------------------------------------------- layer diagram


def floors() -> dict[str, int]:
    """The floor of each top-level module of robench, as tests/test_layers.py enforces them (read, not imported)."""
    import ast

    tree = ast.parse((ROOT / "tests" / "test_layers.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "FLOORS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise LookupError("tests/test_layers.py has no FLOORS")


def layers_svg() -> str:
    """One row per floor, highest first, one box per module; imports point only downward."""
    rows: dict[int, list[str]] = {}
    for name, floor in floors().items():
        rows.setdefault(floor, []).append("robench (package root)" if name == "" else name)
    row_h, left, width = 46, 90, 720
    height = row_h * len(rows) + 20
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13" role="img">',
           "<title>robench's layers: each floor imports only from its own floor or lower ones</title>",
           '<defs><marker id="tip" markerWidth="8" markerHeight="8" refX="4" refY="7" orient="auto">'
           '<path d="M0,0 L8,0 L4,8 z" fill="#555"/></marker></defs>',
           f'<line x1="20" y1="14" x2="20" y2="{height - 14}" stroke="#555" stroke-width="2" marker-end="url(#tip)"/>',
           f'<text x="30" y="{height / 2}" fill="#555" transform="rotate(90 30 {height / 2})" '
           'text-anchor="middle">imports go down</text>']
    for i, floor in enumerate(sorted(rows, reverse=True)):
        y = 10 + i * row_h
        out.append(f'<text x="{left - 40}" y="{y + 26}" fill="#333">floor {floor}</text>')
        x = left + 20
        for name in sorted(rows[floor]):
            w = 16 + 8 * len(name)
            out.append(f'<rect x="{x}" y="{y + 6}" width="{w}" height="30" rx="5" fill="#e8eaf6" stroke="#3f51b5"/>')
            out.append(f'<text x="{x + w / 2}" y="{y + 26}" text-anchor="middle">{html.escape(name)}</text>')
            x += w + 10
    return "\n".join([*out, "</svg>", ""])


GENERATED = {"reference/commands.md": commands_page, "reference/suite-schema.md": suite_schema_page,
             "assets/layers.svg": layers_svg}
