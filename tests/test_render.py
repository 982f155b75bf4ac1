"""Reaction videos: time-synchronised panels, the speaker's audio, per-clip scores, a thumbnail and a page."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from regnn.face import ATTRIBUTES, render_faces
from regnn.metrics.react import frc, frd
from regnn.render import (GAP_PX, HEADER_PX, ReactionClip, clip_scores, pick_positions, write_page, write_video,
                          write_webp)

FPS, FRAMES, SIZE = 25, 60, 64
OPEN = slice(20, 40)  # frames where the real listener's mouth is wide open


def _speaker_video(path: Path) -> None:
    """Grey frames whose brightness encodes the frame number (4 levels per frame), one frame too many."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"crf": "10"})
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for t in range(FRAMES + 1):
            frame = np.full((32, 32, 3), min(4 * t, 255), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture
def clip(tmp_path: Path) -> ReactionClip:
    video, audio = tmp_path / "speaker.mp4", tmp_path / "speaker.wav"
    _speaker_video(video)
    rate = 16000
    soundfile.write(audio, 0.1 * np.sin(np.arange(int(rate * (FRAMES / FPS + 0.02))) * 0.05), rate)
    listener = np.zeros((FRAMES, 25), np.float32)
    listener[:, ATTRIBUTES.index("Neutral")] = 1
    listener[OPEN, ATTRIBUTES.index("AU25")] = listener[OPEN, ATTRIBUTES.index("AU26")] = 1
    samples = np.random.default_rng(0).random((2, FRAMES, 25)).astype(np.float32)
    return ReactionClip(3, "NoXI/s/Expert_video/1", video, audio, listener, samples, {"FRC": 0.5, "FRD": 42.0})


def _webp(path: Path) -> tuple[int, int]:
    """(animation frames, canvas width) of an animated WebP, from its RIFF chunks (FFmpeg cannot decode it)."""
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    frames, width, i = 0, 0, 12
    while i < len(data):
        tag, size = data[i: i + 4], struct.unpack("<I", data[i + 4: i + 8])[0]
        if tag == b"VP8X":
            width = int.from_bytes(data[i + 12: i + 15], "little") + 1
        frames += tag == b"ANMF"
        i += 8 + size + (size & 1)
    return frames, width


def _decode(path: Path) -> tuple[list[np.ndarray], av.container.InputContainer]:
    container = av.open(str(path))
    frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return frames, container


def _panel(frame: np.ndarray, k: int) -> np.ndarray:
    x0 = k * (SIZE + GAP_PX)
    return frame[HEADER_PX: HEADER_PX + SIZE, x0: x0 + SIZE].astype(np.float64)


def test_video_panels_are_time_synchronised_with_audio(clip: ReactionClip, tmp_path: Path) -> None:
    out, thumb = tmp_path / "clip.mp4", tmp_path / "clip.webp"
    write_video(clip, out, "regnn · test", SIZE, FPS, 18, {"seconds": 2, "fps": 5, "width": 120}, thumb)
    frames, container = _decode(out)
    with container:
        assert len(frames) == FRAMES  # the video's extra frame is dropped, as the labels have 60
        video = container.streams.video[0]
        assert float(video.duration * video.time_base) == pytest.approx(FRAMES / FPS)
        assert frames[0].shape[1] >= 4 * SIZE + 3 * GAP_PX and frames[0].shape[1] % 16 == frames[0].shape[0] % 16 == 0
        (sound,) = container.streams.audio
        assert sound.codec_context.name == "aac" and sound.rate == 16000
    # speaker panel: frame t shows the speaker's frame t
    for t in (5, 30, 55):
        assert _panel(frames[t], 0).mean() == pytest.approx(4 * t, abs=6)
    # listener panel: open mouth exactly on the labelled frames
    opened = render_faces(clip.listener[30], SIZE).astype(np.float64)
    closed = render_faces(clip.listener[0], SIZE).astype(np.float64)
    for t in (10, 19, 20, 39, 40, 50):
        error_open = np.abs(_panel(frames[t], 1) - opened).mean()
        error_closed = np.abs(_panel(frames[t], 1) - closed).mean()
        assert (error_open < error_closed) == (OPEN.start <= t < OPEN.stop), t
    # sample panels show the samples
    for k in range(2):
        drawn = render_faces(clip.samples[k, 30], SIZE).astype(np.float64)
        assert np.abs(_panel(frames[30], 2 + k) - drawn).mean() < 8
    assert _webp(thumb) == (10, 128)  # 2 s at 5 fps, 120 px rounded up to 128 (a multiple of 16)


def test_video_bytes_do_not_depend_on_the_heap(clip: ReactionClip, tmp_path: Path) -> None:
    """The same clip written here and in a process whose heap is filled with 0xff (MALLOC_PERTURB_) gives the
    same bytes: x264 with mb-tree read memory it never wrote, which made videos differ between runs."""
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    write_video(clip, a, "t", SIZE, FPS, 30)
    np.savez(tmp_path / "clip.npz", listener=clip.listener, samples=clip.samples)
    script = (
        "import sys, numpy as np; from pathlib import Path; from regnn.render import ReactionClip, write_video; "
        "d = np.load(sys.argv[1]); "
        "write_video(ReactionClip(3, 'x', Path(sys.argv[2]), Path(sys.argv[3]), d['listener'], d['samples'], "
        "{'FRC': 0.5, 'FRD': 42.0}), Path(sys.argv[4]), 't', 64, 25, 30)")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "clip.npz"), str(clip.video), str(clip.audio),
                    str(b)], check=True, env={**os.environ, "MALLOC_PERTURB_": "255"}, timeout=300)
    assert a.read_bytes() == b.read_bytes()


