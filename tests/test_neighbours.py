"""A split's neighbour matrix cut from the master matrix, by exact clip lookup, as matrix_split.py meant."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from regnn.cli import main
from regnn.data import layout
from regnn.data.index import build_index
from regnn.data.layout import DatasetError
from regnn.data.neighbours import MASTER_INDEX, MASTER_MATRIX, master_key, split_matrix


def _write_master(root: Path, seed: int = 0) -> tuple[list[tuple[str, str, str]], np.ndarray]:
    """A master index over every split's dyads (shuffled, plus unrelated dyads) and a random 0/1 matrix."""
    rng = np.random.default_rng(seed)
    keys = [master_key(s) for split in layout.SPLITS for s, _ in layout.read_split(root, split)]
    keys += [("NOXI", "999_2016-01-01_Paris", str(i)) for i in range(3)]
    keys = [keys[i] for i in rng.permutation(len(keys))]
    master = (rng.random((2 * len(keys), 2 * len(keys))) < 0.3).astype(np.float64)
    lines = ["site,session,clip"] + [f"{site.capitalize()},{session},{clip}" for site, session, clip in keys]
    (root / MASTER_INDEX).write_text("\n".join(lines) + "\n")
    np.save(root / MASTER_MATRIX, master)
    return keys, master


def test_matrix_is_the_mirrored_cut_of_the_master(tiny_dataset: Path) -> None:
    keys, master = _write_master(tiny_dataset)
    rows = layout.read_split(tiny_dataset, "test")
    half = len(keys)
    matrix = split_matrix(tiny_dataset, "test")
    for k, (speaker_k, _) in enumerate(rows):
        for j, (speaker_j, _) in enumerate(rows):
            a, b = keys.index(master_key(speaker_k)), keys.index(master_key(speaker_j))
            n = len(rows)
            assert matrix[k, j] == master[a, b] and matrix[k + n, j + n] == master[a + half, b + half]
            assert matrix[k, j + n] == master[a, b + half] and matrix[k + n, j] == master[a + half, b]


def test_index_uses_the_master_when_the_split_matrix_is_missing(tiny_dataset: Path) -> None:
    _write_master(tiny_dataset)
    (tiny_dataset / "neighbour_emotion_train.npy").unlink()
    _, cache = build_index(tiny_dataset, "train")
    np.testing.assert_array_equal(cache.neighbours, split_matrix(tiny_dataset, "train"))


def test_unmatched_row_names_the_row_instead_of_shifting_the_rest(tiny_dataset: Path) -> None:
    keys, _ = _write_master(tiny_dataset)
    speaker = layout.read_split(tiny_dataset, "val")[1][0]
    lines = (tiny_dataset / MASTER_INDEX).read_text().splitlines()
    site, session, clip = master_key(speaker)
    (tiny_dataset / MASTER_INDEX).write_text(
        "\n".join(l for l in lines if l.lower() != f"{site},{session},{clip}".lower()) + "\n")
    with pytest.raises(DatasetError, match=f"val.csv:3: {speaker} has no entry"):
        split_matrix(tiny_dataset, "val")


def test_udiva_sessions_join_task_and_session() -> None:
    assert master_key("UDIVA/talk/023102/FC1/3") == ("UDIVA", "023102_talk", "3")
    assert master_key("NoXI/065_2016-04-14_Nottingham/Expert_video/1") == (
        "NOXI", "065_2016-04-14_Nottingham", "1")


def test_cli_writes_once_and_refuses_to_overwrite(tiny_dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_master(tiny_dataset)
    (tiny_dataset / "neighbour_emotion_train.npy").unlink()
    assert main(["neighbours", str(tiny_dataset), "--split", "train"]) == 0
    np.testing.assert_array_equal(np.load(tiny_dataset / "neighbour_emotion_train.npy"),
                                  split_matrix(tiny_dataset, "train"))
    assert main(["neighbours", str(tiny_dataset), "--split", "train"]) == 2
    assert "already exists" in capsys.readouterr().err
