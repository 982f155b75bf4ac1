"""Feature extraction: shapes, 25 fps alignment, weight files in the published formats, bad input."""

from __future__ import annotations

import csv
import re
import zipfile
from dataclasses import replace
from pathlib import Path

import av
import h5py
import numpy as np
import pytest
import soundfile
import timm
import torch
import yaml
from PIL import Image

from regnn.features import vggish as vg
from regnn.features.extract import extract_shard, shard_rows
from regnn.features.media import MediaError, read_audio, read_video
from regnn.features.precomputed import PrecomputedExtractor
from regnn.features.runtime import Clip, Prepared
from regnn.protocols import ExtractionClip
from regnn.features.video import VideoExtractor, from_microsoft_swin
from regnn.features.wav2vec import Wav2Vec2Extractor, align_to_frames
from regnn.logs import log_to

FRAMES = 750
TINY_SWIN = {"embed_dim": 8, "depths": [2, 2], "num_heads": [1, 2], "window_size": 4, "img_size": 32}
SWIN_SETTINGS = {"kind": "swin_fer", "modality": "video", "model": "swin_tiny_patch4_window7_224",
                 "model_args": TINY_SWIN, "resize": 32, "crop": 32, "batch_size": 250, "workers": 2, "device": "cpu"}
KEYS = ["NoXI/001_2016-03-17_Paris/Expert_video/1", "NoXI/001_2016-03-17_Paris/Novice_video/1",
        "RECOLA/group-1/P25/2"]


# ---------------------------------------------------------------- helpers writing test media


def write_mp4(path: Path, frames: int = 751, size: int = 32, fps: int = 25, width: int | None = None) -> None:
    """An h264 clip whose frame t is a flat grey of level 3t (mod 256) with a moving bright square."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = size, width or size
        stream.pix_fmt = "yuv420p"
        for t in range(frames):
            image = np.ascontiguousarray(np.resize(frame_image(t, size), (size, width or size, 3)))
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def frame_image(t: int, size: int) -> np.ndarray:
    image = np.full((size, size, 3), (3 * t) % 256, np.uint8)
    x = t % (size - 8)
    image[4:12, x:x + 8] = 255
    return image


def write_wav(path: Path, seconds: float, rate: int = 16_000, channels: int = 1, amplitude: float = 0.3) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(round(seconds * rate))) / rate
    wave = amplitude * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    soundfile.write(path, np.repeat(wave[:, None], channels, axis=1).astype(np.float32), rate, subtype="PCM_16")


def write_index(root: Path, keys: list[str]) -> Path:
    """A split index in the contract's format for speakers `keys` (mirrored: listeners are the reversed list)."""
    path = root / "results" / "index.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["position", "speaker", "listener", "video", "audio", "emotion"])
        for k, key in enumerate(keys):
            writer.writerow([k, key, keys[-1 - k], root / "test" / "Video_files" / f"{key}.mp4",
                             root / "test" / "Audio_files" / f"{key}.wav", root / "test" / "Emotion" / f"{key}.csv"])
    return path


def clip(root: Path, key: str, frames: int = FRAMES) -> Clip:
    """A REACT 2024 clip as the extractors see it (its length the extractor's `frames`, 25 fps)."""
    split = root / "test"
    return Clip(key, split / "Video_files" / f"{key}.mp4", split / "Audio_files" / f"{key}.wav",
                {m: split / f"{m.title()}_features" / f"{key}.pth" for m in ("video", "audio")}, frames, 25.0)


def one_piece(extractor, c: Clip) -> Prepared:
    """The clip's only piece (clips shorter than chunk_frames are one)."""
    [piece] = extractor.chunks(c)
    return piece


