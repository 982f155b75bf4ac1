"""REGNN as the reference (reactmultimodalchallenge/baseline_react2024, regnn/) defines it.

Each expectation below is written from the reference's definitions (fairseq/MulT positional embedding,
its parameter initialisation, its training loop), not from this project's functions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from regnn.data.index import build_index
from regnn.generation import modify_aus
from regnn.model.perceptual import TransformerEncoder
from regnn.model.regnn import REGNN
from regnn.paths import checkpoint_name
from regnn.settings import checkpoint_epochs, resolve_generate_settings, resolve_train_settings
from regnn.training import logdet_term, next_threshold


def _fairseq_positions(first_channel: torch.Tensor, dim: int) -> torch.Tensor:
    """MulT's SinusoidalPositionalEmbedding(dim, padding_idx=0) of x[:, :, 0], written out plainly.

    make_positions: frames whose value != 0 keep position t + 1 (t 0-based), the others get 0; the table's
    row 0 is all zeros; row p = [sin(p * f_i), cos(p * f_i)], f_i = exp(-i * log(10000) / (dim/2 - 1)).
    """
    b, t = first_channel.shape
    out = torch.zeros(b, t, dim, dtype=torch.float64)
    half = dim // 2
    for i in range(b):
        for j in range(t):
            if first_channel[i, j] == 0:
                continue
            p = j + 1
            for k in range(half):
                f = math.exp(-k * math.log(10000) / (half - 1))
                out[i, j, k], out[i, j, half + k] = math.sin(p * f), math.cos(p * f)
    return out


@pytest.mark.parametrize("padding", [True, False])
def test_zero_audio_frames_get_no_position(padding: bool) -> None:
    encoder = TransformerEncoder(8, 2, 0, 0.0, 0.0, 0.0, 0.0, zero_frames_are_padding=padding).double()
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    x[0, 1, 0] = x[0, 4, 0] = x[1, 0, 0] = 0.0  # quantised VGGish: channel 0 is often exactly 0
    channel0 = x[..., 0] if padding else torch.ones(2, 6)
    expected = math.sqrt(8) * x + _fairseq_positions(channel0, 8)
    assert torch.allclose(encoder._embed(x), expected, atol=1e-6)
    assert torch.equal(encoder._embed(x)[0, 1], math.sqrt(8) * x[0, 1]) == padding


def _bound_of_std(p: torch.Tensor) -> float:
    """The half-width of a uniform distribution with p's standard deviation."""
    return float(p.detach().double().std()) * math.sqrt(3)


def test_every_parameter_initialised_as_the_reference() -> None:
    """The reference's distributions at the paper's sizes (d = 128, Swin 768-d video, VGGish 128-d audio).

    fairseq MultiheadAttention: in_proj (3d, d) and out_proj Xavier-uniform, biases 0. TransformerEncoderLayer
    fc1/fc2: Xavier-uniform, biases 0. LayerNorm: 1 and 0. Everything else (MulT's 1x1 convs and head, the
    cognitive MLPs, the GNN's q/k) is a plain nn.Linear/nn.Conv1d: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    """
    torch.manual_seed(0)
    model = REGNN(768, 128)
    d = 128
    xavier = lambda fan_in, fan_out: math.sqrt(6 / (fan_in + fan_out))  # noqa: E731
    expected: dict[str, tuple[str, float]] = {}
    for name, p in model.named_parameters():
        if ".attn.in_proj_weight" in name:
            expected[name] = ("uniform", xavier(d, 3 * d))
        elif ".attn.out_proj.weight" in name:
            expected[name] = ("uniform", xavier(d, d))
        elif ".fc1.weight" in name and "perceptual" in name:
            expected[name] = ("uniform", xavier(d, 4 * d))
        elif ".fc2.weight" in name and "perceptual" in name:
            expected[name] = ("uniform", xavier(4 * d, d))
        elif "norm" in name and "perceptual" in name:
            expected[name] = ("constant", 1.0 if name.endswith("weight") else 0.0)
        elif "perceptual" in name and name.endswith("bias") and (".attn." in name or ".fc" in name):
            expected[name] = ("constant", 0.0)
        elif name.endswith("channel_weights"):
            expected[name] = ("constant", 1.0)
        elif "actnorm" in name or "log_scale" in name or name.endswith("shift"):
            continue  # ActNorm: set from the first batch's statistics (both)
        else:
            fan_in = p.shape[1] * (p.shape[2] if p.dim() == 3 else 1) if p.dim() > 1 else None
            if fan_in is None:  # a default layer's bias: same bound as its weight
                weight = dict(model.named_parameters())[name[: -len("bias")] + "weight"]
                fan_in = weight.shape[1] * (weight.shape[2] if weight.dim() == 3 else 1)
            expected[name] = ("uniform", 1 / math.sqrt(fan_in))
    assert any(".attn.out_proj.weight" in n for n in expected)
    for name, (kind, value) in expected.items():
        p = dict(model.named_parameters())[name].detach().double()
        if kind == "constant":
            assert torch.all(p == value), name
        else:
            assert float(p.abs().max()) <= value + 1e-7, name
            if p.numel() >= 1000:  # the sample std of U(-a, a) is a / sqrt(3) within a few %
                assert _bound_of_std(p) == pytest.approx(value, rel=0.06), name
    out_proj = model.perceptual.cross.layers[0].attn.out_proj.weight
    assert float(out_proj.detach().std()) == pytest.approx(1 / math.sqrt(d), rel=0.03)  # 0.088, not PyTorch's 0.051


