"""The index resolves the mirrored 2N samples, checks every file, and reports all problems at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from regnn.cli import main
from regnn.data import layout
from regnn.data.index import build_index, index_split, load_emotions, read_index
from regnn.data.layout import DatasetError


def _index_and_expect(root: Path, tmp_path: Path, *fragments: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(DatasetError) as err:
        index_split(root, "test", out / "index.tsv", out / "emotions.h5")
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)
    assert not out.exists() or not any(out.iterdir())


def test_index_and_cache_follow_the_mirrored_convention(tiny_dataset: Path, tmp_path: Path) -> None:
    n = index_split(tiny_dataset, "train", tmp_path / "index.tsv", tmp_path / "emotions.h5")
    rows = layout.read_split(tiny_dataset, "train")
    assert n == 2 * len(rows)
    index = read_index(tmp_path / "index.tsv")
    cache = load_emotions(tmp_path / "emotions.h5")
    half = len(rows)
    assert [r.speaker for r in index] == [s for s, _ in rows] + [l for _, l in rows] == cache.clips
    assert [r.listener for r in index] == [l for _, l in rows] + [s for s, _ in rows]
    assert index[half].emotion.parent.name == "P2" and index[0].emotion.parent.name == "P1"
    assert all(r.video.suffix == ".mp4" and r.video.is_absolute() for r in index)
    assert cache.emotions.shape == (n, 750, 25) and cache.emotions.dtype == np.float32
    np.testing.assert_array_equal(cache.listener[0], cache.emotions[half])
    np.testing.assert_array_equal(cache.neighbours, np.load(tiny_dataset / "neighbour_emotion_train.npy"))


def test_video_as_png_folder_is_accepted(tiny_dataset: Path) -> None:
    key = layout.read_split(tiny_dataset, "test")[0][0]
    mp4 = tiny_dataset / "test" / "Video_files" / f"{key}.mp4"
    mp4.unlink()
    frames = mp4.with_suffix("")
    frames.mkdir()
    for i in range(1, 752):
        (frames / f"{i}.png").write_bytes(b"")
    index, _ = build_index(tiny_dataset, "test")
    assert index[0].video == frames


def test_every_problem_is_reported_at_once_and_nothing_is_written(tiny_dataset: Path, tmp_path: Path) -> None:
    rows = layout.read_split(tiny_dataset, "test")
    (speaker, listener), (other, _) = rows[0], rows[1]
    (tiny_dataset / "test" / "Video_files" / f"{speaker}.mp4").unlink()
    (tiny_dataset / "test" / "Video_files" / f"{other}.mp4").write_bytes(b"\0" * 4096)
    (tiny_dataset / "test" / "Audio_files" / f"{listener}.wav").write_bytes(b"not a wav")
    short = layout.emotion_path(tiny_dataset, "test", other)
    short.write_text("\n".join(short.read_text().splitlines()[:100]) + "\n")
    _index_and_expect(tiny_dataset, tmp_path, f"{speaker}.mp4: video is missing",
                      f"{other}.mp4: video file is unreadable",
                      f"{listener}.wav: audio is unreadable", f"{short}: emotion CSV has shape (99, 25)")


def test_non_finite_emotion(tiny_dataset: Path, tmp_path: Path) -> None:
    path = layout.emotion_path(tiny_dataset, "test", layout.read_split(tiny_dataset, "test")[0][0])
    lines = path.read_text().splitlines()
    lines[5] = ",".join(["nan"] + lines[5].split(",")[1:])
    path.write_text("\n".join(lines) + "\n")
    _index_and_expect(tiny_dataset, tmp_path, f"{path}: emotion CSV has a non-finite value at data row 5")


def test_missing_emotion_and_missing_audio(tiny_dataset: Path, tmp_path: Path) -> None:
    key = layout.read_split(tiny_dataset, "test")[1][1]
    layout.emotion_path(tiny_dataset, "test", key).unlink()
    (tiny_dataset / "test" / "Audio_files" / f"{key}.wav").unlink()
    _index_and_expect(tiny_dataset, tmp_path, "emotion CSV is missing", f"{key}.wav: audio is missing")


def test_neighbour_matrix_shape_and_values(tiny_dataset: Path, tmp_path: Path) -> None:
    path = tiny_dataset / "neighbour_emotion_test.npy"
    np.save(path, np.ones((3, 3)))
    _index_and_expect(tiny_dataset, tmp_path, f"{path}: neighbour matrix has shape (3, 3), expected (8, 8)")
    np.save(path, np.full((8, 8), 0.5))
    _index_and_expect(tiny_dataset, tmp_path, "values other than 0 and 1")
    path.unlink()
    _index_and_expect(tiny_dataset, tmp_path, "neighbour matrix is missing")


def test_unresolvable_split_rows(tiny_dataset: Path, tmp_path: Path) -> None:
    csv = tiny_dataset / "test.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join(lines + ["9,NoXI/999_x/Stranger/1,NoXI/999_x/Novice_video/1", "10,only-one"]) + "\n")
    _index_and_expect(tiny_dataset, tmp_path, "test.csv:7: expected")
    csv.write_text("\n".join(lines + ["9,NoXI/999_x/Stranger/1,NoXI/999_x/Novice_video/1"]) + "\n")
    _index_and_expect(tiny_dataset, tmp_path, "unknown person folder 'Stranger'",
                      "Novice_video/1.mp4: video is missing")
    csv.write_text("speaker,listener\n")
    _index_and_expect(tiny_dataset, tmp_path, "header is")


def test_cli_reports_problems_without_a_traceback(tiny_dataset: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tiny_dataset / "neighbour_emotion_test.npy").unlink()
    assert main(["index", str(tiny_dataset), "--split", "test", "--out", str(tmp_path)]) == 2
    assert "neighbour matrix is missing" in capsys.readouterr().err
    assert main(["index", str(tiny_dataset), "--split", "val", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "index.tsv").is_file() and (tmp_path / "emotions.h5").is_file()
