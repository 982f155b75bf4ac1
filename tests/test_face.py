"""The 25-attribute face: each FACS action unit moves its part, the panels show the expression and
valence/arousal, and the drawing is deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from regnn.data.layout import EMOTION_COLUMNS
from regnn.face import ATTRIBUTES, EXPRESSION_COLOURS, render_faces

SIZE = 128


def attributes(**values: float) -> np.ndarray:
    """One attribute vector: neutral expression, everything else 0, plus the named values."""
    a = np.zeros(len(ATTRIBUTES), np.float32)
    a[ATTRIBUTES.index("Neutral")] = 1.0
    for name, value in values.items():
        a[ATTRIBUTES.index(name)] = value
    return a


def draw(size: int = SIZE, panels: bool = True, **values: float) -> np.ndarray:
    return render_faces(attributes(**values), size, panels=panels).astype(np.int32)


def near(frame: np.ndarray, rgb: tuple[float, float, float], tol: int = 40) -> np.ndarray:
    """Pixels within `tol` (per channel) of a colour."""
    return np.all(np.abs(frame - np.array(rgb) * 255) < tol, axis=-1)


def mean_row(mask: np.ndarray) -> float:
    rows, _ = np.nonzero(mask)
    assert len(rows), "the part is not drawn at all"
    return float(rows.mean())


def lips(frame: np.ndarray) -> np.ndarray:
    return near(frame, (0.78, 0.33, 0.33), 30) | near(frame, (0.30, 0.06, 0.08), 30)


def test_attribute_order_is_the_react_column_order() -> None:
    assert list(ATTRIBUTES) == EMOTION_COLUMNS


def test_shapes_and_dtype() -> None:
    frames = render_faces(np.zeros((3, 25)), 48)
    assert frames.shape == (3, 48, 48, 3) and frames.dtype == np.uint8
    assert render_faces(np.zeros(25), 32, panels=False).shape == (32, 32, 3)
    with pytest.raises(ValueError, match=r"shape \(T, 25\)"):
        render_faces(np.zeros((3, 24)), 48)
    with pytest.raises(ValueError, match="NaN"):
        render_faces(np.full(25, np.nan), 48)


def test_every_action_unit_changes_the_face() -> None:
    neutral = draw(panels=False)
    for name in ATTRIBUTES[:15]:
        changed = np.abs(draw(panels=False, **{name: 1.0}) - neutral).max(axis=-1) > 30
        assert changed.sum() >= 8, f"{name} barely changes the face ({changed.sum()} pixels)"


def corner_row(frame: np.ndarray) -> float:
    """Mean row of the lip pixels in the two outermost columns the lips reach on the right."""
    mask = lips(frame)
    mask[: SIZE // 2] = False  # the mouth is in the lower half
    right = np.nonzero(mask.any(axis=0))[0].max()
    return mean_row(mask[:, right - 1: right + 1])


def test_au12_pulls_the_lip_corners_up_and_au15_down() -> None:
    rest = corner_row(draw())
    assert corner_row(draw(AU12=1.0)) < rest - 2
    assert corner_row(draw(AU15=1.0)) > rest + 2


def test_au25_au26_open_the_mouth_and_au26_drops_the_jaw() -> None:
    cavity = lambda f: near(f, (0.30, 0.06, 0.08), 25)[:, SIZE // 2].sum()  # noqa: E731  (centre column)
    closed = cavity(draw())
    parted = cavity(draw(AU25=1.0))
    dropped = cavity(draw(AU25=1.0, AU26=1.0))
    assert closed <= 2 and parted >= closed + 2 and dropped >= parted + 4
    skin = lambda f: near(f, (0.96, 0.80, 0.66), 20)[:, SIZE // 2].nonzero()[0].max()  # noqa: E731
    assert skin(draw(AU26=1.0)) >= skin(draw()) + 3  # the chin is lower


def test_brows_rise_with_au1_au2_and_fall_with_au4() -> None:
    brow = lambda f: mean_row(near(f, (0.30, 0.20, 0.14), 25)[: SIZE // 2])  # noqa: E731
    rest = brow(draw())
    assert brow(draw(AU1=1.0, AU2=1.0)) < rest - 3
    assert brow(draw(AU4=1.0)) > rest + 2


def test_lids_close_with_au7_and_cheeks_rise_with_au6() -> None:
    white = lambda f: near(f, (0.98, 0.98, 0.97), 20).sum()  # noqa: E731
    assert white(draw(AU7=1.0)) < 0.7 * white(draw())
    def blush(frame: np.ndarray) -> tuple[float, float]:
        """Total redness above the skin's on the right cheek (beside the mouth), and its centroid row."""
        cheek = np.s_[SIZE // 3: SIZE // 2 + 16, SIZE // 2 + 16: SIZE // 2 + 30]
        red = np.clip(frame[..., 0] - frame[..., 1] - 45, 0, None)[cheek]
        rows = np.arange(red.shape[0])[:, None]
        return float(red.sum()), float((red * rows).sum() / red.sum())

    (rest, rest_row), (raised, raised_row) = blush(draw(panels=False)), blush(draw(panels=False, AU6=1.0))
    assert raised > 2 * rest and raised_row < rest_row - 1.5  # deeper and higher


def test_panels_show_expression_and_valence_arousal() -> None:
    happy = near(draw(Happy=1.0, Neutral=0.0), EXPRESSION_COLOURS["Happy"], 20).sum()
    assert happy > near(draw(), EXPRESSION_COLOURS["Happy"], 20).sum() + 50
    assert near(draw(panels=False, Happy=1.0, Neutral=0.0), EXPRESSION_COLOURS["Happy"], 20).sum() == 0
    dot = lambda f: np.nonzero(near(f, (0.3, 0.95, 0.75), 30))  # noqa: E731
    rows_lo, cols_lo = dot(draw(valence=-1.0, arousal=-1.0))
    rows_hi, cols_hi = dot(draw(valence=1.0, arousal=1.0))
    assert cols_hi.mean() > cols_lo.mean() + 5 and rows_hi.mean() < rows_lo.mean() - 5  # right and up


def test_deterministic_clipped_and_independent_of_batching() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(-0.5, 1.5, (40, 25)).astype(np.float32)
    frames = render_faces(a, 64)
    assert np.array_equal(frames, render_faces(a.copy(), 64))
    assert np.array_equal(frames[17], render_faces(a[17], 64))  # a frame does not depend on its neighbours
    clipped = a.copy()
    clipped[:, :15] = np.clip(a[:, :15], 0, 1)
    clipped[:, 15:17] = np.clip(a[:, 15:17], -1, 1)
    clipped[:, 17:] = np.clip(a[:, 17:], 0, 1)
    assert np.array_equal(frames, render_faces(clipped, 64))
