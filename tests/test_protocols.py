"""The protocol interface (react2024 unchanged, react2025 = MARS), the schema's new data keys, incomplete:
skip on REACT 2024, the reduced-split mark of the metrics table, and one Snakemake run of the MARS dataset
and baseline rules."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from regnn import protocols
from regnn.data import layout, mars
from regnn.data.index import build_index, index_split, load_emotions, read_index
from regnn.data.layout import DatasetError
from regnn.data.mars_synthetic import MarsSyntheticSettings, write_mars_dataset
from regnn.metrics.evaluate import read_metrics
from regnn.metrics.summary import reduced_split_note, summarize_rows, write_latex, write_table
from tests.workflow_helpers import REPO, demo_config, planned_jobs, snakemake

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def test_get_names_every_protocol_and_rejects_others() -> None:
    assert protocols.get(None).name == protocols.DEFAULT == "react2024"
    assert {protocols.get(n).name for n in protocols.NAMES} == {"react2024", "react2025"}
    assert "FRDvs" in protocols.get("react2024").metrics and "FRDvs" not in protocols.get("react2025").metrics
    assert protocols.get("react2025").fps == mars.FPS and protocols.get("react2024").fps == layout.FPS
    with pytest.raises(ValueError, match="unknown protocol 'react2023'"):
        protocols.get("react2023")
    with pytest.raises(ValueError, match="direction 'speaker_to_listener' is not available with protocol react2024"):
        protocols.get("react2024").check_data({"direction": "speaker_to_listener"})


def test_react2024_through_the_protocol_is_todays_index(tiny_dataset: Path, tmp_path: Path) -> None:
    protocol = protocols.get("react2024")
    outputs = {k: tmp_path / "p" / v.name for k, v in protocol.dataset_outputs("test").items()}
    assert set(outputs) == {"index", "emotions"}
    protocol.index_split(tiny_dataset, "test", outputs, {"frames": 750})
    index_split(tiny_dataset, "test", tmp_path / "d" / "index.tsv", tmp_path / "d" / "emotions.h5")
    assert (tmp_path / "p/index.tsv").read_bytes() == (tmp_path / "d/index.tsv").read_bytes()
    a, b = load_emotions(outputs["emotions"]), load_emotions(tmp_path / "d/emotions.h5")
    assert a.clips == b.clips and np.array_equal(a.emotions, b.emotions) and np.array_equal(a.neighbours, b.neighbours)
    assert list(protocol.clip_lengths(outputs)) == [750] * len(a.clips)
    assert [list(j) for j in protocol.appropriateness(outputs)] == [list(np.flatnonzero(r)) for r in a.neighbours]


def test_react2024_skip_drops_whole_dyads_and_cuts_the_matrix(tiny_dataset: Path, tmp_path: Path) -> None:
    rows = layout.read_split(tiny_dataset, "test")
    (tiny_dataset / "test" / "Audio_files" / f"{rows[0][1]}.wav").unlink()  # the first dyad's listener
    with pytest.raises(DatasetError, match="audio is missing"):
        build_index(tiny_dataset, "test")
    full = np.load(layout.neighbour_matrix_path(tiny_dataset, "test"))
    n = index_split(tiny_dataset, "test", tmp_path / "index.tsv", tmp_path / "emotions.h5", incomplete="skip",
                    skipped_tsv=tmp_path / "skipped.tsv")
    half = len(rows)
    skipped = [r.split("\t") for r in (tmp_path / "skipped.tsv").read_text().splitlines()]
    assert skipped[0] == ["clip", "reason"]
    assert [r[0] for r in skipped[1:]] == [rows[0][0], rows[0][1]]
    assert all("audio is missing" in r[1] for r in skipped[1:])
    cache = load_emotions(tmp_path / "emotions.h5")
    keep = [k for k in range(2 * half) if k % half != 0]
    assert n == len(keep) and cache.clips == [layout.mirrored(rows)[0][k] for k in keep]
    np.testing.assert_array_equal(cache.neighbours, full[np.ix_(keep, keep)])
    assert [r.position for r in read_index(tmp_path / "index.tsv")] == list(range(n))
    assert np.array_equal(cache.listener, cache.emotions[layout.listener_positions(n)])


def test_react2024_skip_also_drops_dyads_left_without_appropriate_listeners(tiny_dataset: Path,
                                                                            tmp_path: Path) -> None:
    rows = layout.read_split(tiny_dataset, "test")
    size = 2 * len(rows)
    matrix = np.eye(size, dtype=np.float64)
    matrix[1, 1], matrix[1, 0] = 0, 1  # sample 1's only appropriate listener is sample 0
    np.save(layout.neighbour_matrix_path(tiny_dataset, "test"), matrix)
    (tiny_dataset / "test" / "Video_files" / f"{rows[0][0]}.mp4").unlink()
    index_split(tiny_dataset, "test", tmp_path / "index.tsv", tmp_path / "emotions.h5", incomplete="skip",
                skipped_tsv=tmp_path / "skipped.tsv")
    text = (tmp_path / "skipped.tsv").read_text()
    assert f"{rows[1][0]}\tno appropriate listener is left" in text


def test_react2024_split_wide_problems_are_errors_even_when_skipping(tiny_dataset: Path, tmp_path: Path) -> None:
    layout.neighbour_matrix_path(tiny_dataset, "test").unlink()
    with pytest.raises(DatasetError, match="neighbour matrix is missing"):
        index_split(tiny_dataset, "test", tmp_path / "out/i.tsv", tmp_path / "out/e.h5", incomplete="skip",
                    skipped_tsv=tmp_path / "out/s.tsv")
    assert not (tmp_path / "out").exists()


def test_the_table_says_when_the_split_was_reduced(tmp_path: Path) -> None:
    metrics = tmp_path / "m.tsv"
    metrics.write_text("FRC\tFRD\tTLCC\tS-MSE\tFRVar\tMAE\tresampling\n1.5\t20\t3\t0.1\t0.2\t0.3\tinterpolate\n")
    assert read_metrics(metrics)["resampling"] == "interpolate" and read_metrics(metrics)["MAE"] == 0.3
    skipped = tmp_path / "skipped.tsv"
    skipped.write_text("clip\treason\n")
    assert reduced_split_note(skipped) == "" and reduced_split_note(None) == ""
    skipped.write_text("clip\treason\nspeaker/session0/a\tmissing\nlistener/session0/a\tmissing\n")
    note = reduced_split_note(skipped)
    assert note.startswith("computed on a reduced split: 2 sample(s) skipped")
    rows = [{**r, "note": note} for r in summarize_rows({}, {"random": metrics})]
    write_table(rows, tmp_path / "table.tsv")
    header, row = (tmp_path / "table.tsv").read_text().splitlines()
    assert header.split("\t")[-2:] == ["resampling", "note"] and "FRDvs" not in header and "MAE" in header
    assert row.endswith(note)
    write_latex(rows, tmp_path / "table.tex", "test", note)
    assert "reduced split" in (tmp_path / "table.tex").read_text()
    bad = tmp_path / "bad.tsv"
    bad.write_text("FRC\tFRD\n1\t2\n")
    with pytest.raises(ValueError, match="react2024.*react2025"):
        read_metrics(bad)


@pytest.mark.parametrize("key, value", [("protocol", "react2023"), ("direction", "listener"),
                                        ("incomplete", "ignore"), ("length_tolerance", -1)])
def test_schema_rejects_bad_data_settings(key: str, value: object) -> None:
    config = demo_config()
    validate(copy.deepcopy(config), str(SCHEMA))  # the demo config is valid
    config["data"][key] = value
    with pytest.raises(WorkflowError, match=key):
        validate(config, str(SCHEMA))


def test_schema_fills_the_data_defaults() -> None:
    config = demo_config()
    validate(config, str(SCHEMA))
    assert {k: config["data"][k] for k in ("protocol", "direction", "incomplete", "length_tolerance")} == {
        "protocol": "react2024", "direction": "both", "incomplete": "error", "length_tolerance": 3}


def test_mars_dataset_and_baselines_through_the_workflow(tmp_path: Path) -> None:
    root = tmp_path / "mars"
    write_mars_dataset(root, MarsSyntheticSettings(seed=2, sessions={"train": 1, "val": 1, "test": 1}))
    broken = sorted((root / "test" / mars.ATTRIBUTES / "listener").glob("*/[!.]*.npy"))[0]
    broken.write_bytes(b"broken")  # an incomplete download, skipped
    config = demo_config(data={"root": str(root), "protocol": "react2025", "direction": "speaker_to_listener",
                               "incomplete": "skip"})
    config.pop("demo_data")
    config["evaluate"]["baselines"]["names"] = ["ground_truth", "random", "mime", "mean_frame"]
    targets = ["results/dataset/test/targets.tsv", "results/baselines/mean_frame/metrics/test.tsv",
               "results/baselines/ground_truth/metrics/test.tsv"]
    run = snakemake(tmp_path / "work", config, *targets)
    assert run.returncode == 0, run.stdout[-3000:]
    work = tmp_path / "work" / "results"
    assert str(broken) in (work / "dataset/test/skipped.tsv").read_text()
    assert read_metrics(work / "baselines/ground_truth/metrics/test.tsv")["FRD"] == 0.0
    assert set(read_metrics(work / "baselines/mean_frame/metrics/test.tsv")) == {*protocols.get("react2025").metrics,
                                                                                 "resampling"}
    assert (work / "dataset/train/emotions.h5").is_file()  # the mean frame comes from the training split
    again = snakemake(tmp_path / "work", config, "-n", *targets)
    assert again.returncode == 0 and planned_jobs(again) == {}, again.stdout[-2000:]
    everything = snakemake(tmp_path / "work", config, "-n")  # the default target: every evaluated split's baselines
    # 4 baselines x (val, test), but 2 of test ran above
    assert everything.returncode == 0 and planned_jobs(everything).get("baseline") == 6, everything.stdout[-2000:]
    config["data"].update(protocol="react2024", direction="both")
    wrong = snakemake(tmp_path / "work", config, "-n", *targets)
    assert wrong.returncode != 0 and "['mean_frame'] are not available with data.protocol react2024" in wrong.stdout
