"""Cut a split's neighbour matrix out of REACT's master appropriateness matrix.

Downloads ship `Approprirate_facial_reaction.npy` (sic) over all dyads and `data_indices.csv` naming its
rows, but often no `neighbour_emotion_train.npy`, which REGNN training needs. The official
`tool/matrix_split.py` silently drops split rows it cannot match, shifting every later row; here every
row must match exactly one index entry or nothing is produced.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from regnn.data import layout
from regnn.data.layout import DatasetError
from regnn.io import atomic_output

MASTER_MATRIX = "Approprirate_facial_reaction.npy"
MASTER_INDEX = "data_indices.csv"


def master_key(speaker_path: str) -> tuple[str, str, str]:
    """(SITE, session, clip) as `data_indices.csv` names a dyad; UDIVA's two-level session is joined."""
    parts = speaker_path.split("/")
    if len(parts) > 4:  # UDIVA/<task>/<session>/<person>/<clip> -> <session>_<task>
        return parts[0].upper(), f"{parts[2]}_{parts[1]}", parts[4]
    return parts[0].upper(), parts[1], parts[3]


def has_master(root: Path) -> bool:
    return (Path(root) / MASTER_MATRIX).is_file() and (Path(root) / MASTER_INDEX).is_file()


def split_matrix(root: Path, split: str) -> np.ndarray:
    """The (2N, 2N) mirrored neighbour matrix of `split`, cut from the master matrix by exact key lookup."""
    root = Path(root)
    index_path, matrix_path = root / MASTER_INDEX, root / MASTER_MATRIX
    with index_path.open(newline="") as f:
        entries = [tuple(cell.strip() for cell in row[:3]) for row in list(csv.reader(f))[1:] if row]
    lookup: dict[tuple[str, str, str], int] = {}
    problems = []
    for i, (site, session, clip) in enumerate(entries):
        key = (site.upper(), session, clip)
        if key in lookup:
            problems.append(f"{index_path}: {key} is listed twice (rows {lookup[key] + 2} and {i + 2})")
        lookup[key] = i
    master = np.load(matrix_path, allow_pickle=False)
    half = len(entries)
    if master.shape != (2 * half, 2 * half):
        problems.append(f"{matrix_path}: shape {master.shape}, expected ({2 * half}, {2 * half}) for the "
                        f"{half} dyads of {index_path.name}")
    positions = []
    for line, (speaker, _) in enumerate(layout.read_split(root, split), start=2):
        key = master_key(speaker)
        if key in lookup:
            positions.append(lookup[key])
        else:
            problems.append(f"{layout.split_csv(root, split)}:{line}: {speaker} has no entry {key} in {index_path}")
    if problems:
        raise DatasetError(problems)
    mirrored = np.concatenate([positions, np.asarray(positions) + half])
    return master[np.ix_(mirrored, mirrored)]


def write_split_matrix(root: Path, split: str, out: Path | None = None) -> Path:
    """Write `neighbour_emotion_<split>.npy` (by default into the dataset root, never over an existing one)."""
    out = Path(out) if out else layout.neighbour_matrix_path(root, split)
    if out.exists():
        raise FileExistsError(f"{out}: already exists; remove it first to rebuild it from {MASTER_MATRIX}")
    matrix = split_matrix(root, split)
    with atomic_output(out) as tmp:
        with tmp.open("wb") as f:
            np.save(f, matrix)
    return out