def test_silent_without_audio(clip: ReactionClip, tmp_path: Path) -> None:
    silent = ReactionClip(**{**clip.__dict__, "audio": None})
    write_video(silent, tmp_path / "a.mp4", "t", SIZE, FPS, 30)
    with av.open(str(tmp_path / "a.mp4")) as container:
        assert not container.streams.audio and len(container.streams.video) == 1


def test_missing_speaker_video_shows_a_placeholder(clip: ReactionClip, tmp_path: Path) -> None:
    missing = ReactionClip(**{**clip.__dict__, "video": None, "audio": None})
    out = tmp_path / "clip.mp4"
    write_video(missing, out, "t", SIZE, FPS, 30)
    frames, container = _decode(out)
    container.close()
    assert len(frames) == FRAMES


def test_clip_scores_are_the_official_metrics_per_speaker() -> None:
    rng = np.random.default_rng(1)
    n, samples, frames = 4, 2, 120
    listener = rng.random((n, frames, 25)).astype(np.float32)
    pred = rng.random((n, samples, frames, 25)).astype(np.float32)
    neighbours = np.eye(n, dtype=np.uint8)
    neighbours[0, 2] = neighbours[1, 3] = 1
    per_clip = [clip_scores(pred[k], listener, neighbours, k) for k in range(n)]
    # the official FRC and FRD are the means of the per-speaker values
    assert np.mean([s["FRC"] for s in per_clip]) == pytest.approx(frc(pred, listener, neighbours))
    assert np.mean([s["FRD"] for s in per_clip]) == pytest.approx(frd(pred, listener, neighbours, "cpu"))


def test_positions_spread_over_the_split() -> None:
    assert pick_positions(10, 3) == [0, 4, 9] or pick_positions(10, 3) == [0, 5, 9]
    assert pick_positions(2, 5) == [0, 1]
    with pytest.raises(ValueError):
        pick_positions(0, 1)


def test_page_embeds_videos_thumbnails_and_scores(clip: ReactionClip, tmp_path: Path) -> None:
    video, thumb = tmp_path / "clip.mp4", tmp_path / "clip.webp"
    write_video(clip, video, "t", SIZE, FPS, 30)
    write_webp([np.zeros((64, 100, 3), np.uint8)] * 3, thumb, 5, 50)
    page = tmp_path / "page.html"
    write_page([clip], [video], [thumb], page, "regnn · test", "Config: demo.")
    text = page.read_text()
    assert text.count("data:video/mp4;base64,") == 1 and text.count("data:image/webp;base64,") == 1
    assert "FRC 0.500" in text and "FRD 42.00" in text and "Config: demo." in text
