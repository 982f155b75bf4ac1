"""wav2vec 2.0 audio features (the seed's variant of REGNN 2024; the audio of REGNN 2025/2026), one row per
video frame.

Wav2Vec2 emits ~50 frames per second (1,499 for 30 s at 16 kHz), so its frames must be pooled to one row per
video frame. The waveform is first padded or trimmed to exactly the clip's duration (frames / fps), so both
poolings map audio time to video time: `adaptive` averages the frames falling in each video frame's interval
(the seed's choice, and the one that works at MARS's 30 fps), `pairs` averages consecutive pairs and pads the
last row (25 fps only).

A clip longer than `chunk_frames` video frames is cut into near-equal pieces of at most that many, each run
through the network and pooled to its own frames: attention costs memory quadratic in the input (a
20,000-frame clip would need tens of GB), so a piece's context is its own ~33 s. A shorter clip is one piece,
exactly as before.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from regnn.devices import choose_device
from regnn.features.media import read_audio
from regnn.features.runtime import Clip, Prepared, fit_rows, inference, resolve_settings

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
    """(T, D) frames at ~50 Hz spanning `frames` video frames -> (frames, D) rows (`pairs`: ~T/2 rows)."""
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


def pieces(frames: int, chunk: int) -> list[tuple[int, int]]:
    """[start, end) video frames of ceil(frames / chunk) near-equal pieces (no short last piece: context)."""
    n = max(1, math.ceil(frames / chunk))
    bounds = [round(i * frames / n) for i in range(n + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


class Wav2Vec2Extractor:
    """One hidden layer of a local Wav2Vec2Model, pooled to the clip's video frames."""

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
        self.name = name
        self.model = model.eval().to(self.device)
        self.dim = int(model.config.hidden_size)
        self.description += f", layer {s['layer']}, {s['pooling']} pooling to the video frames"

    def chunks(self, clip: Clip) -> Iterator[Prepared]:
        """The normalised waveform of exactly the clip's span, piece by piece (the whole wave is small: 42 MB
        for 20,000 frames; the network's memory is what pieces bound)."""
        if self.s["pooling"] == "pairs" and clip.fps != 25:
            raise ValueError(f"extractor {self.name!r}: pooling 'pairs' gives 25 rows per second, but clip "
                             f"{clip.key} runs at {clip.fps:g} fps; use pooling 'adaptive'")
        rate = self.s["sample_rate"]
        seconds = clip.frames / clip.fps
        audio = read_audio(clip.key, clip.audio, rate, seconds, self.s["tolerance_s"], pad=True)
        samples = audio.samples[: int(round(seconds * rate))]  # exactly the clip's span
        if self.normalize:
            samples = (samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        notes = [("short audio", f"{audio.seconds:.3f} s, zero-padded by {audio.padded_s:.3f} s")] \
            if audio.padded_s else []
        for start, end in pieces(clip.frames, self.s["chunk_frames"]):
            first, last = (int(round(f / clip.fps * rate)) for f in (start, end))
            yield Prepared(clip.key, (torch.from_numpy(samples[first:last]), end - start), notes)
            notes = []

    def forward(self, prepared: Prepared) -> np.ndarray:
        samples, frames = prepared.inputs
        wave = samples.to(self.device).unsqueeze(0)
        with inference(self.device, self.s["bf16"]):
            out = self.model(wave, output_hidden_states=self.s["layer"] != -1)
            hidden = out.last_hidden_state if self.s["layer"] == -1 else out.hidden_states[self.s["layer"]]
        rows = align_to_frames(hidden[0].float(), frames, self.s["pooling"])
        values, added = fit_rows(rows.cpu().numpy(), frames)
        if added:
            prepared.notes.append(("padded rows", f"{added} row(s) repeat the last one"))
        return values
