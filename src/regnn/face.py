"""A 2-D face drawn from REGNN's 25 facial attributes, so a reaction can be watched instead of read.

REGNN predicts 15 AU occurrences, valence, arousal and 8 expression probabilities per frame; the official
renderers need 3DMM coefficients it does not have. This face moves the part each AU drives in FACS: AU1/AU2
raise the inner/outer brow, AU4 lowers and knits the brows, AU6 lifts the cheeks and lower lids, AU7 tightens
the lids, AU9 wrinkles the nose, AU10 lifts the upper lip, AU12 pulls the lip corners up and out, AU14 dimples,
AU15 pulls the corners down, AU17 lifts the chin and lower lip, AU23/AU24 tighten and press the lips, AU25
parts the lips and AU26 drops the jaw. With `panels`, a bar per expression probability (colour-coded, see
`EXPRESSION_COLOURS`) runs along the bottom and a valence/arousal gauge sits in the top-right corner.

The drawing is numpy only and vectorised over frames: a static base image (background, face, nose) is
painted once per size, and each moving part is computed only inside its fixed bounding box, with soft
(anti-aliased) edges. A 750-frame clip at 128 px takes well under a second on one core (see
benchmarks/face.py). Values are clipped to their ranges (AUs and probabilities to [0, 1], valence/arousal to
[-1, 1]), so continuous generated attributes draw as well as the binary labels. The output is a pure function
of the attributes and the size (no randomness, no global state), so the same input gives the same bytes.

The synthetic dataset's videos and the reaction videos both draw with this module: one face in the project.
This is a ground-floor module; it knows the attribute order (`ATTRIBUTES`, the REACT emotion CSV's column
order, pinned equal to `regnn.data.layout.EMOTION_COLUMNS` by a test) but imports nothing from the project.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

ATTRIBUTES = (
    "AU1", "AU2", "AU4", "AU6", "AU7", "AU9", "AU10", "AU12", "AU14", "AU15", "AU17", "AU23", "AU24",
    "AU25", "AU26", "valence", "arousal", "Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger",
    "Contempt",
)
_COL = {name: i for i, name in enumerate(ATTRIBUTES)}
EXPRESSIONS = ATTRIBUTES[17:]
EXPRESSION_COLOURS = {  # RGB in [0, 1]; the expression bars' colours, in EXPRESSIONS order
    "Neutral": (0.62, 0.62, 0.62), "Happy": (1.00, 0.80, 0.10), "Sad": (0.25, 0.45, 0.95),
    "Surprise": (1.00, 0.55, 0.10), "Fear": (0.60, 0.30, 0.80), "Disgust": (0.35, 0.70, 0.25),
    "Anger": (0.90, 0.15, 0.15), "Contempt": (0.55, 0.35, 0.20),
}

_BACKGROUND = np.array((0.16, 0.18, 0.22), np.float32)
_SKIN = np.array((0.96, 0.80, 0.66), np.float32)
_SKIN_SHADE = np.array((0.80, 0.60, 0.48), np.float32)
_DARK = np.array((0.22, 0.14, 0.12), np.float32)
_BROW = np.array((0.30, 0.20, 0.14), np.float32)
_LIP = np.array((0.78, 0.33, 0.33), np.float32)
_MOUTH = np.array((0.30, 0.06, 0.08), np.float32)
_WHITE = np.array((0.98, 0.98, 0.97), np.float32)
_IRIS = np.array((0.25, 0.40, 0.55), np.float32)
_BLUSH = np.array((0.95, 0.45, 0.45), np.float32)

# Face geometry in normalised coordinates: x right, y down, the frame spans [-0.5, 0.5] in both.
_FACE_CY, _FACE_A, _FACE_B = -0.04, 0.33, 0.38  # centre height, half width, half height (jaw closed)
_JAW_DROP = 0.05  # how far AU26 lowers the chin
_EYE_X, _EYE_Y, _EYE_W = 0.14, -0.10, 0.075
_MOUTH_Y, _MOUTH_W = 0.17, 0.13


@dataclass(frozen=True)
class _Box:
    """A part's fixed pixel bounding box and its pixel-centre coordinates (normalised units)."""

    rows: slice
    cols: slice
    x: np.ndarray  # (1, h, w)
    y: np.ndarray  # (1, h, w)


