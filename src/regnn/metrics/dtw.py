"""Batched DTW for the FRD metric: a compiled SIMD kernel on CPU, a torch wavefront on GPU.

FRD costs three unconstrained DTWs (dims 0-14, 15-16, 17-24) per (prediction, appropriate listener) pair:
about 5e11 DP cells for a REACT-2024 test evaluation. tslearn does one pair at a time in float64; here
whole batches of pairs run at once, with the same definition (sqrt of the summed squared Euclidean local
costs along the optimal path, steps (1,0), (0,1), (1,1), no window).

CPU: `frd_dtw.c` is compiled at first use with the system C compiler and `-march=native` into a cache
folder (`$REGNN_CACHE_DIR`, else `$XDG_CACHE_HOME/regnn`, else `~/.cache/regnn`), keyed by source, compiler
and CPU, then loaded with ctypes. Compiling on the machine that runs it picks AVX-512, AVX2 or plain SSE at
run time without Python headers or a build step in the package install, and a cluster with mixed CPUs gets
one build per CPU kind. Without a working compiler the torch path below runs instead (slower, same numbers).

GPU: the fused Triton kernel of `regnn.metrics.dtw_triton` where it builds and agrees with the CPU kernel
on the device; otherwise cost matrices by batched float64 matmul, then an anti-diagonal wavefront in float32
over the batch.
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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import numpy as np
import torch

from regnn.devices import choose_device
from regnn.metrics import dtw_triton

log = logging.getLogger(__name__)

GROUPS: tuple[tuple[int, int], ...] = ((0, 15), (15, 17), (17, 25))
"""FRD's attribute groups: 15 AUs, valence/arousal, 8 expression probabilities."""
DIMS = 25
_SOURCE = Path(__file__).with_name("frd_dtw.c")


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
    lib.frd_dtw.argtypes = [ptr, i64, ptr, i64, ptr, ptr, i64, i64, i64, ptr]
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


def _check_inputs(a: np.ndarray, b: np.ndarray, ia: np.ndarray, ib: np.ndarray) -> None:
    for name, arr in (("predictions", a), ("references", b)):
        if arr.ndim != 3 or arr.shape[2] != DIMS:
            raise ValueError(f"FRD needs {name} shaped (n, frames, {DIMS}), got {arr.shape}")
        if arr.shape[1] < 1:
            raise ValueError(f"FRD needs at least one frame, got {name} shaped {arr.shape}")
    if ia.shape != ib.shape or ia.ndim != 1:
        raise ValueError(f"pair index arrays differ in shape: {ia.shape} vs {ib.shape}")
    if len(ia) and (ia.min() < 0 or ia.max() >= len(a) or ib.min() < 0 or ib.max() >= len(b)):
        raise ValueError("a pair index is out of range")


def dtw_groups_cpu(a: np.ndarray, b: np.ndarray, ia: np.ndarray, ib: np.ndarray, threads: int = 1,
                   lib: ctypes.CDLL | None = None) -> np.ndarray:
    """DTW of each FRD group for the pairs (a[ia[p]], b[ib[p]]) with the compiled kernel: (n_pairs, 3)."""
    lib = lib or load_kernel()
    if lib is None:
        return dtw_groups_torch(a, b, ia, ib, device="cpu")
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    ia = np.ascontiguousarray(ia, dtype=np.int64)
    ib = np.ascontiguousarray(ib, dtype=np.int64)
    _check_inputs(a, b, ia, ib)
    n = len(ia)
    out = np.empty((n, len(GROUPS)), dtype=np.float64)
    lanes = lib.frd_dtw_lanes()
    chunks = -(-n // lanes)
    # Several small tasks per thread even out the tail; each task allocates ~2.5 MB of work buffers.
    bounds = np.linspace(0, chunks, min(chunks, max(1, threads) * 8) + 1).astype(np.int64)

    def run(lo: int, hi: int) -> None:
        status = lib.frd_dtw(a.ctypes.data, a.shape[1], b.ctypes.data, b.shape[1], ia.ctypes.data,
                             ib.ctypes.data, n, int(lo), int(hi), out.ctypes.data)
        if status != 0:
            raise MemoryError("FRD DTW kernel could not allocate its work buffers")

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(run, bounds[:-1], bounds[1:]))
    return out


