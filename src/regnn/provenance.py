"""Digests of the code a workflow job runs, so that Snakemake reruns a job when its code changes.

Snakemake reruns a job when its params, its inputs or its `script:` file change, but it does not see the
library modules the script imports: edit the VGGish extractor and the old features would stand. Each rule
therefore puts `code_params(script)` in its params: one `"<file> <digest>"` string per file of the code its
job runs, that is the script (and the modules next to it that it imports) and every `regnn` module it
imports, followed transitively (imports inside functions too, since the job may run them), with the
packages' `__init__.py` files and the data files a module names next to itself (the metrics' C kernel). A changed file changes its own string, so
`snakemake -n` names it in the job's reason.

A Python file is digested as its syntax tree without docstrings, so edits to comments, docstrings, blank
lines or line wrapping rerun nothing, and any change to the code does. Imports made through `importlib`
are not seen: a caller that imports by name passes that module as a root (the feature extractor kinds), or
`module:function` for the one function of it that the job runs (a protocol's method).

Standard library only, and cached per file by its stat: the workflow imports this while planning, from its
own source tree, and the full-size plan must stay within seconds.
"""

from __future__ import annotations

import ast
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "regnn"


@dataclass(frozen=True)
class _Digested:
    digest: str
    imports: tuple[tuple[str, bool, str | None], ...]  # (module, must it be one, enclosing function), any package
    data_files: tuple[str, ...]  # names of files next to it that it names in a string constant


_cache: dict[tuple[str, int, int, int], _Digested] = {}


