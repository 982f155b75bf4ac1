"""Read a tensor written by `torch.save` (the official `result-k.pth` predictions) without torch.

`regnn evaluate` reads thousands of these; importing torch just to read them would cost ~2 s of start-up, and
an unrestricted unpickler would run whatever code a file names. torch's zip format is a zip archive holding a
small pickle (`<name>/data.pkl`) that names storages kept as raw little-endian bytes (`<name>/data/<key>`).
Here the pickle is read by an unpickler that knows only the globals a plain tensor needs (the tensor rebuild
function, storage types, OrderedDict) and refuses any other; the storage bytes become a numpy array. A file
outside that subset (legacy non-zip format, bfloat16, a Parameter, ...) is read by `torch.load` with
`weights_only=True`, which is safe too, only slower to start.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _Unsupported(Exception):
    """The file uses something outside the plain-tensor subset read here."""


class _StorageType:
    def __init__(self, dtype: type):
        self.dtype = np.dtype(dtype)


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_: Any) -> np.ndarray:
    """torch._utils._rebuild_tensor_v2 for a numpy storage: a strided view, bounds-checked, then copied."""
    if len(size) != len(stride) or any(n < 0 for n in size) or any(s < 0 for s in stride):
        raise _Unsupported("unusual tensor geometry")
    if any(n == 0 for n in size):
        return np.empty(size, dtype=storage.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if offset < 0 or last >= len(storage):
        raise ValueError("tensor extends past its storage")
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size,
                                           strides=[s * storage.itemsize for s in stride])
    return np.array(view)


class _TensorUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, archive: zipfile.ZipFile, prefix: str):
        super().__init__(file)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise _Unsupported(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> np.ndarray:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise _Unsupported(f"persistent id {pid!r}")
        _, kind, key, _location, numel = pid
        data = self.archive.read(f"{self.prefix}/data/{key}")
        if len(data) < numel * kind.dtype.itemsize:
            raise ValueError(f"storage {key} is truncated")
        return np.frombuffer(data, dtype=kind.dtype, count=numel)


def _read_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise _Unsupported("no single data.pkl")
        prefix = pickles[0].split("/")[0]
        if f"{prefix}/byteorder" in names and archive.read(f"{prefix}/byteorder").strip() != b"little":
            raise _Unsupported("big-endian storages")
        with archive.open(pickles[0]) as f:
            return _TensorUnpickler(f, archive, prefix).load()


def load_tensor_file(path: Path) -> Any:
    """The object a `torch.save` file holds; tensors come back as numpy arrays. Raises on a corrupt file."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        try:
            return _read_zip(path)
        except _Unsupported:
            pass
    import torch  # outside the plain-tensor subset: torch's own safe loader

    value = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(value, torch.Tensor):
        return value
    value = value.detach()
    return (value.float() if value.dtype == torch.bfloat16 else value).numpy()  # numpy has no bfloat16