def read_shard(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def to_microsoft_swin(state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A timm Swin state dict in the Microsoft layout of the authors' swin_fer.pth (with its derived buffers)."""
    out = {}
    for key, value in state.items():
        m = re.match(r"layers\.(\d+)\.downsample\.(.*)", key)
        if m:
            key = f"layers.{int(m.group(1)) - 1}.downsample.{m.group(2)}"
        out[key.replace("head.fc.", "head.")] = value
    for name, _ in model.named_modules():
        if name.endswith(".attn"):
            out[f"{name}.relative_position_index"] = torch.zeros(16, 16, dtype=torch.long)
            block = name[: -len(".attn")]
            if int(block.rsplit(".", 1)[1]) % 2:  # shifted blocks carry an attention mask
                out[f"{block}.attn_mask"] = torch.zeros(4, 16, 16)
    return out


def save_as_old_numpy(obj: dict, path: Path) -> None:
    """torch.save, with numpy arrays named as numpy 1.x pickles them (the released torchvggish PCA file)."""
    torch.save(obj, path)
    with zipfile.ZipFile(path) as f:
        members = {name: f.read(name) for name in f.namelist()}
    with zipfile.ZipFile(path, "w") as f:
        for name, data in members.items():
            f.writestr(name, data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
                       if name.endswith("data.pkl") else data)
    assert "numpy.core.multiarray._reconstruct" in torch.serialization.get_unsafe_globals_in_checkpoint(path)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 751-frame mp4s; one 29.8 s wav (slightly short, so padded) for the wav2vec2 test."""
    root = tmp_path_factory.mktemp("react")
    for key in KEYS:
        write_mp4(root / "test" / "Video_files" / f"{key}.mp4")
    write_wav(root / "test" / "Audio_files" / f"{KEYS[1]}.wav", 29.8)
    return root


@pytest.fixture(scope="module")
def short_audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~2 s wavs for extractors run with frames=50 (VGGish's front end on 30 s is slow on a shared CPU)."""
    root = tmp_path_factory.mktemp("short")
    for key, seconds, rate, channels in zip(KEYS, (2.02, 1.8, 2.04), (16_000, 16_000, 44_100), (1, 1, 2)):
        write_wav(root / "test" / "Audio_files" / f"{key}.wav", seconds, rate=rate, channels=channels)
    return root


# ---------------------------------------------------------------- video


def tiny_swin(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=7, **TINY_SWIN).eval()


def test_swin_features_are_frame_aligned_and_load_the_authors_layout(clips: Path, tmp_path: Path) -> None:
    reference = tiny_swin(seed=1)
    weights = tmp_path / "swin_fer.pth"
    torch.save(to_microsoft_swin(reference.state_dict(), reference), weights)
    index = write_index(clips, KEYS)
    out = tmp_path / "shard-0.h5"
    with log_to(tmp_path / "extract.log"):
        report = extract_shard(index, out, "swin_fer", {**SWIN_SETTINGS, "weights": str(weights)}, 0,
                               progress=False)
    shard = read_shard(out)
    assert sorted(shard) == sorted(KEYS) and report.frames == 3 * FRAMES
    with h5py.File(out, "r") as f:
        assert f.attrs["extractor"] == "swin_fer" and f.attrs["dim"] == reference.num_features
    feats = shard[KEYS[0]]
    assert feats.shape == (FRAMES, reference.num_features) and feats.dtype == np.float32
    # row t is frame t: recompute a few rows straight from the decoded frames with the reference model
    frames = read_video("clip", clips / "test" / "Video_files" / f"{KEYS[0]}.mp4", FRAMES)
    for t in (0, 1, 374, 749):
        x = (torch.from_numpy(frames[t]).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.5
        with torch.no_grad():
            expected = reference.forward_head(reference.forward_features(x), pre_logits=True)[0].numpy()
        np.testing.assert_allclose(feats[t], expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(feats[0], feats[1])
    log = (tmp_path / "extract.log").read_text()
    assert "frames/s" in log and "converted from Microsoft Swin layout" in log


def test_swin_weights_with_wrong_shapes_are_rejected(tmp_path: Path) -> None:
    other = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=7,
                              **{**TINY_SWIN, "embed_dim": 16})
    weights = tmp_path / "wrong.pth"
    torch.save(to_microsoft_swin(other.state_dict(), other), weights)
    with pytest.raises(ValueError, match="shape mismatches.*patch_embed.proj.weight"):
        VideoExtractor("swin_fer", {**SWIN_SETTINGS, "weights": str(weights)})
    torch.save({"model": {"something.else": torch.zeros(1)}}, weights)
    with pytest.raises(ValueError, match="missing keys"):
        VideoExtractor("swin_fer", {**SWIN_SETTINGS, "weights": str(weights)})


def test_microsoft_layout_renames_downsample_and_head() -> None:
    state = {"layers.0.downsample.reduction.weight": torch.zeros(1), "head.weight": torch.zeros(1),
             "layers.1.blocks.1.attn_mask": torch.zeros(1), "layers.0.blocks.0.attn.relative_position_index": 0}
    assert sorted(from_microsoft_swin(state)) == ["head.fc.weight", "layers.1.downsample.reduction.weight"]


def test_any_timm_model_with_timm_layout_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=0).eval()
    torch.save(model.state_dict(), tmp_path / "resnet.pth")
    settings = {**SWIN_SETTINGS, "model": "test_resnet", "model_args": {}, "weights": str(tmp_path / "resnet.pth")}
    ex = VideoExtractor("resnet", settings)
    x = torch.randint(0, 255, (3, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        expected = model(((x.float() / 255) - 0.5) / 0.5)
    assert ex.dim == model.num_features and "headless" in ex.description
    torch.testing.assert_close(ex.embed(x), expected)


def test_random_swin_is_seeded_and_logged(clips: Path, tmp_path: Path) -> None:
    a = VideoExtractor("demo", {**SWIN_SETTINGS, "seed": 3})
    b = VideoExtractor("demo", {**SWIN_SETTINGS, "seed": 3})
    x = torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(a.embed(x), b.embed(x)) and "RANDOM" in a.description


def test_png_folder_video(tmp_path: Path) -> None:
    folder = tmp_path / "clip"
    folder.mkdir()
    for t in range(FRAMES):
        Image.fromarray(frame_image(t, 16)).save(folder / f"{t + 1}.png")
    frames = read_video("c", folder, FRAMES)
    assert frames.shape == (FRAMES, 16, 16, 3) and np.array_equal(frames[10], frame_image(10, 16))
    (folder / "600.png").unlink()
    with pytest.raises(MediaError, match=r"clip c .*truncated: frame 600.png is missing"):
        read_video("c", folder, FRAMES)


def test_truncated_or_unreadable_video_stops_without_a_shard(clips: Path, tmp_path: Path) -> None:
    root = tmp_path / "bad"
    write_mp4(root / "test" / "Video_files" / f"{KEYS[0]}.mp4")
    write_mp4(root / "test" / "Video_files" / f"{KEYS[1]}.mp4", frames=700)
    index = write_index(root, KEYS[:2])
    out = tmp_path / "shard-0.h5"
    with pytest.raises(MediaError, match=rf"clip {KEYS[1]} .*truncated: 700 decodable frames"):
        extract_shard(index, out, "swin_fer", SWIN_SETTINGS, 0, progress=False)
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))
    write_mp4(root / "test" / "Video_files" / f"{KEYS[1]}.mp4", fps=30)
    with pytest.raises(MediaError, match=rf"clip {KEYS[1]} .*30.000 fps, expected 25"):
        extract_shard(index, out, "swin_fer", SWIN_SETTINGS, 0, progress=False)
    (root / "test" / "Video_files" / f"{KEYS[1]}.mp4").write_bytes(b"\x00not a video" * 100)
    with pytest.raises(MediaError, match=rf"clip {KEYS[1]} .*unreadable"):
        extract_shard(index, out, "swin_fer", SWIN_SETTINGS, 0, progress=False)
    assert not out.exists()


# ---------------------------------------------------------------- audio: VGGish


TORCHVGGISH_SHAPES = {
    "features.0.weight": (64, 1, 3, 3), "features.3.weight": (128, 64, 3, 3), "features.6.weight": (256, 128, 3, 3),
    "features.8.weight": (256, 256, 3, 3), "features.11.weight": (512, 256, 3, 3),
    "features.13.weight": (512, 512, 3, 3), "embeddings.0.weight": (4096, 12288),
    "embeddings.2.weight": (4096, 4096), "embeddings.4.weight": (128, 4096),
}


def test_vggish_has_torchvggish_state_dict_layout() -> None:
    shapes = {k: tuple(v.shape) for k, v in vg.VGGishNet().state_dict().items()}
    weights = {k: v for k, v in shapes.items() if k.endswith("weight")}
    assert weights == TORCHVGGISH_SHAPES
    assert {k[: -len(".bias")] for k in shapes if k.endswith("bias")} == {k[: -len(".weight")] for k in weights}


def test_vggish_gives_25_rows_per_second() -> None:
    assert vg.example_count(30 * vg.SAMPLE_RATE) == 749  # the reference's 749 rows for exactly 30 s
    frontend = vg.LogMel()
    for seconds in (2, 5):
        examples = frontend(torch.randn(seconds * vg.SAMPLE_RATE))
        assert examples.shape == (25 * seconds - 1, 1, 96, 64)
    # a 12 s signal gives 299 rows: one per 40 ms video frame (the last needs 600 samples past its start)
    assert vg.example_count(12 * vg.SAMPLE_RATE + 600) == 300


def test_log_mel_filters_and_tone() -> None:
    mel = vg.mel_matrix()
    hz = np.linspace(0, vg.SAMPLE_RATE / 2, mel.shape[0])
    assert mel.shape == (513, 64) and not mel[0].any()
    assert not mel[(hz < 125) | (hz > 7500)].any() and (mel.max(axis=0) > 0.5).all()
    t = np.arange(vg.SAMPLE_RATE) / vg.SAMPLE_RATE
    examples = vg.LogMel()(torch.from_numpy(np.sin(2 * np.pi * 1000 * t)).float())
    centres = 700 * np.expm1(np.linspace(vg.hz_to_mel(125), vg.hz_to_mel(7500), 66)[1:-1] / 1127)
    assert examples[:, 0].mean(dim=(0, 1)).argmax().item() == np.abs(centres - 1000).argmin()


def test_vggish_weights_and_pca_round_trip(short_audio: Path, tmp_path: Path) -> None:
    small = {"channels": [4, 4, 8, 8, 8, 8], "hidden": 16}
    torch.manual_seed(0)
    net = vg.VGGishNet(**small)
    torch.save(net.state_dict(), tmp_path / "vggish.pth")
    rng = np.random.default_rng(0)
    pca = {"pca_eigen_vectors": rng.normal(size=(128, 128)), "pca_means": rng.normal(size=(128,))}
    save_as_old_numpy(pca, tmp_path / "pca.pth")  # torchvggish's file: numpy arrays pickled by numpy 1.x
    np.savez(tmp_path / "pca.npz", **pca)  # the TensorFlow release's format
    settings = {"kind": "vggish", "modality": "audio", "device": "cpu", "frames": 50, **small,
                "weights": str(tmp_path / "vggish.pth"), "pca": str(tmp_path / "pca.pth")}
    ex = vg.VGGishExtractor("vggish", settings)
    prepared = one_piece(ex, clip(short_audio, KEYS[0], 50))
    values = ex.forward(prepared)
    assert values.shape == (50, 128) and ("padded rows", "1 row(s) repeat the last one") in prepared.notes
    assert np.array_equal(values, np.round(values)) and values.min() >= 0 and values.max() <= 255
    audio = read_audio("c", clip(short_audio, KEYS[0]).audio, vg.SAMPLE_RATE, 2.0, 0.5, pad=False)
    with torch.no_grad():
        raw = net(vg.LogMel()(torch.from_numpy(audio.samples)))
    expected = vg.postprocess(raw, torch.tensor(pca["pca_eigen_vectors"]).float(), torch.tensor(pca["pca_means"]).float())
    assert expected.shape == (49, 128)  # 2.02 s of audio: 49 whole 40 ms examples, the 50th row is padding
    np.testing.assert_allclose(values[:49], expected.numpy(), atol=1.0)  # at most one quantisation step
    assert np.mean(values[:49] == expected.numpy()) > 0.99
    np.testing.assert_array_equal(values[49], values[48])
    npz = vg.VGGishExtractor("vggish", {**settings, "pca": str(tmp_path / "pca.npz")})
    np.testing.assert_array_equal(npz.forward(one_piece(npz, clip(short_audio, KEYS[0], 50))), values)
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="missing keys"):
        vg.VGGishExtractor("vggish", {**settings, "weights": str(tmp_path / "bad.pth")})


def test_audio_checks(tmp_path: Path) -> None:
    write_wav(tmp_path / "short.wav", 29.7)
    audio = read_audio("c", tmp_path / "short.wav", 16_000, 30.0, 0.5)
    assert audio.samples.shape == (480_000,) and audio.padded_s == pytest.approx(0.3, abs=1e-3)
    write_wav(tmp_path / "stereo.wav", 30.0, rate=44_100, channels=2)
    assert read_audio("c", tmp_path / "stereo.wav", 24_000, 30.0, 0.5).samples.shape == (720_000,)
    write_wav(tmp_path / "tooshort.wav", 20.0)
    with pytest.raises(MediaError, match=r"clip c .*too short: 20.000 s"):
        read_audio("c", tmp_path / "tooshort.wav", 16_000, 30.0, 0.5)
    write_wav(tmp_path / "silent.wav", 30.0, amplitude=0.0)
    with pytest.raises(MediaError, match="silent"):
        read_audio("c", tmp_path / "silent.wav", 16_000, 30.0, 0.5)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(MediaError, match="unreadable or corrupt"):
        read_audio("c", tmp_path / "corrupt.wav", 16_000, 30.0, 0.5)


def test_bad_audio_stops_the_shard_and_short_audio_is_logged(short_audio: Path, tmp_path: Path) -> None:
    settings = {"kind": "vggish", "modality": "audio", "device": "cpu", "postprocess": False, "frames": 50,
                "channels": [4, 4, 8, 8, 8, 8], "hidden": 16}
    out = tmp_path / "shard-0.h5"
    with log_to(tmp_path / "a.log"):
        extract_shard(write_index(short_audio, KEYS), out, "vggish", settings, 0, progress=False)
    assert {k: v.shape for k, v in read_shard(out).items()} == {k: (50, 128) for k in KEYS}
    assert f"clip {KEYS[1]}: short audio: 1.800 s < 2 s" in (tmp_path / "a.log").read_text()
    assert "1 clip(s): short audio" in (tmp_path / "a.log").read_text()
    root = tmp_path / "bad"
    write_wav(root / "test" / "Audio_files" / f"{KEYS[0]}.wav", 2.0, amplitude=0.0)
    with pytest.raises(MediaError, match=rf"clip {KEYS[0]} .*silent"):
        extract_shard(write_index(root, KEYS[:1]), tmp_path / "bad.h5", "vggish", settings, 0, progress=False)
    assert not (tmp_path / "bad.h5").exists()


# ---------------------------------------------------------------- audio: wav2vec2


def test_wav2vec2_from_local_directory_is_aligned(clips: Path, tmp_path: Path) -> None:
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    config = Wav2Vec2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                            conv_dim=(8,) * 7, num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2)
    torch.manual_seed(0)
    model = Wav2Vec2Model(config).eval()
    model.save_pretrained(tmp_path / "w2v")
    settings = {"kind": "wav2vec2", "modality": "audio", "device": "cpu", "model_dir": str(tmp_path / "w2v"),
                "layer": 1}
    ex = Wav2Vec2Extractor("wav2vec2", settings)
    prepared = one_piece(ex, clip(clips, KEYS[1]))  # 29.8 s: padded to exactly 30 s
    samples, frames = prepared.inputs
    assert samples.shape == (480_000,) and frames == FRAMES and prepared.notes[0][0] == "short audio"
    values = ex.forward(prepared)
    assert values.shape == (FRAMES, 16)
    with torch.no_grad():
        hidden = model(samples[None], output_hidden_states=True).hidden_states[1][0]
    assert hidden.shape[0] == 1499  # ~50 Hz
    np.testing.assert_allclose(values, align_to_frames(hidden, FRAMES, "adaptive").numpy(), rtol=1e-4, atol=1e-5)
    pairs = Wav2Vec2Extractor("w", {**settings, "pooling": "pairs"})
    np.testing.assert_allclose(pairs.forward(prepared)[10], hidden[20:22].mean(0).numpy(), rtol=1e-4, atol=1e-5)


