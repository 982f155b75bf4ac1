"""The config's `evaluate` section and its defaults (no heavy imports: the workflow reads it at parse time)."""

from __future__ import annotations

from collections.abc import Mapping

DEFAULTS = {
    "corrected": False,  # add TLCC_corrected (all samples, NaN-safe) in its own column
    "device": "auto",  # where FRD's DTW and FRC run: auto (a GPU when present), cpu or cuda
    "threads": 2,
    "baselines": {"names": ["ground_truth", "random", "mime"], "samples": 10, "seed": 0},
    "summary": {"figure_clips": 3},
}
"""The config's `evaluate` section with every default filled in."""


def resolve_settings(section: Mapping | None) -> dict:
    """The `evaluate` section merged over DEFAULTS (one level deep for `baselines` and `summary`)."""
    section = dict(section or {})
    out = {**DEFAULTS, **section}
    for key in ("baselines", "summary"):
        out[key] = {**DEFAULTS[key], **section.get(key, {})}
    return out
