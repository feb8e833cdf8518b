"""The documentation site: `mkdocs build --strict` passes (every link, anchor, image and nav entry resolves), the
generated command reference lists every command and option of the app and nothing hidden, the generated suite
schema lists every key the loader accepts, the Python API page documents every public name, and the front page
loads in a real browser with no console errors and every image present."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="the docs extra (`pip install -e \".[docs]\"`) builds the site")

from browser import Chromium, find_chromium, serve
from typer.testing import CliRunner

import robench
from robench.cli.app import app

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built once as CI would (a fresh process, strict: any warning fails the build)."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "WARNING" not in r.stderr, r.stderr
    return out


def sections(page: str) -> dict[str, str]:
    """heading text -> the HTML up to the next h2/h3 heading."""
    parts = re.split(r"(<h[23] id=\"[^\"]*\"[^>]*>.*?</h[23]>)", page, flags=re.S)
    found = {}
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        text = html.unescape(re.sub(r"<[^>]+>", "", heading)).replace("¶", "").strip()
        found[text] = body
    return found


def first_column_codes(section: str) -> list[str]:
    """The text of the <code> in each table row's first cell."""
    return [html.unescape(c) for c in re.findall(r"<tr>\s*<td><code>(.*?)</code>", section, re.S)]


def click_tree():
    """(path, command, context) of every visible command of the app (docs/hooks.py walks the click tree)."""
    sys.path.insert(0, str(ROOT / "docs"))
    from hooks import command_tree

    return command_tree()


FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def help_flags(path: str) -> set[str]:
    """The flags of the option lines `robench ... --help` prints ("  -w, --workspace <path>  Workspace ...")."""
    r = CliRunner().invoke(app, [*path.split()[1:], "--help"])
    assert r.exit_code == 0, r.output
    return {flag for line in r.output.splitlines() if (m := re.match(r"  (-\S.*?)(?:\s{2,}|$)", line))
            for flag in FLAG.findall(m.group(1))}


def test_site_builds_strict(site):
    for page in ("index.html", "getting-started/index.html", "reference/commands/index.html",
                 "reference/suite-schema/index.html", "reference/python-api/index.html", "design/index.html",
                 "benchmarks/index.html", "assets/demo-matrix.png", "assets/layers.svg"):
        assert (site / page).is_file(), page


def test_command_reference_lists_every_command_and_option(site):
    page = sections((site / "reference/commands/index.html").read_text())
    tree = click_tree()
    assert set(page) == {path for path, _, _ in tree}  # every command, and no other heading
    assert len(tree) > 20
    for path, command, ctx in tree:
        firsts = first_column_codes(page[path])
        listed = {flag for code in firsts for flag in FLAG.findall(code)}
        options = [p for p in command.get_params(ctx) if p.param_type_name == "option"]
        shown = {o for p in options if not p.hidden for o in [*p.opts, *p.secondary_opts]}
        hidden = {o for p in options if p.hidden for o in p.opts}
        assert listed == shown, f"{path}: missing {shown - listed}, extra {listed - shown}"
        assert not hidden & listed
        assert listed == help_flags(path), path  # what `--help` prints, read from its text
        for argument in (p for p in command.params if p.param_type_name == "argument"):
            named = {code.split()[0].rstrip(".").lower() for code in firsts}  # "files... <list[Path]>" -> files
            shown_as = {argument.name.lower(), (argument.metavar or "").rstrip(".").lower()}
            assert shown_as & named, (path, argument.name)  # its name, or its metavar ("FILE...")
        for name, sub in getattr(command, "commands", {}).items():  # a group lists its visible subcommands
            assert (f"{path} {name}" in page[path]) != sub.hidden


def test_suite_schema_page_lists_every_key(site):
    from robench.suites import SCORE_KINDS, score_fields
    from robench.suites import sections as schema

    page = sections((site / "reference/suite-schema/index.html").read_text())
    for name, section in schema().items():
        heading = f"[[{name}]]" if section.many else f"[{name}]"
        if name != "scores":
            assert set(first_column_codes(page[heading])) == set(section.fields), heading
    for kind in SCORE_KINDS:
        assert set(first_column_codes(page[f'kind = "{kind}"'])) == set(score_fields(kind)), kind


def test_python_api_page_documents_every_public_name(site):
    page = (site / "reference/python-api/index.html").read_text()
    ids = set(re.findall(r'id="(robench\.[\w.]+)"', page))
    for name in set(robench.__all__) - {"__version__"}:
        assert any(i.endswith(f".{name}") for i in ids), name
        obj = getattr(robench, name)
        assert f"{obj.__module__}.{name}" in ids, f"{name} is documented from another module than {obj.__module__}"


def test_layer_diagram_shows_every_floor(site):
    sys.path.insert(0, str(ROOT / "tests"))
    from test_layers import FLOORS

    svg = (site / "assets/layers.svg").read_text()
    for name, floor in FLOORS.items():
        assert f"floor {floor}<" in svg
        assert f">{name or 'robench (package root)'}<" in svg, name


def test_benchmarks_page_is_the_record():
    """The benchmark scripts write into the documentation's page; benchmarks/RESULTS.md only points there."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import common

    assert common.RESULTS == ROOT / "docs" / "benchmarks.md"
    assert "## Training" in common.RESULTS.read_text()
    pointer = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    assert "docs/benchmarks.md" in pointer and len(pointer.splitlines()) <= 3


def nav_pages() -> list[str]:
    """The URL of every page in mkdocs.yml's nav ("" for the front page, "guides/suites/" ...)."""
    import yaml

    def walk(entry):
        if isinstance(entry, str):
            yield entry
        elif isinstance(entry, dict):
            for value in entry.values():
                yield from walk(value)
        elif isinstance(entry, list):
            for item in entry:
                yield from walk(item)

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    return ["" if md == "index.md" else md.removesuffix(".md") + "/" for md in walk(nav)]


PAGES = nav_pages()


@pytest.fixture(scope="module")
def browser(site):
    """One headless Chromium for the module, and the site served over HTTP as a documentation host would."""
    if find_chromium() is None:
        pytest.skip("no chromium binary on PATH")
    with serve(site) as base, Chromium() as chromium:
        yield chromium, base


def test_every_page_is_checked_in_the_browser(site):
    """The nav holds every page of the site (so each is also loaded in the browser below)."""
    built = {"" if p.parent == site else f"{p.parent.relative_to(site)}/" for p in site.rglob("index.html")}
    assert built == set(PAGES)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_pages_load_in_a_browser(browser, page):
    """As a reader sees them: no console error, no failed load, every image decoded; the front page and the design
    page show their figures."""
    chromium, base = browser
    loaded = chromium.load(base + page)
    assert loaded.errors == []
    images = loaded.evaluate("Array.from(document.images).map(i => [i.src, i.complete && i.naturalWidth > 0])")
    assert all(ok for _, ok in images), images
    if page in ("", "getting-started/", "design/"):
        assert any(src.endswith((".png", ".svg")) for src, _ in images)
    assert loaded.evaluate("document.querySelector('h1').textContent.length") > 0


def test_design_table_gives_every_module_its_floor():
    """docs/design.md's table of floors names every top-level module at the floor tests/test_layers.py enforces."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_layers import FLOORS

    rows = re.findall(r"^\| (\d+) \| (.*?) \|", (ROOT / "docs" / "design.md").read_text(), re.M)
    placed = {}
    for floor, modules in rows:
        for name in re.findall(r"`(?:robench/)?(\w+)(?:\.py|/)`", modules):
            placed[name] = int(floor)
    assert placed == {name: floor for name, floor in FLOORS.items() if name}
