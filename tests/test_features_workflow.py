"""Rule `extract` under Snakemake: one job per extractor x split x shard, and only changed extractors rerun."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import jsonschema
import numpy as np
import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
KEYS = ["NoXI/001_2016-03-17_Paris/Expert_video/1", "NoXI/001_2016-03-17_Paris/Novice_video/1",
        "RECOLA/group-1/P25/2"]
EXTRACTORS = {
    "vid": {"kind": "precomputed", "modality": "video", "dim": 4},
    "aud": {"kind": "precomputed", "modality": "audio", "dim": 3, "shards": 2},
}


def write_dataset(root: Path) -> None:
    """Pre-extracted feature tensors for three clips and a split index pointing at them."""
    rng = np.random.default_rng(0)
    for key in KEYS:
        for folder, rows, dim in (("Video_features", 751, 4), ("Audio_features", 749, 3)):
            path = root / "data" / "test" / folder / f"{key}.pth"
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(torch.from_numpy(rng.normal(size=(rows, dim))).float(), path)
    index = root / "results" / "dataset" / "test" / "index.tsv"
    index.parent.mkdir(parents=True)
    with index.open("w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["position", "speaker", "listener", "video", "audio", "emotion"])
        for k, key in enumerate(KEYS):
            split = root / "data" / "test"
            writer.writerow([k, key, KEYS[-1 - k], split / "Video_files" / f"{key}.mp4",
                             split / "Audio_files" / f"{key}.wav", split / "Emotion" / f"{key}.csv"])


def snakemake(workdir: Path, extractors: dict, *args: str, data: dict | None = None) -> str:
    (workdir / "config.yaml").write_text(yaml.safe_dump({"extractors": extractors, **({"data": data} if data else {})}))
    targets = [f"results/features/{name}/test/shard-{k}.h5" for name, s in extractors.items()
               for k in range(s.get("shards", 1))]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run([str(SNAKEMAKE), "-s", str(workdir / "Snakefile"), "-d", str(workdir), "--cores", "2",
                           *args, *targets], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def planned(output: str) -> list[str]:
    """`extractor/shard` of every extract job a dry run plans."""
    return sorted(f"{m.group(1)}/{m.group(2)}" for m in
                  re.finditer(r"wildcards: extractor=([^,\s]+), split=test, shard=(\d+)", output))


def test_only_the_changed_extractor_reruns(tmp_path: Path) -> None:
    write_dataset(tmp_path)
    (tmp_path / "Snakefile").write_text(f'configfile: "config.yaml"\ninclude: "{REPO}/workflow/rules/features.smk"\n')
    out = snakemake(tmp_path, EXTRACTORS)
    assert sorted(re.findall(r"rule (\w+):", out)) == ["extract"] * 3  # one job per extractor x split x shard
    with h5py.File(tmp_path / "results/features/aud/test/shard-1.h5") as f:
        assert list(f["RECOLA/group-1/P25"]) == ["2"] and f["RECOLA/group-1/P25/2"].shape == (750, 3)
    assert "frames/s" in (tmp_path / "results/logs/extract/vid/test/shard-0.log").read_text()
    changed = {**EXTRACTORS, "aud": {**EXTRACTORS["aud"], "max_padded_rows": 5}}
    assert planned(snakemake(tmp_path, changed, "-n")) == ["aud/0", "aud/1"]  # zero video jobs
    # switched back to the settings the shards were made with: everything is reused
    assert planned(snakemake(tmp_path, EXTRACTORS, "-n")) == []


def test_mars_features_through_the_rule_at_each_clips_length(tmp_path: Path) -> None:
    """data.protocol react2025: the rule extracts every input clip of a synthetic MARS index at its own length."""
    from regnn.data import mars
    from regnn.data.mars_synthetic import MarsSyntheticSettings, write_mars_dataset

    write_mars_dataset(tmp_path / "data", MarsSyntheticSettings(seed=5, sessions={"test": 1}, coefficients=False))
    dataset = tmp_path / "results" / "dataset" / "test"
    mars.index_split(tmp_path / "data", "test", dataset / "index.tsv", dataset / "emotions.h5",
                     dataset / "targets.tsv")
    with (dataset / "index.tsv").open(newline="") as f:
        lengths = {r["speaker"]: int(r["frames"]) for r in csv.DictReader(f, delimiter="\t")}
    tiny = {"embed_dim": 8, "depths": [2], "num_heads": [1], "window_size": 4, "img_size": 32}
    extractors = {"swin": {"kind": "swin_fer", "modality": "video", "model_args": tiny, "resize": 32, "crop": None,
                           "device": "cpu", "chunk_frames": 50}}
    (tmp_path / "Snakefile").write_text(f'configfile: "config.yaml"\ninclude: "{REPO}/workflow/rules/features.smk"\n')
    snakemake(tmp_path, extractors, data={"protocol": "react2025", "length_tolerance": 3})
    with h5py.File(tmp_path / "results/features/swin/test/shard-0.h5") as f:
        shapes = {key: f[key].shape for key in lengths}
    assert shapes == {key: (n, 8) for key, n in lengths.items()} and len(set(lengths.values())) > 1
    assert planned(snakemake(tmp_path, extractors, "-n", data={"protocol": "react2025", "length_tolerance": 3})) == []


@pytest.mark.parametrize("config", ["config/config.yaml", "config/demo.yaml", "config/demo_mars.yaml"])
def test_configured_extractors_match_the_schema_and_the_code(config: str) -> None:
    from regnn.features import precomputed, runtime, video, vggish, wav2vec

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    extractors = yaml.safe_load((REPO / config).read_text())["extractors"]
    jsonschema.validate({"extractors": extractors}, {**schema, "required": []})
    defaults = {"swin_fer": video.DEFAULTS, "vggish": vggish.DEFAULTS, "wav2vec2": wav2vec.DEFAULTS,
                "precomputed": precomputed.DEFAULTS}
    rules = schema["properties"]["extractors"]["additionalProperties"]["allOf"]
    for rule in rules:  # the schema allows exactly the keys the code knows, kind by kind
        kind = rule["if"]["properties"]["kind"]["const"]
        allowed = set(rule["then"]["propertyNames"]["enum"])
        assert allowed == {"kind", "modality", *runtime.COMMON_DEFAULTS, *defaults[kind]}, kind
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"extractors": {"x": {"kind": "vggish", "modality": "audio", "crop": 3}}},
                            {**schema, "required": []})