def test_alignment_maps_audio_time_to_video_frames() -> None:
    time = torch.arange(1499, dtype=torch.float32)[:, None] / 49.97  # seconds at wav2vec2's frame rate
    for pooling in ("adaptive", "pairs"):
        rows = align_to_frames(time, FRAMES, pooling)[:749, 0]
        video_time = (torch.arange(749) + 0.5) / 25  # centre of each 40 ms video frame
        assert (rows - video_time).abs().max() < 0.03, pooling


# ---------------------------------------------------------------- precomputed and sharding


def test_precomputed_import(clips: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    tensors = {KEYS[0]: rng.normal(size=(751, 6)), KEYS[1]: rng.normal(size=(749, 6)), KEYS[2]: rng.normal(size=(600, 6))}
    for key, value in tensors.items():
        path = root / "test" / "Video_features" / f"{key}.pth"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(torch.from_numpy(value).float(), path)
    ex = PrecomputedExtractor("pre", {"kind": "precomputed", "modality": "video", "dim": 6})
    a = ex.forward(one_piece(ex, clip(root, KEYS[0])))
    np.testing.assert_allclose(a, tensors[KEYS[0]][:750], rtol=1e-6)
    b = one_piece(ex, clip(root, KEYS[1]))
    assert b.inputs.shape == (750, 6) and np.array_equal(b.inputs[749], b.inputs[748]) and b.notes
    with pytest.raises(MediaError, match="600 rows"):
        one_piece(ex, clip(root, KEYS[2]))
    with pytest.raises(MediaError, match="missing"):
        one_piece(ex, clip(root, "x/y/z/w"))


def test_shards_cover_each_speaker_once_in_order(tmp_path: Path) -> None:
    keys = [f"S/s/P{i}/1" for i in range(7)]
    index = [ExtractionClip(key, Path(), Path(), {}) for key in keys + keys[:3]]
    parts = [[c.key for c in shard_rows(index, 3, k)] for k in range(3)]
    assert parts == [keys[:3], keys[3:5], keys[5:]]


def test_shards_are_written_clip_by_clip_and_atomically(tmp_path: Path) -> None:
    from regnn.feature_store import shard_writer, write_shard

    a, b = np.ones((3, 2), np.float32), np.zeros((5, 2), np.float32)
    with shard_writer(tmp_path / "s.h5", "x", {"k": 1}) as put:
        put("speaker/session0/a", a)
        a[:] = 7  # stored when put: the caller may drop or reuse its array at once
        put("speaker/session0/b", b)
    write_shard(tmp_path / "w.h5", {"speaker/session0/a": np.ones((3, 2)), "speaker/session0/b": b}, "x", {"k": 1})
    assert (tmp_path / "s.h5").read_bytes() == (tmp_path / "w.h5").read_bytes()
    with pytest.raises(ValueError, match=r"different feature dimensions \[2, 3\]"):
        with shard_writer(tmp_path / "bad.h5", "x", {}) as put:
            put("a", a)
            put("b", np.ones((4, 3)))
    assert not (tmp_path / "bad.h5").exists() and not list(tmp_path.glob(".bad.h5.*"))


def test_cli_extracts_every_shard_and_names_bad_clips(tmp_path: Path) -> None:
    from regnn.cli import main

    root = tmp_path / "data"
    for key in KEYS[:2]:
        path = root / "test" / "Video_features" / f"{key}.pth"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(torch.ones(751, 5), path)
    config = tmp_path / "config.yaml"
    config.write_text("extractors:\n  pre: {kind: precomputed, modality: video, shards: 2}\n")
    args = ["extract", "--config", str(config), "--extractor", "pre", "--split", "test",
            "--index", str(write_index(root, KEYS[:2])), "--results", str(tmp_path / "results")]
    assert main(args) == 0
    shards = [tmp_path / "results" / "features" / "pre" / "test" / f"shard-{k}.h5" for k in range(2)]
    assert [sorted(read_shard(p)) for p in shards] == [[KEYS[0]], [KEYS[1]]]
    torch.save(torch.ones(100, 5), root / "test" / "Video_features" / f"{KEYS[1]}.pth")
    with pytest.raises(SystemExit, match=rf"clip {KEYS[1]} .*100 rows"):
        main(args)
    with pytest.raises(SystemExit, match="no extractor 'nope'"):
        main([*args[:3], "--extractor", "nope", *args[5:]])


# ---------------------------------------------------------------- MARS (REACT 2025/2026): every clip at its own length


MARS_SWIN = {**SWIN_SETTINGS, "resize": 32, "crop": None, "batch_size": 8}  # the 2025/2026 way: resize, no crop
TINY_W2V = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
            "conv_dim": [8] * 7, "num_conv_pos_embeddings": 8, "num_conv_pos_embedding_groups": 2}
