"""Reaction videos: the speaker's real video, the real listener and generated listeners, side by side.

People judge generated facial reactions by watching them. REGNN predicts the 25 facial attributes only, so
both the real listener (from its emotion labels) and the generated samples are drawn with the project's one
face (`regnn.face`), next to the speaker's own video, frame for frame at the clip's frame rate, with the
speaker's audio muxed in when the dataset has it. A header names the experiment, split, clip and the clip's
own FRC and FRD (the official metrics restricted to this speaker); a footer holds the expression colour
legend and a progress bar. Each clip also gets an animated WebP thumbnail, and each experiment x split an
HTML page that plays its clips (Snakemake's report shows HTML pages, not bare videos).

Outputs are written to a temporary name and renamed, and are byte-identical for the same inputs (x264 runs
single-threaded, no timestamps are written).
"""

from __future__ import annotations

import base64
import html
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import h5py
import numpy as np
import soundfile

from regnn.data.index import load_emotions, read_index
from regnn.face import EXPRESSION_COLOURS, EXPRESSIONS, render_faces
from regnn.io import atomic_output, decode_strings, x264_options
from regnn.metrics.react import frc, frd
from regnn.paths import Results
from regnn.settings import resolve_render_settings

log = logging.getLogger(__name__)

HEADER_PX = 44
FOOTER_PX = 22
GAP_PX = 2
_BACKGROUND = (24, 26, 31)
_CHUNK = 125  # frames composed and encoded per pass (bounds memory at REACT's 256 px panels)


@dataclass(frozen=True)
class ReactionClip:
    """Everything one reaction video shows."""

    position: int  # mirrored sample index in the split
    clip: str  # the speaker's clip key
    video: Path | None  # the speaker's mp4
    audio: Path | None  # the speaker's wav (None or missing: a silent video)
    listener: np.ndarray  # (T, 25) the real listener's attributes
    samples: np.ndarray  # (S, T, 25) generated listener attributes
    scores: dict[str, float]  # this speaker's FRC and FRD


def pick_positions(count: int, clips: int) -> list[int]:
    """`clips` positions spread evenly over a split's `count` mirrored samples (first and last included)."""
    if count < 1:
        raise ValueError("the split has no samples to render")
    return sorted({int(round(p)) for p in np.linspace(0, count - 1, min(clips, count))})


def clip_scores(pred: np.ndarray, listener: np.ndarray, neighbours: np.ndarray, position: int) -> dict[str, float]:
    """FRC and FRD of one speaker: the official definitions with the mean over speakers left out.

    `pred` (samples, T, 25) are that speaker's predictions; `listener` and `neighbours` cover the whole split,
    because the metrics take the best match over every appropriate listener of the split.
    """
    row = np.ascontiguousarray(neighbours[position: position + 1])
    one = np.ascontiguousarray(pred[None], dtype=np.float32)
    return {"FRC": frc(one, listener, row), "FRD": frd(one, listener, row, device="cpu")}


def load_clips(predictions_h5: Path, emotions_h5: Path, index_tsv: Path, positions: Sequence[int],
               samples: int) -> list[ReactionClip]:
    """The clips at `positions` of one split, with the first `samples` generated reactions and their scores."""
    cache = load_emotions(emotions_h5)
    index = {row.position: row for row in read_index(index_tsv)}
    with h5py.File(predictions_h5, "r") as f:
        theirs = decode_strings(f["clips"][()])
        if theirs != cache.clips:
            raise ValueError(f"{predictions_h5}: clip order differs from {emotions_h5}")
        pred = {p: f["predictions"][p, :samples] for p in positions}
    listener = cache.listener
    out = []
    for p in positions:
        if p not in index:
            raise ValueError(f"{index_tsv}: no row for position {p}")
        row = index[p]
        audio = row.audio if str(row.audio) and row.audio.is_file() else None
        video = row.video if str(row.video) and row.video.is_file() else None
        if video is None:
            log.warning("%s: speaker video %s is missing; its panel says so", cache.clips[p], row.video)
        out.append(ReactionClip(p, cache.clips[p], video, audio, listener[p], pred[p],
                                clip_scores(pred[p], listener, cache.neighbours, p)))
    return out


