"""The package's layers only import downward (docs: docs/design.md), checked on the source's parsed imports.

Every import counts, including those inside functions, and so do the imports a registry names by string (a
``"robench.x.y"`` or ``"robench.x.y:name"`` constant, a package's lazy ``_EXPORTS``): their targets must exist and
lie on the importer's floor or lower. No module may take part in an import cycle, same floor included. A new
module must be given a floor here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "robench"

# floor of each top-level module or subpackage of robench; a module may import its own floor or lower ones
FLOORS = {
    "_version": 0, "_lazy": 0, "errors": 0, "checks": 0, "files": 0, "records": 0, "events": 0, "runtime": 0,
    "stats": 0, "context": 0,
    "store": 1, "workspace": 1, "datasets": 1,
    "models": 2, "importers": 2, "reports": 2,
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


def imports(path: Path, submodules: bool = False) -> list[tuple[int, str]]:
    """(line, imported robench module) for every import statement in a file, nested ones included.

    ``submodules``: ``from robench.x import y`` counts as an import of ``robench.x.y`` (a name or a submodule: see
    :func:`target_module`) rather than of ``robench.x``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "robench"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "robench":
            if submodules:
                found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
            elif node.module == "robench":  # `from robench import store` imports the submodule store
                found += [(node.lineno, f"robench.{a.name}" if a.name in FLOORS else "robench") for a in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))
MODULES = {module_name(p): p for p in SOURCES}
REFERENCE = re.compile(r"robench(\.[a-z_][a-z0-9_]*)+(:[A-Za-z_][A-Za-z0-9_]*)?")


def named_imports(path: Path) -> list[tuple[int, str]]:
    """(line, "robench.module[:name]") for every import a file names by string: a string constant that is a full
    robench module reference, and each value of a package's lazy ``_EXPORTS`` (its submodules, by name)."""
    tree = ast.parse(path.read_text(), str(path))
    found = [(n.lineno, n.value) for n in ast.walk(tree)
             if isinstance(n, ast.Constant) and isinstance(n.value, str) and REFERENCE.fullmatch(n.value)]
    if path.name == "__init__.py":
        package = module_name(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
                exports = ast.literal_eval(node.value) if isinstance(node.value, ast.Dict) else {}
                found += [(node.lineno, f"{package}.{sub}") for sub in sorted(set(exports.values()))]
    return found


def target_module(name: str, modules: dict[str, Path] = MODULES) -> str:
    """The robench module an import statement's target loads: ``robench.x.y`` when that is a module, else (a name
    imported from a module) the longest prefix that is one."""
    while name not in modules and "." in name:
        name = name.rpartition(".")[0]
    return name


def defines(path: Path, name: str) -> bool:
    """Whether a module binds ``name`` at its top level (a def, a class, an assignment or an import)."""
    for node in ast.parse(path.read_text()).body:
        names = [getattr(node, "name", None)]
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [(a.asname or a.name).split(".")[0] for a in node.names]
        if name in names:
            return True
    return False


def import_graph(modules: dict[str, Path] = MODULES) -> nx.DiGraph:
    """Module -> robench module it imports, for every import statement in the file (nested ones included)."""
    graph = nx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        for line, target in imports(path, submodules=True):
            module = target_module(target, modules)
            if module != name:
                graph.add_edge(name, module, line=line)
    return graph


def cycles(graph: nx.DiGraph) -> list[str]:
    """Each strongly connected component of more than one module, shown as one of its cycles."""
    found = []
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1:
            cycle = nx.find_cycle(graph.subgraph(component))
            found.append(" -> ".join([a for a, _ in cycle] + [cycle[0][0]]))
    return sorted(found)


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
def test_imports_named_by_string_exist_and_point_downward(path):
    here = unit(module_name(path))
    problems = []
    for line, reference in named_imports(path):
        module, _, name = reference.partition(":")
        if module not in MODULES:
            problems.append(f"line {line}: {reference} names no module")
        elif name and not defines(MODULES[module], name):
            problems.append(f"line {line}: {module} defines no {name}")
        elif FLOORS[unit(module)] > FLOORS[here]:
            problems.append(f"line {line}: {reference} (floor {FLOORS[unit(module)]}) is upward")
    assert not problems, f"{module_name(path)} (floor {FLOORS[here]}): {problems}"


def test_no_import_cycles():
    """No strongly connected component in the graph of import statements, same floor or not: every module can be
    read, and changed, after the modules it imports.

    Imports named by string are checked above (they exist, they point downward) but are not edges here: a registry
    names its implementations so that it can be read without importing them (``robench --help`` needs no torch),
    and the implementations import the registry's types; the registry loads them late, on first use.
    """
    found = cycles(import_graph())
    assert not found, f"import cycles: {found}"


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


def test_the_checker_sees_a_same_floor_cycle_and_a_bad_string_import(tmp_path):
    """The checkers themselves: two modules of one floor importing each other (one of them inside a function) are a
    cycle; a registry string naming a module or a name that does not exist is found."""
    (tmp_path / "a.py").write_text("from robench.scoring import b\n")
    (tmp_path / "b.py").write_text("def f():\n    import robench.scoring.a\n")
    (tmp_path / "c.py").write_text("from robench.scoring.a import thing\n")
    modules = {f"robench.scoring.{n}": tmp_path / f"{n}.py" for n in "abc"}
    assert cycles(import_graph(modules)) == ["robench.scoring.a -> robench.scoring.b -> robench.scoring.a"]
    (tmp_path / "reg.py").write_text('B = {"x": "robench.scoring.matrix:no_such_name", "y": "robench.nothing"}\n')
    refs = [r for _, r in named_imports(tmp_path / "reg.py")]
    assert refs == ["robench.scoring.matrix:no_such_name", "robench.nothing"]
    assert "robench.nothing" not in MODULES and not defines(MODULES["robench.scoring.matrix"], "no_such_name")
