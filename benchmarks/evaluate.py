"""Official REACT metrics: the official way vs ours, scoring alone and whole processes, side by side in one run.

    .venv/bin/python benchmarks/evaluate.py                      # 64 speakers x 10 samples x ~8 neighbours
    .venv/bin/python benchmarks/evaluate.py --speakers 1612 --neighbours 20 --no-reference --repeats 1
                                                                  # REACT-2024-test size, ours only
    .venv/bin/python benchmarks/evaluate.py --protocol react2025  # MARS: variable lengths (evaluate_mars.py)

Scoring: `regnn.metrics.reference` (tslearn per pair, a process pool: the official code's structure) vs
`regnn.metrics.react`, in this process, on the same arrays. End to end: the set is written in the official
layout (split CSV, Emotion CSVs, neighbour matrix, `result-{j}.pth`), then `benchmarks/official_way.py` and
`regnn evaluate` each run as a fresh process (start to exit, as a user runs them), plus our start-up and
loading alone (a process that imports the evaluate path and reads every file, then exits). Every timing is
repeated (--repeats for ours, --reference-repeats for the slow official way); the table gives the median
and the range, the ratios the ratio of medians and the range from the extremes. Both sides get the same CPU workers (--threads). Peak RSS is the process's own
(wait4). The GPU rows are printed when CUDA is available. First, FRD's DTW kernel alone on one thread in CPU
time per DP cell: the figure to compare builds with on a busy machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import evaluate_mars  # benchmarks/ is on sys.path when this file runs
from regnn.data import layout
from regnn.metrics import dtw, dtw_triton, react, reference

HERE = Path(__file__).resolve().parent
LOAD_ONLY = """
import sys
from regnn import cli  # what `regnn evaluate` imports before it reads anything
from regnn.metrics.evaluate import load_official_set
load_official_set(sys.argv[1], sys.argv[2], "test", samples=int(sys.argv[3]))
"""


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


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def write_official_layout(root: Path, pred: np.ndarray, emotions: np.ndarray, matrix: np.ndarray) -> Path:
    """The set as a REACT test split (official layout) plus predictions as result-{j}.pth; returns pred_dir."""
    n = len(emotions)
    keys = [f"NoXI/{k // 2:03d}_2016-03-25_Paris/{'Expert' if k < n // 2 else 'Novice'}_video/{k}" for k in range(n)]
    with (root / "test.csv").open("w") as f:
        f.write(",speaker_path,listener_path\n")
        for i in range(n // 2):
            f.write(f"{i},{keys[i]},{keys[i + n // 2]}\n")
    header = ",".join(layout.EMOTION_COLUMNS)
    for key, e in zip(keys, emotions):
        path = layout.emotion_path(root, "test", key)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savetxt(path, e, delimiter=",", fmt="%.9g", header=header, comments="")  # float32 round-trips
    np.save(root / "neighbour_emotion_test.npy", matrix.astype(np.float64))
    pred_dir = root / "outputs"
    for key, samples in zip(keys, pred):
        folder = pred_dir / "test" / key
        folder.mkdir(parents=True)
        for j, sample in enumerate(samples):
            torch.save(torch.from_numpy(np.ascontiguousarray(sample)), folder / f"result-{j}.pth")
    return pred_dir


TIME = Path("/usr/bin/time")


def run_process(cmd: list[str]) -> tuple[str, float, float, float]:
    """Output, wall seconds (start to exit), CPU seconds (user + system) and peak RSS in MB of one child.

    The RSS comes from GNU time, which starts the command from its own small process: a child forked from
    this (large) benchmark process would report this process's RSS as its peak."""
    wrapped = [str(TIME), "-f", "PEAK_RSS_KB %M %U %S", *cmd] if TIME.exists() else cmd
    start = time.perf_counter()
    result = subprocess.run(wrapped, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}")
    stats = [ln.split()[1:] for ln in result.stdout.splitlines() if ln.startswith("PEAK_RSS_KB ")]
    if not stats:
        return result.stdout, seconds, float("nan"), float("nan")
    return result.stdout, seconds, float(stats[-1][1]) + float(stats[-1][2]), int(stats[-1][0]) / 1024


