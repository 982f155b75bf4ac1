"""Small I/O helpers shared by every stage."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path


def decode_strings(values: Iterable[bytes | str]) -> list[str]:
    """HDF5 string datasets read back as bytes or str depending on h5py's version and dtype."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A crash or an error leaves no half-written file under the final name (Snakemake would otherwise
    take a truncated HDF5 or TSV for a finished output).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)  # mkstemp makes the file private; outputs are shared like any other file
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; put it in place of `path` (absent or empty) only if the block
    succeeds, so an interrupted writer leaves no half-written tree under the final name."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp makes the folder private
        if final.exists():
            final.rmdir()
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)

def x264_options(crf: int, preset: str) -> dict[str, str]:
    """libx264 options under which an mp4's bytes are a function of its frames alone.

    One thread and no mb-tree: with mb-tree, x264's AVX-512 kernels read heap memory they never wrote, so a
    clip's bytes depended on what the process had allocated before (seen on a busy machine; reproduced with
    MALLOC_PERTURB_, see tests/test_synthetic.py).
    """
    return {"crf": str(crf), "preset": preset, "threads": "1", "x264-params": "mbtree=0"}
