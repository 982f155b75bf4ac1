"""The REACT 2025/2026 metric set on MARS-like variable-length clips: ours vs the official way, and the memory
of one long FRD pair. Run through `benchmarks/evaluate.py --protocol react2025`:

    .venv/bin/python benchmarks/evaluate.py --protocol react2025                 # 6 clips, 58..5,000 frames
    .venv/bin/python benchmarks/evaluate.py --protocol react2025 --no-reference  # ours only, plus the memory

The official way is `regnn.metrics.mars_reference` (tslearn DTW per pair, a pool of --threads processes);
ours is `regnn.metrics.mars` with --threads DTW threads. Both get the same targets, already resampled to each
clip's length, so the timing compares the metrics alone. The memory figure is the peak RSS of a fresh
process that computes FRD's DTW of one --memory-frames x --memory-frames pair (tslearn would hold a float64
L x L matrix: 3.2 GB at 20,000 frames).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

from regnn.metrics import dtw, mars, mars_reference, reference


def series(rng: np.random.Generator, n: int, frames: int) -> np.ndarray:
    """(n, frames, 25) attribute-like series: binary AUs in runs, smooth valence/arousal, probabilities."""
    t = np.arange(frames)[None, :, None]
    wave = np.sin(rng.uniform(0.005, 0.05, (n, 1, 25)) * t + rng.uniform(0, 2 * np.pi, (n, 1, 25)))
    wave = wave + 0.3 * rng.standard_normal((n, frames, 25))
    out = np.empty((n, frames, 25), dtype=np.float32)
    out[..., :15] = wave[..., :15] > 0.6
    out[..., 15:17] = np.tanh(wave[..., 15:17])
    e = np.exp(2 * wave[..., 17:])
    out[..., 17:] = e / e.sum(-1, keepdims=True)
    return out


def generated_clips(clips: int, max_frames: int, samples: int, targets: int, seed: int = 0) -> list[mars.ClipInput]:
    """Clip lengths spread geometrically from 58 to max_frames; targets at the clip's length (aligned)."""
    rng = np.random.default_rng(seed)
    lengths = np.unique(np.geomspace(58, max_frames, clips).round().astype(int))
    return [mars.ClipInput(f"speaker/session{k}/clip{k}", series(rng, samples, int(n)), series(rng, 1, int(n))[0],
                           list(series(rng, targets, int(n)))) for k, n in enumerate(lengths)]


MEMORY_PROBE = """
import json, sys, time
from pathlib import Path
import numpy as np
from regnn.metrics import dtw

def status_kb(field):
    line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith(field + ":"))
    return int(line.split()[1])

frames = int(sys.argv[1])
dtw.load_kernel()
rng = np.random.default_rng(0)
a, b = (rng.random((frames, 25), dtype=np.float32) for _ in range(2))
before = status_kb("VmRSS")
Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM) to the current RSS
start = time.perf_counter()
dtw.frd_distances([a], [[b]], device="cpu", threads=1)
seconds = time.perf_counter() - start
print(json.dumps({"before_kb": before, "peak_kb": status_kb("VmHWM"), "seconds": seconds}))
"""
"""Peak RSS from /proc (Linux): ru_maxrss would carry the parent's peak across fork and exec."""


def long_pair_memory(frames: int) -> dict:
    """Peak RSS (kB) of a fresh process before and after one frames x frames FRD pair, and its time."""
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(frames)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> None:
    clips = generated_clips(args.clips, args.max_frames, args.samples, args.targets)
    lengths = [len(c.speaker) for c in clips]
    pairs = sum(len(c.pred) * len(c.targets) for c in clips)
    print(f"set: {len(clips)} clips of {', '.join(map(str, lengths))} frames x {args.samples} samples x "
          f"{args.targets} targets = {pairs} FRD pairs; {args.threads} CPU workers")
    dtw.load_kernel()  # compile outside the timings (once per machine)
    rows = []
    if not args.no_reference:
        reference.frd_pair(clips[0].pred[0], clips[0].targets[0])  # JIT tslearn before the pool forks
        start = time.perf_counter()
        ref = mars_reference.official_metrics([c.speaker for c in clips], [c.pred for c in clips],
                                              [np.stack(c.targets) for c in clips], processes=args.threads)
        rows.append(("official way (tslearn per pair, pool)", ref, time.perf_counter() - start))
    start = time.perf_counter()
    ours = mars.compute_metrics(clips, device="cpu", threads=args.threads)
    rows.append(("ours, CPU", ours, time.perf_counter() - start))
    print(f"{'implementation':<40} {'seconds':>9}  " + "  ".join(f"{m:>10}" for m in mars.METRICS))
    for name, values, seconds in rows:
        print(f"{name:<40} {seconds:9.2f}  " + "  ".join(f"{values[m]:10.5f}" for m in mars.METRICS))
    if not args.no_reference:
        worst = max(abs(ours[m] - ref[m]) / max(abs(ref[m]), 1e-12) for m in mars.METRICS)
        print(f"ours: {rows[0][2] / rows[1][2]:.1f}x faster than the official way; largest relative difference "
              f"{worst:.2e}")
    if args.memory_frames:
        m = long_pair_memory(args.memory_frames)
        print(f"one {args.memory_frames} x {args.memory_frames} FRD pair (CPU kernel, 1 thread): {m['seconds']:.1f} s, "
              f"process peak RSS {m['peak_kb'] / 1024:.0f} MB ({m['before_kb'] / 1024:.0f} MB before the pair; "
              f"tslearn's float64 matrix alone: {8 * args.memory_frames ** 2 / 1e9:.1f} GB)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("react2025 (MARS)")
    group.add_argument("--clips", type=int, default=6, help="react2025: clips (lengths 58..--max-frames)")
    group.add_argument("--max-frames", type=int, default=5000)
    group.add_argument("--targets", type=int, default=4, help="react2025: targets per clip")
    group.add_argument("--memory-frames", type=int, default=20000,
                       help="react2025: length of the pair whose peak memory is measured (0: skip)")