def test_checkpoints_as_the_reference_saves_them_and_generation_uses_its_epoch_95() -> None:
    """train.py: `for epoch in range(100): ...; if epoch > 0 and epoch % 5 == 0: save mhp-epoch{epoch}`."""
    reference_saves = [epoch for epoch in range(100) if epoch > 0 and epoch % 5 == 0]  # 0-based: 5 .. 95
    epochs_held = [epoch + 1 for epoch in reference_saves]  # the weights after 6, 11, ..., 96 epochs
    assert checkpoint_epochs({}) == epochs_held + [100]  # plus the final weights
    assert resolve_generate_settings({})["epoch"] == epochs_held[-1] == 96  # mhp-epoch95
    assert checkpoint_name(96) == "after-096-epochs.pt"
    assert checkpoint_epochs({"checkpoint_offset": 0}) == list(range(5, 101, 5))  # the earlier rule


def test_threshold_is_set_only_by_an_epoch_that_reaches_batch_index_train_iters() -> None:
    """trainers.py: `if i == train_iters: self.threshold = losses_dtw.avg / 3` (train_iters = 100)."""
    def reference(n_batches: int, previous: float | None, mean: float, train_iters: int = 100) -> float | None:
        threshold = previous
        for i in range(n_batches):  # the dataloader's batches; the loop breaks after index train_iters
            if i == train_iters:
                threshold = mean / 3
                break
        return threshold

    paper = resolve_train_settings({})
    every = resolve_train_settings({"threshold_rule": "every_epoch"})
    for n_batches in (1, 50, 100, 101):  # a split with fewer than 100 * 128 + 1 windows has < 101 batches
        assert next_threshold(paper, None, 0.9, n_batches) == reference(n_batches, None, 0.9)
        assert next_threshold(paper, 0.2, 0.9, n_batches) == reference(n_batches, 0.2, 0.9)
        assert next_threshold(every, 0.2, 0.9, n_batches) == pytest.approx(0.3)
    assert next_threshold(paper, None, 0.9, 50) is None
    with pytest.raises(ValueError, match="threshold_rule"):
        next_threshold(resolve_train_settings({"threshold_rule": "sometimes"}), None, 0.9, 101)


def test_logdet_term_reference_adds_the_batch_sum() -> None:
    """trainers.py: `loss = loss_dtw + loss_det + loss_mid`, loss_det the motor processor's summed log-dets."""
    logdet = torch.tensor([0.5, -2.0, 4.0], dtype=torch.float64)
    assert resolve_train_settings({})["logdet_form"] == "reference"
    assert float(logdet_term(logdet, 1250, "reference")) == 0.5 - 2.0 + 4.0
    assert float(logdet_term(logdet, 1250, "nll")) == pytest.approx(-(0.5 - 2.0 + 4.0) / 3 / 1250)


def test_modify_binarises_the_au_columns() -> None:
    """The reference's --modify: AU values >= 1 become 1, the rest 0; other columns untouched."""
    reactions = torch.tensor([[[1.0, 0.999, 1.7, -3.0] + [0.5] * 11 + [0.25, -0.75] + [0.125] * 8]])
    out = modify_aus(reactions)
    assert out[0, 0, :4].tolist() == [1.0, 0.0, 1.0, 0.0] and out[0, 0, 4:15].tolist() == [0.0] * 11
    assert torch.equal(out[..., 15:], reactions[..., 15:])
    assert resolve_generate_settings({})["modify"] is False


def test_repeated_clip_is_reported_with_its_rows(tiny_dataset, caplog) -> None:
    from regnn.data import layout

    csv = layout.split_csv(tiny_dataset, "train")
    lines = csv.read_text().splitlines()
    _, speaker, listener = lines[1].split(",")
    lines.append(f"{len(lines) - 1},{speaker},{lines[2].split(',')[2]}")  # row 0's speaker listed again
    csv.write_text("\n".join(lines) + "\n")
    rows = len(lines) - 1
    np.save(tiny_dataset / "neighbour_emotion_train.npy", np.eye(2 * rows))
    with caplog.at_level("WARNING"):
        build_index(tiny_dataset, "train")
    messages = [r.getMessage() for r in caplog.records if f"clip {speaker} more than once" in r.getMessage()]
    assert len(messages) == 1
    assert f"row 0 as speaker, row {rows - 1} as speaker" in messages[0]
    assert f"mirrored positions 0, {rows - 1}" in messages[0]
