"""Reaction video speed: one 750-frame clip (speaker video + real listener + generated samples) on one core.

    .venv/bin/python benchmarks/render.py                      # REACT size: 256 px panels, 3 samples, audio
    .venv/bin/python benchmarks/render.py --size 128 --samples 3

Writes a synthetic speaker mp4 (751 frames) and a 44.1 kHz wav, then times `write_video` (compose the panels,
draw the faces, encode H.264 + AAC, cut the WebP thumbnail). Prints CPU (process) and wall time; CPU time
is the figure to quote on a shared machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import soundfile

from regnn.render import ReactionClip, write_video
from regnn.settings import RENDER_DEFAULTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--frames", type=int, default=750)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        video, audio = Path(tmp) / "speaker.mp4", Path(tmp) / "speaker.wav"
        with av.open(str(video), "w") as container:
            stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
            stream.width = stream.height = 256
            stream.pix_fmt = "yuv420p"
            for t in range(args.frames + 1):
                frame = np.full((256, 256, 3), (t * 3) % 256, np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        soundfile.write(audio, 0.1 * rng.standard_normal(int(44100 * 30.02)), 44100)

        def attributes(n: int) -> np.ndarray:  # smooth, emotion-like series
            t = np.arange(args.frames)[None, :, None]
            a = np.sin(t * rng.uniform(0.01, 0.1, (n, 1, 25)) + rng.uniform(0, 6, (n, 1, 25)))
            a[..., :15] = a[..., :15] > 0.3
            return a.astype(np.float32)

        clip = ReactionClip(0, "NoXI/bench/Expert_video/1", video, audio, attributes(1)[0], attributes(args.samples),
                            {"FRC": 0.0, "FRD": 0.0})
        write_video(clip, Path(tmp) / "warm.mp4", "warm-up", 64, 25, 23)  # imports, fonts, caches
        c0, w0 = time.process_time(), time.perf_counter()
        write_video(clip, Path(tmp) / "clip.mp4", "benchmark", args.size, 25, RENDER_DEFAULTS["crf"],
                    RENDER_DEFAULTS["thumbnail"], Path(tmp) / "clip.webp")
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        size_kb = (Path(tmp) / "clip.mp4").stat().st_size / 1024
    print(f"{args.frames} frames, {args.size} px panels, {args.samples} samples + speaker + listener: "
          f"cpu {cpu:.2f} s, wall {wall:.2f} s, mp4 {size_kb:.0f} KiB")


if __name__ == "__main__":
    main()
