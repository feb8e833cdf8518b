"""The package's layers only import downward (docs: docs/design.md), checked on the source's parsed imports.

Every import counts, including those inside functions. A new module must be given a floor here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "robench"

# floor of each top-level module or subpackage of robench; a module may import its own floor or lower ones
FLOORS = {
    "_version": 0, "_lazy": 0, "errors": 0, "files": 0, "records": 0, "events": 0, "runtime": 0,
    "store": 1, "data": 1, "pipeline": 1, "folders": 1,
    "models": 2, "reports": 2,
    "training": 3, "attacks": 3, "importing": 3,
    "scoring": 4,
    "api": 5,
    "suites": 6,
    "cli": 7,
    "": 8,  # the package root, robench/__init__.py, re-exports the API
}


def unit(module: str) -> str:
    """'robench.models.resnet' -> 'models'; 'robench' -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported robench module) for every import statement in a file, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "robench"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "robench":
            if node.module == "robench":  # `from robench import store` imports the submodule store
                found += [(node.lineno, f"robench.{a.name}" if a.name in FLOORS else "robench") for a in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_floor():
    missing = sorted({unit(module_name(p)) for p in SOURCES} - set(FLOORS))
    assert not missing, f"give these modules a floor in tests/test_layers.py: {missing}"


@pytest.mark.parametrize("path", SOURCES, ids=[module_name(p) for p in SOURCES])
def test_imports_point_downward(path):
    here = unit(module_name(path))
    upward = [f"line {line}: {target} (floor {FLOORS[unit(target)]})" for line, target in imports(path)
              if unit(target) in FLOORS and FLOORS[unit(target)] > FLOORS[here]]
    assert not upward, f"{module_name(path)} (floor {FLOORS[here]}) imports upward: {upward}"


@pytest.mark.parametrize("path", SOURCES, ids=[module_name(p) for p in SOURCES])
def test_only_the_cli_renders(path):
    """rich and typer (consoles, progress bars, prompts) belong to robench/cli alone."""
    if unit(module_name(path)) == "cli":
        return
    tree = ast.parse(path.read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert not [n for n in names if n.split(".")[0] in ("rich", "typer")]


def test_the_checker_sees_an_upward_import(tmp_path):
    """The checker itself: a nested import of a higher floor is found."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from robench.scoring import matrix\n    import robench.cli.app\n")
    assert [t for _, t in imports(bad)] == ["robench.scoring", "robench.cli.app"]
