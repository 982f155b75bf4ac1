"""Cleanup moves exactly the nested feature files, is idempotent, and refuses collisions up front."""

from __future__ import annotations

from pathlib import Path

import pytest

from regnn.cli import main
from regnn.data.cleanup import clean_dataset, planned_moves, write_journal
from regnn.data.layout import DatasetError


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_moves_nested_files_up_and_removes_emptied_folders(tiny_dataset: Path, tmp_path: Path) -> None:
    nested = planned_moves(tiny_dataset, "train")
    assert nested
    before = _snapshot(tiny_dataset)
    moves = clean_dataset(tiny_dataset, splits=["train"])
    after = _snapshot(tiny_dataset)
    moved = {m.source.relative_to(tiny_dataset).as_posix(): m.target.relative_to(tiny_dataset).as_posix()
             for m in moves}
    assert {k: v for k, v in before.items() if k not in moved} == {k: v for k, v in after.items()
                                                                  if k not in moved.values()}
    for source, target in moved.items():
        assert after[target] == before[source] and source not in after
        assert not (tiny_dataset / source).parent.exists()
    assert not planned_moves(tiny_dataset, "train")
    assert planned_moves(tiny_dataset, "val")  # other splits untouched
    journal = tmp_path / "cleanup.tsv"
    write_journal(moves, tiny_dataset, journal)
    lines = journal.read_text().splitlines()
    assert lines[0] == "source\ttarget" and len(lines) == len(moves) + 1


def test_second_run_changes_nothing(tiny_dataset: Path) -> None:
    clean_dataset(tiny_dataset)
    snapshot = _snapshot(tiny_dataset)
    folders = sorted(p for p in tiny_dataset.rglob("*") if p.is_dir())
    assert clean_dataset(tiny_dataset) == []
    assert _snapshot(tiny_dataset) == snapshot
    assert sorted(p for p in tiny_dataset.rglob("*") if p.is_dir()) == folders


def test_collision_stops_before_anything_moves(tiny_dataset: Path) -> None:
    moves = planned_moves(tiny_dataset, "test")
    moves[-1].target.write_bytes(b"someone else's file")
    snapshot = _snapshot(tiny_dataset)
    with pytest.raises(DatasetError, match="already exists") as err:
        clean_dataset(tiny_dataset, splits=["test"])
    assert str(moves[-1].target) in str(err.value)
    assert _snapshot(tiny_dataset) == snapshot


def test_other_files_in_a_clip_folder_stay(tiny_dataset: Path) -> None:
    move = planned_moves(tiny_dataset, "val")[0]
    keep = move.source.parent / "notes.txt"
    keep.write_text("keep me")
    clean_dataset(tiny_dataset, splits=["val"])
    assert keep.read_text() == "keep me" and move.target.is_file()


def test_cli_dry_run_moves_nothing(tiny_dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snapshot = _snapshot(tiny_dataset)
    assert main(["clean", str(tiny_dataset), "--split", "train", "--dry-run"]) == 0
    assert "would move" in capsys.readouterr().out
    assert _snapshot(tiny_dataset) == snapshot


def test_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        clean_dataset(tmp_path / "nowhere")
