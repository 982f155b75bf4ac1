"""wav2vec 2.0 audio features (the seed's variant of REGNN), aligned to the 25 fps video.

Wav2Vec2 emits ~50 frames per second (1,499 for 30 s at 16 kHz), so its frames must be pooled to one row per
video frame. The waveform is first padded or trimmed to exactly the clip's duration (frames / fps), so both
poolings map audio time to video time: `adaptive` averages the frames falling in each of the 750 intervals
(the seed's choice), `pairs` averages consecutive pairs and pads the last row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from regnn.data.index import IndexRow
from regnn.devices import choose_device
from regnn.features.media import read_audio
from regnn.features.runtime import Prepared, fit_rows, inference, resolve_settings

DEFAULTS: dict[str, Any] = {
    "model_dir": None,  # a local save_pretrained() directory (e.g. wav2vec2-base-960h); None = random weights
    "random_config": {},  # Wav2Vec2Config overrides for random weights (the CPU demo uses a tiny one)
    "seed": 0,
    "sample_rate": 16_000,
    "layer": -1,  # hidden state to keep: -1 the last, 0 the CNN feature projection, i the i-th transformer layer
    "pooling": "adaptive",  # adaptive | pairs
    "normalize": None,  # zero-mean unit-variance input; None = the model directory's feature-extractor setting
    "tolerance_s": 0.5,
}


def align_to_frames(hidden: torch.Tensor, frames: int, pooling: str) -> torch.Tensor:
    """(T, D) frames at ~50 Hz -> (frames, D) rows at 25 fps."""
    if pooling == "adaptive":
        return F.adaptive_avg_pool1d(hidden.T.unsqueeze(0), frames).squeeze(0).T
    if pooling == "pairs":
        t = hidden.shape[0] // 2 * 2
        return hidden[:t].view(t // 2, 2, -1).mean(dim=1)
    raise ValueError(f"unknown pooling {pooling!r}; use 'adaptive' or 'pairs'")


def _normalize_default(model_dir: Path) -> bool:
    """The directory's preprocessor_config.json `do_normalize` (True for wav2vec2-base-960h), else True."""
    config = model_dir / "preprocessor_config.json"
    if config.is_file():
        return bool(json.loads(config.read_text()).get("do_normalize", True))
    return True


class Wav2Vec2Extractor:
    """One hidden layer of a local Wav2Vec2Model, pooled to the clip's 25 fps frames."""

    def __init__(self, name: str, settings: Mapping[str, Any]):
        from transformers import Wav2Vec2Config, Wav2Vec2Model  # seconds to import: only when used

        s = resolve_settings(settings, DEFAULTS, name)
        if s["pooling"] not in ("adaptive", "pairs"):
            raise ValueError(f"extractor {name!r}: pooling must be 'adaptive' or 'pairs', not {s['pooling']!r}")
        self.s = s
        self.device = choose_device(s["device"])
        self.random_weights = s["model_dir"] is None
        if s["model_dir"] is None:
            torch.manual_seed(int(s["seed"]))
            model = Wav2Vec2Model(Wav2Vec2Config(**s["random_config"]))
            self.description = f"Wav2Vec2 {s['random_config']} with RANDOM weights (seed {s['seed']}; no model_dir)"
            normalize = True
        else:
            model_dir = Path(s["model_dir"]).expanduser()
            if not (model_dir / "config.json").is_file():
                raise FileNotFoundError(f"extractor {name!r}: {model_dir} is not a save_pretrained() directory "
                                        "(no config.json)")
            model = Wav2Vec2Model.from_pretrained(model_dir, local_files_only=True)
            self.description = f"Wav2Vec2 weights from {model_dir}"
            normalize = _normalize_default(model_dir)
        self.normalize = normalize if s["normalize"] is None else bool(s["normalize"])
        layers = model.config.num_hidden_layers
        if not -(layers + 1) <= s["layer"] <= layers:
            raise ValueError(f"extractor {name!r}: layer {s['layer']} is outside -{layers + 1}..{layers}")
        self.model = model.eval().to(self.device)
        self.dim = int(model.config.hidden_size)
        self.seconds = s["frames"] / s["fps"]
        self.description += f", layer {s['layer']}, {s['pooling']} pooling to {s['fps']} fps"

    def prepare(self, clip: str, row: IndexRow) -> Prepared:
        audio = read_audio(clip, row.audio, self.s["sample_rate"], self.seconds, self.s["tolerance_s"], pad=True)
        samples = audio.samples[: int(round(self.seconds * self.s["sample_rate"]))]  # exactly the clip's span
        if self.normalize:
            samples = (samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)
        prepared = Prepared(clip, torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)))
        if audio.padded_s:
            prepared.notes.append(("short audio", f"{audio.seconds:.3f} s, zero-padded by {audio.padded_s:.3f} s"))
        return prepared

    def forward(self, prepared: Prepared) -> np.ndarray:
        wave = prepared.inputs.to(self.device).unsqueeze(0)
        with inference(self.device, self.s["bf16"]):
            out = self.model(wave, output_hidden_states=self.s["layer"] != -1)
            hidden = out.last_hidden_state if self.s["layer"] == -1 else out.hidden_states[self.s["layer"]]
        rows = align_to_frames(hidden[0].float(), self.s["frames"], self.s["pooling"])
        values, added = fit_rows(rows.cpu().numpy(), self.s["frames"])
        if added:
            prepared.notes.append(("padded rows", f"{added} row(s) repeat the last one"))
        return values
