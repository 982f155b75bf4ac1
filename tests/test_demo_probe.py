"""The demo's media carry the speaker's emotion into its tiny random-weight features (a ridge probe)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmarks.demo_probe import probe
from regnn.data.index import index_split
from regnn.features.extract import extract_shard
from regnn.paths import Results
from tests.conftest import REPO

EXTRACTORS = ("swin_fer", "vggish")


@pytest.fixture(scope="module")
def demo_features(tiny_dataset_master: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny dataset's train and test splits, extracted with the demo's backbones."""
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    results = tmp_path_factory.mktemp("probe")
    layout = Results(results)
    for split in ("train", "test"):
        layout.dataset_dir(split).mkdir(parents=True)
        index_split(tiny_dataset_master, split, layout.index(split), layout.emotions(split))
        for name in EXTRACTORS:
            out = layout.feature_shard(name, split, 0)
            out.parent.mkdir(parents=True, exist_ok=True)
            extract_shard(layout.index(split), out, name, config["extractors"][name], 0, threads=1, progress=False)
    return results


def test_speaker_emotion_is_linearly_decodable_from_the_demo_features(demo_features: Path) -> None:
    r2 = probe(demo_features, EXTRACTORS)  # fitted on the train clips, scored on the test clips
    video, audio, both = r2["swin_fer"], r2["vggish"], r2["swin_fer+vggish"]
    assert video["arousal"] > 0.9 and video["AUs"] > 0.6  # lighting and the face's parts
    assert audio["valence"] > 0.7 and audio["arousal"] > 0.4  # pitch; loudness and the first formant
    assert both["valence"] > 0.8 and both["all"] > 0.6