MARS_W2V = {"kind": "wav2vec2", "modality": "audio", "device": "cpu", "random_config": TINY_W2V}


@pytest.fixture(scope="module")
def mars_split(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A synthetic MARS test split (one session, both roles, 58-160 frames, 16 px face crops) and its index."""
    from regnn.data import mars
    from regnn.data.mars_synthetic import MarsSyntheticSettings, write_mars_dataset

    root = tmp_path_factory.mktemp("mars") / "data"
    write_mars_dataset(root, MarsSyntheticSettings(seed=3, sessions={"test": 1}, coefficients=False))
    out = root.parent / "dataset"
    mars.index_split(root, "test", out / "index.tsv", out / "emotions.h5", out / "targets.tsv")
    return root, out / "index.tsv"


def index_lengths(index_tsv: Path) -> dict[str, int]:
    with index_tsv.open(newline="") as f:
        return {r["speaker"]: int(r["frames"]) for r in csv.DictReader(f, delimiter="\t")}


def mars_clip(split: Path, key: str, frames: int, tolerance: int = 3) -> Clip:
    return Clip(key, split / "video-face-crop" / f"{key}.mp4", split / "audio" / f"{key}.wav",
                {"video": split / "video-features" / f"{key}.pth", "audio": split / "audio-features" / f"{key}.npy"},
                frames, 30.0, tolerance)


def test_protocols_name_the_clips_to_extract(mars_split: tuple[Path, Path], tmp_path: Path) -> None:
    from regnn import protocols

    root, index = mars_split
    clips = protocols.get("react2025").extraction_clips(index)
    lengths = index_lengths(index)
    assert [c.key for c in clips] == list(lengths)  # each input clip once, in index order (both roles)
    assert {c.key.split("/")[0] for c in clips} == {"speaker", "listener"}
    first = clips[0]
    assert (first.frames, first.fps) == (lengths[first.key], 30.0) and first.video.is_file() and first.audio.is_file()
    assert first.features == {"video": root / "test" / "video-features" / f"{first.key}.pth",
                              "audio": root / "test" / "audio-features" / f"{first.key}.npy"}
    react = protocols.get("react2024").extraction_clips(write_index(tmp_path, KEYS + KEYS[:1]))
    assert [c.key for c in react] == KEYS and react[0].frames is None and react[0].fps is None
    assert react[0].features["audio"] == tmp_path / "test" / "Audio_features" / f"{KEYS[0]}.pth"
    with pytest.raises(ValueError, match="columns"):
        protocols.get("react2025").extraction_clips(write_index(tmp_path, KEYS))


def test_mars_features_have_each_clips_length_and_are_reproducible(mars_split: tuple[Path, Path],
                                                                   tmp_path: Path) -> None:
    root, index = mars_split
    lengths = index_lengths(index)
    assert len(set(lengths.values())) > 1  # nothing may assume one length
    for name, settings, dim in (("swin", MARS_SWIN, 8 * 2), ("w2v", MARS_W2V, 16)):
        outs = [tmp_path / f"{name}-{k}.h5" for k in range(2)]
        for out in outs:
            with log_to(tmp_path / f"{name}.log"):
                report = extract_shard(index, out, name, settings, 0, progress=False, protocol="react2025")
        shard = read_shard(outs[0])
        assert {k: v.shape for k, v in shard.items()} == {k: (n, dim) for k, n in lengths.items()}, name
        assert report.frames == sum(lengths.values())
        assert outs[0].read_bytes() == outs[1].read_bytes(), name  # same config and seed: the same bytes
    # the video rows are the network on every frame, the official way: PIL Resize(32), no crop, 0.5/0.5
    from torchvision import transforms

    key = next(iter(lengths))
    ex = VideoExtractor("swin", MARS_SWIN)
    frames = read_video(key, root / "test" / "video-face-crop" / f"{key}.mp4", lengths[key], fps=30)
    official = transforms.Compose([transforms.Resize(32), transforms.ToTensor(), transforms.Normalize([0.5] * 3,
                                                                                                     [0.5] * 3)])
    x = torch.stack([official(Image.fromarray(frames[t])) for t in (0, len(frames) - 1)])
    with torch.no_grad():
        expected = ex.model.forward_head(ex.model.forward_features(x), pre_logits=True).numpy()
    rows = read_shard(tmp_path / "swin-0.h5")[key][[0, -1]]
    assert np.abs(rows - expected).max() < 0.02 * np.abs(expected).max()  # PIL and torch antialias round apart
    write_mp4(tmp_path / "wide.mp4", frames=60, size=32, fps=30, width=48)
    with pytest.raises(MediaError, match="not square: set the extractor's `crop`"):
        list(ex.chunks(replace(mars_clip(root / "test", key, 60), video=tmp_path / "wide.mp4")))


def test_cli_extracts_a_mars_split(mars_split: tuple[Path, Path], tmp_path: Path) -> None:
    from regnn.cli import main

    _, index = mars_split
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data": {"protocol": "react2025"}, "extractors": {"swin": {**MARS_SWIN,
                                                                                                 "frames": 750}}}))
    assert main(["extract", "--config", str(config), "--extractor", "swin", "--split", "test", "--index",
                 str(index), "--results", str(tmp_path / "results")]) == 0
    shard = read_shard(tmp_path / "results" / "features" / "swin" / "test" / "shard-0.h5")
    assert {k: v.shape[0] for k, v in shard.items()} == index_lengths(index)
    log = (tmp_path / "results" / "logs" / "extract" / "swin" / "test" / "shard-0.log").read_text()
    assert "`frames` / `fps` settings are not used: the react2025 index gives each clip's length" in log


def test_media_within_the_tolerance_are_trimmed_or_repeat_the_last_frame(mars_split: tuple[Path, Path]) -> None:
    from regnn.features.media import video_chunks

    root, index = mars_split
    key, n = next(iter(index_lengths(index).items()))
    path = root / "test" / "video-face-crop" / f"{key}.mp4"
    whole = read_video(key, path, n, fps=30)
    notes: list[tuple[str, str]] = []
    longer = np.concatenate(list(video_chunks(key, path, n + 2, 16, 30, 3, notes)))
    assert len(longer) == n + 2 and np.array_equal(longer[:n], whole) and np.array_equal(longer[-1], whole[-1])
    assert notes == [("short video", f"{n} frames, the last repeated 2 time(s)")]
    notes.clear()
    shorter = np.concatenate(list(video_chunks(key, path, n - 3, 16, 30, 3, notes)))
    assert np.array_equal(shorter, whole[:n - 3]) and notes == [("long video", "3 frame(s) beyond %d dropped" % (n - 3))]
    with pytest.raises(MediaError, match=rf"clip {key} .*truncated: {n} decodable frames, expected {n + 4} "
                                         r"\(tolerance 3\)"):
        list(video_chunks(key, path, n + 4, 16, 30, 3))
    with pytest.raises(MediaError, match=rf"more than {n - 1} frames, expected {n - 4}"):
        list(video_chunks(key, path, n - 4, 16, 30, 3))
    with pytest.raises(MediaError, match="30.000 fps, expected 25"):
        list(video_chunks(key, path, n, 16, 25, 3))
    # through the extractor: the short clip's last feature row repeats, and the note reaches the log
    ex = VideoExtractor("swin", MARS_SWIN)
    pieces = list(ex.chunks(mars_clip(root / "test", key, n + 2)))
    assert pieces[-1].notes == [("short video", f"{n} frames, the last repeated 2 time(s)")]
    rows = np.concatenate([ex.forward(p) for p in pieces])
    assert rows.shape[0] == n + 2 and np.array_equal(rows[-1], rows[-3])


def test_chunked_extraction_equals_whole_clip_and_never_holds_more_than_a_chunk(mars_split: tuple[Path, Path],
                                                                                tmp_path: Path) -> None:
    root, index = mars_split
    key, n = max(index_lengths(index).items(), key=lambda kv: kv[1])
    ex = VideoExtractor("swin", {**MARS_SWIN, "chunk_frames": 16})
    pieces = list(ex.chunks(mars_clip(root / "test", key, n)))
    assert [len(p.inputs) for p in pieces] == [16] * (n // 16) + ([n % 16] if n % 16 else [])
    shards = {}
    for chunk in (16, 56, 1000):  # 56: pieces straddle the decoder's groups of 50 frames
        out = tmp_path / f"chunk-{chunk}.h5"
        extract_shard(index, out, "swin", {**MARS_SWIN, "chunk_frames": chunk}, 0, progress=False,
                      protocol="react2025")
        shards[chunk] = read_shard(out)
    for chunk in (16, 56):  # batches of 8 within any of these chunkings: the same rows, bit for bit
        assert all(np.array_equal(shards[chunk][k], shards[1000][k]) for k in shards[1000])
    # wav2vec2: a clip shorter than a piece is the whole-clip pass; a longer one is cut into near-equal pieces
    w2v = Wav2Vec2Extractor("w2v", {**MARS_W2V, "chunk_frames": 40})
    c = mars_clip(root / "test", key, n)
    spans = [p.inputs[1] for p in w2v.chunks(c)]
    assert sum(spans) == n and max(spans) - min(spans) <= 1 and max(spans) <= 40
    whole = Wav2Vec2Extractor("w2v", MARS_W2V)
    [piece] = whole.chunks(c)
    with torch.no_grad():
        hidden = whole.model(piece.inputs[0][None]).last_hidden_state[0]
    np.testing.assert_allclose(whole.forward(piece), align_to_frames(hidden, n, "adaptive").numpy(), rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(ValueError, match="'pairs' gives 25 rows per second"):
        list(Wav2Vec2Extractor("w2v", {**MARS_W2V, "pooling": "pairs"}).chunks(c))


def test_prefetched_chunks_are_bounded_in_memory_and_in_order() -> None:
    import threading
    import time

    from regnn.features.media import prefetch_chunks

    alive = peak = 0
    lock = threading.Lock()

    def pieces(item: int):
        nonlocal alive, peak
        if item == 5:
            raise MediaError(f"c{item}", Path("x"), "broken")
        for k in range(item):  # item i has i pieces: a long clip is many
            with lock:
                alive += 1
                peak = max(peak, alive)
            yield (item, k)

    workers, depth = 2, 2
    seen = []
    with pytest.raises(MediaError, match="c5"):
        for item, chunks in prefetch_chunks(pieces, [9, 1, 7, 3, 5, 8], workers, depth):
            for piece in chunks:
                time.sleep(0.002)  # the network is slower than decoding: producers run ahead and must wait
                seen.append(piece)
                with lock:
                    alive -= 1
    assert seen == [(i, k) for i in (9, 1, 7, 3) for k in range(i)]  # in order, each item whole, then the error
    assert peak <= 2 + depth + workers


class NotAFeature:
    """Pickled into a .pth: loading it would run code, so weights_only loading must refuse."""


def test_official_mars_features_are_imported_at_each_clips_length(mars_split: tuple[Path, Path],
                                                                  tmp_path: Path) -> None:
    root, index = mars_split
    lengths = index_lengths(index)
    rng = np.random.default_rng(1)
    written = {}
    for i, (key, n) in enumerate(lengths.items()):  # the official files may be a few frames off: -2, 0, +3
        rows = n + (-2, 0, 3)[i % 3]
        written[key] = rng.normal(size=(rows, 12))
        video = root / "test" / "video-features" / f"{key}.pth"
        audio = root / "test" / "audio-features" / f"{key}.npy"
        for path in (video, audio):
            path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(torch.from_numpy(written[key]).float(), video)
        np.save(audio, written[key])  # float64: cast to float32
    for modality in ("video", "audio"):
        out = tmp_path / f"{modality}.h5"
        with log_to(tmp_path / f"{modality}.log"):
            extract_shard(index, out, modality, {"kind": "precomputed", "modality": modality, "dim": 12}, 0,
                          progress=False, protocol="react2025")
        shard = read_shard(out)
        for key, n in lengths.items():
            rows = np.asarray(written[key], np.float32)
            fitted = rows[:n] if len(rows) >= n else np.concatenate([rows, np.repeat(rows[-1:], n - len(rows), 0)])
            np.testing.assert_array_equal(shard[key], fitted)
        log = (tmp_path / f"{modality}.log").read_text()
        assert "padded rows: 2 row(s) repeat the last one" in log and "trimmed rows: 3 row(s) beyond" in log


@pytest.mark.parametrize("content, problem", [
    (None, "pre-extracted feature file is missing"),
    (torch.zeros(2, 60, 12), r"shape \(2, 60, 12\), expected \(frames, dim\)"),
    (torch.zeros(60, 12, dtype=torch.bool), "dtype bool, expected real numbers"),
    (torch.full((60, 12), float("nan")), r"non-finite values \(first at row 0\)"),
    (torch.zeros(64, 12), r"64 rows, expected 60 \(tolerance 3\)"),
    (torch.zeros(56, 12), r"56 rows, expected 60 \(tolerance 3\)"),
    (torch.zeros(60, 7), "feature dimension 7, expected 12"),
    ({"features": torch.zeros(60, 12)}, "expected a tensor, found dict"),
    (NotAFeature(), "unreadable"),
    (np.zeros((60, 12), dtype=np.complex64), "dtype complex64, expected real numbers"),
    (np.array([[None] * 12] * 60, dtype=object), "unreadable"),
])
def test_bad_official_feature_files_are_named(content: object, problem: str, tmp_path: Path) -> None:
    key = "speaker/session0/Camera-x"
    clip = mars_clip(tmp_path / "test", key, 60)
    path = clip.features["video"]
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, np.ndarray):  # arrays are the audio-features .npy files
        path = clip.features["audio"]
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, content, allow_pickle=True)
    elif content is not None:
        torch.save(content, path)
    modality = "audio" if isinstance(content, np.ndarray) else "video"
    ex = PrecomputedExtractor("pre", {"kind": "precomputed", "modality": modality, "dim": 12})
    with pytest.raises(MediaError, match=rf"clip {key} \({re.escape(str(path))}\): .*{problem}"):
        one_piece(ex, clip)
