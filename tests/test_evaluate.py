"""`regnn evaluate` as a drop-in for the official script, the evaluate/baseline rules' functions, the summary."""

from __future__ import annotations

import csv
import logging
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from regnn import cli
from regnn.data.layout import DatasetError
from regnn.metrics import baselines, evaluate, react, reference, summary, tensor_file

FRAMES = 750
ROWS = [  # speaker_path, listener_path (NoXI persons map to P1/P2 in Emotion/, RECOLA P25/P26 too)
    ("NoXI/010_2016-03-25_Paris/Expert_video/1", "NoXI/010_2016-03-25_Paris/Novice_video/1"),
    ("NoXI/010_2016-03-25_Paris/Expert_video/2", "NoXI/010_2016-03-25_Paris/Novice_video/2"),
    ("RECOLA/group-1/P25/1", "RECOLA/group-1/P26/1"),
]


def emotion_path(root: Path, key: str) -> Path:
    site, session, person, clip = key.split("/")
    person = {"Expert_video": "P1", "Novice_video": "P2", "P25": "P1", "P26": "P2"}[person]
    return root / "test" / "Emotion" / site / session / person / f"{clip}.csv"


@pytest.fixture(scope="module")
def react_dir(tmp_path_factory):
    """A REACT-layout folder with only what evaluation reads, and predictions in the official layout."""
    root = tmp_path_factory.mktemp("react")
    rng = np.random.default_rng(0)
    with (root / "test.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["", "speaker_path", "listener_path"])
        for i, (s, l) in enumerate(ROWS):
            writer.writerow([i, s, l])
    speakers = [s for s, _ in ROWS] + [l for _, l in ROWS]
    emotions = {}
    for key in speakers:
        e = np.empty((FRAMES, 25), dtype=np.float32)
        e[:, :15] = rng.random((FRAMES, 15)) > 0.7
        e[:, 15:] = np.cumsum(rng.standard_normal((FRAMES, 10)), axis=0) / 30
        e[:, 3] = 0  # a constant column, as in real data
        emotions[key] = e
        path = emotion_path(root, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = ",".join(f"c{d}" for d in range(25))
        np.savetxt(path, e, delimiter=",", header=header, comments="", fmt="%.6f")
    size = len(speakers)
    matrix = np.eye(size)
    matrix[0, 4] = matrix[1, 5] = matrix[3, 2] = matrix[5, 0] = 1
    np.save(root / "neighbour_emotion_test.npy", matrix)
    pred_dir = root / "outputs"
    pred = rng.random((size, 2, FRAMES, 25)).astype(np.float32) * 0.5
    for k, key in enumerate(speakers):
        folder = pred_dir / "test" / key
        folder.mkdir(parents=True)
        for j in range(2):
            torch.save(torch.from_numpy(pred[k, j]), folder / f"result-{j}.pth")
    # what the data looks like after reading (the official script round-trips the CSVs through pandas)
    speaker = np.stack([np.loadtxt(emotion_path(root, k), delimiter=",", skiprows=1, dtype=np.float32)
                        for k in speakers])
    listener = speaker[(np.arange(size) + size // 2) % size]
    return {"root": root, "pred_dir": pred_dir, "clips": speakers, "pred": pred, "speaker": speaker,
            "listener": listener, "neighbours": matrix}


def run_cli(*args: str) -> int:
    return cli.main(["evaluate", *args])


def test_cli_prints_the_official_lines_and_writes_a_tsv(react_dir, tmp_path, capsys):
    out = tmp_path / "metrics.tsv"
    assert run_cli("--data-dir", str(react_dir["root"]), "--pred-dir", str(react_dir["pred_dir"]), "--split", "test",
                   "--samples", "2", "--device", "cpu", "--out", str(out)) == 0
    want = reference.official_metrics(react_dir["pred"], react_dir["speaker"], react_dir["listener"],
                                      react_dir["neighbours"], processes=1)
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed == evaluate.official_lines(evaluate.read_metrics(out))
    assert printed[0].startswith("Metric: | FRC: ") and printed[1].startswith("Latex-friendly --> model_name & ")
    got = evaluate.read_metrics(out)
    assert list(got) == list(react.METRICS)
    for name in react.METRICS:
        assert got[name] == pytest.approx(want[name], rel=1e-4, abs=1e-12), name


def test_cli_reads_our_predictions_file_too(react_dir, tmp_path, capsys):
    h5 = tmp_path / "test.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("predictions", data=react_dir["pred"])
        f.create_dataset("clips", data=np.array(react_dir["clips"], dtype=object), dtype=h5py.string_dtype())
    run_cli("--data-dir", str(react_dir["root"]), "--pred-dir", str(react_dir["pred_dir"]), "--split", "test",
            "--samples", "2", "--device", "cpu")
    from_pth = capsys.readouterr().out
    run_cli("--data-dir", str(react_dir["root"]), "--pred-dir", str(h5), "--split", "test", "--device", "cpu")
    assert capsys.readouterr().out == from_pth


START_UP = """
import sys
from regnn import cli
cli.main(["evaluate", "--data-dir", sys.argv[1], "--pred-dir", sys.argv[2], "--split", "test", "--samples", "2",
          "--device", "cpu"])
print(sorted(m for m in ("torch", "pandas", "h5py", "scipy", "tslearn") if m in sys.modules))
"""


def test_cli_on_the_official_layout_imports_no_heavy_library(react_dir):
    """torch, pandas, h5py and scipy cost seconds of start-up per evaluation process; none is needed here."""
    result = subprocess.run([sys.executable, "-c", START_UP, str(react_dir["root"]), str(react_dir["pred_dir"])],
                            capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[0].startswith("Metric: | FRC: ")
    assert result.stdout.splitlines()[-1] == "[]"


def test_prediction_files_are_read_without_torch_and_without_running_pickled_code(tmp_path):
    values = torch.rand(2, 750, 25, dtype=torch.float64)
    cases = {"plain": values[0].float(), "batched": values[:1].float(), "strided": values[:, ::2].transpose(0, 1),
             "half": values[0].half(), "grad": values[0].float().requires_grad_()}
    for name, tensor in cases.items():
        torch.save(tensor, tmp_path / f"{name}.pth")
        got = tensor_file.load_tensor_file(tmp_path / f"{name}.pth")
        np.testing.assert_array_equal(got, tensor.detach().numpy(), err_msg=name)
    torch.save(torch.nn.Parameter(values[0].bfloat16()), tmp_path / "other.pth")  # outside the subset: torch
    assert tensor_file.load_tensor_file(tmp_path / "other.pth").shape == (750, 25)

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    with zipfile.ZipFile(tmp_path / "evil.pth", "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps(Payload(), protocol=2))
        archive.writestr("evil/byteorder", "little")
    with pytest.raises(Exception):
        tensor_file.load_tensor_file(tmp_path / "evil.pth")
    assert not marker.exists()
    with pytest.raises(react.MetricInputError, match="evil.pth is unreadable"):
        evaluate._load_pth(tmp_path / "evil.pth", "clip", 750)


def test_cli_names_a_missing_prediction_file(react_dir):
    with pytest.raises(SystemExit, match=r"6 prediction file\(s\) missing: clip 'NoXI/010_2016-03-25_Paris/"
                                         r"Expert_video/1': prediction file .*result-2\.pth is missing; .*"
                                         r"\(and 1 more\)"):
        run_cli("--data-dir", str(react_dir["root"]), "--pred-dir", str(react_dir["pred_dir"]), "--split", "test",
                "--samples", "3")


def test_official_layout_problems_are_named(react_dir, tmp_path):
    bad = tmp_path / "bad"
    key = react_dir["clips"][1]
    (bad / "test" / key).mkdir(parents=True)
    torch.save(torch.zeros(FRAMES, 24), bad / "test" / key / "result-0.pth")
    for other in react_dir["clips"]:
        (bad / "test" / other).mkdir(parents=True, exist_ok=True)
        if other != key:
            torch.save(torch.zeros(FRAMES, 25), bad / "test" / other / "result-0.pth")
    with pytest.raises(react.MetricInputError, match=rf"clip '{key}': .*shape \(750, 24\)"):
        evaluate.load_official_set(react_dir["root"], bad, "test", samples=1)
    wrong = tmp_path / "wrong_matrix"
    wrong.mkdir()
    (wrong / "test.csv").write_bytes((react_dir["root"] / "test.csv").read_bytes())
    (wrong / "test").symlink_to(react_dir["root"] / "test")
    np.save(wrong / "neighbour_emotion_test.npy", np.eye(4))
    with pytest.raises(react.MetricInputError, match="does not match the split"):
        evaluate.load_official_set(wrong, react_dir["pred_dir"], "test", samples=2)
    np.save(wrong / "neighbour_emotion_test.npy", np.eye(6))
    emotion_path(wrong, ROWS[2][1]).rename(emotion_path(wrong, ROWS[2][1]).with_suffix(".bak"))
    try:
        with pytest.raises(DatasetError, match=r"P2/1\.csv: emotion CSV of clip 'RECOLA/group-1/P26/1' is missing"):
            evaluate.load_official_set(wrong, react_dir["pred_dir"], "test", samples=2)
    finally:
        emotion_path(wrong, ROWS[2][1]).with_suffix(".bak").rename(emotion_path(wrong, ROWS[2][1]))


def write_pipeline_files(react_dir, folder: Path, pred: np.ndarray | None = None, clips=None) -> tuple[Path, Path]:
    """emotions.h5 (the dataset stage's contract) and a predictions file (the generate stage's contract)."""
    size = len(react_dir["clips"])
    emotions_h5, predictions_h5 = folder / "emotions.h5", folder / "predictions.h5"
    with h5py.File(emotions_h5, "w") as f:
        f.create_dataset("clips", data=np.array(react_dir["clips"], dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("emotions", data=react_dir["speaker"])
        f.create_dataset("listener_index", data=(np.arange(size) + size // 2) % size)
        f.create_dataset("neighbours", data=react_dir["neighbours"].astype(np.uint8))
    with h5py.File(predictions_h5, "w") as f:
        f.create_dataset("predictions", data=react_dir["pred"] if pred is None else pred)
        f.create_dataset("clips", data=np.array(clips or react_dir["clips"], dtype=object),
                         dtype=h5py.string_dtype())
    return predictions_h5, emotions_h5


def test_evaluate_rule_scores_pipeline_files(react_dir, tmp_path):
    predictions, emotions = write_pipeline_files(react_dir, tmp_path)
    out = tmp_path / "metrics" / "test.tsv"
    got = evaluate.evaluate_run(predictions, emotions, out, {"device": "cpu", "corrected": True}, threads=2)
    header = out.read_text().splitlines()[0].split("\t")
    assert header == [*react.METRICS, "TLCC_corrected"]
    want = react.compute_metrics(react_dir["pred"], react_dir["speaker"], react_dir["listener"],
                                 react_dir["neighbours"], device="cpu", corrected=True)
    assert evaluate.read_metrics(out) == pytest.approx(want) == got


@pytest.mark.parametrize("problem, message", [
    ("nan", r"clip 'RECOLA/group-1/P25/1' \(position 2\): prediction has NaN"),
    ("order", r"position 0 holds clip 'x', expected 'NoXI/010_2016-03-25_Paris/Expert_video/1'"),
    ("shape", r"predictions have shape \(6, 2, 750\), expected \(6, samples, frames, 25\)"),
])
def test_evaluate_rule_rejects_bad_predictions_without_writing(react_dir, tmp_path, problem, message):
    pred = react_dir["pred"].copy()
    clips = list(react_dir["clips"])
    if problem == "nan":
        pred[2, 1, 5, 5] = np.nan
    elif problem == "order":
        clips[0] = "x"
    elif problem == "shape":
        pred = pred[..., 0]
    predictions, emotions = write_pipeline_files(react_dir, tmp_path, pred, clips)
    out = tmp_path / "metrics.tsv"
    with pytest.raises(react.MetricInputError, match=message):
        evaluate.evaluate_run(predictions, emotions, out, {"device": "cpu"})
    assert list(tmp_path.glob("metrics*")) == [] and list(tmp_path.glob(".metrics*")) == []


def test_baselines_follow_the_official_definitions(react_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="regnn")
    _, emotions = write_pipeline_files(react_dir, tmp_path)
    settings = {"device": "cpu", "baselines": {"samples": 3, "seed": 7}}
    truth = baselines.evaluate_baseline("ground_truth", emotions, tmp_path / "gt.tsv", settings)
    assert truth["FRD"] == 0.0 and truth["S-MSE"] == 0.0 and truth["FRVar"] > 0
    assert "Latex-friendly --> ground_truth & " in caplog.text  # logged like the evaluate rule's lines
    mime = baselines.baseline_predictions("mime", react_dir["speaker"], react_dir["listener"], 3)
    np.testing.assert_array_equal(mime[:, 2], react_dir["speaker"])
    first = baselines.baseline_predictions("random", react_dir["speaker"], react_dir["listener"], 3, seed=7)
    again = baselines.baseline_predictions("random", react_dir["speaker"], react_dir["listener"], 3, seed=7)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (6, 3, FRAMES, 25) and 0 <= first.min() and first.max() < 1
    with pytest.raises(ValueError, match="unknown baseline 'average'"):
        baselines.baseline_predictions("average", react_dir["speaker"], react_dir["listener"])


def test_summary_table_latex_and_figures(react_dir, tmp_path):
    predictions, emotions = write_pipeline_files(react_dir, tmp_path)
    runs = []
    for seed, frc in ((1, 0.2), (2, 0.4)):
        path = tmp_path / f"seed-{seed}.tsv"
        evaluate.write_metrics(path, {"FRC": frc, "FRD": 80.0, "S-MSE": 0.001, "FRVar": 0.006, "FRDvs": 0.03,
                                      "TLCC": 40.0 + seed})
        runs.append(path)
    gt = tmp_path / "gt.tsv"
    evaluate.write_metrics(gt, {"FRC": 8.35, "FRD": 0.0, "S-MSE": 0.0, "FRVar": 0.06, "FRDvs": 0.21, "TLCC": 48.4})
    out = tmp_path / "summary"
    rows = summary.summarize("test", {"regnn": runs}, {"ground_truth": gt}, out / "test.tsv", out / "test.tex",
                             out / "figures" / "test-methods.png",
                             {"regnn": (predictions, out / "figures" / "test-reactions-regnn.png")}, emotions,
                             {"figure_clips": 2})
    table = list(csv.DictReader((out / "test.tsv").open(), delimiter="\t"))
    assert [r["method"] for r in table] == ["regnn", "ground_truth"]
    assert float(table[0]["FRC"]) == pytest.approx(0.3)
    assert float(table[0]["FRC_std"]) == pytest.approx(0.1414, abs=1e-4)
    assert table[1]["FRC_std"] == "" and table[1]["type"] == "baseline"
    assert rows[0]["runs"] == 2
    tex = (out / "test.tex").read_text()
    assert r"regnn & 0.30 $\pm$ 0.14 & 80.00 $\pm$ 0.00" in tex and r"ground\_truth & 8.35 & 0.00" in tex
    for figure in ("test-methods.png", "test-reactions-regnn.png"):
        assert (out / "figures" / figure).read_bytes()[:4] == b"\x89PNG"
