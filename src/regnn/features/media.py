"""Reading clips for feature extraction: video frames (mp4 or PNG folders), audio, and background prefetch.

Every reader checks what REGNN's features silently assume (at least 750 decodable frames, a readable,
non-silent ~30 s waveform) and raises `MediaError` naming the clip and the problem, so a bad file stops the
job before anything is written instead of producing misaligned features.
"""

from __future__ import annotations

import itertools
import math
import queue
import threading
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
    return np.concatenate(list(video_chunks(clip, path, frames, frames, fps)))


def video_chunks(clip: str, path: Path, frames: int, chunk: int, fps: float | None = 25.0,
                 tolerance: int | None = None, notes: list[tuple[str, str]] | None = None) -> Iterator[np.ndarray]:
    """A clip's first `frames` RGB frames as (n <= chunk, H, W, 3) uint8 arrays, decoded as they are yielded, so
    no more than one chunk of a long clip is ever held.

    `tolerance` None (REACT 2024): fewer than `frames` decodable frames is an error, later frames are ignored.
    Otherwise (MARS) the video may have up to `tolerance` frames more (dropped) or fewer (the last frame
    repeated, so its features repeat the last row); either is appended to `notes`; a larger difference is an
    error. A frame rate other than `fps` is an error: rows would not be the index's frames.
    """
    path = Path(path)
    if path.is_dir():
        source = _png_frames(clip, path, frames)
    elif not path.is_file():
        raise MediaError(clip, path, "video file is missing")
    else:
        source = _mp4_frames(clip, path, fps)
    limit = frames if tolerance is None else frames + tolerance + 1  # one more: a video too long is an error
    out: np.ndarray | None = None
    filled = n = 0
    try:
        for image in itertools.islice(source, limit):
            n += 1
            if n > frames:
                continue  # counted, not kept
            if out is None:
                out = np.empty((min(chunk, frames - n + 1), *image.shape), dtype=np.uint8)
            out[filled] = image
            filled += 1
            if filled == len(out):
                yield out
                out, filled = None, 0
    finally:
        source.close()  # closes the container now, not when the generator is collected
    if n < frames and (tolerance is None or n < frames - tolerance or n == 0):
        expected = f"at least {frames}" if tolerance is None else f"{frames} (tolerance {tolerance})"
        raise MediaError(clip, path, f"video is truncated: {n} decodable frames, expected {expected}")
    if tolerance is not None and n > frames + tolerance:
        raise MediaError(clip, path, f"video has more than {frames + tolerance} frames, expected {frames} "
                                     f"(tolerance {tolerance})")
    if n > frames and notes is not None:
        notes.append(("long video", f"{n - frames} frame(s) beyond {frames} dropped"))
    if n < frames:  # within the tolerance: repeat the last frame
        if notes is not None:
            notes.append(("short video", f"{n} frames, the last repeated {frames - n} time(s)"))
        last = image
        while n < frames:
            if out is None:
                out, filled = np.empty((min(chunk, frames - n), *last.shape), dtype=np.uint8), 0
            take = min(len(out) - filled, frames - n)
            out[filled:filled + take] = last
            filled += take
            n += take
            if filled == len(out):
                yield out
                out, filled = None, 0
    if out is not None and filled:
        yield out[:filled]


def _mp4_frames(clip: str, path: Path, fps: float | None) -> Iterator[np.ndarray]:
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
            # One reformatter for the clip: frame.to_ndarray("rgb24") builds a new swscale context per frame,
            # which costs 4-6x the decoding itself; the pixels are identical.
            to_rgb = VideoReformatter()
            for frame in container.decode(stream):
                yield to_rgb.reformat(frame, format="rgb24").to_ndarray()
                n += 1
    except av.error.FFmpegError as err:
        raise MediaError(clip, path, f"video is unreadable after {n} frames ({err})") from None


def _png_frames(clip: str, folder: Path, frames: int) -> Iterator[np.ndarray]:
    shape = None
    for i in range(frames):
        file = folder / f"{i + 1}.png"
        if not file.is_file():
            raise MediaError(clip, folder, f"video is truncated: frame {file.name} is missing, expected {frames} frames")
        try:
            with Image.open(file) as image:
                rgb = np.asarray(image.convert("RGB"))
        except OSError as err:
            raise MediaError(clip, file, f"frame is unreadable ({err})") from None
        if shape is not None and rgb.shape != shape:
            raise MediaError(clip, file, f"frame has size {rgb.shape[:2]}, earlier frames {shape[:2]}")
        shape = rgb.shape
        yield rgb


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


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_END = object()


def prefetch_chunks(chunks: Callable[[T], Iterable[R]], items: Iterable[T], workers: int, depth: int
                    ) -> Iterator[tuple[T, Iterator[R]]]:
    """Yield (item, an iterator over `chunks(item)`) in order, while the chunks of this item and of up to `depth`
    later ones are prepared in `workers` background threads.

    Memory is bounded whatever an item's length: each item's producer waits while its one-slot queue is full,
    so at most `2 + depth + workers` chunks exist at once (the one the caller holds, one queued per started
    item, one being built per thread). The caller exhausts an item's chunks before asking for the next item.
    Threads (not processes) because decoding, resampling and torch resizing release the GIL, and chunks are
    large arrays that would otherwise be copied between processes. An error raised while preparing an item is
    re-raised by its chunk iterator, after the chunks before it.
    """
    stop = threading.Event()

    def put(slot: queue.Queue, value: object) -> bool:
        while not stop.is_set():  # wakes up to notice that the caller stopped (an error, or it left early)
            try:
                slot.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce(item: T, slot: queue.Queue) -> None:
        try:
            for chunk in chunks(item):
                if not put(slot, chunk):
                    return
        except BaseException as err:  # noqa: BLE001  (re-raised in the caller's thread, for this item)
            put(slot, _Failed(err))
            return
        put(slot, _END)

    def drain(slot: queue.Queue) -> Iterator[R]:
        while (value := slot.get()) is not _END:
            if isinstance(value, _Failed):
                raise value.error
            yield value  # type: ignore[misc]

    with ThreadPoolExecutor(max_workers=max(workers, 1), thread_name_prefix="prefetch") as pool:
        started: deque[tuple[T, queue.Queue, Future[None]]] = deque()
        it = iter(items)

        def start_next() -> None:
            for item in it:
                slot: queue.Queue = queue.Queue(maxsize=1)
                started.append((item, slot, pool.submit(produce, item, slot)))
                return

        try:
            for _ in range(max(depth, 1) + 1):
                start_next()
            while started:
                item, slot, _ = started.popleft()
                yield item, drain(slot)
                start_next()
        finally:
            stop.set()
            for _, _, future in started:
                future.cancel()
