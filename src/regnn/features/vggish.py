"""VGGish audio embeddings with REGNN's 25-per-second framing, written here (no package ships it offline).

REGNN changed VGGish's framing so that one 128-d embedding lines up with each 25 fps video frame: mono audio
resampled to 24 kHz, log-mel with 64 bands (125-7500 Hz) from 25 ms windows every 10 samples, examples of
96 mel frames every 96 frames (40 ms). The network and the PCA-whitening + 8-bit quantisation postprocessing
are the public VGGish ones; the state-dict key names follow the torchvggish release files
(`vggish-10086976.pth`, `vggish_pca_params-970ea276.pth`) so those load unchanged.

Differences from the reference, on purpose: resampling uses scipy's polyphase filter instead of resampy (not
installed); the log-mel front end runs in torch on the extractor's device instead of numpy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from regnn.devices import choose_device
from regnn.features.media import read_audio
from regnn.features.runtime import (Clip, Prepared, check_state_dict, fit_rows, inference, load_state_dict,
                                    resolve_settings)

SAMPLE_RATE = 24_000
WINDOW_SAMPLES = 600  # 25 ms at 24 kHz
HOP_SAMPLES = 10  # REGNN's hop (VGGish's own is 10 ms); 96 frames then span 40 ms = one video frame
FFT_LENGTH = 1024  # next power of two above the window, as VGGish
MEL_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96
ROWS_PER_SECOND = SAMPLE_RATE / (EXAMPLE_FRAMES * HOP_SAMPLES)  # 25: one row per 40 ms
EMBEDDING = 128
QUANTIZE_MIN, QUANTIZE_MAX = -2.0, 2.0
VGGISH_CHANNELS = (64, 128, 256, 256, 512, 512)
VGGISH_HIDDEN = 4096

DEFAULTS: dict[str, Any] = {
    "weights": None,  # torchvggish state dict (vggish-10086976.pth); None = seeded random weights
    "pca": None,  # PCA parameters (vggish_pca_params-970ea276.pth, or the TF release's .npz)
    "postprocess": True,  # PCA-whiten, clip to [-2, 2], quantise to 0..255 (REGNN's features); needs `pca`
    "seed": 0,
    "channels": list(VGGISH_CHANNELS),  # conv widths; smaller only for the CPU demo (random weights)
    "hidden": VGGISH_HIDDEN,  # width of the two hidden fully connected layers
    "tolerance_s": 0.5,  # audio up to this much shorter than frames / fps is padded; shorter is an error
    "batch_size": 250,  # examples per forward pass
}


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """The HTK mel scale VGGish uses."""
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def mel_matrix(rate: int = SAMPLE_RATE, fft_length: int = FFT_LENGTH, bands: int = MEL_BANDS,
               low: float = MEL_MIN_HZ, high: float = MEL_MAX_HZ) -> np.ndarray:
    """(fft_length // 2 + 1, bands) triangular filters, equally spaced in mel, DC bin excluded (as VGGish)."""
    bins_mel = hz_to_mel(np.linspace(0.0, rate / 2, fft_length // 2 + 1))
    edges = np.linspace(hz_to_mel(low), hz_to_mel(high), bands + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bins_mel[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


def example_count(samples: int) -> int:
    """Examples (= 25 fps rows) VGGish makes from `samples` at 24 kHz: 749 for exactly 30 s."""
    frames = 1 + (samples - WINDOW_SAMPLES) // HOP_SAMPLES if samples >= WINDOW_SAMPLES else 0
    return 1 + (frames - EXAMPLE_FRAMES) // EXAMPLE_FRAMES if frames >= EXAMPLE_FRAMES else 0


class LogMel(nn.Module):
    """Waveform at 24 kHz -> (examples, 1, 96, 64) log-mel patches, the VGGish input."""

    def __init__(self) -> None:
        super().__init__()
        n = torch.arange(WINDOW_SAMPLES, dtype=torch.float64)
        self.register_buffer("window", (0.5 - 0.5 * torch.cos(2 * math.pi * n / WINDOW_SAMPLES)).float(),
                             persistent=False)  # periodic Hann, as VGGish
        self.register_buffer("mel", torch.from_numpy(mel_matrix()).float(), persistent=False)

    def forward(self, wave: torch.Tensor, chunk_examples: int = 128) -> torch.Tensor:
        examples = example_count(wave.shape[0])
        if examples == 0:
            raise ValueError(f"audio of {wave.shape[0]} samples is too short for one VGGish example")
        frames = wave.unfold(0, WINDOW_SAMPLES, HOP_SAMPLES)[: examples * EXAMPLE_FRAMES]
        out = []
        step = chunk_examples * EXAMPLE_FRAMES  # bounds memory: 72k frames x 513 bins at once is ~300 MB
        for i in range(0, frames.shape[0], step):
            spectrum = torch.fft.rfft(frames[i:i + step] * self.window, n=FFT_LENGTH)
            magnitude = torch.hypot(spectrum.real, spectrum.imag)  # faster than abs() on CPU, same values
            out.append(torch.log(magnitude @ self.mel + LOG_OFFSET))
        return torch.cat(out).view(examples, 1, EXAMPLE_FRAMES, MEL_BANDS)


class VGGishNet(nn.Module):
    """The VGGish network; module indices match torchvggish's so its state dict loads key for key."""

    def __init__(self, channels: Sequence[int] = VGGISH_CHANNELS, hidden: int = VGGISH_HIDDEN):
        super().__init__()
        if len(channels) != 6:
            raise ValueError(f"VGGish has 6 conv layers, got channels {list(channels)}")
        layers: list[nn.Module] = []
        previous = 1
        for i, width in enumerate(channels):
            layers += [nn.Conv2d(previous, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            if i in (0, 1, 3, 5):  # pool after conv 1, 2, 4 and 6: 96 x 64 -> 6 x 4
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            previous = width
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(previous * 6 * 4, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, EMBEDDING), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, C, 6, 4)
        # flatten in (time, frequency, channel) order, as the TensorFlow original the weights come from
        return self.embeddings(x.permute(0, 2, 3, 1).flatten(1))


def load_pca(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """PCA eigenvectors (128, 128) and means (128,) from torchvggish's .pth or the TensorFlow release's .npz."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"VGGish PCA parameters file {path} does not exist (set its path in the config)")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            params = {k: f[k] for k in f.files}
    else:
        # torchvggish stores numpy arrays; allow exactly the numpy pieces needed to rebuild them
        reconstruct = np._core.multiarray._reconstruct
        allowed = [reconstruct, (reconstruct, "numpy.core.multiarray._reconstruct"), np.ndarray, np.dtype,
                   type(np.dtype(np.float64)), type(np.dtype(np.float32))]
        with torch.serialization.safe_globals(allowed):
            params = torch.load(path, map_location="cpu", weights_only=True)
    try:
        vectors = torch.as_tensor(np.asarray(params["pca_eigen_vectors"]), dtype=torch.float32)
        means = torch.as_tensor(np.asarray(params["pca_means"]), dtype=torch.float32).reshape(-1)
    except KeyError as err:
        raise ValueError(f"{path}: no {err} entry; expected 'pca_eigen_vectors' and 'pca_means'") from None
    if vectors.shape != (EMBEDDING, EMBEDDING) or means.shape != (EMBEDDING,):
        raise ValueError(f"{path}: PCA shapes {tuple(vectors.shape)} and {tuple(means.shape)}, "
                         f"expected ({EMBEDDING}, {EMBEDDING}) and ({EMBEDDING},)")
    return vectors, means


def postprocess(embeddings: torch.Tensor, vectors: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """AudioSet's release transform: PCA-whiten, clip to [-2, 2], quantise to the integers 0..255."""
    whitened = (embeddings - means) @ vectors.T
    clipped = whitened.clamp(QUANTIZE_MIN, QUANTIZE_MAX)
    return torch.round((clipped - QUANTIZE_MIN) * (255.0 / (QUANTIZE_MAX - QUANTIZE_MIN)))


class VGGishExtractor:
    """128-d VGGish embeddings, 25 per second of audio, padded or trimmed to the clip's frames."""

    def __init__(self, name: str, settings: Mapping[str, Any]):
        s = resolve_settings(settings, DEFAULTS, name)
        self.s = s
        self.device = choose_device(s["device"])
        self.dim = EMBEDDING
        self.random_weights = s["weights"] is None
        if s["weights"] is None:
            torch.manual_seed(int(s["seed"]))
            net = VGGishNet(s["channels"], s["hidden"])
            self.description = f"VGGish {s['channels']} with RANDOM weights (seed {s['seed']}; no weights file)"
        else:
            net = VGGishNet(s["channels"], s["hidden"])
            state = load_state_dict(s["weights"], "VGGish")
            check_state_dict(net, state, f"VGGish weights file {s['weights']}")
            net.load_state_dict(state)
            self.description = f"VGGish weights from {s['weights']}"
        self.net = net.eval().to(self.device)
        self.frontend = LogMel().to(self.device)
        self.pca: tuple[torch.Tensor, torch.Tensor] | None = None
        if s["postprocess"]:
            if s["pca"] is None:
                raise ValueError(f"extractor {name!r}: postprocess is on but no `pca` file is configured")
            self.pca = tuple(t.to(self.device) for t in load_pca(s["pca"]))  # type: ignore[assignment]
            self.description += f", PCA + 8-bit quantisation from {s['pca']}"
        else:
            self.description += ", raw embeddings (no PCA postprocessing)"
        self.name = name

    def chunks(self, clip: Clip) -> Iterator[Prepared]:
        """The whole clip as one piece (VGGish is REACT 2024's audio: 30 s clips)."""
        if clip.fps != ROWS_PER_SECOND:
            raise ValueError(f"extractor {self.name!r}: VGGish gives {ROWS_PER_SECOND} rows per second, but clip "
                             f"{clip.key} runs at {clip.fps:g} fps (REGNN 2025/2026 use wav2vec2)")
        seconds = clip.frames / clip.fps
        audio = read_audio(clip.key, clip.audio, SAMPLE_RATE, seconds, self.s["tolerance_s"], pad=False)
        wave = torch.from_numpy(audio.samples)
        if self.device.type == "cpu":  # on a CPU the front end overlaps the network here; a GPU does it faster
            with inference(self.device, False):
                wave = self.frontend(wave)
        prepared = Prepared(clip.key, (wave, clip.frames))
        if audio.seconds < seconds:
            prepared.notes.append(("short audio", f"{audio.seconds:.3f} s < {seconds:g} s"))
        yield prepared

    def forward(self, prepared: Prepared) -> np.ndarray:
        examples, frames = prepared.inputs
        examples = examples.to(self.device)
        if examples.dim() == 1:  # a waveform: the log-mel front end (float32) runs on the device
            with inference(self.device, False):
                examples = self.frontend(examples)
        rows = []
        for i in range(0, examples.shape[0], self.s["batch_size"]):
            with inference(self.device, self.s["bf16"]):
                emb = self.net(examples[i:i + self.s["batch_size"]]).float()
            rows.append(emb if self.pca is None else postprocess(emb, *self.pca))
        values, added = fit_rows(torch.cat(rows).cpu().numpy(), frames)
        if added:
            prepared.notes.append(("padded rows", f"{added} row(s) repeat the last one"))
        return values