def _wavefront(cost: torch.Tensor) -> torch.Tensor:
    """Unconstrained DTW accumulation over cost (B, G, T1, T2) -> D[T1-1, T2-1] of shape (B, G).

    One anti-diagonal per step: every cell of a diagonal depends only on the two previous diagonals, so a
    step is a few elementwise kernels over the whole batch. D is stored by row index + 1 (index 0 is row -1).
    """
    cost = cost.contiguous()
    bsz, groups, t1, t2 = cost.shape
    inf = float("inf")
    bufs = [torch.full((bsz, groups, t1 + 1), inf, dtype=cost.dtype, device=cost.device) for _ in range(3)]
    prev2, prev, cur = bufs
    prev2[..., 0] = 0.0  # D[-1][-1] = 0
    stride = cost.stride()
    for s in range(t1 + t2 - 1):
        lo, hi = max(0, s - t2 + 1), min(s, t1 - 1)
        n = hi - lo + 1
        diag = cost.as_strided((bsz, groups, n), (stride[0], stride[1], t2 - 1),
                               cost.storage_offset() + s + lo * (t2 - 1))
        best = torch.minimum(torch.minimum(prev[..., lo:hi + 1], prev[..., lo + 1:hi + 2]), prev2[..., lo:hi + 1])
        cur.fill_(inf)
        torch.add(diag, best, out=cur[..., lo + 1:hi + 2])
        prev2, prev, cur = prev, cur, prev2
    return prev[..., t1]


def _pair_costs(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean local costs per group, (B, G, T1, T2) float32, via float64 matmul on centred data."""
    x = x.double()
    y = y.double()
    centre = 0.5 * (x.mean(1, keepdim=True) + y.mean(1, keepdim=True))
    x, y = x - centre, y - centre
    cost = torch.empty((x.shape[0], len(GROUPS), x.shape[1], y.shape[1]), dtype=torch.float32, device=x.device)
    for g, (lo, hi) in enumerate(GROUPS):
        xs, ys = x[..., lo:hi], y[..., lo:hi]
        c = torch.baddbmm((xs * xs).sum(-1)[:, :, None] + (ys * ys).sum(-1)[:, None, :], xs,
                          ys.transpose(1, 2), alpha=-2.0)
        cost[:, g] = c.clamp_min_(0.0)
    return cost


def dtw_groups_torch(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, ia: np.ndarray,
                     ib: np.ndarray, device: str | torch.device = "cuda",
                     memory_bytes: int | None = None) -> np.ndarray:
    """DTW of each FRD group for the pairs (a[ia[p]], b[ib[p]]) with torch on `device`: (n_pairs, 3)."""
    a_np = a.cpu().numpy() if isinstance(a, torch.Tensor) else a
    b_np = b.cpu().numpy() if isinstance(b, torch.Tensor) else b
    ia = np.asarray(ia, dtype=np.int64)
    ib = np.asarray(ib, dtype=np.int64)
    _check_inputs(a_np, b_np, ia, ib)
    device = torch.device(device)
    ta = torch.as_tensor(a_np, dtype=torch.float32, device=device)
    tb = torch.as_tensor(b_np, dtype=torch.float32, device=device)
    t1, t2 = ta.shape[1], tb.shape[1]
    if memory_bytes is None:
        memory_bytes = (torch.cuda.mem_get_info(device)[0] // 3) if device.type == "cuda" else 1 << 28
    per_pair = t1 * t2 * (len(GROUPS) * 4 + 8 * 2)  # float32 costs + float64 matmul temporaries
    batch = max(1, int(memory_bytes // per_pair))
    out = np.empty((len(ia), len(GROUPS)), dtype=np.float64)
    with torch.no_grad():
        for start in range(0, len(ia), batch):
            sel_a = torch.as_tensor(ia[start:start + batch], device=device)
            sel_b = torch.as_tensor(ib[start:start + batch], device=device)
            acc = _wavefront(_pair_costs(ta[sel_a], tb[sel_b]))
            out[start:start + len(sel_a)] = acc.double().clamp_min(0.0).sqrt().cpu().numpy()
    return out


def dtw_groups(a: np.ndarray, b: np.ndarray, ia: np.ndarray, ib: np.ndarray, device: str = "auto",
               threads: int = 1) -> np.ndarray:
    """DTW of each FRD group for the pairs (a[ia[p]], b[ib[p]]): the GPU when present (or asked), else CPU."""
    chosen = choose_device(device)
    if chosen.type == "cpu":
        return dtw_groups_cpu(a, b, ia, ib, threads=threads)
    if np.shape(a)[1] <= dtw_triton.MAX_FRAMES and dtw_triton.usable_on(chosen):
        _check_inputs(a, b, np.asarray(ia), np.asarray(ib))
        tensors = (torch.as_tensor(a, dtype=torch.float32, device=chosen),
                   torch.as_tensor(b, dtype=torch.float32, device=chosen),
                   torch.as_tensor(ia, dtype=torch.int64, device=chosen),
                   torch.as_tensor(ib, dtype=torch.int64, device=chosen))
        return dtw_triton.dtw_groups_triton(*tensors).cpu().numpy()
    return dtw_groups_torch(a, b, ia, ib, device=str(chosen))