_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _relative_base(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[:len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _scan(tree: ast.AST, module: str, is_package: bool) -> tuple[list[tuple[str, bool, str | None]], set[str]]:
    """Strip the docstrings in place, and return the modules the file imports and its string constants.

    Each import comes with whether it must be a module (for `from m import x`, `m` must be, and `m.x` may be
    a submodule or just a name defined in `m`) and the name of the function it sits in (None: module level).
    """
    imports: list[tuple[str, bool, str | None]] = []
    strings: set[str] = set()

    def visit(node: ast.AST, function: str | None) -> None:
        if isinstance(node, _DOCUMENTED):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                function = function or node.name
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            strings.add(node.value)
        elif isinstance(node, ast.Import):
            imports.extend((alias.name, True, function) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _relative_base(node, module, is_package)
            imports.append((base, True, function))
            imports.extend((f"{base}.{alias.name}", False, function) for alias in node.names if alias.name != "*")
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, None)
    return imports, strings


def _digest_file(path: Path, module: str = "", is_package: bool = False) -> _Digested:
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino)
    if key in _cache:
        return _cache[key]
    data = path.read_bytes()
    try:
        tree = ast.parse(data, filename=str(path))
    except (SyntaxError, ValueError):
        # Digest the text instead: planning still works, and the job reruns and reports the real error.
        found = _Digested(hashlib.sha256(data).hexdigest(), (), ())
    else:
        imports, strings = _scan(tree, module, is_package)
        with os.scandir(path.parent) as entries:
            named = sorted(entry.name for entry in entries if entry.name in strings and entry.is_file()
                           and not entry.name.endswith(".py"))
        dump = ast.dump(tree, annotate_fields=False, include_attributes=False)
        found = _Digested(hashlib.sha256(dump.encode()).hexdigest(), tuple(imports), tuple(named))
    _cache[key] = found
    return found


def _module_file(source: Path, module: str) -> tuple[Path, bool] | None:
    """The file of a module of the package under `source`, and whether it is a package."""
    base = source.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py", True
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py"), False
    return None


def _in_package(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def code_digests(roots: Iterable[str | Path], source: str | Path) -> dict[str, str]:
    """File -> digest for the code run from `roots`: Python files (workflow scripts), names of modules of
    the `regnn` package under `source` (the folder holding `regnn/`), or `module:function` for the part of a
    module one function runs (the whole file, its module-level imports, and only the imports inside that
    function: a protocol's `index_split` does not run its metrics), and everything they import from the
    package, transitively. Files are named relative to `source`'s parent (the checkout), so the digests do
    not depend on where the checkout lies."""
    roots = list(roots)
    source = Path(source).resolve()
    top = source.parent
    digests: dict[str, str] = {}
    # (module, must it be one, the functions whose imports to follow; None: all of them)
    modules: list[tuple[str, bool, frozenset[str] | None]] = []

    def label(path: Path) -> str:
        path = path.resolve()
        return path.relative_to(top).as_posix() if path.is_relative_to(top) else path.as_posix()

    def add(path: Path, module: str = "", is_package: bool = False, only: frozenset[str] | None = None) -> None:
        found = _digest_file(path, module, is_package)
        digests[label(path)] = found.digest
        for name in found.data_files:
            digests[label(path.with_name(name))] = hashlib.sha256(path.with_name(name).read_bytes()).hexdigest()
        followed = [(name, required) for name, required, function in found.imports
                    if only is None or function is None or function in only]
        modules.extend((name, required, None) for name, required in followed if _in_package(name))
        if not module:  # a script: also the modules next to it that it imports (a script's folder is on its path)
            for name, _ in followed:
                local = path.with_name(f"{name}.py")
                if "." not in name and local.is_file() and label(local) not in digests:
                    add(local)

    for root in roots:
        if isinstance(root, Path) or str(root).endswith(".py"):
            add(Path(root))
            continue
        name, _, function = str(root).partition(":")
        if _module_file(source, name) is None:
            raise ValueError(f"{root}: no such module under {source}")
        modules.append((name, True, frozenset([function]) if function else None))
    done: dict[str, frozenset[str] | None] = {}  # module -> the functions followed (None: all)
    while modules:
        name, required, only = modules.pop()
        found = _module_file(source, name)
        if found is None:
            if required:
                raise ValueError(f"{name}: imported by the code of {', '.join(map(str, roots))}, but there "
                                 f"is no such module under {source}")
            continue
        if name in done:
            before = done[name]
            if before is None or (only is not None and only <= before):
                continue
            only = None if only is None else before | only
        done[name] = only
        parts = name.split(".")
        modules.extend((".".join(parts[:i]), True, None) for i in range(1, len(parts)))  # importing runs parents
        add(found[0], name, found[1], only)
    return digests


def code_params(*roots: str | Path, source: str | Path, exclude: Iterable[str] = ()) -> list[str]:
    """`code_digests` as sorted `"<file> <digest>"` strings (16 hex digits), one Snakemake param each, so
    a changed file is named in the job's rerun reason. `exclude` drops the entries of another
    `code_params` list (those a rule already lists)."""
    skip = set(exclude)
    entries = (f"{name} {digest[:16]}" for name, digest in sorted(code_digests(roots, source).items()))
    return [entry for entry in entries if entry not in skip]


class WorkflowCode:
    """`code_params` for the rule files of a checkout laid out as `<checkout>/workflow/rules/*.smk`,
    `<checkout>/workflow/scripts/*.py` and `<checkout>/src/regnn/`, the tree the scripts import regnn from
    (`workflow/scripts/_source_tree.py`). A rule file makes one from its own folder while it is parsed:
    `code = WorkflowCode(workflow.current_basedir)`, then `params: *code("train.py"), ...`."""

    def __init__(self, rules_dir: str | Path) -> None:
        self.checkout = Path(rules_dir).resolve().parents[1]
        self.source = self.checkout / "src"

    def __call__(self, script: str, *modules: str, exclude: Iterable[str] = ()) -> list[str]:
        """The entries of a workflow script (by file name) and, optionally, of modules it imports by name."""
        return code_params(self.checkout / "workflow" / "scripts" / script, *modules, source=self.source,
                           exclude=exclude)

    def modules(self, *modules: str, exclude: Iterable[str] = ()) -> list[str]:
        """The entries of `regnn` modules alone (for code a script imports through importlib)."""
        return code_params(*modules, source=self.source, exclude=exclude)
