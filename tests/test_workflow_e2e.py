"""The whole demo DAG under Snakemake: it runs end to end, then reruns only what a change invalidates."""

from __future__ import annotations

import copy
import csv
import io
import math
from pathlib import Path

import pytest

from tests.browser import Browser, check_report, find_browser
from tests.workflow_helpers import demo_config, planned, planned_jobs, planned_reasons, private_checkout, snakemake

pytestmark = pytest.mark.slow


def _tiny_config() -> dict:
    config = demo_config(seeds=[1])
    config["train"].update(epochs=2, batches_per_epoch=3, checkpoint_every=1, checkpoint_offset=0)
    config["render"].update(clips=1, size=64)  # one reaction video per experiment keeps the run short
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
    assert {w["experiment"] for rule, w in jobs
            if rule in ("train", "generate", "evaluate", "render", "training_curves")} == users
    assert {rule for rule, _ in jobs} <= {"extract", "train", "generate", "evaluate", "summarize", "render",
                                          "training_curves", "all"}


def test_training_change_reruns_train_generate_evaluate_summarize_only(
        finished_demo: tuple[Path, dict]) -> None:
    workdir, config = finished_demo
    changed = copy.deepcopy(config)
    changed["train"]["lr"] = config["train"]["lr"] / 2
    run = snakemake(workdir, changed, "-n")
    assert run.returncode == 0, run.stdout[-3000:]
    counts = planned_jobs(run)
    assert set(counts) == {"train", "generate", "evaluate", "summarize", "render", "training_curves", "all"}, counts
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
    assert {w["experiment"] for rule, w in jobs
            if rule in ("train", "generate", "evaluate", "render", "training_curves")} == users
    assert {rule for rule, _ in jobs} == {"extract", "train", "generate", "evaluate", "summarize", "render",
                                          "training_curves", "all"}
    reasons = planned_reasons(run)["extract"]
    assert all("Params have changed" in r and "src/regnn/features/vggish.py" in r for r in reasons), reasons


def test_metrics_edit_reruns_evaluate_baseline_and_summarize_only(finished_demo: tuple[Path, dict],
                                                                 tmp_path: Path) -> None:
    run = _plan_after_edits(finished_demo, tmp_path, {"src/regnn/metrics/react.py": CODE_EDIT})
    counts = planned_jobs(run)
    assert set(counts) == {"evaluate", "baseline", "summarize", "render", "all"}, counts  # render: per-clip FRC/FRD
    reasons = planned_reasons(run)  # summarize's reason names its updated inputs first
    assert all("src/regnn/metrics/react.py" in r for rule in ("evaluate", "baseline") for r in reasons[rule]), \
        reasons


def test_model_edit_reruns_train_generate_evaluate_summarize_and_no_extract(finished_demo: tuple[Path, dict],
                                                                           tmp_path: Path) -> None:
    workdir, config = finished_demo
    run = _plan_after_edits(finished_demo, tmp_path, {"src/regnn/model/perceptual.py": CODE_EDIT})
    counts = planned_jobs(run)
    assert set(counts) == {"train", "generate", "evaluate", "summarize", "render", "training_curves", "all"}, counts
    assert counts["train"] == len(config["experiments"])
    assert all("src/regnn/model/perceptual.py" in r for r in planned_reasons(run)["train"])


def test_report_opens_in_a_browser_and_its_videos_play(finished_demo: tuple[Path, dict]) -> None:
    """`snakemake --report` (what `make report` runs) gives a report whose every item loads in headless
    Chromium without console errors, whose reaction videos play to the end with the duration and frame count
    a decoder reads from the same bytes, and which covers every category; screenshots land in the workdir."""
    import av

    workdir, config = finished_demo
    run = snakemake(workdir, config, "--report", "report.html")
    assert run.returncode == 0, run.stdout[-3000:]
    executable = find_browser()
    if executable is None:
        pytest.skip("no headless Chromium on PATH: `make test` installs Debian's chromium-headless-shell (or set "
                    "REGNN_BROWSER); report.html was built but not opened in a browser")
    with Browser(executable) as browser:
        summary = check_report(browser, workdir / "report.html", workdir / "screenshots")
    experiments = list(config["experiments"])
    pages = [p for p, mime in summary["items"].items() if mime == "text/html"]
    assert len(pages) == len(experiments) * len(config["render"]["splits"])
    assert sum(p.endswith("training-curves.png") for p in summary["items"]) == len(experiments)
    assert any(p.endswith("-methods.png") for p in summary["items"])
    assert any(p.endswith(".tsv") for p in summary["items"])
    assert len(summary["videos"]) == len(pages) * config["render"]["clips"]
    for video in summary["videos"]:
        with av.open(io.BytesIO(video["bytes"])) as container:
            stream = container.streams.video[0]
            frames = sum(1 for _ in container.decode(video=0))
            duration = float(stream.duration * stream.time_base)
        assert frames == config["data"]["frames"] == video["frames"], video["item"]
        assert video["duration"] == pytest.approx(duration, abs=0.05), video["item"]
        assert (video["width"], video["height"]) == (stream.codec_context.width, stream.codec_context.height)
    assert (workdir / "screenshots" / "report.png").stat().st_size > 10_000


def test_cli_render_writes_the_rules_videos_byte_for_byte(finished_demo: tuple[Path, dict],
                                                          tmp_path: Path) -> None:
    """`regnn render` (standard layout under --results) reproduces the render rule's video exactly."""
    import subprocess
    import sys

    import yaml

    workdir, config = finished_demo
    experiment, seed, split = next(iter(config["experiments"])), config["seeds"][0], config["render"]["splits"][0]
    results = tmp_path / "results"
    (results / "experiments" / experiment / f"seed-{seed}").mkdir(parents=True)
    (results / "dataset").symlink_to(workdir / "results" / "dataset")
    (results / "experiments" / experiment / f"seed-{seed}" / "predictions").symlink_to(
        workdir / "results" / "experiments" / experiment / f"seed-{seed}" / "predictions")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run([str(Path(sys.executable).with_name("regnn")), "render", "--config", "config.yaml",
                          "--experiment", experiment, "--seed", str(seed), "--split", split, "--results", "results"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    ours = results / "experiments" / experiment / f"seed-{seed}" / "reactions" / split
    theirs = workdir / "results" / "experiments" / experiment / f"seed-{seed}" / "reactions" / split
    assert (ours / "clip-0.mp4").read_bytes() == (theirs / "clip-0.mp4").read_bytes()
    assert (ours / "reactions.html").is_file()
