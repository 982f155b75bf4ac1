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
    assert layout.log("extract", "vggish", "val", "shard-1") == Path("/tmp/r/logs/extract/vggish/val/shard-1.log")
    assert layout.predictions("regnn", 2, "test").relative_to(layout.experiment_dir("regnn", 2)) == \
        Path("predictions/test.h5")
    assert checkpoint_name(96) == "after-096-epochs.pt"  # the reference's mhp-epoch95
