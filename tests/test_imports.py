"""Imports flow one way: every module of src/regnn imports only from its own floor or the floors below, and
no modules import each other in a circle (read from the source, every import, also those inside functions).

The floors (as the README's layout lists them): entry points -> stages -> model -> data -> ground.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

FLOORS = ("ground", "data", "model", "stages", "entry")
"""Lowest first."""

PLACES = {
    "regnn": "ground",  # the package itself (its version), not a prefix
    "regnn.paths": "ground",
    "regnn.settings": "ground",
    "regnn.io": "ground",
    "regnn.logs": "ground",
    "regnn.devices": "ground",
    "regnn.feature_store": "ground",
    "regnn.face": "ground",
    "regnn.provenance": "ground",  # code digests for the rules' params (standard library only)
    "regnn.data": "data",
    "regnn.protocols": "stages",  # dispatches to the dataset and metrics stages
    "regnn.model": "model",
    "regnn.losses": "model",
    "regnn.checkpoints": "model",
    "regnn.features": "stages",
    "regnn.training": "stages",
    "regnn.generation": "stages",
    "regnn.metrics": "stages",
    "regnn.render": "stages",  # reaction videos
    "regnn.curves": "stages",  # training curves
    "regnn.cli": "entry",
}
"""A module's floor is that of its longest listed prefix (a package's modules share its floor)."""


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / "regnn").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def floor(module: str) -> str:
    for prefix in sorted(PLACES, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + ".") and prefix != "regnn":
            return PLACES[prefix]
    raise AssertionError(f"{module} has no floor: add it (or its package) to PLACES in {__file__}")


def imports(module: str, source: str, is_package: bool, known: set[str]) -> set[str]:
    """The regnn modules `module` imports (a `from package import name` of a submodule counts as that one)."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m in known and m != module}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {m: imports(m, p.read_text(), p.name == "__init__.py", set(found)) for m, p in found.items()}


def test_every_module_has_a_floor() -> None:
    for module in modules():
        floor(module)


def test_imports_go_only_to_the_same_floor_or_lower() -> None:
    upward = [f"{m} ({floor(m)}) imports {d} ({floor(d)})" for m, deps in graph().items() for d in sorted(deps)
              if FLOORS.index(floor(d)) > FLOORS.index(floor(m))]
    assert not upward, "imports that go up a floor:\n" + "\n".join(upward)


def test_no_modules_import_each_other_in_a_circle() -> None:
    edges = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph().items()}  # a package's
    # __init__ imported by its own module is not a circle of code
    circles, state = [], {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = "open"
        for d in sorted(edges[m]):
            if state.get(d) == "open":
                circles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d, stack + [d])
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_the_checks_see_an_upward_import_and_a_circle() -> None:
    """The parser finds relative, aliased, lazy and `from package import module` imports."""
    source = "import regnn.paths as p\nfrom . import windows\ndef f():\n    from regnn.training import train\n"
    known = {"regnn.paths", "regnn.data.windows", "regnn.training", "regnn.data.layout"}
    found = imports("regnn.data.layout", source, False, known)
    assert found == {"regnn.paths", "regnn.data.windows", "regnn.training"}
    assert FLOORS.index(floor("regnn.training")) > FLOORS.index(floor("regnn.data.layout"))