def _speaker_frames(path: Path | None, frames: int, size: int) -> Iterator[np.ndarray]:
    """The speaker's video as (size, size, 3) RGB frames, exactly `frames` of them.

    The REACT videos have one frame more than the labels (751 vs 750: the last is dropped); a shorter video
    holds its last frame, a missing one shows a grey panel saying so.
    """
    last = None
    shown = 0
    if path is not None:
        try:
            with av.open(str(path)) as container:
                for frame in container.decode(video=0):
                    if shown == frames:
                        break
                    last = frame.to_ndarray(width=size, height=size, format="rgb24")
                    shown += 1
                    yield last
        except av.error.FFmpegError as err:
            raise ValueError(f"{path}: speaker video is unreadable ({err})") from None
    if last is None:
        last = _text_image("no speaker video", size, size, 12)
    for _ in range(frames - shown):
        yield last


def _text_image(text: str, width: int, height: int, fontsize: float, colour: str = "#bbbbbb") -> np.ndarray:
    """A (height, width, 3) uint8 image with centred text (drawn by matplotlib's Agg backend)."""
    fig = _figure(width, height)
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=fontsize, color=colour, family="DejaVu Sans")
    return _pixels(fig)


def _figure(width: int, height: int):
    from matplotlib.figure import Figure  # import on use: the workflow imports this module when planning

    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor=np.array(_BACKGROUND) / 255)
    return fig


def _pixels(fig) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _header(width: int, panel: int, title: str, scores: str, names: Sequence[str]) -> np.ndarray:
    """Title line (experiment, split, clip on the left; the clip's scores on the right) over the panel names."""
    fig = _figure(width, HEADER_PX)
    y = 1 - 12 / HEADER_PX
    fig.text(6 / width, y, title, ha="left", va="center", fontsize=7.5, color="#f0f0f0", family="DejaVu Sans",
             weight="bold")
    fig.text(1 - 6 / width, y, scores, ha="right", va="center", fontsize=7.5, color="#9fd8c4",
             family="DejaVu Sans", weight="bold")
    step = (panel + GAP_PX) / width
    for k, name in enumerate(names):
        fig.text((k + 0.5) * step, 11 / HEADER_PX, name, ha="center", va="center", fontsize=7.5,
                 color="#c8c8c8", family="DejaVu Sans")
    return _pixels(fig)


def _footer(width: int) -> np.ndarray:
    """The expression colour legend: the bars under each face, in order."""
    fig = _figure(width, FOOTER_PX)
    step = 1.0 / len(EXPRESSIONS)
    for k, name in enumerate(EXPRESSIONS):
        x = k * step + 0.1 * step
        fig.patches.append(_swatch(fig, x, EXPRESSION_COLOURS[name]))
        fig.text(x + 14 / width, 0.62, name, ha="left", va="center", fontsize=6.5, color="#c8c8c8",
                 family="DejaVu Sans")
    return _pixels(fig)


def _swatch(fig, x: float, colour: tuple[float, float, float]):
    from matplotlib.patches import Rectangle

    return Rectangle((x, 0.40), 9 / fig.bbox.width, 0.44, transform=fig.transFigure, figure=fig, color=colour)


