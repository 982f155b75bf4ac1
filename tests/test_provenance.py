"""Code digests: the transitive `regnn` imports of a script, blind to comments and docstrings."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from regnn.provenance import code_digests, code_params

REPO = Path(__file__).resolve().parents[1]


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A checkout with a small `regnn` package and a workflow script."""
    _write(tmp_path, {
        "src/regnn/__init__.py": '"""Package."""\n',
        "src/regnn/io.py": "def write(x):\n    return x\n",
        "src/regnn/unused.py": "X = 1\n",
        "src/regnn/metrics/__init__.py": "",
        "src/regnn/metrics/kernel.c": "int f(void) { return 1; }\n",
        "src/regnn/metrics/dtw.py": """\
            from pathlib import Path
            SOURCE = Path(__file__).with_name("kernel.c")  # a data file it names
            def dtw(a, b):
                return abs(a - b)
            """,
        "src/regnn/metrics/react.py": """\
            \"\"\"Metrics.\"\"\"
            from . import dtw
            from ..io import write

            def score(a, b):
                \"\"\"Why it scores.\"\"\"
                from regnn.metrics.extra import bonus  # lazy: the job may run it
                return write(dtw.dtw(a, b) + bonus)  # the score
            """,
        "src/regnn/metrics/extra.py": "bonus = 0\n",
        "workflow/scripts/evaluate.py": "import _helper\nimport numpy\nfrom regnn.metrics.react import score\nscore(1, 2)\n",
        "workflow/scripts/_helper.py": "import os\n",
    })
    return tmp_path


def test_follows_imports_transitively_with_parents_and_named_data_files(tree: Path) -> None:
    files = code_digests([tree / "workflow/scripts/evaluate.py"], tree / "src")
    assert set(files) == {"workflow/scripts/evaluate.py", "workflow/scripts/_helper.py", "src/regnn/__init__.py",
                          "src/regnn/io.py", "src/regnn/metrics/__init__.py", "src/regnn/metrics/react.py",
                          "src/regnn/metrics/dtw.py", "src/regnn/metrics/kernel.c", "src/regnn/metrics/extra.py"}
    assert set(code_digests(["regnn.io"], tree / "src")) == {"src/regnn/__init__.py", "src/regnn/io.py"}


@pytest.mark.parametrize("edit, changes", [
    (lambda s: s.replace("# the score", "# the official score, see the paper"), False),
    (lambda s: s.replace('"""Why it scores."""', '"""Why it scores,\n    at length."""'), False),
    (lambda s: s.replace('"""Metrics."""', ""), False),
    (lambda s: s.replace("return write(", "\n\n    return write(  # wrapped\n        "), False),
    (lambda s: s.replace("dtw.dtw(a, b) + bonus", "dtw.dtw(b, a) + bonus"), True),
    (lambda s: s.replace("+ bonus", "- bonus"), True),
])
def test_comment_docstring_and_layout_edits_keep_the_digest_code_edits_change_it(tree: Path, edit,
                                                                                   changes: bool) -> None:
    script = tree / "workflow/scripts/evaluate.py"
    before = code_params(script, source=tree / "src")
    path = tree / "src/regnn/metrics/react.py"
    path.write_text(edit(path.read_text()))
    after = code_params(script, source=tree / "src")  # same process: the per-file cache must see the edit
    changed = set(before) ^ set(after)
    assert bool(changed) == changes
    if changes:  # only the edited file's entry changes, and it names the file
        assert {entry.split()[0] for entry in changed} == {"src/regnn/metrics/react.py"}


def test_a_data_file_edit_and_a_dependency_edit_change_the_digest(tree: Path) -> None:
    script = tree / "workflow/scripts/evaluate.py"
    before = code_params(script, source=tree / "src")
    (tree / "src/regnn/metrics/kernel.c").write_text("int f(void) { return 2; }\n")
    (tree / "src/regnn/metrics/extra.py").write_text("bonus = 1\n")
    changed = {entry.split()[0] for entry in set(before) ^ set(code_params(script, source=tree / "src"))}
    assert changed == {"src/regnn/metrics/kernel.c", "src/regnn/metrics/extra.py"}
    (tree / "src/regnn/unused.py").write_text("X = 2\n")
    assert code_params(script, source=tree / "src") == code_params(script, source=tree / "src")


