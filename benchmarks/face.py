"""Face renderer speed: one 750-frame clip of attribute rows drawn at several sizes on one core.

    .venv/bin/python benchmarks/face.py                 # sizes 32 64 128 256, best of 3
    .venv/bin/python benchmarks/face.py --sizes 64 --repeats 5

Prints, per size, the best CPU (process) time and wall time of `render_faces` for 750 frames (with and
without the panels). CPU time is the figure to quote on a shared machine: other jobs inflate wall time.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from regnn.face import render_faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--frames", type=int, default=750)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    attributes = rng.random((args.frames, 25)).astype(np.float32)  # continuous, like generated samples
    attributes[:, :15] = attributes[:, :15] > 0.5
    print(f"{args.frames} frames, one thread of {os.cpu_count()} cores; best of {args.repeats}")
    for size in args.sizes:
        for panels in (True, False):
            render_faces(attributes[:4], size, panels=panels)  # builds the cached geometry
            cpu, wall = [], []
            for _ in range(args.repeats):
                c0, w0 = time.process_time(), time.perf_counter()
                render_faces(attributes, size, panels=panels)
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - w0)
            print(f"size {size:4d} px  panels={panels!s:5}  cpu {min(cpu):6.3f} s  wall {min(wall):6.3f} s")


if __name__ == "__main__":
    main()
