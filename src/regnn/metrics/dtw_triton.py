"""FRD's DTW on the GPU as one fused Triton kernel: one program per (prediction, reference) pair.

The torch wavefront in `regnn.metrics.dtw` launches about ten small kernels per anti-diagonal and round-trips
every diagonal through GPU memory, so it is bound by launch latency and memory traffic. Here a
program keeps one pair's DP on chip: its lanes are the DP's rows, each step advances one anti-diagonal
(cell (i, s - i) for every row i) for the three groups at once, local costs are (x - y)^2 sums read from
dim-major copies of the series (coalesced; a pair's two series, 150 KB at 750 frames, stay in L1), and the
previous two diagonals move one row down with an in-register gather. float32 like the CPU kernel, within
~1e-6 relative of tslearn's float64. A leaf: `regnn.metrics.dtw` checks the kernel on a device against the
CPU kernel before trusting it (`triton_usable`) and dispatches to it.
"""

from __future__ import annotations

import torch

try:  # triton ships with the Linux CUDA builds of torch; elsewhere the torch wavefront is used
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the platform's torch build
    triton = None

MAX_FRAMES = 2048
"""Longest series on a program's rows (its lanes); the pair's other series, on the steps, may be any length."""
LANES_PER_THREAD = 4
"""At 4 rows per thread the kernel fits in 255 registers without spilling (sm_80/sm_90, checked by a test)."""


if triton is not None:

    @triton.jit
    def _group_cost(x_ptr, y_ptr, rows, cols, ok, t1, t2, LO: tl.constexpr, HI: tl.constexpr):
        """Squared Euclidean distance over dims [LO, HI) between x[rows] and y[cols], per lane (dim-major data)."""
        cost = tl.zeros(rows.shape, tl.float32)
        for d in tl.static_range(LO, HI):
            x = tl.load(x_ptr + d * t1 + rows, mask=ok, other=0.0)
            y = tl.load(y_ptr + d * t2 + cols, mask=ok, other=0.0)
            cost += (x - y) * (x - y)
        return cost

    @triton.jit
    def _step(prev, prev2, cost, rows, start):
        """D[i][j] = cost + min(D[i-1][j], D[i][j-1], D[i-1][j-1]) for the diagonal's cells, by row i."""
        above = tl.gather(prev, tl.maximum(rows - 1, 0), 0)
        corner = tl.gather(prev2, tl.maximum(rows - 1, 0), 0)
        above = tl.where(rows == 0, float("inf"), above)
        corner = tl.where(rows == 0, tl.where(start, 0.0, float("inf")), corner)  # D[-1][-1] = 0
        return cost + tl.minimum(tl.minimum(above, prev), corner)

    @triton.jit
    def _frd_dtw_kernel(a_ptr, b_ptr, ia_ptr, ib_ptr, out_ptr, t1, t2, DIMS: tl.constexpr, ROWS: tl.constexpr):
        pair = tl.program_id(0)
        x_ptr = a_ptr + tl.load(ia_ptr + pair) * t1 * DIMS
        y_ptr = b_ptr + tl.load(ib_ptr + pair) * t2 * DIMS
        rows = tl.arange(0, ROWS)
        inf = tl.full([ROWS], float("inf"), tl.float32)
        prev_au, prev_va, prev_em = inf, inf, inf  # diagonal s - 1
        prev2_au, prev2_va, prev2_em = inf, inf, inf  # diagonal s - 2
        for s in range(0, t1 + t2 - 1):
            cols = s - rows
            ok = (rows < t1) & (cols >= 0) & (cols < t2)
            start = s == 0
            cur_au = _step(prev_au, prev2_au, _group_cost(x_ptr, y_ptr, rows, cols, ok, t1, t2, 0, 15), rows, start)
            cur_va = _step(prev_va, prev2_va, _group_cost(x_ptr, y_ptr, rows, cols, ok, t1, t2, 15, 17), rows, start)
            cur_em = _step(prev_em, prev2_em, _group_cost(x_ptr, y_ptr, rows, cols, ok, t1, t2, 17, 25), rows, start)
            prev2_au, prev2_va, prev2_em = prev_au, prev_va, prev_em
            prev_au = tl.where(ok, cur_au, inf)
            prev_va = tl.where(ok, cur_va, inf)
            prev_em = tl.where(ok, cur_em, inf)
        last = rows == t1 - 1
        tl.store(out_ptr + pair * 3 + 0, tl.sum(tl.where(last, prev_au, 0.0), axis=0))
        tl.store(out_ptr + pair * 3 + 1, tl.sum(tl.where(last, prev_va, 0.0), axis=0))
        tl.store(out_ptr + pair * 3 + 2, tl.sum(tl.where(last, prev_em, 0.0), axis=0))


def launch_options(rows: int) -> dict:
    return {"num_warps": max(1, rows // (32 * LANES_PER_THREAD)), "enable_fp_fusion": True}


def dtw_groups_triton(a: torch.Tensor, b: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor) -> torch.Tensor:
    """DTW of the three FRD groups for pairs (a[ia[p]], b[ib[p]]): (n_pairs, 3) float64 on a's device.

    a (n_a, T1, 25) and b (n_b, T2, 25) are float32 tensors on one device; ia, ib int64 pair indices.
    """
    if triton is None:
        raise RuntimeError("triton is not installed")
    t1, t2 = a.shape[1], b.shape[1]
    if t1 > MAX_FRAMES:
        raise ValueError(f"the Triton DTW holds at most {MAX_FRAMES} frames per series, got {t1}")
    rows = triton.next_power_of_2(t1)
    out = torch.empty((len(ia), 3), dtype=torch.float32, device=a.device)
    if len(ia):
        # dim-major copies: a lane's value of one dim sits next to its neighbour lanes' (coalesced loads)
        a_dims, b_dims = a.transpose(1, 2).contiguous(), b.transpose(1, 2).contiguous()
        _frd_dtw_kernel[(len(ia),)](a_dims, b_dims, ia.contiguous(), ib.contiguous(), out, t1, t2,
                                    DIMS=a.shape[2], ROWS=rows, **launch_options(rows))
    return out.double().clamp_min(0.0).sqrt()
