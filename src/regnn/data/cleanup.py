"""Fix pre-extracted feature files saved one folder too deep: `<...>/<clip>/<clip>.pth` -> `<...>/<clip>.pth`.

The seed's shell one-liner moved every file at depth >= 2 up one level, so running it twice misplaced
files. Here only the exact nested pattern moves, which makes a second run a no-op; all collisions are found
before anything moves; only the moved files and the folders they leave empty are touched.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from regnn.data.layout import SPLITS, DatasetError
from regnn.io import atomic_output

FEATURE_FOLDER_GLOB = "*_features"
JOURNAL_COLUMNS = ["source", "target"]


@dataclass(frozen=True)
class Move:
    source: Path
    target: Path


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


def _collisions(moves: list[Move]) -> list[str]:
    problems = [f"{m.target}: already exists, refusing to overwrite it with {m.source}"
                for m in moves if m.target.exists()]
    seen: dict[Path, Path] = {}
    for m in moves:
        if m.target in seen:
            problems.append(f"{m.target}: both {seen[m.target]} and {m.source} would move here")
        seen[m.target] = m.source
    return problems


def clean_dataset(root: Path, splits: list[str] | None = None, dry_run: bool = False) -> list[Move]:
    """Move nested feature files up one folder in the given splits; return the moves (made or planned)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError([f"{root}: dataset root does not exist (set data.root in the config)"])
    moves = [m for split in (splits or SPLITS) for m in planned_moves(root, split)]
    problems = _collisions(moves)
    if problems:
        raise DatasetError(problems)
    if not dry_run:
        for m in moves:
            os.rename(m.source, m.target)
            try:
                m.source.parent.rmdir()
            except OSError:  # the clip folder still holds other files: leave it
                pass
    return moves


def write_journal(moves: list[Move], root: Path, path: Path) -> None:
    """Journal the moves as root-relative paths (an empty journal means nothing needed moving)."""
    with atomic_output(path) as tmp:
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            writer.writerow(JOURNAL_COLUMNS)
            for m in moves:
                writer.writerow([m.source.relative_to(root), m.target.relative_to(root)])
