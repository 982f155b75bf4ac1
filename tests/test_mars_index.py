"""MARS (REACT 2025/2026): the synthetic generator, index_split's walk/pair/checks, target sets, skipping."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from regnn.cli import main
from regnn.data import mars
from regnn.data.layout import DatasetError
from regnn.data.mars_synthetic import MarsSyntheticSettings, write_mars_dataset

SMALL = MarsSyntheticSettings(seed=5, sessions={"train": 1, "test": 2}, stems_per_session=(3, 4))


@pytest.fixture(scope="module")
def mars_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mars") / "mars"
    write_mars_dataset(root, SMALL)
    return root


@pytest.fixture
def mars_root(mars_master: Path, tmp_path: Path) -> Path:
    root = tmp_path / "mars"
    shutil.copytree(mars_master, root)
    return root


def _outputs(folder: Path) -> dict[str, Path]:
    return {"index_tsv": folder / "index.tsv", "emotions_h5": folder / "emotions.h5",
            "targets_tsv": folder / "targets.tsv"}


def _clip(root: Path, modality: str, n: int = 0, role: str = "speaker", split: str = "test") -> Path:
    ext = {**mars.REQUIRED, **mars.OPTIONAL}[modality]
    return sorted(p for p in (root / split / modality / role).glob(f"*/*{ext}")
                  if not mars.is_junk(p.name) and not mars.is_junk(p.parent.name))[n]


def test_generator_is_deterministic_and_has_what_mars_has(tmp_path: Path, mars_master: Path) -> None:
    write_mars_dataset(tmp_path / "again", SMALL)
    files = sorted(p.relative_to(mars_master) for p in mars_master.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*") if p.is_file())
    assert all((mars_master / f).read_bytes() == (tmp_path / "again" / f).read_bytes() for f in files)
    names = {p.name for p in mars_master.rglob("*")}
    assert {".DS_Store", "__MACOSX", "PaxHeader"} <= names and any(n.startswith("._") for n in names)
    lengths = {len(np.load(p)) for p in mars_master.glob("test/facial-attributes/*/*/[!.]*.npy")}
    assert len(lengths) > 3 and min(lengths) >= SMALL.frames[0]
    per_session = [len(list(s.glob("[!.]*.npy"))) for s in mars_master.glob("test/facial-attributes/listener/*")]
    assert min(per_session) >= 2
    write_mars_dataset(tmp_path / "other", MarsSyntheticSettings(seed=6, sessions={"test": 1}))
    assert sorted((tmp_path / "other").rglob("*.npy")) != sorted((tmp_path / "again").rglob("*.npy"))
    with pytest.raises(FileExistsError):
        write_mars_dataset(tmp_path / "again", SMALL)


def test_index_pairs_roles_records_lengths_and_logs_junk(mars_root: Path, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="regnn"):
        n = mars.index_split(mars_root, "test", **_outputs(tmp_path))
    junk = [r.getMessage() for r in caplog.records if "junk" in r.getMessage()]
    assert any("._" in m for m in junk) and any("PaxHeader" in m for m in junk) and any(".DS_Store" in m for m in junk)
    cache = mars.load_cache(tmp_path / "emotions.h5")
    speakers = sorted(p for p in (mars_root / "test/facial-attributes/speaker").glob("*/[!.]*.npy"))
    assert n == 2 * len(speakers) == len(cache.samples)  # both directions
    for s, p in zip(cache.speaker_index, cache.listener_index):
        assert mars.partner_key(cache.clips[s]) == cache.clips[p]
    for clip in cache.clips:
        assert np.array_equal(cache.series(clip), np.load(mars_root / "test/facial-attributes" / f"{clip}.npy"))
    rows = (tmp_path / "index.tsv").read_text().splitlines()
    assert rows[0].split("\t") == mars.INDEX_COLUMNS
    first = dict(zip(mars.INDEX_COLUMNS, rows[1].split("\t")))
    assert int(first["frames"]) == len(cache.series(first["speaker"]))
    assert int(first["listener_frames"]) == len(cache.series(first["listener"]))
    with h5py.File(tmp_path / "emotions.h5") as f:
        assert f.attrs["protocol"] == "react2025" and f.attrs["direction"] == "both"


def test_speaker_to_listener_uses_only_speaker_inputs(mars_root: Path, tmp_path: Path) -> None:
    mars.index_split(mars_root, "test", **_outputs(tmp_path), direction="speaker_to_listener")
    cache = mars.load_cache(tmp_path / "emotions.h5")
    assert cache.samples and all(s.startswith("speaker/") for s in cache.samples)
    targets = [r.split("\t") for r in (tmp_path / "targets.tsv").read_text().splitlines()[1:]]
    assert {s for s, _ in targets} == set(cache.samples) and all(t.startswith("listener/") for _, t in targets)


def test_every_problem_is_reported_at_once_naming_the_file(mars_root: Path, tmp_path: Path) -> None:
    missing_partner = _clip(mars_root, mars.ATTRIBUTES, 0, "listener")
    for modality in (*mars.REQUIRED, *mars.OPTIONAL):  # the listener of this stem is gone from every modality
        _clip(mars_root, modality, 0, "listener").unlink()
    missing_video = _clip(mars_root, mars.VIDEO, 1)
    missing_video.unlink()
    corrupt = _clip(mars_root, mars.ATTRIBUTES, 2)
    corrupt.write_bytes(b"not numpy")
    columns = _clip(mars_root, mars.ATTRIBUTES, 3)
    np.save(columns, np.zeros((80, 24), np.float32))
    nan = _clip(mars_root, mars.ATTRIBUTES, 1, "listener")
    values = np.load(nan)
    values[5, 7] = np.nan
    np.save(nan, values)
    short = _clip(mars_root, mars.ATTRIBUTES, 2, "listener")
    np.save(short, np.load(short)[:-10])  # 10 frames shorter than its video and audio
    audio = _clip(mars_root, mars.AUDIO, 3, "listener")
    audio.write_bytes(b"RIFF garbage")
    video = _clip(mars_root, mars.VIDEO, 4, "listener")
    video.write_bytes(b"\0" * 100)
    coefficients = _clip(mars_root, mars.COEFFICIENTS, 4)
    np.save(coefficients, np.zeros((10, 57), np.float32))
    stray = mars_root / "test" / mars.ATTRIBUTES / "speaker" / "notes.txt"
    stray.write_text("hello")
    out = tmp_path / "out"
    with pytest.raises(DatasetError) as err:
        mars.index_split(mars_root, "test", **_outputs(out))
    text = str(err.value)
    expected = {
        missing_partner.stem: "no paired listener",
        f"{missing_video}": "video-face-crop file of clip",
        f"{corrupt}": "unreadable facial-attributes",
        f"{columns}": "expected (frames, 25)",
        f"{nan}": "non-finite value at frame 5, column 7",
        f"{short}": "tolerance 3",
        f"{audio}": "audio is unreadable",
        f"{video}": "video file is unreadable",
        f"{coefficients}": "coefficients have shape (10, 57)",
        f"{stray}": "not a facial-attributes clip",
    }
    for fragment, problem in expected.items():
        assert any(fragment in line and problem in line for line in text.splitlines()), (fragment, problem, text)
    assert not out.exists()


@pytest.mark.parametrize("damage, message", [
    (lambda root: shutil.rmtree(root / "test"), "split folder is missing"),
    (lambda root: shutil.rmtree(root / "test" / mars.AUDIO), "audio folder is missing"),
    (lambda root: [p.unlink() for p in (root / "test").rglob("*") if p.is_file()], "no clips found"),
])
def test_split_wide_problems(mars_root: Path, tmp_path: Path, damage, message: str) -> None:
    damage(mars_root)
    with pytest.raises(DatasetError, match=message):
        mars.index_split(mars_root, "test", **_outputs(tmp_path / "out"), incomplete="skip")
    assert not (tmp_path / "out").exists()


def test_skip_drops_every_sample_a_problem_touches(mars_root: Path, tmp_path: Path) -> None:
    broken = _clip(mars_root, mars.ATTRIBUTES, 0, "listener")
    broken.write_bytes(b"broken")
    key = f"listener/{broken.parent.name}/{broken.stem}"
    n = mars.index_split(mars_root, "test", **_outputs(tmp_path), skipped_tsv=tmp_path / "skipped.tsv",
                         incomplete="skip")
    skipped = [r.split("\t") for r in (tmp_path / "skipped.tsv").read_text().splitlines()]
    assert skipped[0] == mars.SKIPPED_COLUMNS
    assert sorted(r[0] for r in skipped[1:]) == sorted([key, mars.partner_key(key)])  # both directions
    assert all(str(broken) in r[1] for r in skipped[1:])
    cache = mars.load_cache(tmp_path / "emotions.h5")
    assert key not in cache.clips and mars.partner_key(key) not in cache.clips and n == len(cache.samples)
    assert key not in (tmp_path / "targets.tsv").read_text()  # not a target of its session's others either


def test_targets_follow_the_session_rule_with_a_fixed_seed() -> None:
    many = {("listener", "s0"): [f"listener/s0/c{i}" for i in range(14)], ("listener", "s1"): ["listener/s1/c0"]}
    samples = [(f"speaker/s0/c{i}", f"listener/s0/c{i}") for i in range(14)] + [("speaker/s1/c0", "listener/s1/c0")]
    rows = mars.draw_targets(samples, many)
    by = {}
    for s, t in rows:
        by.setdefault(s, []).append(t)
    assert all(len(v) == 10 and v[0] == mars.partner_key(s) and len(set(v)) == 10 for s, v in by.items()
               if "/s0/" in s)
    assert all(t.startswith("listener/s0/") for s, v in by.items() if "/s0/" in s for t in v)
    assert by["speaker/s1/c0"] == ["listener/s1/c0"]  # a session with fewer: all of it, no padding
    assert rows == mars.draw_targets(samples, many)
    assert rows != mars.draw_targets(samples, many, seed=2)
    assert mars.draw_targets(samples[:1], many) == [r for r in rows if r[0] == samples[0][0]]  # per-clip seeding


@pytest.mark.parametrize("content, message", [
    ("a\tb\n", "header is"),
    ("speaker\ttarget\nspeaker/s0/x\n", "expected 2 tab-separated cells"),
    ("speaker\ttarget\nspeaker/s0/x\tlistener/s0/nope\n", "target 'listener/s0/nope' is no clip"),
    ("speaker\ttarget\n", "no target for 1 sample"),
])
def test_bad_target_files_are_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "targets.tsv"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message) as err:
        mars.read_targets(path, ["speaker/s0/x"], ["speaker/s0/x", "listener/s0/x"])
    assert str(path) in str(err.value)
    with pytest.raises(DatasetError, match="target file is missing"):
        mars.read_targets(tmp_path / "none.tsv", ["speaker/s0/x"], [])


def test_cli_index_for_mars(mars_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "ds"
    assert main(["index", str(mars_root), "--split", "train", "--out", str(out), "--protocol", "react2025",
                 "--incomplete", "skip"]) == 0
    assert {p.name for p in out.iterdir()} == {"index.tsv", "emotions.h5", "targets.tsv", "skipped.tsv"}
    assert (out / "skipped.tsv").read_text() == "clip\treason\n"
    assert "react2025" in capsys.readouterr().out


def test_cli_demo_data_writes_mars(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["demo-data", str(tmp_path / "m"), "--protocol", "react2025", "--seed", "1"]) == 0
    assert "MARS" in capsys.readouterr().out
    assert mars.build_index(tmp_path / "m", "val").samples
