"""Cleanup moves exactly the nested feature files, prunes empty feature folders, is idempotent, and refuses
collisions up front."""

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
    result = clean_dataset(tiny_dataset, splits=["train"])
    moves = result.moves
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
    write_journal(result, tiny_dataset, journal)
    lines = journal.read_text().splitlines()
    assert lines[0] == "action\tsource\ttarget" and len(lines) == len(moves) + len(result.removed) + 1


def test_second_run_changes_nothing(tiny_dataset: Path) -> None:
    clean_dataset(tiny_dataset)
    snapshot = _snapshot(tiny_dataset)
    folders = sorted(p for p in tiny_dataset.rglob("*") if p.is_dir())
    assert clean_dataset(tiny_dataset).moves == [] and clean_dataset(tiny_dataset).removed == []
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


def _folders(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir())


def test_empty_folders_under_the_feature_folders_are_pruned_and_journalled(tiny_dataset: Path,
                                                                            tmp_path: Path) -> None:
    """A new user's tree: a pre-existing empty `<session>/<person>/` folder (and an empty chain) goes, with a
    journal line each; empty folders outside the split's feature folders, and the feature folders, stay."""
    video = tiny_dataset / "train" / "Video_features"
    empty_person = video / "NoXI" / "099_2016-03-09_Paris" / "Expert_video"
    empty_person.mkdir(parents=True)
    chain = video / "RECOLA" / "group-9" / "P25" / "1"
    chain.mkdir(parents=True)
    kept = [tiny_dataset / "train" / "Emotion" / "NoXI" / "empty",  # not a feature folder
            tiny_dataset / "val" / "Video_features" / "NoXI" / "empty",  # another split
            tiny_dataset / "train" / "Audio_features" / "empty-but-for-a-link"]
    for folder in kept:
        folder.mkdir(parents=True)
    (kept[2] / "link").symlink_to(tiny_dataset / "train" / "Emotion" / "NoXI" / "empty")
    (tiny_dataset / "train" / "Empty_features").mkdir()  # a feature folder itself is kept, even empty
    files_before = _snapshot(tiny_dataset)
    result = clean_dataset(tiny_dataset, splits=["train"])
    removed = {p.relative_to(tiny_dataset).as_posix() for p in result.removed}
    assert "train/Video_features/NoXI/099_2016-03-09_Paris/Expert_video" in removed
    assert "train/Video_features/NoXI/099_2016-03-09_Paris" in removed
    assert {"train/Video_features/RECOLA/group-9", "train/Video_features/RECOLA/group-9/P25",
            "train/Video_features/RECOLA/group-9/P25/1"} <= removed
    # the clip folders emptied by the moves are journalled removals too
    assert {m.source.parent.relative_to(tiny_dataset).as_posix() for m in result.moves} <= removed
    assert not any(p.exists() for p in result.removed)
    assert all(folder.is_dir() for folder in kept) and (tiny_dataset / "train" / "Empty_features").is_dir()
    assert all(p.parts[len(tiny_dataset.parts) + 1].endswith("_features") and p.parts[len(tiny_dataset.parts)]
               == "train" for p in result.removed)
    # no file was lost: the snapshot differs only by the moves
    moved = {m.source.relative_to(tiny_dataset).as_posix(): m.target.relative_to(tiny_dataset).as_posix()
             for m in result.moves}
    after = _snapshot(tiny_dataset)
    assert {moved.get(k, k): v for k, v in files_before.items()} == after
    journal = tmp_path / "cleanup.tsv"
    write_journal(result, tiny_dataset, journal)
    rows = [line.split("\t") for line in journal.read_text().splitlines()]
    assert rows[0] == ["action", "source", "target"]
    assert sorted(r[1] for r in rows[1:] if r[0] == "remove_empty_folder") == sorted(removed)
    assert all(r[2] == "" for r in rows[1:] if r[0] == "remove_empty_folder")
    assert len([r for r in rows[1:] if r[0] == "move"]) == len(result.moves)
    folders = _folders(tiny_dataset)
    again = clean_dataset(tiny_dataset, splits=["train"])
    assert again.moves == [] and again.removed == [] and _folders(tiny_dataset) == folders


def test_dry_run_plans_the_same_removals_and_changes_nothing(tiny_dataset: Path) -> None:
    (tiny_dataset / "test" / "Audio_features" / "NoXI" / "empty" / "deeper").mkdir(parents=True)
    folders, files = _folders(tiny_dataset), _snapshot(tiny_dataset)
    planned = clean_dataset(tiny_dataset, splits=["test"], dry_run=True)
    assert _folders(tiny_dataset) == folders and _snapshot(tiny_dataset) == files
    done = clean_dataset(tiny_dataset, splits=["test"])
    assert planned == done and planned.removed