def parse_official_lines(text: str) -> dict[str, float]:
    line = next(ln for ln in text.splitlines() if ln.startswith("Metric: |"))
    fields = [f.strip() for f in line.split("|")[1:]]
    return {name: float(value) for name, value in (f.split(": ") for f in fields if f)}


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.2f} s  [{min(values):.2f}-{max(values):.2f}]"


def ratio(slow: list[float], fast: list[float]) -> str:
    return (f"{statistics.median(slow) / statistics.median(fast):5.1f}x  "
            f"[{min(slow) / max(fast):.1f}-{max(slow) / min(fast):.1f}]")


def worst_difference(ours: dict[str, float], ref: dict[str, float]) -> float:
    return max(abs(ours[m] - ref[m]) / max(abs(ref[m]), 1e-12) for m in react.METRICS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=64, help="mirrored samples 2N (even)")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--neighbours", type=int, default=8)
    parser.add_argument("--frames", type=int, default=750)
    parser.add_argument("--threads", type=int, default=2, help="processes (official) / threads (ours)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each of ours")
    parser.add_argument("--reference-repeats", type=int, default=1, help="runs of each official-way timing")
    parser.add_argument("--no-reference", action="store_true", help="skip the (slow) official-way runs")
    parser.add_argument("--no-files", action="store_true", help="scoring only, no end-to-end processes")
    parser.add_argument("--no-scoring", action="store_true", help="end-to-end processes only")
    parser.add_argument("--protocol", choices=("react2024", "react2025"), default="react2024")
    evaluate_mars.add_arguments(parser)
    args = parser.parse_args()
    if args.protocol == "react2025":
        evaluate_mars.run(args)
        return

    pred, speaker, listener, matrix = generated_set(args.speakers, args.samples, args.neighbours, args.frames)
    pairs = int((matrix == 1).sum()) * args.samples
    print(f"set: {args.speakers} speakers x {args.samples} samples x {pairs / args.speakers / args.samples:.1f} "
          f"neighbours = {pairs} FRD pairs of {args.frames}x{args.frames} frames; {args.threads} CPU workers; "
          f"{args.repeats} run(s) of ours, {args.reference_repeats} of the official way; load average "
          f"{os.getloadavg()[0]:.1f}")
    dtw.load_kernel()  # compile outside the timings (once per machine)
    reference.frd_pair(pred[0, 0, :3], listener[0, :4])  # tslearn's numba JIT, before the pool forks (scoring
    # only: a fresh official-way process compiles it again, in each pool worker, as the official script does)

    times: dict[str, list[float]] = {}
    results: dict[str, dict[str, float]] = {}
    runs = [("ours, CPU", lambda: react.compute_metrics(pred, speaker, listener, matrix, device="cpu",
                                                         threads=args.threads))]
    if not args.no_reference:
        runs.insert(0, ("official way (tslearn, pool)",
                        lambda: reference.official_metrics(pred, speaker, listener, matrix, processes=args.threads)))
    if torch.cuda.is_available():
        react.compute_metrics(pred[:4], speaker[:4], listener[:4], np.eye(4, dtype=np.uint8), device="cuda")
        path = "Triton DTW" if dtw.triton_usable(torch.device("cuda")) else "torch wavefront DTW"
        runs.append((f"ours, GPU ({torch.cuda.get_device_name()}, {path})",
                     lambda: react.compute_metrics(pred, speaker, listener, matrix, device="cuda")))
    if not args.no_scoring:
        kernel_cpu_time(pred, listener, matrix, args)
        score_in_process(runs, args, times, results, pred, listener, matrix)
    if args.no_files:
        return
    end_to_end(args, pred, speaker, matrix)


