"""The house rules the code's structure must keep: the workflow plans without torch, and the result layout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from regnn.paths import RESULTS, Results, checkpoint_name

SRC = Path(__file__).resolve().parents[1] / "src"

PLANNING_MODULES = ("regnn.paths", "regnn.settings", "regnn.metrics.settings", "regnn.devices")
"""What workflow/rules/*.smk import while Snakemake parses them."""


def test_the_modules_the_rules_import_need_only_the_standard_library() -> None:
    """A deployed workflow module parses its rules without the installed package or its dependencies."""
    code = (f"import sys; sys.path.insert(0, {str(SRC)!r}); " + "; ".join(f"import {m}" for m in PLANNING_MODULES)
            + "; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    loaded = set(subprocess.run([sys.executable, "-S", "-c", code], check=True, capture_output=True, text=True)
                 .stdout.split())
    third_party = loaded - set(sys.stdlib_module_names) - {"regnn", "__main__"}
    assert not third_party, f"{PLANNING_MODULES} import {sorted(third_party)}"


def test_the_layout_gives_snakemake_patterns_and_real_paths_from_the_same_call() -> None:
    assert str(RESULTS.checkpoint("{experiment}", "{seed}", 5)) == \
        "results/experiments/{experiment}/seed-{seed}/checkpoints/after-005-epochs.pt"
    layout = Results(Path("/tmp/r"))
    assert layout.feature_shards("vggish", "val", 2) == [Path("/tmp/r/features/vggish/val/shard-0.h5"),
                                                         Path("/tmp/r/features/vggish/val/shard-1.h5")]
    assert layout.log("demo_data") == Path("/tmp/r/logs/demo_data.log")
    assert layout.shard_log("vggish", "val", 1) == Path("/tmp/r/logs/extract/vggish/val/shard-1.log")
    assert layout.run_log("generate", "regnn", 2, "test") == Path("/tmp/r/logs/generate/regnn/seed-2/test.log")
    assert layout.predictions("regnn", 2, "test").relative_to(layout.experiment_dir("regnn", 2)) == \
        Path("predictions/test.h5")
    assert checkpoint_name(96) == "after-096-epochs.pt"  # the reference's mhp-epoch95


def test_one_merge_rule_for_every_section() -> None:
    """Every section merges deeply over its defaults and rejects a key it does not know, naming where it is."""
    import pytest

    from regnn.features import runtime, video
    from regnn.metrics.settings import resolve_settings
    from regnn.settings import resolve_train_settings

    evaluate = resolve_settings({"baselines": {"samples": 3}})
    assert evaluate["baselines"] == {"names": ["ground_truth", "random", "mime"], "samples": 3, "seed": 0}
    for bad, where in ((lambda: resolve_settings({"baselines": {"sample": 3}}), "evaluate.baselines.sample"),
                       (lambda: resolve_train_settings({"augment": {"noise": 1}}), "train.augment.noise"),
                       (lambda: runtime.resolve_settings({"kind": "swin_fer", "wokers": 3}, video.DEFAULTS, "v"),
                        "extractors.v.wokers")):
        with pytest.raises(ValueError, match=f"unknown setting {where}"):
            bad()
    # an empty mapping as the default takes any keyword arguments (timm's model_args)
    s = runtime.resolve_settings({"kind": "swin_fer", "modality": "video", "model_args": {"embed_dim": 16}},
                                 video.DEFAULTS, "v")
    assert s["model_args"] == {"embed_dim": 16} and s["kind"] == "swin_fer" and s["workers"] == 2


def test_the_gpu_policy_asks_for_a_gpu_unless_the_device_is_the_cpu() -> None:
    from regnn.devices import gpus_for

    assert [gpus_for(d) for d in ("cpu", "auto", "cuda", "cuda:1")] == [0, 1, 1, 1]
