"""Batched DTW for the FRD metric, on series of any length: a compiled SIMD kernel on CPU, Triton on GPU.

FRD costs three unconstrained DTWs (dims 0-14, 15-16, 17-24) per (prediction, appropriate listener) pair:
about 5e11 DP cells for a REACT-2024 test evaluation. tslearn does one pair at a time in float64 with an
L x L matrix; here whole batches of pairs run at once, with the same definition (sqrt of the summed squared
Euclidean local costs along the optimal path, steps (1,0), (0,1), (1,1), no window), in O(L) memory.

API (series are (frames, 25) float arrays; the two series of a pair may differ in length):
- `frd_distances(predictions, targets)`: the group-weighted FRD distance of each prediction to each of its
  targets, for any lengths (REACT 2025/2026 clips run from 58 to > 20,000 frames).
- `dtw_groups(a, b, ia, ib)`: the three per-group DTWs of the pairs (a[ia[p]], b[ib[p]]); a and b are a
  (n, frames, 25) array or a sequence of (frames_k, 25) arrays.

CPU: `frd_dtw.c` is compiled at first use with the system C compiler and `-march=native` into a cache
folder (`$REGNN_CACHE_DIR`, else `$XDG_CACHE_HOME/regnn`, else `~/.cache/regnn`), keyed by source, compiler
and CPU, then loaded with ctypes. Compiling on the machine that runs it picks AVX-512, AVX2 or plain SSE at
run time without Python headers or a build step in the package install, and a cluster with mixed CPUs gets
one build per CPU kind. Pairs are sorted by length so that a speaker's pairs (one prediction length) share
the kernel's SIMD lanes. Without a working compiler the torch path below runs instead (slower, same numbers).

GPU: the fused Triton kernel of `regnn.metrics.dtw_triton` where it builds and agrees with the CPU kernel
on the device (checked once here); its series' shorter side must fit `MAX_FRAMES`, pairs with both sides
longer run on the CPU kernel. Otherwise an anti-diagonal wavefront in torch over the batch, which computes
each diagonal's local costs from the series (O(L) memory per pair, never an L x L matrix).

torch is imported only by the torch and GPU paths, so a CPU evaluation starts fast.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np

from regnn.devices import cpu_only

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

GROUPS: tuple[tuple[int, int], ...] = ((0, 15), (15, 17), (17, 25))
"""FRD's attribute groups: 15 AUs, valence/arousal, 8 expression probabilities."""
FRD_WEIGHTS = (1 / 15, 1.0, 1 / 8)
"""The official weights of the groups' DTWs in FRD's distance."""
DIMS = 25
_SOURCE = Path(__file__).with_name("frd_dtw.c")

SeriesSet = Union[np.ndarray, Sequence[np.ndarray]]
"""A (n, frames, 25) array, or a sequence of n (frames_k, 25) arrays of any lengths."""