def _layout(panels: int, size: int) -> tuple[int, int]:
    """Canvas (height, width), both rounded up to whole 16-pixel macroblocks."""
    width = panels * size + (panels - 1) * GAP_PX
    height = HEADER_PX + size + FOOTER_PX + 4
    return -(-height // 16) * 16, -(-width // 16) * 16


def compose(clip: ReactionClip, title: str, size: int, frames_per_chunk: int = _CHUNK) -> Iterator[np.ndarray]:
    """The reaction video's RGB frames in chunks of (n, height, width, 3), time-synchronised."""
    frames = clip.listener.shape[0]
    names = ["speaker (real video)", "listener (real labels)",
             *[f"generated sample {k + 1}" for k in range(len(clip.samples))]]
    panels = len(names)
    height, width = _layout(panels, size)
    scores = f"FRC {clip.scores['FRC']:.3f}   FRD {clip.scores['FRD']:.2f}"
    header = _header(width, size, title, scores, names)
    footer = _footer(width)
    speaker = _speaker_frames(clip.video, frames, size)
    faces = [clip.listener, *clip.samples]
    bar_row = HEADER_PX + size + 1
    for start in range(0, frames, frames_per_chunk):
        stop = min(start + frames_per_chunk, frames)
        canvas = np.empty((stop - start, height, width, 3), np.uint8)
        canvas[:] = _BACKGROUND
        canvas[:, :HEADER_PX, : header.shape[1]] = header[:, :width]
        canvas[:, height - FOOTER_PX:, : footer.shape[1]] = footer[:, :width]
        canvas[:, HEADER_PX: HEADER_PX + size, :size] = np.stack([next(speaker) for _ in range(start, stop)])
        for k, attributes in enumerate(faces, start=1):
            x0 = k * (size + GAP_PX)
            canvas[:, HEADER_PX: HEADER_PX + size, x0: x0 + size] = render_faces(attributes[start:stop], size)
        # progress bar: how far into the clip this frame is
        for i, t in enumerate(range(start, stop)):
            canvas[i, bar_row: bar_row + 2, : ((t + 1) * width) // frames] = (90, 200, 160)
        yield canvas


def _audio(path: Path | None, seconds: float) -> tuple[np.ndarray, int] | None:
    """The speaker's audio as (channels, samples) float32, cut to the video's length; None when absent."""
    if path is None:
        return None
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except RuntimeError as err:
        raise ValueError(f"{path}: speaker audio is unreadable ({err})") from None
    data = data[: int(round(seconds * rate))]
    if data.shape[1] > 2:
        data = data[:, :2]
    return np.ascontiguousarray(data.T), rate


def write_video(clip: ReactionClip, out_mp4: Path, title: str, size: int, fps: int, crf: int,
                thumbnail: Mapping | None = None, out_thumbnail: Path | None = None) -> None:
    """Encode the reaction video (H.264 + AAC in mp4, playable in browsers) and, optionally, its thumbnail.

    The thumbnail is an animated WebP of the first `thumbnail["seconds"]` at `thumbnail["fps"]`, scaled to
    `thumbnail["width"]` pixels wide; it is cut from the same composed frames, so it shows exactly the video.
    """
    frames = clip.listener.shape[0]
    audio = _audio(clip.audio, frames / fps)
    thumb_every = max(1, int(round(fps / thumbnail["fps"]))) if thumbnail else 0
    thumb_last = int(thumbnail["seconds"] * fps) if thumbnail else 0
    thumbs: list[np.ndarray] = []
    with atomic_output(out_mp4) as tmp:
        # mp4's muxer writes no creation time unless asked; +faststart puts the index first for web playback
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as container:
            video = container.add_stream("libx264", rate=fps, options=x264_options(crf=crf, preset="veryfast"))
            height, width = _layout(len(clip.samples) + 2, size)
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            sound = None
            if audio is not None:
                sound = container.add_stream("aac", rate=audio[1])
                sound.layout = "stereo" if audio[0].shape[0] == 2 else "mono"
            sent = 0
            for chunk_start, chunk in _enumerate_chunks(compose(clip, title, size)):
                for i, rgb in enumerate(chunk):
                    for packet in video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                        container.mux(packet)
                    t = chunk_start + i
                    if thumb_every and t < thumb_last and t % thumb_every == 0:
                        thumbs.append(rgb)
                if sound is not None:
                    upto = min(int(round((chunk_start + len(chunk)) / fps * audio[1])), audio[0].shape[1])
                    sent = _encode_audio(container, sound, audio[0], sent, upto)
            for packet in video.encode():
                container.mux(packet)
            if sound is not None:
                for packet in sound.encode():
                    container.mux(packet)
    if out_thumbnail is not None and thumbnail:
        write_webp(thumbs, out_thumbnail, thumbnail["fps"], thumbnail["width"])


def _enumerate_chunks(chunks: Iterator[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
    start = 0
    for chunk in chunks:
        yield start, chunk
        start += len(chunk)


def _encode_audio(container, stream, samples: np.ndarray, start: int, stop: int) -> int:
    """Encode samples [start, stop) in the encoder's frame size (AAC takes 1024 per frame); returns the end."""
    size = stream.codec_context.frame_size or 1024
    layout = "stereo" if samples.shape[0] == 2 else "mono"
    while start < stop:
        end = min(start + size, stop)
        if end - start < size and stop < samples.shape[1]:
            break  # wait for the next chunk to fill the frame
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:end]), format="fltp",
                                           layout=layout)
        frame.sample_rate = stream.codec_context.sample_rate
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
        start = end
    return start


def write_webp(frames: Sequence[np.ndarray], path: Path, fps: float, width: int) -> None:
    """An animated, looping WebP of RGB frames scaled to `width` rounded up to a multiple of 16 pixels."""
    if not frames:
        raise ValueError(f"{path}: no frames for the thumbnail")
    width = max(16, -(-int(width) // 16) * 16)
    h, w = frames[0].shape[:2]
    height = max(2, int(round(h * width / w / 2)) * 2)
    with atomic_output(path) as tmp:
        with av.open(str(tmp), "w", format="webp") as container:
            stream = container.add_stream("libwebp_anim", rate=int(round(fps)), options={"loop": "0",
                                                                                        "quality": "70"})
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for rgb in frames:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                for packet in stream.encode(frame.reformat(width=width, height=height)):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(Path(path).read_bytes()).decode()}"


def write_page(clips: Sequence[ReactionClip], videos: Sequence[Path], thumbnails: Sequence[Path], out_html: Path,
               title: str, config_note: str) -> None:
    """A self-contained HTML page (videos and thumbnails embedded) that plays an experiment's reaction videos.

    Snakemake's report shows HTML results in a frame but offers bare mp4/WebP files only as downloads, so
    the videos reach the reader through this page.
    """
    rows = []
    for clip, thumb in zip(clips, thumbnails):
        rows.append(f"<tr><td><code>{html.escape(clip.clip)}</code> (position {clip.position})</td>"
                    f"<td>{clip.scores['FRC']:.3f}</td><td>{clip.scores['FRD']:.2f}</td>"
                    f"<td><img src=\"{_data_uri(thumb, 'image/webp')}\" alt=\"thumbnail of {html.escape(clip.clip)}\""
                    " height=\"60\"></td></tr>")
    figures = []
    for clip, video in zip(clips, videos):
        figures.append(
            f"<figure><video controls loop muted playsinline preload=\"auto\" "
            f"src=\"{_data_uri(video, 'video/mp4')}\"></video>"
            f"<figcaption><code>{html.escape(clip.clip)}</code>: FRC {clip.scores['FRC']:.3f}, "
            f"FRD {clip.scores['FRD']:.2f}{'' if clip.audio else ' (no speaker audio)'}</figcaption></figure>")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; background: #181a1f; color: #e6e6e6; margin: 1em; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }} td, th {{ padding: 2px 10px; text-align: left; }}
video {{ max-width: 100%; }} figure {{ margin: 0 0 1.2em 0; }} code {{ color: #9fd8c4; }}
</style></head><body>
<h2>{html.escape(title)}</h2>
<p>Left to right: the speaker's real video, the real listener drawn from its 25 labelled attributes, and
generated listener reactions drawn the same way, frame for frame. Brows, lids, cheeks, lips and jaw move with
the action units; the bars under each face are the 8 expression probabilities, the dot top-right is valence
(right) and arousal (up). FRC (higher is better) and FRD (lower is better) are the official metrics for this
speaker alone. {html.escape(config_note)}</p>
<table><tr><th>clip</th><th>FRC</th><th>FRD</th><th>thumbnail</th></tr>
{''.join(rows)}
</table>
{''.join(figures)}
</body></html>
"""
    with atomic_output(out_html) as tmp:
        tmp.write_text(page)


def render_split(predictions_h5: Path, emotions_h5: Path, index_tsv: Path, videos: Sequence[Path],
                 thumbnails: Sequence[Path], page: Path, settings: Mapping | None, title: str,
                 config_note: str = "", fps: int = 25) -> list[ReactionClip]:
    """Render `len(videos)` clips of one split (evenly spread) with their thumbnails and the HTML page."""
    s = resolve_render_settings(dict(settings or {}))
    if len(videos) != len(thumbnails):
        raise ValueError("one thumbnail per video is needed")
    count = len(load_emotions(emotions_h5).clips)
    positions = pick_positions(count, len(videos))
    if len(positions) < len(videos):
        raise ValueError(f"{emotions_h5}: only {count} clips, cannot render {len(videos)}")
    clips = load_clips(predictions_h5, emotions_h5, index_tsv, positions, s["samples"])
    for clip, video, thumb in zip(clips, videos, thumbnails):
        started = time.perf_counter()
        write_video(clip, Path(video), f"{title}  \u00b7  {clip.clip}", s["size"], fps, s["crf"], s["thumbnail"],
                    Path(thumb))
        log.info("rendered %s (%d frames) in %.1f s -> %s", clip.clip, len(clip.listener),
                 time.perf_counter() - started, video)
    write_page(clips, videos, thumbnails, page, title, config_note)
    return clips


def render_experiment(config: Mapping, experiment: str, seed: int, split: str, results: Path = Path("results"),
                      clips: int | None = None, config_name: str = "") -> Path:
    """Render with the standard result layout (what `regnn render` uses); returns the HTML page."""
    settings = resolve_render_settings(config.get("render"))
    count = settings["clips"] if clips is None else clips
    layout = Results(results)
    render_split(layout.predictions(experiment, seed, split), layout.emotions(split), layout.index(split),
                 [layout.reaction_video(experiment, seed, split, k) for k in range(count)],
                 [layout.reaction_thumbnail(experiment, seed, split, k) for k in range(count)],
                 layout.reaction_page(experiment, seed, split), settings,
                 f"{experiment} \u00b7 {split} \u00b7 seed {seed}", f"Config: {config_name}." if config_name else "")
    return layout.reaction_page(experiment, seed, split)
