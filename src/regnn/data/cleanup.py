"""Tidy the pre-extracted feature folders in place: files saved one folder too deep move up
(`<...>/<clip>/<clip>.pth` -> `<...>/<clip>.pth`), then every empty folder under them goes.

The seed's shell one-liner moved every file at depth >= 2 up one level, so running it twice misplaced
files. Here only the exact nested pattern moves, which makes a second run a no-op; all collisions are found
before anything moves. Then every folder under a feature folder that holds no file (after the moves) is
removed, whether the moves emptied it or it was empty already (a download's `<session>/<person>/` left
empty). Only the split's `*_features` folders are walked, symlinks are never followed, and the feature
folders themselves stay. Each move and each removal is one journal line.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from regnn.data.layout import SPLITS, DatasetError
from regnn.io import atomic_output

FEATURE_FOLDER_GLOB = "*_features"
JOURNAL_COLUMNS = ["action", "source", "target"]


@dataclass(frozen=True)
class Move:
    source: Path
    target: Path


@dataclass(frozen=True)
class Cleanup:
    """What a cleanup did (or, in a dry run, would do): file moves, then folder removals, deepest first."""

    moves: list[Move] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)


def feature_folders(root: Path, split: str) -> list[Path]:
    """The split's pre-extracted feature folders (e.g. Video_features, Audio_features)."""
    split_dir = Path(root) / split
    return sorted(p for p in split_dir.glob(FEATURE_FOLDER_GLOB) if p.is_dir()) if split_dir.is_dir() else []


def planned_moves(root: Path, split: str) -> list[Move]:
    """Every nested `<clip>/<clip>.pth` under the split's feature folders and where it belongs."""
    moves = []
    for folder in feature_folders(root, split):
        for path in sorted(folder.rglob("*.pth")):
            if path.parent.name == path.stem and path.parent != folder:
                moves.append(Move(path, path.parent.parent / path.name))
    return moves


def _empty_after(folder: Path, leaving: set[Path], arriving: set[Path]) -> list[Path]:
    """Folders strictly under `folder` that hold no file once `leaving` files have moved to `arriving`,
    deepest first. Anything that is not a real folder (a file, a symlink) counts as content."""
    empty: list[Path] = []
    receiving = {target.parent for target in arriving}

    def holds_content(path: Path) -> bool:
        content = False
        with os.scandir(path) as entries:
            children = sorted(entries, key=lambda e: e.name)
        for entry in children:
            child = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                content |= holds_content(child)
            elif child not in leaving:
                content = True
        content |= path in receiving
        if not content and path != folder:
            empty.append(path)
        return content

    holds_content(folder)
    return empty


def _collisions(moves: list[Move]) -> list[str]:
    problems = [f"{m.target}: already exists, refusing to overwrite it with {m.source}"
                for m in moves if m.target.exists()]
    seen: dict[Path, Path] = {}
    for m in moves:
        if m.target in seen:
            problems.append(f"{m.target}: both {seen[m.target]} and {m.source} would move here")
        seen[m.target] = m.source
    return problems


def clean_dataset(root: Path, splits: list[str] | None = None, dry_run: bool = False) -> Cleanup:
    """Move nested feature files up one folder and prune empty folders in the given splits' feature
    folders; return what was done (or, with `dry_run`, what would be)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError([f"{root}: dataset root does not exist (set data.root in the config)"])
    splits = splits or SPLITS
    moves = [m for split in splits for m in planned_moves(root, split)]
    problems = _collisions(moves)
    if problems:
        raise DatasetError(problems)
    leaving, arriving = {m.source for m in moves}, {m.target for m in moves}
    removed = [path for split in splits for folder in feature_folders(root, split)
               for path in _empty_after(folder, leaving, arriving)]
    if not dry_run:
        for m in moves:
            os.rename(m.source, m.target)
        for path in removed:  # deepest first, so each is empty when its turn comes
            path.rmdir()
    return Cleanup(moves, removed)


def write_journal(cleanup: Cleanup, root: Path, path: Path) -> None:
    """Journal each move and each removed folder as root-relative paths (only the header: nothing to do)."""
    with atomic_output(path) as tmp:
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            writer.writerow(JOURNAL_COLUMNS)
            for m in cleanup.moves:
                writer.writerow(["move", m.source.relative_to(root), m.target.relative_to(root)])
            for folder in cleanup.removed:
                writer.writerow(["remove_empty_folder", folder.relative_to(root), ""])