def cache_dir() -> Path:
    if os.environ.get("REGNN_CACHE_DIR"):
        return Path(os.environ["REGNN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "regnn"


def _cpu_identity() -> str:
    """What -march=native depends on: the CPU's model and feature flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        keep = [ln for ln in lines if ln.startswith(("model name", "flags", "Features", "CPU part"))]
        return "\n".join(sorted(set(keep)))
    except OSError:
        return platform.machine() + platform.processor()


def compile_kernel(compiler: str, target: Path, flags: Sequence[str]) -> bool:
    """Compile frd_dtw.c with `flags` (e.g. ["-march=native"]) to `target` atomically; False on failure."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        cmd = [compiler, *flags, "-O3", "-ffp-contract=off", "-fPIC", "-shared", str(_SOURCE), "-o", tmp, "-lm"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode == 0:
            os.replace(tmp, target)
            return True
        log.warning("compiling %s with %s failed: %s", _SOURCE.name, " ".join(flags) or "default flags",
                    result.stderr.strip()[-2000:])
        return False
    finally:
        Path(tmp).unlink(missing_ok=True)


def open_kernel(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.frd_dtw.argtypes = [ptr, ptr, ptr, ptr, i64, i64, i64, ptr, ptr]
    lib.frd_dtw.restype = ctypes.c_int
    lib.frd_dtw_lanes.restype = ctypes.c_int
    return lib


def find_compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


@cache
def load_kernel() -> ctypes.CDLL | None:
    """The compiled CPU kernel, building it on first use; None if no C compiler works here."""
    if not _SOURCE.is_file():  # an install that left out package data
        log.warning("%s is missing; FRD's DTW falls back to the (slower) torch implementation", _SOURCE)
        return None
    compiler = find_compiler()
    if not compiler:
        log.warning("no C compiler found; FRD's DTW falls back to the (slower) torch implementation")
        return None
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256(b"\0".join(s.encode() for s in (_SOURCE.read_text(), compiler, version,
                                                           _cpu_identity()))).hexdigest()[:16]
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a read-only home on some clusters
        log.warning("cache folder %s is not usable (%s); building in the temp folder", folder, err)
        folder = Path(tempfile.gettempdir()) / f"regnn-{os.getuid()}"
        folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"frd_dtw-{key}.so"
    # -march=native picks AVX-512 / AVX2 / SSE for this CPU; the compiler's defaults are the fallback
    if not target.exists() and not (compile_kernel(compiler, target, ["-march=native"])
                                    or compile_kernel(compiler, target, [])):
        log.warning("FRD's DTW kernel could not be compiled; falling back to the torch implementation")
        return None
    return open_kernel(target)


class _Series:
    """A set of series as the kernel sees it: float32 C-contiguous (frames, 25) arrays, their addresses and
    lengths (a 3-D array is used in place, without a copy per series)."""

    def __init__(self, name: str, series: SeriesSet):
        if isinstance(series, np.ndarray) and series.ndim == 3:
            block = np.ascontiguousarray(series, dtype=np.float32)
            if block.shape[2] != DIMS or block.shape[1] < 1:
                raise ValueError(f"FRD needs {name} shaped (n, frames >= 1, {DIMS}), got {block.shape}")
            self.arrays: list[np.ndarray] | np.ndarray = block
            self.lengths = np.full(len(block), block.shape[1], dtype=np.int64)
            self.addresses = block.ctypes.data + np.arange(len(block), dtype=np.int64) * block.strides[0]
            return
        if isinstance(series, np.ndarray) and series.ndim != 3 and series.dtype != object:
            raise ValueError(f"FRD needs {name} as (n, frames, {DIMS}) or a list of (frames, {DIMS}) arrays, "
                             f"got an array shaped {series.shape}")
        arrays = [np.ascontiguousarray(x, dtype=np.float32) for x in series]
        for k, x in enumerate(arrays):
            if x.ndim != 2 or x.shape[1] != DIMS or x.shape[0] < 1:
                raise ValueError(f"FRD needs each of the {name} shaped (frames >= 1, {DIMS}); {name} {k} has "
                                 f"shape {x.shape}")
        self.arrays = arrays
        self.lengths = np.array([len(x) for x in arrays], dtype=np.int64)
        self.addresses = np.array([x.ctypes.data for x in arrays], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.lengths)

    def stack(self, idx: np.ndarray) -> np.ndarray:
        """The series idx (all of one length) as one (len(idx), frames, 25) array."""
        if isinstance(self.arrays, np.ndarray):
            return self.arrays[idx]
        return np.stack([self.arrays[i] for i in idx])


def _check_pairs(sa: _Series, sb: _Series, ia: np.ndarray, ib: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ia = np.ascontiguousarray(ia, dtype=np.int64)
    ib = np.ascontiguousarray(ib, dtype=np.int64)
    if ia.shape != ib.shape or ia.ndim != 1:
        raise ValueError(f"pair index arrays differ in shape: {ia.shape} vs {ib.shape}")
    if len(ia) and (ia.min() < 0 or ia.max() >= len(sa) or ib.min() < 0 or ib.max() >= len(sb)):
        raise ValueError("a pair index is out of range")
    return ia, ib


def _groups_cpu(sa: _Series, sb: _Series, ia: np.ndarray, ib: np.ndarray, threads: int,
                lib: ctypes.CDLL) -> np.ndarray:
    """The compiled kernel on the pairs, sorted by (prediction length, target length) into SIMD lanes."""
    n = len(ia)
    out = np.empty((n, len(GROUPS)), dtype=np.float64)
    if n == 0:
        return out
    la, lb = sa.lengths[ia], sb.lengths[ib]
    order = np.lexsort((lb, la))  # a speaker's pairs (one prediction length) end up side by side
    pa = np.ascontiguousarray(sa.addresses[ia[order]])
    pb = np.ascontiguousarray(sb.addresses[ib[order]])
    la, lb = np.ascontiguousarray(la[order]), np.ascontiguousarray(lb[order])
    sorted_out = np.empty_like(out)
    chunks = -(-n // lib.frd_dtw_lanes())
    claimed = np.zeros(1, dtype=np.int64)  # the kernel's threads take chunks from this counter, longest first

    def run(_: int = 0) -> None:
        status = lib.frd_dtw(pa.ctypes.data, la.ctypes.data, pb.ctypes.data, lb.ctypes.data, n, 0, chunks,
                             claimed.ctypes.data, sorted_out.ctypes.data)
        if status != 0:
            raise MemoryError("FRD DTW kernel could not allocate its work buffers")

    threads = max(1, min(threads, chunks))
    if threads == 1:
        run()
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(run, range(threads)))
    out[order] = sorted_out
    return out


def dtw_groups_cpu(a: SeriesSet, b: SeriesSet, ia: np.ndarray, ib: np.ndarray, threads: int = 1,
                   lib: ctypes.CDLL | None = None) -> np.ndarray:
    """DTW of each FRD group for the pairs (a[ia[p]], b[ib[p]]) with the compiled kernel: (n_pairs, 3)."""
    lib = lib or load_kernel()
    if lib is None:
        return dtw_groups_torch(a, b, ia, ib, device="cpu")
    sa, sb = _Series("predictions", a), _Series("references", b)
    ia, ib = _check_pairs(sa, sb, ia, ib)
    return _groups_cpu(sa, sb, ia, ib, threads, lib)


def _same_shape_groups(la: np.ndarray, lb: np.ndarray) -> Iterator[np.ndarray]:
    """Pair positions grouped by (length a, length b)."""
    order = np.lexsort((lb, la))
    key = la[order] * (int(lb.max(initial=0)) + 1) + lb[order]
    yield from np.split(order, np.flatnonzero(np.diff(key)) + 1) if len(order) else ()


def _wavefront(x: "torch.Tensor", y: "torch.Tensor") -> "torch.Tensor":
    """Unconstrained DTW per group of x (B, T1, 25) against y (B, T2, 25) -> D[T1-1, T2-1] of shape (B, 3).

    One anti-diagonal per step: every cell of a diagonal depends only on the two previous diagonals, so a
    step is a few elementwise kernels over the whole batch. Local costs are computed per diagonal from the
    series (float32 (x - y)^2 sums), so memory is O(T1 + T2) per pair. D is stored by row index + 1 (index 0
    is row -1).
    """
    import torch

    bsz, t1, _ = x.shape
    t2 = y.shape[1]
    inf = float("inf")
    bufs = [torch.full((bsz, len(GROUPS), t1 + 1), inf, dtype=torch.float32, device=x.device) for _ in range(3)]
    prev2, prev, cur = bufs
    prev2[..., 0] = 0.0  # D[-1][-1] = 0
    for s in range(t1 + t2 - 1):
        lo, hi = max(0, s - t2 + 1), min(s, t1 - 1)
        # row i meets column s - i: rows lo..hi against columns s - lo down to s - hi
        sq = (x[:, lo:hi + 1] - y[:, s - hi:s - lo + 1].flip(1)).square_()
        cost = torch.stack([sq[..., g0:g1].sum(-1) for g0, g1 in GROUPS], dim=1)
        best = torch.minimum(torch.minimum(prev[..., lo:hi + 1], prev[..., lo + 1:hi + 2]), prev2[..., lo:hi + 1])
        cur.fill_(inf)
        torch.add(cost, best, out=cur[..., lo + 1:hi + 2])
        prev2, prev, cur = prev, cur, prev2
    return prev[..., t1]


def dtw_groups_torch(a: SeriesSet, b: SeriesSet, ia: np.ndarray, ib: np.ndarray,
                     device: "str | torch.device" = "cuda", memory_bytes: int | None = None) -> np.ndarray:
    """DTW of each FRD group for the pairs (a[ia[p]], b[ib[p]]) with torch on `device`: (n_pairs, 3)."""
    import torch

    sa, sb = _Series("predictions", a), _Series("references", b)
    ia, ib = _check_pairs(sa, sb, ia, ib)
    device = torch.device(device)
    if memory_bytes is None:
        memory_bytes = (torch.cuda.mem_get_info(device)[0] // 3) if device.type == "cuda" else 1 << 28
    out = np.empty((len(ia), len(GROUPS)), dtype=np.float64)
    with torch.no_grad():
        for group in _same_shape_groups(sa.lengths[ia], sb.lengths[ib]):
            t1, t2 = int(sa.lengths[ia[group[0]]]), int(sb.lengths[ib[group[0]]])
            per_pair = (t1 + 1) * len(GROUPS) * 4 * 3 + min(t1, t2) * DIMS * 4 * 3 + (t1 + t2) * DIMS * 4
            batch = max(1, int(memory_bytes // per_pair))
            for start in range(0, len(group), batch):
                sel = group[start:start + batch]
                x = torch.as_tensor(sa.stack(ia[sel]), device=device)
                y = torch.as_tensor(sb.stack(ib[sel]), device=device)
                out[sel] = _wavefront(x, y).double().clamp_min(0.0).sqrt().cpu().numpy()
    return out


@cache
def triton_usable(device: "torch.device") -> bool:
    """Whether the Triton kernel builds and runs on `device` and agrees with the CPU kernel there (once)."""
    import torch

    from regnn.metrics import dtw_triton

    if dtw_triton.triton is None:
        return False
    rng = np.random.default_rng(0)
    a = rng.random((3, 37, 25), dtype=np.float32)
    b = rng.random((2, 45, 25), dtype=np.float32)
    ia, ib = np.array([0, 1, 2, 2, 0]), np.array([1, 0, 1, 0, 0])
    want = dtw_groups_cpu(a, b, ia, ib)
    try:
        got = dtw_triton.dtw_groups_triton(*(torch.as_tensor(v, device=device) for v in (a, b, ia, ib)))
        got = got.cpu().numpy()
    except Exception as err:  # a GPU or driver the kernel cannot build for
        log.warning("the Triton DTW kernel does not run on %s (%s); FRD uses the torch wavefront", device, err)
        return False
    if not np.allclose(got, want, rtol=1e-5, atol=1e-6):
        log.warning("the Triton DTW kernel disagrees with the CPU kernel on %s (largest difference %.3g); FRD "
                    "uses the torch wavefront", device, np.abs(got - want).max())
        return False
    return True


def _groups_gpu(sa: _Series, sb: _Series, ia: np.ndarray, ib: np.ndarray, device: "torch.device",
                threads: int) -> np.ndarray:
    """Triton per (length, length) group, the shorter series on the kernel's rows; pairs whose both series
    exceed its rows run on the CPU kernel (O(L) memory), as does everything when Triton is not usable."""
    import torch

    from regnn.metrics import dtw_triton

    out = np.empty((len(ia), len(GROUPS)), dtype=np.float64)
    la, lb = sa.lengths[ia], sb.lengths[ib]
    on_gpu = (np.minimum(la, lb) <= dtw_triton.MAX_FRAMES) if triton_usable(device) else np.zeros(len(ia), bool)
    lib = load_kernel()
    rest = np.flatnonzero(~on_gpu)
    if len(rest):
        if lib is not None:
            out[rest] = _groups_cpu(sa, sb, ia[rest], ib[rest], threads, lib)
        else:
            out[rest] = dtw_groups_torch(sa.arrays, sb.arrays, ia[rest], ib[rest], device=device)
    picked = np.flatnonzero(on_gpu)
    for group in _same_shape_groups(la[picked], lb[picked]):
        sel = picked[group]
        ua, ra = np.unique(ia[sel], return_inverse=True)
        ub, rb = np.unique(ib[sel], return_inverse=True)
        x = torch.as_tensor(sa.stack(ua), device=device)
        y = torch.as_tensor(sb.stack(ub), device=device)
        rx, ry = torch.as_tensor(ra, device=device), torch.as_tensor(rb, device=device)
        if x.shape[1] > dtw_triton.MAX_FRAMES:  # DTW is symmetric: put the shorter series on the rows
            x, y, rx, ry = y, x, ry, rx
        out[sel] = dtw_triton.dtw_groups_triton(x, y, rx, ry).cpu().numpy()
    return out


def dtw_groups(a: SeriesSet, b: SeriesSet, ia: np.ndarray, ib: np.ndarray, device: str = "auto",
               threads: int = 1) -> np.ndarray:
    """DTW of each FRD group for the pairs (a[ia[p]], b[ib[p]]): (n_pairs, 3) float64.

    a, b: (n, frames, 25) arrays or sequences of (frames_k, 25) arrays (any lengths, also within a pair).
    `device`: auto (a GPU when one is visible), cpu or cuda; `threads`: CPU threads for the CPU kernel.
    """
    if cpu_only(device):
        return dtw_groups_cpu(a, b, ia, ib, threads=threads)
    from regnn.devices import choose_device

    sa, sb = _Series("predictions", a), _Series("references", b)
    ia, ib = _check_pairs(sa, sb, ia, ib)
    return _groups_gpu(sa, sb, ia, ib, choose_device(device), threads)


def frd_distances(predictions: Sequence[np.ndarray], targets: Sequence[Sequence[np.ndarray]],
                  device: str = "auto", threads: int = 1) -> list[np.ndarray]:
    """FRD's distance of each prediction to each of its targets: DTW(dims 0-14)/15 + DTW(15-16) + DTW(17-24)/8.

    predictions[k] is a (frames_k, 25) array and targets[k] the list of (frames, 25) arrays it is compared
    with; every length may differ. Returns one float64 array per prediction, len(targets[k]) long (FRD then
    takes, per prediction, the minimum over its appropriate targets). A target object repeated across
    predictions (a speaker's samples share their targets) is read once. Memory is O(longest series).
    """
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions but {len(targets)} target lists")
    unique: dict[int, int] = {}
    refs: list[np.ndarray] = []
    ia, ib = [], []
    for k, group in enumerate(targets):
        for t in group:
            if id(t) not in unique:
                unique[id(t)] = len(refs)
                refs.append(t)
            ia.append(k)
            ib.append(unique[id(t)])
    if not refs:
        return [np.empty(0) for _ in predictions]
    groups = dtw_groups(list(predictions), refs, np.array(ia, dtype=np.int64), np.array(ib, dtype=np.int64),
                        device=device, threads=threads)
    weighted = groups @ np.array(FRD_WEIGHTS)
    return np.split(weighted, np.cumsum([len(g) for g in targets])[:-1])