def test_digests_do_not_depend_on_where_the_checkout_lies(tree: Path, tmp_path_factory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "checkout"
    shutil.copytree(tree, elsewhere)
    assert code_params(elsewhere / "workflow/scripts/evaluate.py", source=elsewhere / "src") == \
        code_params(tree / "workflow/scripts/evaluate.py", source=tree / "src")


def test_exclude_drops_entries_listed_elsewhere(tree: Path) -> None:
    common = code_params("regnn.metrics.dtw", source=tree / "src")
    extra = code_params("regnn.metrics.react", source=tree / "src", exclude=common)
    assert {e.split()[0] for e in extra} == {"src/regnn/metrics/react.py", "src/regnn/metrics/extra.py",
                                             "src/regnn/io.py"}


def test_a_missing_module_is_named_and_a_syntax_error_still_plans(tree: Path) -> None:
    script = tree / "workflow/scripts/broken.py"
    script.write_text("import regnn.nowhere\n")
    with pytest.raises(ValueError, match="regnn.nowhere"):
        code_params(script, source=tree / "src")
    path = tree / "src/regnn/io.py"
    path.write_text("def write(x:\n")
    assert any(e.startswith("src/regnn/io.py ") for e in code_params("regnn.io", source=tree / "src"))


def test_every_workflow_script_digests_with_the_real_package() -> None:
    """The real scripts' imports all resolve, and the metrics' C kernel is part of evaluate's code."""
    for script in sorted((REPO / "workflow/scripts").glob("[a-z]*.py")):
        files = code_digests([script], REPO / "src")
        assert f"workflow/scripts/{script.name}" in files and "src/regnn/__init__.py" in files
    # the evaluate rule's code: its script and the protocol method it calls (imported by name)
    evaluate = code_digests([REPO / "workflow/scripts/evaluate.py", "regnn.protocols.react2024:evaluate_run"],
                            REPO / "src")
    assert "src/regnn/metrics/frd_dtw.c" in evaluate and "src/regnn/metrics/react.py" in evaluate
    assert not any(name.startswith("src/regnn/model/") for name in evaluate)
    index = code_digests([REPO / "workflow/scripts/index_split.py", "regnn.protocols.react2024:index_split"],
                         REPO / "src")
    assert "src/regnn/data/index.py" in index and "src/regnn/metrics/react.py" not in index


def test_workflow_code_digests_a_script_against_its_own_checkout(tree: Path) -> None:
    from regnn.provenance import WorkflowCode

    code = WorkflowCode(tree / "workflow" / "rules")
    assert code("evaluate.py") == code_params(tree / "workflow/scripts/evaluate.py", source=tree / "src")
    assert code.modules("regnn.io") == code_params("regnn.io", source=tree / "src")


def test_a_module_function_root_follows_only_that_functions_imports(tree: Path) -> None:
    """`module:function`: the whole file, its module-level imports and that function's lazy imports only."""
    _write(tree, {"src/regnn/protocol.py": """\
        from regnn import io

        class Protocol:
            def index_split(self):
                from regnn.metrics.extra import bonus
                return bonus

            def evaluate_run(self):
                from regnn.metrics.react import score
                return score(1, 2)
        """})
    index = code_digests(["regnn.protocol:index_split"], tree / "src")
    assert {"src/regnn/protocol.py", "src/regnn/io.py", "src/regnn/metrics/extra.py"} <= set(index)
    assert "src/regnn/metrics/react.py" not in index
    assert "src/regnn/metrics/react.py" in code_digests(["regnn.protocol:evaluate_run"], tree / "src")
    both = code_digests(["regnn.protocol:index_split", "regnn.protocol"], tree / "src")
    assert "src/regnn/metrics/react.py" in both
