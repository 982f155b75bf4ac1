"""Which class implements each extractor `kind`, named, not imported.

Torch-free on purpose: the workflow reads it while planning, to put in each extract job's params the code
of its own extractor only (editing VGGish reruns no Swin job); `extract.build_extractor` imports from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

IMPLEMENTATIONS: dict[str, tuple[str, str]] = {  # kind -> (module, class)
    "swin_fer": ("regnn.features.video", "VideoExtractor"),
    "vggish": ("regnn.features.vggish", "VGGishExtractor"),
    "wav2vec2": ("regnn.features.wav2vec", "Wav2Vec2Extractor"),
    "precomputed": ("regnn.features.precomputed", "PrecomputedExtractor"),
}
KINDS = tuple(IMPLEMENTATIONS)


def implementation(name: str, settings: Mapping[str, Any]) -> tuple[str, str]:
    """The (module, class) of an extractor's kind; a clear error naming the extractor otherwise."""
    kind = settings.get("kind")
    if kind not in IMPLEMENTATIONS:
        raise ValueError(f"extractor {name!r}: unknown kind {kind!r}; expected one of {list(KINDS)}")
    return IMPLEMENTATIONS[kind]


def implementing_module(name: str, settings: Mapping[str, Any]) -> str:
    """The module implementing an extractor's kind (what the workflow digests for its jobs)."""
    return implementation(name, settings)[0]