@dataclass(frozen=True)
class _Geometry:
    size: int
    panels: bool
    base: np.ndarray  # (3, 1, size, size) float32 in [0, 1]: background, static face, nose
    face_scale: float  # normalised units -> face units (the face shrinks to leave room for panels)
    boxes: dict[str, _Box]


def _box(size: int, x0: float, x1: float, y0: float, y1: float) -> _Box:
    """Pixels whose centres may fall in [x0, x1] x [y0, y1] (normalised), clamped to the frame."""
    def span(lo: float, hi: float) -> slice:
        a = max(int(np.floor((lo + 0.5) * size)) - 1, 0)
        b = min(int(np.ceil((hi + 0.5) * size)) + 1, size)
        return slice(a, b)
    rows, cols = span(y0, y1), span(x0, x1)
    centres = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    return _Box(rows, cols, centres[cols][None, None, :], centres[rows][None, :, None])


def _alpha(signed_distance: np.ndarray, size: int) -> np.ndarray:
    """Coverage of a shape from the signed distance (normalised units, < 0 inside): a one-pixel soft edge."""
    return np.clip(0.5 - signed_distance * size, 0.0, 1.0)


def _ellipse_sd(x: np.ndarray, y: np.ndarray, cx, cy, a, b) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse (exact on its axes; fine for drawing)."""
    r = np.sqrt(((x - cx) / a) ** 2 + ((y - cy) / b) ** 2)
    return (r - 1.0) * np.minimum(a, b)


def _segment_sd(x, y, x0, y0, x1, y1, half_width) -> np.ndarray:
    """Signed distance to a thick line segment (a stroke with round caps); endpoints broadcast over frames."""
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy + 1e-12), 0.0, 1.0)
    return np.hypot(x - (x0 + t * dx), y - (y0 + t * dy)) - half_width


def _paint(out: np.ndarray, box: _Box, alpha: np.ndarray, colour: np.ndarray) -> None:
    """Blend `colour` over `out` inside `box` with per-pixel coverage `alpha` (T, h, w).

    `out` is planar, (3, T, H, W) float32: with the channel first, numpy's inner loops run along image rows
    instead of over 3 channels, which made painting about 3x faster than (T, H, W, 3)."""
    region = out[:, :, box.rows, box.cols]
    blend = np.subtract(np.reshape(colour, (3, 1, 1, 1)), region, dtype=np.float32)
    blend *= alpha
    region += blend


def _col(values: np.ndarray) -> np.ndarray:
    """A per-frame attribute as (T, 1, 1) so it broadcasts over a box's pixels."""
    return values.astype(np.float32)[:, None, None]


@lru_cache(maxsize=16)
def _geometry(size: int, panels: bool) -> _Geometry:
    """Static parts and bounding boxes for one frame size (cached: the synthetic data draws thousands)."""
    if size < 16:
        raise ValueError(f"face size {size} px is too small to draw (need >= 16)")
    scale = 0.80 if panels else 1.0
    s = scale
    boxes = {
        "jaw": _box(size, -_FACE_A * s, _FACE_A * s, 0.08 * s, (_FACE_CY + _FACE_B + _JAW_DROP) * s),
        "nose": _box(size, -0.045 * s, 0.045 * s, -0.065 * s, -0.015 * s),
        "mouth": _box(size, -0.17 * s, 0.17 * s, 0.05 * s, 0.31 * s),
    }
    for side in (-1, 1):  # paired parts get a box per side: half the pixels of one box around both
        boxes[f"brow{side}"] = _box(size, *sorted((side * 0.02 * s, side * 0.27 * s)), -0.28 * s, -0.15 * s)
        boxes[f"eye{side}"] = _box(size, (side * _EYE_X - _EYE_W) * s, (side * _EYE_X + _EYE_W) * s,
                                   -0.165 * s, -0.055 * s)
        boxes[f"dimple{side}"] = _box(size, *sorted((side * 0.09 * s, side * 0.19 * s)), 0.11 * s, 0.24 * s)
        boxes[f"cheek{side}"] = _box(size, (side * 0.20 - 0.065) * s, (side * 0.20 + 0.065) * s,
                                     -0.01 * s, 0.115 * s)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    x, y = ((xx + 0.5) / size - 0.5)[None], ((yy + 0.5) / size - 0.5)[None]
    base = np.broadcast_to(_BACKGROUND.reshape(3, 1, 1, 1), (3, 1, size, size)).copy()
    whole = _Box(slice(0, size), slice(0, size), x, y)
    # The face down to the jaw's closed position; the jaw pass redraws the chin per frame.
    _paint(base, whole, _alpha(_ellipse_sd(x, y, 0.0, _FACE_CY * s, _FACE_A * s, _FACE_B * s), size), _SKIN)
    for side in (-1, 1):  # ears
        ear = _ellipse_sd(x, y, side * (_FACE_A - 0.01) * s, -0.07 * s, 0.035 * s, 0.07 * s)
        _paint(base, whole, _alpha(np.maximum(ear, -_ellipse_sd(x, y, 0.0, _FACE_CY * s, _FACE_A * s,
                                                                _FACE_B * s)), size), _SKIN_SHADE)
    line = max(0.6 / size, 0.008 * s)
    nose = _segment_sd(x, y, 0.0, -0.06 * s, 0.02 * s, 0.05 * s, line)
    nose = np.minimum(nose, _segment_sd(x, y, 0.02 * s, 0.05 * s, -0.02 * s, 0.06 * s, line))
    _paint(base, whole, _alpha(nose, size) * 0.7, _SKIN_SHADE * 0.8)
    if panels:
        _gauge_frame(base, size)
    return _Geometry(size, panels, base, s, boxes)


