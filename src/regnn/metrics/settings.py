"""The config's `evaluate` section and its defaults (no heavy imports: the workflow reads it at parse time)."""

from __future__ import annotations

from collections.abc import Mapping

from regnn.settings import resolve

BASELINES = ("ground_truth", "random", "mime")
"""The reference rows `regnn.metrics.baselines` knows (the rule `baseline` matches only these names)."""
MARS_BASELINES = (*BASELINES, "mean_frame")
"""react2025's reference rows (`regnn.metrics.mars_evaluate`): mean_frame is the 2026 code's B_MeanFr."""

DEFAULTS = {
    "corrected": False,  # add TLCC_corrected (all samples, NaN-safe) in its own column
    "device": "auto",  # where FRD's DTW runs: auto (a GPU when present), cpu or cuda
    "threads": 2,  # CPU threads for FRD's DTW
    "baselines": {"names": list(BASELINES), "samples": 10, "seed": 0},
    "summary": {"figure_clips": 3},
    "resampling": {"checkpoint": None},  # react2025: None interpolates targets of another length
}
"""The config's `evaluate` section with every default filled in."""


def resolve_settings(section: Mapping | None) -> dict:
    """The `evaluate` section merged over DEFAULTS by the one merge rule (`regnn.settings.resolve`)."""
    return resolve(DEFAULTS, section, "evaluate")
