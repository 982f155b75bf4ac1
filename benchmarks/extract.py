"""Video feature extraction speed: our pipeline vs the backbone alone vs the reference's naive per-clip loop.

On the same synthetic clips (h264 mp4, 751 frames, 25 fps), times
  forward   the backbone's pure forward time on frames decoded and resized beforehand (the floor),
  pipeline  `regnn.features.extract` (decode + resize in background threads, network), without model loading,
  naive     the reference way: per clip, decode every frame, PIL resize/crop/normalise frame by frame with
            torchvision transforms, then run the network on the clip,
and prints pipeline/forward (target <= 1.25) and naive/pipeline, plus the largest feature difference between
the naive and pipeline outputs (the same features, computed two ways).

    .venv/bin/python benchmarks/extract.py                    # demo-sized: tiny Swin, 64 px frames, CPU
    .venv/bin/python benchmarks/extract.py --preset regnn     # Swin-T on 256 px frames (REGNN's setting; GPU)

`--protocol react2025` instead measures MARS extraction: frames/s over the synthetic MARS test split
(`regnn.data.mars_synthetic`, every clip at its own length, resize without crop), then one `--long`-frame
clip (default 20,000) extracted in pieces of `chunk_frames` 1,000 and in one piece: the process's peak RSS
above its baseline for each, and whether the features are identical.

    .venv/bin/python benchmarks/extract.py --protocol react2025 [--long 20000 --size 96]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from regnn.features.extract import extract_shard
from regnn.features.media import read_video
from regnn.features.runtime import Prepared
from regnn.feature_store import load_features
from regnn.features.video import VideoExtractor, resize_crop

PRESETS = {
    "demo": {"size": 64, "settings": {"model_args": {"embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 2, 4, 8],
                                                     "window_size": 4, "img_size": 64}, "resize": 64, "crop": 64}},
    "regnn": {"size": 256, "settings": {"model_args": {}, "resize": 256, "crop": 224}},
}


def write_clips(root: Path, clips: int, size: int) -> Path:
    """`clips` noisy moving-gradient mp4s and an index.tsv naming them; returns the index."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    keys = [f"NoXI/bench/Expert_video/{i}" for i in range(clips)]
    for key in keys:
        path = root / "Video_files" / f"{key}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width = stream.height = size
            stream.pix_fmt = "yuv420p"
            for t in range(751):
                gradient = ((xx + yy + 2 * t) % size * 200 // size)[..., None]
                image = (gradient + rng.integers(0, 50, (size, size, 3))).astype(np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    index = root / "index.tsv"
    with index.open("w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["position", "speaker", "listener", "video", "audio", "emotion"])
        for k, key in enumerate(keys):
            writer.writerow([k, key, key, root / "Video_files" / f"{key}.mp4", root / "none.wav", root / "none.csv"])
    return index


def time_forward(extractor: VideoExtractor, index: Path, keys: list[str]) -> float:
    """Network time alone: every clip decoded, resized and cropped before the clock starts."""
    s = extractor.s
    frames = [resize_crop(torch.from_numpy(read_video(k, index.parent / "Video_files" / f"{k}.mp4", 750))
                          .permute(0, 3, 1, 2), s["resize"], s["crop"]).contiguous() for k in keys]
    extractor.forward(Prepared("warm-up", frames[0][:16]))
    start = time.perf_counter()
    for key, clip in zip(keys, frames):
        extractor.forward(Prepared(key, clip))
    return time.perf_counter() - start


def time_naive(extractor: VideoExtractor, index: Path, keys: list[str]) -> tuple[float, dict[str, np.ndarray]]:
    """The reference loop: per clip, decode all frames, transform each PIL frame, then one network call."""
    s = extractor.s
    transform = transforms.Compose([transforms.Resize(s["resize"]), transforms.CenterCrop(s["crop"]),
                                    transforms.ToTensor(), transforms.Normalize(s["mean"], s["std"])])
    out = {}
    start = time.perf_counter()
    for key in keys:
        with av.open(str(index.parent / "Video_files" / f"{key}.mp4")) as container:
            images = [Image.fromarray(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)][:750]
        clip = torch.stack([transform(image) for image in images]).to(extractor.device)
        with torch.inference_mode():
            feats = extractor.model.forward_head(extractor.model.forward_features(clip), pre_logits=True)
        out[key] = feats.cpu().numpy()
    return time.perf_counter() - start, out


def peak_rss_mb(run) -> tuple[float, object]:
    """(peak RSS while `run()` ran, in MB above the RSS before it, its result); Linux only (VmHWM reset)."""
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS

    def status(field: str) -> float:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field))
        return int(line.split()[1]) / 1024

    before = status("VmRSS:")
    result = run()
    return status("VmHWM:") - before, result


def write_long_clip(path: Path, frames: int, size: int) -> None:
    """One `frames`-frame 30 fps mp4 of a moving gradient (a MARS clip of over 11 minutes at 20,000)."""
    from regnn.io import x264_options

    yy, xx = np.mgrid[0:size, 0:size]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = x264_options(crf=30, preset="ultrafast")
        for t in range(frames):
            image = np.repeat(((xx + yy + 2 * t) % size * 250 // size).astype(np.uint8)[..., None], 3, axis=2)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def mars_main(args: argparse.Namespace) -> None:
    """Frames/s on the synthetic MARS test split, then one long clip chunked vs whole (peak RSS, equality)."""
    from regnn.data import mars
    from regnn.data.mars_synthetic import write_mars_dataset

    model_args = {"embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 2, 4, 8], "window_size": 4,
                  "img_size": 64}
    settings = {"kind": "swin_fer", "modality": "video", "device": args.device, "workers": args.workers,
                "batch_size": args.batch_size, "bf16": args.bf16, "model_args": model_args, "resize": 64,
                "crop": None}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_mars_dataset(tmp / "data")
        index = tmp / "dataset" / "index.tsv"
        mars.index_split(tmp / "data", "test", index, tmp / "dataset" / "emotions.h5", tmp / "dataset" / "t.tsv")
        best = None
        for _ in range(args.repeats):
            report = extract_shard(index, tmp / "mars.h5", "bench", settings, 0, progress=False, protocol="react2025")
            best = report if best is None or report.seconds < best.seconds else best
        print(f"synthetic MARS test split: {best.clips} clips, {best.frames} frames (lengths vary), tiny Swin at "
              f"64 px, device {args.device}: {best.frames_per_second:.0f} frames/s, network busy "
              f"{100 * best.network_seconds / best.seconds:.0f}%")
        key = "speaker/session0/long"
        video = tmp / "long" / "test" / "video-face-crop" / f"{key}.mp4"
        start = time.perf_counter()
        write_long_clip(video, args.long, args.size)
        print(f"wrote one {args.long}-frame {args.size} px clip in {time.perf_counter() - start:.1f} s")
        long_index = tmp / "long" / "index.tsv"
        with long_index.open("w", newline="") as f:
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            writer.writerow(mars.INDEX_COLUMNS)
            writer.writerow([0, key, "listener/session0/long", "session0", args.long, args.long, video,
                             tmp / "none.wav", tmp / "none.npy"])
        outputs = {}
        for chunk in (1000, 1000, args.long):  # the first run warms up (allocator, one-time buffers): not shown
            out = tmp / f"long-{chunk}.h5"
            extract_long = {**settings, "chunk_frames": chunk, "resize": args.size, "model_args":
                            {**model_args, "img_size": args.size}}
            peak, report = peak_rss_mb(lambda: extract_shard(long_index, out, "bench", extract_long, 0,
                                                             progress=False, protocol="react2025"))
            first = chunk not in outputs
            outputs[chunk] = load_features([out], [key])[0]
            if first and chunk == 1000:
                continue
            whole = args.long * args.size * args.size * 3 / 2**20
            print(f"chunk_frames {chunk:6d}: {report.seconds:6.1f} s, {report.frames_per_second:5.0f} frames/s, "
                  f"peak RSS +{peak:6.0f} MB (the clip's decoded frames alone: {whole:.0f} MB)")
        print(f"chunked == one piece: {np.array_equal(outputs[1000], outputs[args.long])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many interleaved runs")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--protocol", choices=["react2024", "react2025"], default="react2024")
    parser.add_argument("--long", type=int, default=20_000, help="react2025: frames of the long clip")
    parser.add_argument("--size", type=int, default=96, help="react2025: the long clip's frame size (px)")
    args = parser.parse_args()
    if args.protocol == "react2025":
        if args.threads:
            torch.set_num_threads(args.threads)
        return mars_main(args)
    preset = PRESETS[args.preset]
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = {"kind": "swin_fer", "modality": "video", "device": args.device, "workers": args.workers,
                "batch_size": args.batch_size, "bf16": args.bf16, **preset["settings"]}
    with tempfile.TemporaryDirectory() as tmp:
        index = write_clips(Path(tmp), args.clips, preset["size"])
        keys = [f"NoXI/bench/Expert_video/{i}" for i in range(args.clips)]
        extractor = VideoExtractor("bench", settings)
        print(f"{args.clips} clips x 750 frames of {preset['size']} px, {extractor.description}, "
              f"device {extractor.device}, {torch.get_num_threads()} torch threads")
        forward, pipeline, naive, network = float("inf"), float("inf"), float("inf"), float("inf")
        for _ in range(args.repeats):  # interleaved, best of each: the machine may be shared
            forward = min(forward, time_forward(extractor, index, keys))
            report = extract_shard(index, Path(tmp) / "shard-0.h5", "bench", settings, 0, progress=False)
            if report.seconds < pipeline:
                pipeline, network = report.seconds, report.network_seconds
            seconds, naive_out = time_naive(extractor, index, keys)
            naive = min(naive, seconds)
        ours = load_features([Path(tmp) / "shard-0.h5"], keys)
        diff = max(float(np.abs(ours[i] - naive_out[k]).max()) for i, k in enumerate(keys))
    frames = args.clips * 750
    for name, seconds in (("forward", forward), ("pipeline", pipeline), ("naive", naive)):
        print(f"{name:9s} {seconds:8.2f} s  {frames / seconds:8.0f} frames/s")
    print(f"pipeline / forward = {pipeline / forward:.2f} (target <= 1.25)")
    print(f"pipeline / its own network time = {pipeline / network:.2f} (the network ran {network:.2f} s of it)")
    print(f"naive / pipeline   = {naive / pipeline:.2f}")
    print(f"largest |naive - pipeline| feature difference: {diff:.2e}")


if __name__ == "__main__":
    main()