def _gauge_box(size: int) -> tuple[_Box, float, float, float]:
    """The valence/arousal gauge: a square in the top-right corner (box, centre x, centre y, half side)."""
    half = 0.075
    cx, cy = 0.5 - half - 0.02, -0.5 + half + 0.02
    return _box(size, cx - half, cx + half, cy - half, cy + half), cx, cy, half


def _gauge_frame(base: np.ndarray, size: int) -> None:
    """The static part of the gauge: a dark square with a cross (valence right, arousal up)."""
    box, cx, cy, half = _gauge_box(size)
    square = np.maximum(np.abs(box.x - cx), np.abs(box.y - cy)) - half
    _paint(base, box, _alpha(square, size) * 0.85, np.array((0.06, 0.07, 0.09), np.float32))
    line = 0.5 / size
    cross = np.minimum(np.abs(box.x - cx), np.abs(box.y - cy)) - line
    _paint(base, box, _alpha(np.maximum(cross, square), size) * 0.6, np.array((0.5, 0.5, 0.55), np.float32))


def render_faces(attributes: np.ndarray, size: int = 128, *, panels: bool = True) -> np.ndarray:
    """Draw one face per row of `attributes` ((T, 25) or (25,), REACT column order, see `ATTRIBUTES`).

    Returns uint8 frames (T, size, size, 3) (or (size, size, 3) for one vector). `panels=False` leaves out
    the expression bars and the valence/arousal gauge (for small faces, e.g. the synthetic data's 32-64 px
    videos, where only the face itself should carry the expression).
    """
    a = np.asarray(attributes, dtype=np.float32)
    single = a.ndim == 1
    if single:
        a = a[None]
    if a.ndim != 2 or a.shape[1] != len(ATTRIBUTES):
        raise ValueError(f"face attributes must have shape (T, {len(ATTRIBUTES)}), got {np.shape(attributes)}")
    if not np.all(np.isfinite(a)):
        raise ValueError("face attributes contain NaN or infinite values")
    geo = _geometry(int(size), bool(panels))
    au = {name: _col(np.clip(a[:, _COL[name]], 0.0, 1.0)) for name in ATTRIBUTES[:15]}
    frames = np.empty((len(a), size, size, 3), np.uint8)
    chunk = max(1, 2**18 // (size * size))  # frames per pass: keeps the float work buffer near 3 MB
    for start in range(0, len(a), chunk):
        stop = min(start + chunk, len(a))
        part = {name: v[start:stop] for name, v in au.items()}
        out = np.broadcast_to(geo.base, (3, stop - start, size, size)).copy()
        _draw_parts(out, geo, part)
        if panels:
            _draw_panels(out, geo, a[start:stop])
        out *= 255.0
        out += 0.5  # round; every blend stays within [0, 1], so no clip is needed
        frames[start:stop] = out.transpose(1, 2, 3, 0)
    return frames[0] if single else frames


def _draw_parts(out: np.ndarray, geo: _Geometry, au: dict[str, np.ndarray]) -> None:
    """The moving parts, each inside its own box: jaw, cheeks, eyes, brows, nose wrinkles, mouth."""
    size, s = geo.size, geo.face_scale
    b = geo.boxes
    line = max(0.6 / size, 0.008 * s)

    # Jaw: AU26 lowers the chin (the face below the nose redrawn with a longer half-height; it only grows).
    box = b["jaw"]
    jaw_b = (_FACE_B + _JAW_DROP * au["AU26"]) * s
    lower = _ellipse_sd(box.x, box.y, 0.0, _FACE_CY * s, _FACE_A * s, jaw_b)
    _paint(out, box, _alpha(lower, size), _SKIN)
    # AU17 chin raiser: a chin crease that rises with the chin boss.
    chin_y = (_FACE_CY + _FACE_B - 0.07) * s + 0.04 * s * au["AU26"] - 0.02 * s * au["AU17"]
    chin = _segment_sd(box.x, box.y, -0.05 * s, chin_y, 0.05 * s, chin_y, line)
    _paint(out, box, _alpha(chin, size) * (0.8 * au["AU17"]), _SKIN_SHADE)

    # Cheeks: AU6 raises them (blush ellipses move up and deepen).
    cheek_y = (0.07 - 0.035 * au["AU6"]) * s
    for side in (-1, 1):
        box = b[f"cheek{side}"]
        cheek = _ellipse_sd(box.x, box.y, side * 0.20 * s, cheek_y, 0.06 * s, 0.04 * s)
        _paint(out, box, _alpha(cheek, size) * (0.15 + 0.45 * au["AU6"]), _BLUSH)

    # Eyes: upper lid height falls with AU7; lower lid rises with AU6 and AU7; AU1/AU2 widen them a little.
    upper = (0.045 - 0.022 * au["AU7"] + 0.008 * au["AU1"] + 0.006 * au["AU2"]) * s
    lower = (0.035 - 0.018 * au["AU6"] - 0.010 * au["AU7"]) * s
    for side in (-1, 1):
        box = b[f"eye{side}"]
        dx = (box.x - side * _EYE_X * s) / (_EYE_W * s)
        lid = np.clip(1.0 - dx * dx, 0.0, 1.0)
        dy = box.y - _EYE_Y * s
        # The almond between the lid curves: y from -upper*lid to +lower*lid.
        inside = np.maximum(-(dy + upper * lid), dy - lower * lid)
        inside = np.maximum(inside, (np.abs(dx) - 1.0) * _EYE_W * s)
        _paint(out, box, _alpha(inside, size), _WHITE)
        iris = _ellipse_sd(box.x, box.y, side * _EYE_X * s, _EYE_Y * s, 0.028 * s, 0.028 * s)
        _paint(out, box, _alpha(np.maximum(iris, inside), size), _IRIS)
        pupil = _ellipse_sd(box.x, box.y, side * _EYE_X * s, _EYE_Y * s, 0.012 * s, 0.012 * s)
        _paint(out, box, _alpha(np.maximum(pupil, inside), size), _DARK)
        upper_lid = np.abs(dy + upper * lid) - line
        _paint(out, box, _alpha(np.maximum(upper_lid, (np.abs(dx) - 1.0) * _EYE_W * s), size), _DARK)

    # Brows: AU1 raises the inner ends, AU2 the outer ends, AU4 lowers both and pulls the inner ends together.
    inner_y = (-0.19 - 0.06 * au["AU1"] + 0.045 * au["AU4"]) * s
    outer_y = (-0.19 - 0.06 * au["AU2"] + 0.02 * au["AU4"]) * s
    inner_x = (0.06 - 0.025 * au["AU4"]) * s
    width = max(1.0 / size, 0.014 * s)
    for side in (-1, 1):
        box = b[f"brow{side}"]
        brow = _segment_sd(box.x, box.y, side * inner_x, inner_y, side * 0.24 * s, outer_y, width)
        _paint(out, box, _alpha(brow, size), _BROW)

    # Nose: AU9 wrinkles the bridge (short creases fade in).
    box = b["nose"]
    for k, yk in enumerate((-0.05, -0.03)):
        crease = _segment_sd(box.x, box.y, -0.035 * s, yk * s, 0.035 * s, (yk + 0.006 * (k - 0.5)) * s, line)
        _paint(out, box, _alpha(crease, size) * (0.8 * au["AU9"]), _SKIN_SHADE * 0.85)

    _draw_mouth(out, geo, au)


def _draw_mouth(out: np.ndarray, geo: _Geometry, au: dict[str, np.ndarray]) -> None:
    """Lips between two curves. Corners: AU12 up/out, AU15 down, AU14 in (with dimples), AU23/AU24 narrower;
    opening: AU25 parts the lips, AU26 drops the lower lip with the jaw, AU24 presses them; AU10 lifts the
    upper lip, AU17 pushes the lower lip up."""
    size, s = geo.size, geo.face_scale
    box = geo.boxes["mouth"]
    half_w = (_MOUTH_W * (1.0 + 0.25 * au["AU12"] - 0.15 * au["AU14"] - 0.22 * au["AU23"] - 0.10 * au["AU24"])) * s
    corner = (0.045 * au["AU12"] - 0.035 * au["AU15"]) * s  # how far the corners sit above the centre line
    centre_y = (_MOUTH_Y + 0.03 * au["AU26"]) * s
    gap = (0.004 + 0.025 * au["AU25"] + 0.045 * au["AU26"]) * (1.0 - 0.8 * au["AU24"]) * s
    up_gap = gap * (0.5 + 0.3 * au["AU10"])
    low_gap = gap - up_gap + (0.005 * au["AU10"] - 0.008 * au["AU17"]) * s
    thick = (0.022 * (1.0 - 0.45 * au["AU24"] - 0.30 * au["AU23"])) * s
    thick = np.maximum(thick, 0.8 / size)
    u = box.x / half_w
    shape = np.clip(1.0 - u * u, 0.0, 1.0)  # 1 at the centre, 0 at the corners
    mid = centre_y - corner * (1.0 - shape)  # the lips' centre line, bent up (smile) or down at the corners
    dy = box.y - mid
    beyond = (np.abs(box.x) - half_w)
    inner = np.maximum(np.maximum(-(dy + up_gap * shape), dy - low_gap * shape), beyond)
    lips = np.maximum(np.maximum(-(dy + (up_gap + thick) * shape + 0.3 * thick), dy - (low_gap + thick) * shape
                                 - 0.3 * thick), beyond)
    _paint(out, box, _alpha(lips, size), _LIP)
    _paint(out, box, _alpha(inner, size), _MOUTH)
    seam = np.maximum(np.abs(dy) - max(0.5 / size, 0.004 * s), beyond)  # the lip line when closed
    _paint(out, box, _alpha(seam, size) * 0.8, _MOUTH)
    # AU14 dimples just outside the corners.
    for side in (-1, 1):
        box = geo.boxes[f"dimple{side}"]
        dimple = _ellipse_sd(box.x, box.y, side * (half_w + 0.02 * s), centre_y - corner, 0.008 * s, 0.014 * s)
        _paint(out, box, _alpha(dimple, size) * (0.8 * au["AU14"]), _SKIN_SHADE * 0.85)


def _draw_panels(out: np.ndarray, geo: _Geometry, a: np.ndarray) -> None:
    """Expression probability bars along the bottom and the valence/arousal dot in the gauge."""
    size = geo.size
    n = len(EXPRESSIONS)
    left, right, bottom, height = -0.46, 0.46, 0.48, 0.09
    slot = (right - left) / n
    probs = np.clip(a[:, 17:25], 0.0, 1.0)
    for k, name in enumerate(EXPRESSIONS):
        x0 = left + k * slot + 0.1 * slot
        x1 = left + (k + 1) * slot - 0.1 * slot
        box = _box(size, x0, x1, bottom - height, bottom)
        top = bottom - height * _col(probs[:, k])
        bar = np.maximum(np.maximum(x0 - box.x, box.x - x1), np.maximum(top - box.y, box.y - bottom))
        track = np.maximum(np.maximum(x0 - box.x, box.x - x1), np.abs(box.y - bottom) - 0.6 / size)
        _paint(out, box, _alpha(track, size) * 0.6, np.array(EXPRESSION_COLOURS[name], np.float32))
        _paint(out, box, _alpha(bar, size), np.array(EXPRESSION_COLOURS[name], np.float32))
    box, cx, cy, half = _gauge_box(size)
    vx = cx + half * 0.75 * _col(np.clip(a[:, _COL["valence"]], -1.0, 1.0))
    vy = cy - half * 0.75 * _col(np.clip(a[:, _COL["arousal"]], -1.0, 1.0))
    dot = _ellipse_sd(box.x, box.y, vx, vy, max(1.2 / size, 0.014), max(1.2 / size, 0.014))
    _paint(out, box, _alpha(dot, size), np.array((0.3, 0.95, 0.75), np.float32))
