"""Reading clips for feature extraction: video frames (mp4 or PNG folders), audio, and background prefetch.

Every reader checks what REGNN's features silently assume (at least 750 decodable frames, a readable,
non-silent ~30 s waveform) and raises `MediaError` naming the clip and the problem, so a bad file stops the
job before anything is written instead of producing misaligned features.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import av
import numpy as np
import soundfile
from av.video.reformatter import VideoReformatter
from PIL import Image

T = TypeVar("T")
R = TypeVar("R")

SILENCE_PEAK = 1e-5
"""Peak amplitude at or below which a waveform counts as silent (a third of one 16-bit step)."""


class MediaError(Exception):
    """A clip's video or audio cannot give the features REGNN needs."""

    def __init__(self, clip: str, path: Path, problem: str):
        self.clip, self.path, self.problem = clip, Path(path), problem
        super().__init__(f"clip {clip} ({path}): {problem}")


def read_video(clip: str, path: Path, frames: int, fps: float | None = 25.0) -> np.ndarray:
    """The first `frames` RGB frames of an mp4 or a folder of PNGs `1.png, 2.png, ...` as (frames, H, W, 3) uint8.

    REACT clips have 751 frames at 25 fps; features use the first 750 so they align with the emotion rows.
    A video with fewer decodable frames, or a frame rate other than `fps`, would misalign them: an error.
    """
    path = Path(path)
    if path.is_dir():
        return _read_png_folder(clip, path, frames)
    if not path.is_file():
        raise MediaError(clip, path, "video file is missing")
    n = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(clip, path, "file has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate
            if fps is not None and rate is not None and abs(float(rate) - fps) > 0.01 * fps:
                raise MediaError(clip, path, f"video runs at {float(rate):.3f} fps, expected {fps:g}")
            out: np.ndarray | None = None
            # One reformatter for the clip: frame.to_ndarray("rgb24") builds a new swscale context per frame,
            # which costs 4-6x the decoding itself; the pixels are identical.
            to_rgb = VideoReformatter()
            for frame in container.decode(stream):
                image = to_rgb.reformat(frame, format="rgb24").to_ndarray()
                if out is None:
                    out = np.empty((frames, *image.shape), dtype=np.uint8)
                out[n] = image
                n += 1
                if n == frames:
                    return out
    except av.error.FFmpegError as err:
        raise MediaError(clip, path, f"video is unreadable after {n} frames ({err})") from None
    raise MediaError(clip, path, f"video is truncated: {n} decodable frames, expected at least {frames}")


def _read_png_folder(clip: str, folder: Path, frames: int) -> np.ndarray:
    out: np.ndarray | None = None
    for i in range(frames):
        file = folder / f"{i + 1}.png"
        if not file.is_file():
            raise MediaError(clip, folder, f"video is truncated: frame {file.name} is missing, expected {frames} frames")
        try:
            with Image.open(file) as image:
                rgb = np.asarray(image.convert("RGB"))
        except OSError as err:
            raise MediaError(clip, file, f"frame is unreadable ({err})") from None
        if out is None:
            out = np.empty((frames, *rgb.shape), dtype=np.uint8)
        elif rgb.shape != out.shape[1:]:
            raise MediaError(clip, file, f"frame has size {rgb.shape[:2]}, earlier frames {out.shape[1:3]}")
        out[i] = rgb
    assert out is not None
    return out


@dataclass(frozen=True)
class Audio:
    """A mono waveform at the extractor's rate; `padded_s` > 0 when a slightly short clip was zero-padded."""

    samples: np.ndarray  # (n,) float32
    rate: int
    seconds: float  # duration of the file as read, before padding
    padded_s: float


def read_audio(clip: str, path: Path, rate: int, seconds: float, tolerance_s: float, pad: bool = True) -> Audio:
    """Read a wav as mono float32 resampled to `rate`; check it is readable, finite, not silent and ~`seconds` long.

    Audio shorter than `seconds - tolerance_s` is an error (features would not cover the clip). Shorter audio
    within the tolerance is zero-padded to `seconds` when `pad` is set, as the reference loader pads its
    feature rows; longer audio is kept whole (each extractor trims its own output to the clip length).
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(clip, path, "audio file is missing")
    try:
        data, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as err:
        raise MediaError(clip, path, f"audio is unreadable or corrupt ({err})") from None
    if data.shape[0] == 0:
        raise MediaError(clip, path, "audio has no samples")
    if not np.isfinite(data).all():
        raise MediaError(clip, path, "audio has non-finite samples (corrupt file)")
    mono = data.mean(axis=1)  # the reference averages channels too
    if float(np.abs(mono).max()) <= SILENCE_PEAK:
        raise MediaError(clip, path, "audio is silent (every sample is zero)")
    duration = mono.shape[0] / file_rate
    if duration < seconds - tolerance_s:
        raise MediaError(clip, path, f"audio is too short: {duration:.3f} s, expected {seconds:g} s "
                                     f"(tolerance {tolerance_s:g} s)")
    if file_rate != rate:
        from scipy.signal import resample_poly  # scipy.signal takes ~1.5 s to import; video jobs skip it

        g = math.gcd(int(file_rate), int(rate))
        mono = resample_poly(mono, rate // g, file_rate // g).astype(np.float32)
    padded = 0.0
    target = int(round(seconds * rate))
    if pad and mono.shape[0] < target:
        padded = (target - mono.shape[0]) / rate
        mono = np.pad(mono, (0, target - mono.shape[0]))
    return Audio(np.ascontiguousarray(mono, dtype=np.float32), rate, duration, padded)


def prefetch(load: Callable[[T], R], items: Iterable[T], workers: int, depth: int) -> Iterator[tuple[T, R]]:
    """Yield (item, load(item)) in order while up to `depth` later items load in `workers` background threads.

    Threads (not processes) because decoding, resampling and torch resizing release the GIL, and results are
    large arrays that would otherwise be copied between processes. An error raised by `load` is re-raised
    here, for the item it belongs to, after the items before it were yielded.
    """
    depth = max(depth, 1)
    with ThreadPoolExecutor(max_workers=max(workers, 1), thread_name_prefix="prefetch") as pool:
        pending: deque[tuple[T, Future[R]]] = deque()
        it = iter(items)
        try:
            for item in it:
                pending.append((item, pool.submit(load, item)))
                if len(pending) > depth:
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()
        finally:
            for _, future in pending:
                future.cancel()