def kernel_cpu_time(pred: np.ndarray, listener: np.ndarray, matrix: np.ndarray, args) -> None:
    """FRD's DTW kernel alone, one thread, in CPU time per DP cell of one SIMD vector: a figure that other
    processes on the machine barely change, unlike the wall-clock ratios (on a loaded machine the official
    way's process pool loses more than our threads). A quarter of the speakers, as scored by react.frd."""
    lib = dtw.load_kernel()
    if lib is None:
        return
    speakers = max(1, len(pred) // 4)
    pairs = int((matrix[:speakers] == 1).sum()) * pred.shape[1]
    cells = -(-pairs // lib.frd_dtw_lanes()) * args.frames * args.frames
    per_cell = []
    for _ in range(args.repeats):
        start = time.process_time()
        react.frd(pred[:speakers], listener, matrix[:speakers], device="cpu", threads=1)
        per_cell.append((time.process_time() - start) / cells * 1e9)
    print(f"\nFRD's DTW kernel alone, 1 thread ({pairs} pairs, {lib.frd_dtw_lanes()} lanes per vector): "
          f"{statistics.median(per_cell):.2f} ns CPU time per vector DP cell [{min(per_cell):.2f}-{max(per_cell):.2f}]")


def score_in_process(runs, args, times, results, pred, listener, matrix) -> None:
    print("\nscoring alone (arrays in memory)")
    for rep in range(args.repeats):
        for name, fn in runs:
            if name.startswith("official") and rep >= args.reference_repeats:
                continue
            results[name], seconds = timed(fn)
            times.setdefault(name, []).append(seconds)
    print(f"{'implementation':<60} {'median [range]':>22}  " + "  ".join(f"{m:>10}" for m in react.METRICS))
    for name, _ in runs:
        print(f"{name:<60} {spread(times[name]):>22}  " + "  ".join(f"{results[name][m]:10.5f}" for m in react.METRICS))
    if not args.no_reference:
        ref_name = runs[0][0]
        for name, _ in runs[1:]:
            print(f"{name}: {ratio(times[ref_name], times[name])} faster than the official way (scoring); largest "
                  f"relative difference {worst_difference(results[name], results[ref_name]):.2e}")
    if torch.cuda.is_available() and dtw.triton_usable(torch.device("cuda")):
        compare_gpu_dtw(pred, listener, matrix)


def end_to_end(args, pred, speaker, matrix) -> None:
    with tempfile.TemporaryDirectory(prefix="regnn-bench-") as tmp:
        root = Path(tmp)
        pred_dir, seconds = timed(write_official_layout, root, pred, speaker, matrix)
        print(f"\nend to end (fresh processes; official layout written to {root} in {seconds:.1f} s)")
        py = sys.executable
        procs = [("ours: start-up + loading only", [py, "-c", LOAD_ONLY, str(root), str(pred_dir), str(args.samples)]),
                 ("ours: regnn evaluate", [py, "-m", "regnn.cli", "evaluate", "--data-dir", str(root), "--pred-dir",
                                           str(pred_dir), "--split", "test", "--samples", str(args.samples),
                                           "--threads", str(args.threads), "--device", "cpu"])]
        if not args.no_reference:
            procs.insert(0, ("official way, as a process", [py, str(HERE / "official_way.py"), str(root), str(pred_dir),
                                                            "test", "--samples", str(args.samples),
                                                            "--processes", str(args.threads)]))
        wall: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        rss: dict[str, float] = {}
        printed: dict[str, dict[str, float]] = {}
        for rep in range(args.repeats):
            for name, cmd in procs:
                if name.startswith("official") and rep >= args.reference_repeats:
                    continue
                out, seconds, cpu_seconds, peak = run_process(cmd)
                wall.setdefault(name, []).append(seconds)
                cpu.setdefault(name, []).append(cpu_seconds)
                rss[name] = max(rss.get(name, 0.0), peak)
                if "Metric: |" in out:
                    printed[name] = parse_official_lines(out)
        print(f"{'process':<60} {'wall: median [range]':>22}  {'CPU: median':>11}  {'peak RSS':>9}")
        for name, _ in procs:
            print(f"{name:<60} {spread(wall[name]):>22}  {statistics.median(cpu[name]):9.2f} s  {rss[name]:6.0f} MB")
        if not args.no_reference:
            ref_name, ours_name = procs[0][0], "ours: regnn evaluate"
            print(f"regnn evaluate: {ratio(wall[ref_name], wall[ours_name])} faster than the official way end to end; "
                  f"printed values differ by at most {worst_difference(printed[ours_name], printed[ref_name]):.2e} "
                  "relative (5 printed decimals)")


if __name__ == "__main__":
    main()
