"""`regnn evaluate --protocol react2025` and the MARS baselines on a synthetic MARS dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from regnn.cli import main
from regnn.data import mars
from regnn.data.mars_synthetic import MarsSyntheticSettings, write_mars_dataset
from regnn.metrics import mars as mars_metrics
from regnn.metrics import mars_evaluate
from regnn.metrics.react import MetricInputError
from regnn.protocols import get

SETTINGS = MarsSyntheticSettings(seed=8, sessions={"train": 1, "test": 2}, stems_per_session=(2, 3))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mars-eval") / "mars"
    write_mars_dataset(root, SETTINGS)
    return root


def _samples(root: Path, split: str = "test") -> list[tuple[str, int]]:
    index = mars.build_index(root, split)
    return [(s, len(index.attributes[index.clips.index(s)])) for s, _ in index.samples]


def _write_predictions(root: Path, folder: Path, ext: str = ".npy", seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for key, frames in _samples(root):
        d = folder / "test" / key
        d.mkdir(parents=True, exist_ok=True)
        for j in range(10):
            value = rng.random((frames, 25), dtype=np.float32)
            if ext == ".npy":
                np.save(d / f"result-{j}.npy", value)
            else:
                torch.save(torch.from_numpy(value)[None], d / f"result-{j}.pth")  # (1, T, 25) is tolerated


def _metrics(path: Path) -> dict[str, str]:
    header, row = path.read_text().splitlines()
    return dict(zip(header.split("\t"), row.split("\t")))


def test_cli_scores_a_folder_and_writes_the_drawn_targets(dataset: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    _write_predictions(dataset, tmp_path / "pred")
    out = tmp_path / "m.tsv"
    assert main(["evaluate", "--protocol", "react2025", "--data-dir", str(dataset), "--pred-dir",
                 str(tmp_path / "pred"), "--split", "test", "--out", str(out), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "FRC    = " in printed and "FRDvs" not in printed and "interpolate" in printed
    values = _metrics(out)
    assert list(values) == [*mars_metrics.METRICS, "resampling"] and values["resampling"] == "interpolate"
    drawn = tmp_path / "m.targets.tsv"
    assert drawn.read_text().splitlines()[0] == "speaker\ttarget"
    # the written set, passed back, scores the same; so does a .pth folder with the same values
    shutil.copytree(tmp_path / "pred", tmp_path / "pth")
    for f in (tmp_path / "pth").rglob("*.npy"):
        torch.save(torch.from_numpy(np.load(f))[None], f.with_suffix(".pth"))
        f.unlink()
    again = tmp_path / "again.tsv"
    assert main(["evaluate", "--protocol", "react2025", "--data-dir", str(dataset), "--pred-dir",
                 str(tmp_path / "pth"), "--split", "test", "--targets", str(drawn), "--out", str(again)]) == 0
    assert _metrics(again) == values
    assert not (tmp_path / "again.targets.tsv").exists()


def test_user_targets_change_the_scores(dataset: Path, tmp_path: Path) -> None:
    _write_predictions(dataset, tmp_path / "pred")
    samples = [k for k, _ in _samples(dataset)]
    own = tmp_path / "own.tsv"
    own.write_text("speaker\ttarget\n" + "".join(f"{s}\t{s}\n" for s in samples))  # score against oneself
    data = mars_evaluate.dataset_set(dataset, "test", targets=own)
    assert all(data.targets[s] == [s] for s in samples)


def test_h5_predictions_and_the_speaker_to_listener_direction(dataset: Path, tmp_path: Path) -> None:
    data = mars_evaluate.dataset_set(dataset, "test", direction="speaker_to_listener")
    assert all(s.startswith("speaker/") for s in data.samples)
    rng = np.random.default_rng(1)
    preds = {s: rng.random((10, len(data.series(s)), 25), dtype=np.float32) for s in data.samples}
    order = data.samples[::-1]  # by key, not by position
    lengths = [preds[s].shape[1] for s in order]
    path = tmp_path / "pred.h5"
    with h5py.File(path, "w") as f:
        f["clips"] = np.array(order, dtype=object).astype("S")
        f["offsets"] = np.concatenate([[0], np.cumsum(lengths)])
        f["predictions"] = np.concatenate([preds[s].transpose(1, 0, 2) for s in order])
    got = mars_evaluate.evaluate_dataset(dataset, path, "test", direction="speaker_to_listener")
    want = mars_evaluate.score(data, lambda key, frames: preds[key])
    assert got == want


def test_missing_and_malformed_predictions_are_named(dataset: Path, tmp_path: Path) -> None:
    pred = tmp_path / "pred"
    _write_predictions(dataset, pred)
    key, frames = _samples(dataset)[0]
    (pred / "test" / key / "result-3.npy").unlink()
    with pytest.raises(MetricInputError, match=rf"clip '{key}'.*result-3.pth \(or .npy\) is missing"):
        mars_evaluate.evaluate_dataset(dataset, pred, "test")
    np.save(pred / "test" / key / "result-3.npy", np.zeros((frames - 1, 25), np.float32))
    with pytest.raises(MetricInputError, match=rf"result-3.npy has shape \({frames - 1}, 25\).*speaker clip's length"):
        mars_evaluate.evaluate_dataset(dataset, pred, "test")
    (pred / "test" / key / "result-3.npy").write_bytes(b"junk")
    with pytest.raises(MetricInputError, match="result-3.npy is unreadable"):
        mars_evaluate.evaluate_dataset(dataset, pred, "test")
    with pytest.raises(MetricInputError, match="no prediction folder"):
        mars_evaluate.evaluate_dataset(dataset, tmp_path / "nothing", "test")
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["predictions"] = np.zeros((3, 10, 25), np.float32)
    with pytest.raises(MetricInputError, match="no 'clips' dataset"):
        mars_evaluate.evaluate_dataset(dataset, bad, "test")


def test_cli_reports_bad_inputs_without_a_traceback(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="regnn evaluate: .*no prediction folder"):
        main(["evaluate", "--protocol", "react2025", "--data-dir", str(dataset), "--pred-dir",
              str(tmp_path / "none"), "--split", "test", "--out", str(tmp_path / "m.tsv")])
    with pytest.raises(SystemExit, match="--targets is for react2025"):
        main(["evaluate", "--data-dir", str(dataset), "--pred-dir", str(tmp_path), "--split", "test",
              "--targets", str(tmp_path / "t.tsv")])


def test_baselines_on_the_pipeline_cache(dataset: Path, tmp_path: Path) -> None:
    protocol = get("react2025")
    outputs = {}
    for split in ("train", "test"):
        outputs[split] = {k: tmp_path / split / p.name for k, p in protocol.dataset_outputs(split).items()}
        protocol.index_split(dataset, split, outputs[split], {"direction": "both"})
    results = {}
    for name in protocol.baselines:
        out = tmp_path / f"{name}.tsv"
        results[name] = protocol.evaluate_baseline(name, outputs["test"], out, {"baselines": {"samples": 3}},
                                                   train_dataset=outputs["train"])
        assert _metrics(out)["resampling"] == "interpolate"
    assert results["ground_truth"]["FRD"] == 0.0 and results["ground_truth"]["MAE"] < results["random"]["MAE"]
    assert results["mime"]["S-MSE"] == 0.0 and results["mime"]["FRVar"] > 0  # 3 copies of the speaker
    assert results["random"]["S-MSE"] > 0
    assert results["mean_frame"]["S-MSE"] == 0.0 and results["mean_frame"]["FRVar"] == 0.0
    cache = mars.load_cache(outputs["train"]["emotions"])
    partners = np.concatenate([cache.series(int(i)) for i in sorted(set(cache.listener_index.tolist()))])
    np.testing.assert_allclose(mars_evaluate.mean_partner_frame(outputs["train"]["emotions"]), partners.mean(0),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="unknown baseline"):
        mars_evaluate.baseline("nope", mars_evaluate.pipeline_set(outputs["test"]["emotions"],
                                                                  outputs["test"]["targets"]))
