"""The whole demo DAG under Snakemake: it runs end to end, then reruns only what a change invalidates."""

from __future__ import annotations

import copy
import csv
import math
from pathlib import Path

import pytest

from tests.workflow_helpers import demo_config, planned, planned_jobs, planned_reasons, private_checkout, snakemake

pytestmark = pytest.mark.slow


def _tiny_config() -> dict:
    config = demo_config(seeds=[1])
    config["train"].update(epochs=2, batches_per_epoch=3, checkpoint_every=1, checkpoint_offset=0)
    return config


@pytest.fixture(scope="module")
def finished_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    workdir = tmp_path_factory.mktemp("demo")
    config = _tiny_config()
    run = snakemake(workdir, config, timeout=3600)  # a loaded shared 2-core machine took ~30 min
    assert run.returncode == 0, run.stdout[-5000:]
    return workdir, config


def test_metrics_table_has_every_method(finished_demo: tuple[Path, dict]) -> None:
    workdir, config = finished_demo
    for split in config["splits"]["evaluate"]:
        with (workdir / "results/metrics" / f"{split}.tsv").open() as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        assert {r["method"] for r in rows} == {*config["experiments"], "ground_truth", "random", "mime"}
        metrics = ("FRC", "FRD", "S-MSE", "FRVar", "FRDvs", "TLCC")
        assert set(metrics) <= set(rows[0])
        assert all(math.isfinite(float(r[m])) for r in rows for m in metrics)
        assert (workdir / "results/metrics" / f"{split}.tex").is_file()


def test_unchanged_config_plans_nothing(finished_demo: tuple[Path, dict]) -> None:
    workdir, config = finished_demo
    run = snakemake(workdir, config, "-n")
    assert run.returncode == 0 and planned_jobs(run) == {}, run.stdout[-3000:]


def test_audio_extractor_change_reruns_its_chain_and_no_video_job(finished_demo: tuple[Path, dict]) -> None:
    workdir, config = finished_demo
    changed = copy.deepcopy(config)
    changed["extractors"]["vggish"]["seed"] = 1
    run = snakemake(workdir, changed, "-n")
    assert run.returncode == 0, run.stdout[-3000:]
    jobs = planned(run)
    extracted = {w["extractor"] for rule, w in jobs if rule == "extract"}
    assert extracted == {"vggish"}
    users = {e for e, s in config["experiments"].items() if s["audio"] == "vggish"}
    assert {w["experiment"] for rule, w in jobs if rule in ("train", "generate", "evaluate")} == users
    assert {rule for rule, _ in jobs} <= {"extract", "train", "generate", "evaluate", "summarize", "all"}


def test_training_change_reruns_train_generate_evaluate_summarize_only(
        finished_demo: tuple[Path, dict]) -> None:
    workdir, config = finished_demo
    changed = copy.deepcopy(config)
    changed["train"]["lr"] = config["train"]["lr"] / 2
    run = snakemake(workdir, changed, "-n")
    assert run.returncode == 0, run.stdout[-3000:]
    counts = planned_jobs(run)
    assert set(counts) == {"train", "generate", "evaluate", "summarize", "all"}, counts
    experiments = len(config["experiments"])
    assert counts["train"] == experiments
    assert counts["generate"] == counts["evaluate"] == experiments * len(config["splits"]["evaluate"])


# Code edits, on a private copy of the workflow and its source tree, planned against the finished demo.
def _plan_after_edits(finished_demo: tuple[Path, dict], tmp_path: Path, edits: dict[str, tuple[str, str]]):
    workdir, config = finished_demo
    checkout = private_checkout(tmp_path)
    for name, (old, new) in edits.items():
        path = checkout / name
        text = path.read_text()
        assert old in text, (name, old)
        path.write_text(text.replace(old, new, 1))
    run = snakemake(workdir, config, "-n", snakefile=checkout / "Snakefile")
    assert run.returncode == 0, run.stdout[-3000:]
    return run


CODE_EDIT = ("\nfrom __future__ import annotations\n", "\nfrom __future__ import annotations\n\n_EDITED = True\n")


def test_an_unchanged_private_copy_of_the_code_plans_nothing(finished_demo: tuple[Path, dict],
                                                              tmp_path: Path) -> None:
    assert planned_jobs(_plan_after_edits(finished_demo, tmp_path, {})) == {}


def test_comment_and_docstring_edits_rerun_nothing(finished_demo: tuple[Path, dict], tmp_path: Path) -> None:
    run = _plan_after_edits(finished_demo, tmp_path, {
        "src/regnn/features/vggish.py": ('"""', '"""An edited docstring.\n\n'),
        "src/regnn/metrics/react.py": ("\nimport numpy as np\n", "\n# an added comment\nimport numpy as np  # np\n"),
        "src/regnn/model/perceptual.py": ("\nimport torch\n", "\n\n\nimport torch  # blank lines and a comment\n"),
        "workflow/scripts/train.py": ("\n", "\n# a comment in a workflow script\n"),
    })
    assert planned_jobs(run) == {}, run.stdout[-3000:]


def test_vggish_edit_reruns_its_extract_jobs_and_the_experiments_using_it(finished_demo: tuple[Path, dict],
                                                                          tmp_path: Path) -> None:
    workdir, config = finished_demo
    run = _plan_after_edits(finished_demo, tmp_path, {"src/regnn/features/vggish.py": CODE_EDIT})
    jobs = planned(run)
    assert {w["extractor"] for rule, w in jobs if rule == "extract"} == {"vggish"}
    assert len([1 for rule, _ in jobs if rule == "extract"]) == 3  # one shard per split
    users = {e for e, s in config["experiments"].items() if s["audio"] == "vggish"}
    assert users and users != set(config["experiments"])
    assert {w["experiment"] for rule, w in jobs if rule in ("train", "generate", "evaluate")} == users
    assert {rule for rule, _ in jobs} == {"extract", "train", "generate", "evaluate", "summarize", "all"}
    reasons = planned_reasons(run)["extract"]
    assert all("Params have changed" in r and "src/regnn/features/vggish.py" in r for r in reasons), reasons


def test_metrics_edit_reruns_evaluate_baseline_and_summarize_only(finished_demo: tuple[Path, dict],
                                                                 tmp_path: Path) -> None:
    run = _plan_after_edits(finished_demo, tmp_path, {"src/regnn/metrics/react.py": CODE_EDIT})
    counts = planned_jobs(run)
    assert set(counts) == {"evaluate", "baseline", "summarize", "all"}, counts
    reasons = planned_reasons(run)
    assert all("src/regnn/metrics/react.py" in r for rule in ("evaluate", "baseline", "summarize")
               for r in reasons[rule]), reasons


def test_model_edit_reruns_train_generate_evaluate_summarize_and_no_extract(finished_demo: tuple[Path, dict],
                                                                           tmp_path: Path) -> None:
    workdir, config = finished_demo
    run = _plan_after_edits(finished_demo, tmp_path, {"src/regnn/model/perceptual.py": CODE_EDIT})
    counts = planned_jobs(run)
    assert set(counts) == {"train", "generate", "evaluate", "summarize", "all"}, counts
    assert counts["train"] == len(config["experiments"])
    assert all("src/regnn/model/perceptual.py" in r for r in planned_reasons(run)["train"])
