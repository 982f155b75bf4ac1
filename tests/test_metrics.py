"""The fast REACT metrics against a plain implementation of the official code (tslearn DTW, np.corrcoef)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tslearn.metrics import dtw as tslearn_dtw

from regnn.metrics import dtw, dtw_triton, react, reference


def emotion_like(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Binary AUs, valence/arousal in [-1, 1], expression probabilities summing to 1."""
    out = np.empty((*shape, 25), dtype=np.float32)
    out[..., :15] = rng.random((*shape, 15)) > 0.7
    out[..., 15:17] = rng.uniform(-1, 1, (*shape, 2))
    e = rng.random((*shape, 8))
    out[..., 17:] = e / e.sum(-1, keepdims=True)
    return out


def make_set(frames: int, speakers: int = 6, samples: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    emotions = emotion_like(rng, (speakers, frames))
    emotions[0, :, 2] = 0  # an AU that never fires
    emotions[1, :, 16] = 0.3  # a constant non-zero column (numpy's mean of it is not exact)
    emotions[2, : frames // 2, 7] = 1  # constant over part of the clip only
    listener = emotions[(np.arange(speakers) + speakers // 2) % speakers]
    pred = (0.6 * emotion_like(rng, (speakers, samples, frames)) + 0.4 * listener[:, None]).astype(np.float32)
    pred[3, 0, :, 4] = 0.25  # constant prediction columns
    pred[4, :, :, 1] = 0
    neighbours = (rng.random((speakers, speakers)) < 0.35).astype(np.uint8)
    np.fill_diagonal(neighbours, 1)
    return pred, emotions, listener, neighbours


@pytest.fixture(scope="module", autouse=True)
def warm_tslearn():
    """Compile tslearn's numba code once before the process pool forks (each worker would compile it)."""
    tslearn_dtw(np.zeros((3, 2)), np.ones((4, 2)))


@pytest.mark.parametrize("frames", [120, 131])
def test_metrics_match_the_official_way(frames):
    pred, speaker, listener, neighbours = make_set(frames)
    want = reference.official_metrics(pred, speaker, listener, neighbours, processes=2)
    got = react.compute_metrics(pred, speaker, listener, neighbours, device="cpu", threads=2)
    assert set(got) == set(react.METRICS)
    for name in react.METRICS:
        assert got[name] == pytest.approx(want[name], rel=1e-4, abs=1e-12), name


def test_dtw_kernel_matches_tslearn_per_group():
    rng = np.random.default_rng(1)
    a = emotion_like(rng, (5, 37))  # lengths that are not multiples of the kernel's 4x4 tiles
    b = emotion_like(rng, (4, 42))
    a[2, :, 17:] = 0.125
    ia = rng.integers(0, 5, 21)  # not a multiple of the SIMD lane count
    ib = rng.integers(0, 4, 21)
    want = np.array([[tslearn_dtw(a[i][:, lo:hi], b[j][:, lo:hi]) for lo, hi in dtw.GROUPS] for i, j in zip(ia, ib)])
    np.testing.assert_allclose(dtw.dtw_groups_cpu(a, b, ia, ib, threads=2), want, rtol=1e-5)
    np.testing.assert_allclose(dtw.dtw_groups_torch(a, b, ia, ib, device="cpu"), want, rtol=1e-5)


def test_compiled_kernel_is_used_and_identical_series_are_exactly_zero():
    if dtw.find_compiler() is None:
        pytest.skip("no C compiler")
    assert dtw.load_kernel() is not None, "the C kernel should compile on a machine with a C compiler"
    rng = np.random.default_rng(2)
    a = emotion_like(rng, (3, 60))
    idx = np.arange(3)
    assert (dtw.dtw_groups_cpu(a, a, idx, idx) == 0).all()
    assert np.abs(dtw.dtw_groups_torch(a, a, idx, idx, device="cpu")).max() < 1e-5


@pytest.mark.parametrize("flags", [["-mavx2", "-mfma"], ["-mno-avx"], ["-mno-avx", "-U__SSE__"]],
                         ids=["avx2", "sse", "generic"])
def test_portable_builds_of_the_kernel_agree(tmp_path, flags):
    """The AVX2 (8 lanes), SSE and plain GCC-vector (4 lanes, e.g. ARM) variants of CPUs without AVX-512."""
    compiler = dtw.find_compiler()
    if compiler is None:
        pytest.skip("no C compiler")
    target = tmp_path / "kernel.so"
    assert dtw.compile_kernel(compiler, target, flags)
    lib = dtw.open_kernel(target)
    assert lib.frd_dtw_lanes() == (8 if "-mavx2" in flags else 4)
    rng = np.random.default_rng(6)
    a, b = emotion_like(rng, (3, 23)), emotion_like(rng, (3, 26))
    ia, ib = rng.integers(0, 3, 11), rng.integers(0, 3, 11)
    want = np.array([[tslearn_dtw(a[i][:, lo:hi], b[j][:, lo:hi]) for lo, hi in dtw.GROUPS] for i, j in zip(ia, ib)])
    np.testing.assert_allclose(dtw.dtw_groups_cpu(a, b, ia, ib, threads=2, lib=lib), want, rtol=1e-5)
    assert (dtw.dtw_groups_cpu(a, a, ia, ia, lib=lib) == 0).all()


def test_without_a_compiler_the_torch_path_gives_the_same_numbers(monkeypatch):
    rng = np.random.default_rng(3)
    a, b = emotion_like(rng, (2, 30)), emotion_like(rng, (2, 33))
    idx = np.array([0, 1, 1])
    compiled = dtw.dtw_groups_cpu(a, b, idx, idx[::-1].copy())
    monkeypatch.setattr(dtw, "load_kernel", lambda: None)
    np.testing.assert_allclose(dtw.dtw_groups_cpu(a, b, idx, idx[::-1].copy()), compiled, rtol=1e-5)


def tslearn_groups(a, b, pairs):
    return np.array([[tslearn_dtw(a[i][:, lo:hi], b[j][:, lo:hi]) for lo, hi in dtw.GROUPS] for i, j in pairs])


def test_variable_lengths_match_tslearn_from_58_to_5000_frames():
    """Pairs of unequal lengths (also within one pair) share the kernel's SIMD lanes; each lane's DTW ends at
    its own last frames. One 5,000 x 5,000 pair and one 5,000 x 58 pair are in the set."""
    rng = np.random.default_rng(11)
    a = [emotion_like(rng, (t,)) for t in (58, 5000, 300, 301, 1, 750)]
    b = [emotion_like(rng, (t,)) for t in (5000, 58, 299, 700, 2, 750)]
    pairs = [(0, 1), (1, 0), (1, 1), (2, 2), (3, 2), (2, 3), (3, 3), (4, 4), (4, 2), (5, 5), (0, 0), (2, 5)]
    ia, ib = (np.array(v) for v in zip(*pairs))
    want = tslearn_groups(a, b, pairs)
    for threads in (1, 2):
        np.testing.assert_allclose(dtw.dtw_groups_cpu(a, b, ia, ib, threads=threads), want, rtol=1e-4)
    short = [k for k, (i, j) in enumerate(pairs) if max(len(a[i]), len(b[j])) <= 750]
    np.testing.assert_allclose(dtw.dtw_groups_torch(a, b, ia[short], ib[short], device="cpu"), want[short],
                               rtol=1e-4)


def test_threads_share_the_chunks_each_exactly_once():
    """The kernel's threads take chunks from one counter (longest first): every chunk is computed once, by
    whichever thread, so any thread count gives bit-identical results; more threads than chunks too."""
    rng = np.random.default_rng(13)
    lanes = dtw.load_kernel().frd_dtw_lanes()
    lengths = rng.integers(3, 40, 5 * lanes + 3)  # 6 chunks, the last one partly filled
    a = [emotion_like(rng, (t,)) for t in lengths]
    b = [emotion_like(rng, (t,)) for t in lengths[::-1]]
    ia = rng.permutation(len(a))
    ib = rng.integers(0, len(b), len(a))
    one = dtw.dtw_groups_cpu(a, b, ia, ib, threads=1)
    for threads in (2, 3, 16):
        np.testing.assert_array_equal(dtw.dtw_groups_cpu(a, b, ia, ib, threads=threads), one)
    np.testing.assert_allclose(one, tslearn_groups(a, b, list(zip(ia, ib))), rtol=1e-5)


def test_frd_distances_weights_the_groups_per_prediction_and_target():
    rng = np.random.default_rng(12)
    targets = [emotion_like(rng, (t,)) for t in (90, 61, 130)]
    predictions = [emotion_like(rng, (t,)) for t in (70, 70, 125)]
    lists = [targets, targets[:2], [targets[2]]]  # samples of one speaker share their target list
    got = dtw.frd_distances(predictions, lists, device="cpu", threads=2)
    assert [len(g) for g in got] == [3, 2, 1]
    for pred, group, dist in zip(predictions, lists, got):
        want = tslearn_groups([pred], group, [(0, j) for j in range(len(group))]) @ np.array(dtw.FRD_WEIGHTS)
        np.testing.assert_allclose(dist, want, rtol=1e-4)


LONG_PAIR = """
import resource, sys
import numpy as np
from regnn.metrics import dtw
frames = int(sys.argv[1])
rng = np.random.default_rng(0)
a, b = rng.random((1, frames, 25), dtype=np.float32), rng.random((1, frames + 7, 25), dtype=np.float32)
dtw.load_kernel()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = dtw.dtw_groups(a, b, np.zeros(1, int), np.zeros(1, int), device="cpu")
assert np.isfinite(out).all() and (out > 0).all()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, "torch" in sys.modules)
"""


def test_a_long_pair_runs_in_linear_memory_without_torch():
    """6,000 x 6,007 frames: a cost matrix would be 430 MB (float32, 3 groups); the kernel needs ~20 MB."""
    result = subprocess.run([sys.executable, "-c", LONG_PAIR, "6000"], capture_output=True, text=True, check=True)
    grown_mb, torch_imported = result.stdout.split()
    assert float(grown_mb) < 60, result.stdout
    assert torch_imported == "False"  # the CPU path never imports torch


def test_gpu_dispatch_keeps_long_pairs_off_quadratic_paths(monkeypatch):
    """On a GPU, Triton gets each (length, length) group with the shorter series on its rows; pairs whose
    both series exceed its rows go to the CPU kernel, never to the torch wavefront. (Routing only: the
    Triton kernel is replaced by a recording stand-in, as there is no GPU here.)"""
    rng = np.random.default_rng(13)
    a = [emotion_like(rng, (t,)) for t in (30, 50, 50, 45)]
    b = [emotion_like(rng, (t,)) for t in (44, 20, 60)]
    ia, ib = np.array([0, 1, 2, 3, 1, 3]), np.array([0, 1, 2, 2, 0, 0])
    seen = []

    def fake_triton(x, y, rx, ry):
        seen.append((x.shape[1], y.shape[1]))
        assert x.shape[1] <= dtw_triton.MAX_FRAMES
        return torch.as_tensor(dtw.dtw_groups_cpu(x.numpy(), y.numpy(), rx.numpy(), ry.numpy()))

    monkeypatch.setattr(dtw_triton, "MAX_FRAMES", 40)
    monkeypatch.setattr(dtw_triton, "dtw_groups_triton", fake_triton)
    monkeypatch.setattr(dtw, "triton_usable", lambda device: True)
    monkeypatch.setattr(dtw, "dtw_groups_torch", lambda *args, **kwargs: pytest.fail("a long pair left the CPU kernel"))
    sa, sb = dtw._Series("predictions", a), dtw._Series("references", b)
    got = dtw._groups_gpu(sa, sb, ia, ib, torch.device("cpu"), threads=1)
    np.testing.assert_allclose(got, dtw.dtw_groups_cpu(a, b, ia, ib), rtol=1e-6)
    assert sorted(seen) == [(20, 50), (30, 44)]  # (50, 20) swapped; 50x60, 45x60, 50x44... on the CPU kernel


TRITON_ON_CPU = """
import sys
import numpy as np
import torch
from regnn.metrics import dtw_triton
data = np.load(sys.argv[1])
out = dtw_triton.dtw_groups_triton(*(torch.as_tensor(data[k]) for k in ("a", "b", "ia", "ib")))
np.save(sys.argv[2], out.numpy())
from regnn.metrics import dtw
print(dtw.triton_usable(torch.device("cpu")))
"""


@pytest.mark.skipif(dtw_triton.triton is None, reason="triton is not installed")
def test_gpu_kernel_matches_tslearn_in_the_triton_interpreter(tmp_path):
    """The GPU kernel's algorithm, run by Triton's CPU interpreter (the compiled path needs a GPU)."""
    rng = np.random.default_rng(7)
    a, b = emotion_like(rng, (3, 19)), emotion_like(rng, (2, 23))  # rows padded to 32 lanes; T1 != T2
    a[1, :, 17:] = 0.125
    b[0] = a[0, :1].repeat(23, 0)  # one frame against many: the DP's first row and column paths
    ia, ib = np.array([0, 1, 2, 2, 0]), np.array([1, 0, 1, 0, 0])
    np.savez(tmp_path / "in.npz", a=a, b=b, ia=ia, ib=ib)
    result = subprocess.run([sys.executable, "-c", TRITON_ON_CPU, tmp_path / "in.npz", tmp_path / "out.npy"],
                            env={**os.environ, "TRITON_INTERPRET": "1"}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "True", "the self-check on the device should accept the kernel"
    want = np.array([[tslearn_dtw(a[i][:, lo:hi], b[j][:, lo:hi]) for lo, hi in dtw.GROUPS] for i, j in zip(ia, ib)])
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), want, rtol=1e-5)


@pytest.mark.skipif(dtw_triton.triton is None, reason="triton is not installed")
@pytest.mark.parametrize("arch", [80, 90], ids=["ampere", "hopper"])
def test_gpu_kernel_compiles_for_750_frames_without_spilling(arch, tmp_path):
    """Compiled ahead of time with Triton's bundled ptxas (no GPU needed): a spill would slow it down a lot."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    cuobjdump = Path(dtw_triton.triton.__file__).parent / "backends/nvidia/bin/cuobjdump"
    rows = dtw_triton.triton.next_power_of_2(750)
    signature = {"a_ptr": "*fp32", "b_ptr": "*fp32", "ia_ptr": "*i64", "ib_ptr": "*i64", "out_ptr": "*fp32",
                 "t1": "i32", "t2": "i32", "DIMS": "constexpr", "ROWS": "constexpr"}
    source = ASTSource(fn=dtw_triton._frd_dtw_kernel, signature=signature, constexprs={"DIMS": 25, "ROWS": rows})
    kernel = dtw_triton.triton.compile(source, target=GPUTarget("cuda", arch, 32),
                                       options=dtw_triton.launch_options(rows))
    if not cuobjdump.is_file():
        pytest.skip("triton's cuobjdump is missing")
    cubin = tmp_path / "kernel.cubin"
    cubin.write_bytes(kernel.asm["cubin"])
    usage = subprocess.run([cuobjdump, "--dump-resource-usage", cubin], capture_output=True, text=True).stdout
    assert "STACK:0 " in usage, usage


def lagged_structure(rng: np.random.Generator, clips: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Predictions that follow the speaker at a random lag, with constant stretches here and there."""
    base = np.cumsum(rng.standard_normal((clips, frames + 100, 25)), axis=1).astype(np.float32)
    lags = rng.integers(-40, 40, clips)
    speaker = base[:, 50:50 + frames].copy()
    pred = np.stack([base[k, 50 + lag:50 + lag + frames] for k, lag in enumerate(lags)])
    pred += rng.standard_normal(pred.shape).astype(np.float32)
    speaker[::3, :, 5] = 0
    pred[1::4, :100, 9] = 0.3
    speaker[2::5, 130:, 11] = 1.0
    return pred, speaker


def test_tlcc_offsets_match_np_corrcoef_and_torch_argmax_per_clip():
    rng = np.random.default_rng(4)
    pred, speaker = lagged_structure(rng, 16, 180)
    r = react.lagged_correlations(pred, speaker)
    ours = np.abs(react.MAX_LAG - react.torch_float32_mean(r.astype(np.float32)).argmax(1))
    want = [reference.tlcc_offset(pred[k], speaker[k]) for k in range(len(pred))]
    assert ours.tolist() == want
    assert 49 in want and any(w < 49 for w in want), "the data should exercise both NaN and regular peaks"


def test_float32_mean_rounds_like_torch():
    """TLCC's peak among near-equal lags depends on the float32 mean's rounding: bit-identical to torch's."""
    rng = np.random.default_rng(9)
    r = rng.uniform(-1, 1, (400, 99, 25)).astype(np.float32)
    r[0, 3, 7] = np.nan
    want = torch.from_numpy(r).mean(dim=2).numpy()
    np.testing.assert_array_equal(react.torch_float32_mean(r), want)
    assert (react.torch_float32_mean(r).argmax(1) == torch.from_numpy(want).argmax(1).numpy()).all()
    assert np.mean(r.astype(np.float64).mean(2).astype(np.float32) == want) < 0.9  # the rounding matters


def test_corrected_tlcc_uses_every_sample_and_counts_nan_as_zero():
    rng = np.random.default_rng(5)
    pred, speaker = lagged_structure(rng, 8, 150)
    samples = np.stack([pred, np.roll(pred, 7, axis=1)], axis=1)
    offsets = []
    for k in range(len(samples)):
        for s in range(2):
            rs = []
            for lag in reference.TLCC_LAGS:
                x, y = samples[k, s], speaker[k]
                x, y = (x[lag:], y[:-lag]) if lag > 0 else (x[:lag], y[-lag:]) if lag < 0 else (x, y)
                with np.errstate(divide="ignore", invalid="ignore"):
                    r = [np.corrcoef(x[:, d], y[:, d])[0, 1] for d in range(25)]
                rs.append(np.mean(np.nan_to_num(r, nan=0.0)))
            offsets.append(abs(49 - int(np.argmax(rs))))
    assert react.tlcc(samples, speaker, corrected=True) == pytest.approx(np.mean(offsets))
    assert react.tlcc(samples, speaker) == pytest.approx(np.mean([reference.tlcc_offset(p[0], s)
                                                                   for p, s in zip(samples, speaker)]))


def test_corrected_mode_adds_its_own_column_only():
    pred, speaker, listener, neighbours = make_set(110)
    plain = react.compute_metrics(pred, speaker, listener, neighbours, device="cpu")
    both = react.compute_metrics(pred, speaker, listener, neighbours, device="cpu", corrected=True)
    assert set(both) == set(react.METRICS) | {"TLCC_corrected"}
    assert {k: both[k] for k in react.METRICS} == plain


def test_ground_truth_predictions_score_exactly_like_the_official_code():
    _, speaker, listener, neighbours = make_set(120)
    pred = np.repeat(listener[:, None], 2, axis=1)
    got = react.compute_metrics(pred, speaker, listener, neighbours, device="cpu")
    assert got["FRD"] == 0.0 and got["S-MSE"] == 0.0


@pytest.mark.parametrize("problem, message", [
    ("nan", "clip 'c3' (position 3): prediction has NaN"),
    ("lonely", "clip 'c2' (position 2): no appropriate listener"),
    ("matrix", "neighbour matrix has shape (5, 5), expected (6, 6)"),
    ("frames", "listener emotions have shape (6, 110, 25), expected (6, 120, 25)"),
    ("dims", "predictions have 24 dims per frame, expected 25"),
])
def test_bad_input_names_the_clip_and_the_problem(problem, message):
    pred, speaker, listener, neighbours = make_set(120)
    clips = [f"c{k}" for k in range(6)]
    if problem == "nan":
        pred[3, 1, 10, 0] = np.nan
    elif problem == "lonely":
        neighbours[2] = 0
    elif problem == "matrix":
        neighbours = neighbours[:5, :5]
    elif problem == "frames":
        listener = listener[:, :110]
    elif problem == "dims":
        pred, speaker, listener = pred[..., :24], speaker[..., :24], listener[..., :24]
    with pytest.raises(react.MetricInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        react.compute_metrics(pred, speaker, listener, neighbours, device="cpu", clips=clips)
