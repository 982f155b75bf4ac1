"""How much of the speaker's emotion the demo's features carry: a ridge probe from features to emotions.

    .venv/bin/python benchmarks/demo_probe.py                   # the demo's results/ (after `make demo`)
    .venv/bin/python benchmarks/demo_probe.py --results DIR --fit train --score test

The demo's backbones have random weights, so the synthetic media must carry the behaviour into whatever
those networks compute. This fits a ridge regression per frame from one split's features (each extractor
alone, then video and audio side by side) to that split's speaker emotions, and prints the R^2 on another
split's clips: valence, arousal, the mean over the 15 AUs and over the 8 expression probabilities, and the
mean over all 25 attributes. Features are standardised on the fit split; R^2 <= 0 means nothing decodable.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from regnn.data.index import load_emotions
from regnn.feature_store import load_features, unique_clips
from regnn.paths import Results

REPO = Path(__file__).resolve().parents[1]


def _frames(results: Results, extractors: Sequence[str], shards: dict[str, int], split: str,
            ) -> tuple[np.ndarray, np.ndarray]:
    """(clips * frames, features) of the extractors side by side, and (clips * frames, 25) emotions."""
    cache = load_emotions(results.emotions(split))
    clips = unique_clips(cache.clips)
    first = {clip: k for k, clip in reversed(list(enumerate(cache.clips)))}
    emotions = cache.emotions[[first[c] for c in clips]]
    x = np.concatenate([load_features(results.feature_shards(e, split, shards[e]), clips) for e in extractors],
                       axis=-1)
    return x.reshape(-1, x.shape[-1]), emotions.reshape(-1, emotions.shape[-1])


def probe(results: Path, extractors: Sequence[str], shards: dict[str, int] | None = None, fit: str = "train",
          score: str = "test", alpha: float = 10.0) -> dict[str, dict[str, float]]:
    """R^2 per attribute group on `score` of ridge probes fitted on `fit`: each extractor, then all of them."""
    layout = Results(Path(results))
    shards = shards or {}
    out = {}
    for name, used in [(e, [e]) for e in extractors] + [("+".join(extractors), list(extractors))]:
        counts = {e: shards.get(e, 1) for e in used}
        x_fit, y_fit = _frames(layout, used, counts, fit)
        x_score, y_score = _frames(layout, used, counts, score)
        model = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(x_fit, y_fit)
        r2 = r2_score(y_score, model.predict(x_score), multioutput="raw_values")
        varies = y_score.std(axis=0) > 0  # an attribute constant on the scored clips has no R^2
        r2 = np.where(varies, r2, np.nan)
        out[name] = {"valence": float(r2[15]), "arousal": float(r2[16]), "AUs": float(np.nanmean(r2[:15])),
                     "expressions": float(np.nanmean(r2[17:])), "all": float(np.nanmean(r2))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=REPO / "results")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "demo.yaml")
    parser.add_argument("--extractors", nargs="+", default=["swin_fer", "vggish"])
    parser.add_argument("--fit", default="train")
    parser.add_argument("--score", default="test")
    args = parser.parse_args()
    config = yaml.safe_load(args.config.read_text())
    shards = {e: int(config["extractors"][e].get("shards", 1)) for e in args.extractors}
    table = probe(args.results, args.extractors, shards, args.fit, args.score)
    columns = ["valence", "arousal", "AUs", "expressions", "all"]
    print(f"ridge probe R^2 on {args.score} (fitted on {args.fit}), speaker emotion from features")
    print("| features | " + " | ".join(columns) + " |")
    print("| --- " * (len(columns) + 1) + "|")
    for name, r2 in table.items():
        print(f"| {name} | " + " | ".join(f"{r2[c]:.3f}" for c in columns) + " |")


if __name__ == "__main__":
    main()
