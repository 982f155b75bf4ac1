"""Official REACT metrics: the official way (tslearn, process pool) vs ours, side by side in one run.

    .venv/bin/python benchmarks/evaluate.py                       # 40 speakers x 10 samples x ~6 neighbours
    .venv/bin/python benchmarks/evaluate.py --speakers 1612 --neighbours 20 --no-reference   # REACT-2024-test size
    .venv/bin/python benchmarks/evaluate.py --protocol react2025   # MARS: variable lengths (evaluate_mars.py)

Prints each implementation's wall time and metrics, the largest relative difference, and the speed-up; the
GPU path is timed too when CUDA is available. Both sides get the same number of CPU workers (--threads).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import evaluate_mars  # benchmarks/ is on sys.path when this file runs
from regnn.metrics import dtw, dtw_triton, react, reference


def generated_set(speakers: int, samples: int, neighbours: int, frames: int, seed: int = 0):
    """Emotion-like series (binary AUs in runs, smooth valence/arousal, soft expression probabilities)."""
    rng = np.random.default_rng(seed)

    def series(n: int) -> np.ndarray:
        t = np.arange(frames)[None, :, None]
        phase = rng.uniform(0, 2 * np.pi, (n, 1, 25))
        speed = rng.uniform(0.005, 0.05, (n, 1, 25))
        wave = np.sin(speed * t + phase) + 0.3 * rng.standard_normal((n, frames, 25))
        out = np.empty((n, frames, 25), dtype=np.float32)
        out[..., :15] = wave[..., :15] > 0.6
        out[..., 15:17] = np.tanh(wave[..., 15:17])
        e = np.exp(2 * wave[..., 17:])
        out[..., 17:] = e / e.sum(-1, keepdims=True)
        out[rng.random(n) < 0.3, :, 0] = 0  # some clips have an AU that never fires
        return out

    emotions = series(speakers)
    listener = emotions[(np.arange(speakers) + speakers // 2) % speakers]
    pred = np.stack([series(speakers) for _ in range(samples)], axis=1)
    matrix = np.zeros((speakers, speakers), dtype=np.uint8)
    for k in range(speakers):
        matrix[k, rng.choice(speakers, size=min(neighbours, speakers), replace=False)] = 1
        matrix[k, k] = 1
    return pred, emotions, listener, matrix


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def compare_gpu_dtw(pred: np.ndarray, listener: np.ndarray, matrix: np.ndarray, pairs: int = 20_000) -> None:
    """FRD's DTW alone on the GPU: the fused Triton kernel against the torch wavefront, on the same pairs."""
    rng = np.random.default_rng(1)
    flat = pred.reshape(-1, *pred.shape[2:])
    k, j = np.nonzero(matrix)
    pick = rng.integers(0, len(k), pairs)
    ia = k[pick] * pred.shape[1] + rng.integers(0, pred.shape[1], pairs)
    ib = j[pick]
    device = torch.device("cuda")
    tensors = [torch.as_tensor(v, device=device) for v in (flat, listener, ia, ib)]
    fused, t_fused = timed(lambda: dtw_triton.dtw_groups_triton(*tensors).cpu().numpy())
    wave, t_wave = timed(dtw.dtw_groups_torch, flat, listener, ia, ib, device=device)
    print(f"GPU DTW of {pairs} pairs: Triton {t_fused:.2f} s, torch wavefront {t_wave:.2f} s "
          f"({t_wave / t_fused:.1f}x); largest relative difference {np.abs(fused / np.maximum(wave, 1e-9) - 1).max():.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=40)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--neighbours", type=int, default=6)
    parser.add_argument("--frames", type=int, default=750)
    parser.add_argument("--threads", type=int, default=2, help="processes (official) / threads (ours)")
    parser.add_argument("--no-reference", action="store_true", help="skip the (slow) official-way run")
    parser.add_argument("--protocol", choices=("react2024", "react2025"), default="react2024")
    evaluate_mars.add_arguments(parser)
    args = parser.parse_args()
    if args.protocol == "react2025":
        evaluate_mars.run(args)
        return

    pred, speaker, listener, matrix = generated_set(args.speakers, args.samples, args.neighbours, args.frames)
    pairs = int((matrix == 1).sum()) * args.samples
    print(f"set: {args.speakers} speakers x {args.samples} samples x {pairs / args.speakers / args.samples:.1f} "
          f"neighbours = {pairs} FRD pairs of {args.frames}x{args.frames} frames; {args.threads} CPU workers")
    dtw.load_kernel()  # compile outside the timings (once per machine)

    rows = []
    if not args.no_reference:
        ref, t_ref = timed(reference.official_metrics, pred, speaker, listener, matrix, processes=args.threads)
        rows.append(("official way (tslearn, pool)", ref, t_ref))
    ours, t_cpu = timed(react.compute_metrics, pred, speaker, listener, matrix, device="cpu", threads=args.threads)
    rows.append(("ours, CPU", ours, t_cpu))
    if torch.cuda.is_available():
        react.compute_metrics(pred[:4], speaker[:4], listener[:4], np.eye(4, dtype=np.uint8), device="cuda")  # warm-up
        gpu, t_gpu = timed(react.compute_metrics, pred, speaker, listener, matrix, device="cuda")
        kernel = "Triton DTW" if dtw.triton_usable(torch.device("cuda")) else "torch wavefront DTW"
        rows.append((f"ours, GPU ({torch.cuda.get_device_name()}, {kernel})", gpu, t_gpu))

    print(f"{'implementation':<60} {'seconds':>9}  " + "  ".join(f"{m:>10}" for m in react.METRICS))
    for name, metrics, seconds in rows:
        print(f"{name:<60} {seconds:9.2f}  " + "  ".join(f"{metrics[m]:10.5f}" for m in react.METRICS))
    if torch.cuda.is_available() and dtw.triton_usable(torch.device("cuda")):
        compare_gpu_dtw(pred, listener, matrix)
    if not args.no_reference:
        for name, metrics, seconds in rows[1:]:
            worst = max(abs(metrics[m] - ref[m]) / max(abs(ref[m]), 1e-12) for m in react.METRICS)
            print(f"{name}: {t_ref / seconds:.1f}x faster than the official way; "
                  f"largest relative difference {worst:.2e}")


if __name__ == "__main__":
    main()
