"""The MARS dataset (REACT 2025/2026): walk a split, pair the roles, check every file, cache the attributes.

MARS has no split CSV and no neighbour matrix (notes/react2025.md §1, §4): a split is the folder tree
`<split>/<modality>/<role>/<session>/<stem>.<ext>`, a speaker clip's partner is the listener file of the
same name, and every listener of the same session and split is an appropriate reaction. Clips run from 58
to over 20,000 frames. The official loaders filter junk differently (some crash on AppleDouble `._*` files)
and assume all modalities of a clip have the same length; here junk is ignored and logged, and every
length is checked, with every problem reported at once, naming the file.

Outputs of `index_split` (each written atomically, none on failure):
- `index.tsv`: one row per sample (input clip -> partner clip), its length and files;
- `emotions.h5`: the facial attributes of every clip, concatenated (`emotions` (sum T, 25) float32 with
  `offsets`), clip keys, lengths and sessions, and per sample the input (`speaker_index`) and partner
  (`listener_index`) clip;
- `targets.tsv`: the evaluation target set per sample (`draw_targets`);
- `skipped.tsv` when asked (`incomplete: skip`): the samples dropped and why.
"""

from __future__ import annotations

import csv
import logging
import os
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
import h5py
import numpy as np
import soundfile

from regnn.data.layout import EMOTION_DIMS, DatasetError
from regnn.io import atomic_output, decode_strings

log = logging.getLogger(__name__)

FPS = 30.0
"""Every official loader and config hard-codes 30 fps (no MARS file states it)."""
SPLITS = ("train", "val", "test")
ROLES = ("speaker", "listener")
ATTRIBUTES = "facial-attributes"
VIDEO = "video-face-crop"
AUDIO = "audio"
COEFFICIENTS = "coefficients"
REQUIRED = {ATTRIBUTES: ".npy", VIDEO: ".mp4", AUDIO: ".wav"}
OPTIONAL = {COEFFICIENTS: ".npy"}
COEFFICIENT_DIMS = 58
JUNK_FOLDERS = ("__MACOSX", "PaxHeader")
DIRECTIONS = ("both", "speaker_to_listener")
LENGTH_TOLERANCE = 3
"""Default frames by which a clip's video, audio and coefficients may differ from its facial attributes."""
TARGET_COUNT = 10
TARGET_SEED = 1
"""The evaluation target set: the paired clip plus up to TARGET_COUNT - 1 others of the session."""
INDEX_COLUMNS = ["position", "speaker", "listener", "session", "frames", "listener_frames", "video", "audio",
                 "emotion"]
TARGET_COLUMNS = ["speaker", "target"]
SKIPPED_COLUMNS = ["clip", "reason"]


def is_junk(name: str) -> bool:
    """AppleDouble `._*`, `.DS_Store` and other dot entries, `__MACOSX`, `PaxHeader` (tar's extended headers)."""
    return name.startswith(".") or name in JUNK_FOLDERS


def partner_key(key: str) -> str:
    """`speaker/<session>/<stem>` <-> `listener/<session>/<stem>`."""
    role, rest = key.split("/", 1)
    return f"{ROLES[1 - ROLES.index(role)]}/{rest}"


def _natural(key: str) -> list:
    """Sort session10 after session9."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key)]


def _sample_order(key: str) -> tuple:
    role, rest = key.split("/", 1)
    return ROLES.index(role), _natural(rest)


@dataclass
class SplitFiles:
    """What a walk of one split found: per modality, clip key -> file; the junk; problems by clip key."""

    files: dict[str, dict[str, Path]]
    junk: list[Path]
    problems: dict[str, list[str]]  # clip key ("" for a file that is no clip) -> problems


def walk_split(root: Path, split: str, modalities: Mapping[str, str] = REQUIRED) -> SplitFiles:
    """Every clip file of the split by modality and key, without opening any (junk pruned and recorded).

    `modalities` (folder -> extension) are required; the optional coefficients are walked with them."""
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise DatasetError([f"{split_dir}: split folder is missing"])
    walked = {**modalities, **OPTIONAL}
    found = SplitFiles({m: {} for m in walked}, [p for p in sorted(split_dir.iterdir()) if is_junk(p.name)],
                       defaultdict(list))
    for modality, ext in walked.items():
        base = split_dir / modality
        if not base.is_dir():
            if modality in modalities:
                found.problems[""].append(f"{base}: {modality} folder is missing")
            continue
        for folder, dirs, names in os.walk(base):
            here = Path(folder)
            found.junk += [here / d for d in dirs if is_junk(d)]
            dirs[:] = sorted(d for d in dirs if not is_junk(d))
            for name in sorted(names):
                path = here / name
                if is_junk(name):
                    found.junk.append(path)
                    continue
                parts = path.relative_to(base).parts
                if len(parts) != 3 or parts[0] not in ROLES or path.suffix != ext:
                    found.problems[""].append(f"{path}: not a {modality} clip (expected "
                                              f"{base}/<speaker|listener>/<session>/<stem>{ext})")
                    continue
                found.files[modality][f"{parts[0]}/{parts[1]}/{Path(parts[2]).stem}"] = path
    return found


def _attributes(path: Path) -> tuple[np.ndarray | None, list[str]]:
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        return None, [f"{path}: unreadable facial-attributes file ({err})"]
    if not np.issubdtype(values.dtype, np.number):
        return None, [f"{path}: facial attributes have dtype {values.dtype}, expected numbers"]
    values = np.squeeze(values) if values.ndim > 2 else values  # tolerate singleton axes, like .squeeze()
    if values.ndim != 2 or values.shape[1] != EMOTION_DIMS or values.shape[0] < 1:
        return None, [f"{path}: facial attributes have shape {values.shape}, expected (frames, {EMOTION_DIMS})"]
    if not np.isfinite(values).all():
        row, col = np.argwhere(~np.isfinite(values))[0]
        return None, [f"{path}: facial attributes have a non-finite value at frame {row}, column {col}"]
    return values.astype(np.float32), []


def _video_frames(path: Path) -> tuple[int | None, str | None]:
    try:  # the container header only; decoding is the feature stage's job
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None, f"{path}: video file has no video stream"
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames), None
            if stream.duration and stream.average_rate:
                return int(round(float(stream.duration * stream.time_base * stream.average_rate))), None
            return sum(1 for _ in container.demux(stream) if _.size), None
    except (av.error.FFmpegError, OSError) as err:
        return None, f"{path}: video file is unreadable ({err})"


def _audio_frames(path: Path) -> tuple[float | None, str | None]:
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError) as err:
        return None, f"{path}: audio is unreadable ({err})"
    if info.frames == 0:
        return None, f"{path}: audio has no samples"
    return info.frames / info.samplerate * FPS, None


def _coefficients_frames(path: Path) -> tuple[int | None, str | None]:
    try:
        values = np.load(path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError, EOFError) as err:
        return None, f"{path}: unreadable coefficients file ({err})"
    values = np.squeeze(values) if values.ndim > 2 else values  # 2024 shipped (T, 1, 58)
    if values.ndim != 2 or values.shape[1] != COEFFICIENT_DIMS:
        return None, f"{path}: coefficients have shape {values.shape}, expected (frames, {COEFFICIENT_DIMS})"
    if not np.isfinite(values).all():
        return None, f"{path}: coefficients have non-finite values"
    return int(values.shape[0]), None


def check_clip(files: Mapping[str, Path], tolerance: int) -> tuple[np.ndarray | None, list[str]]:
    """A clip's attributes and every problem of its files (decoding, shape, finiteness, lengths)."""
    attributes, problems = _attributes(files[ATTRIBUTES])
    lengths: dict[str, float] = {}
    for modality, measure in ((VIDEO, _video_frames), (AUDIO, _audio_frames), (COEFFICIENTS, _coefficients_frames)):
        if modality in files:
            n, problem = measure(files[modality])
            if problem:
                problems.append(problem)
            else:
                lengths[modality] = n
    if attributes is not None:
        for modality, n in lengths.items():
            if abs(n - len(attributes)) > tolerance:
                problems.append(f"{files[modality]}: {modality} has {n:g} frames at {FPS:g} fps but the facial "
                                f"attributes {files[ATTRIBUTES]} have {len(attributes)} (tolerance {tolerance})")
    return attributes, problems


def draw_targets(samples: Sequence[tuple[str, str]], candidates: Mapping[tuple[str, str], Sequence[str]],
                 count: int = TARGET_COUNT, seed: int = TARGET_SEED) -> list[tuple[str, str]]:
    """The evaluation target set of each sample (input, partner), as (input, target) rows.

    Following REGNN's 2025/2026 test loader: the paired clip first, then `count - 1` others drawn without
    replacement from the partner role's clips of the same session; a session with fewer has all of them
    (no padding, no duplicates). Each sample's draw is seeded by `seed` and its own key only, so dropping
    one clip never changes another session's sets. `candidates[(role, session)]` lists the clips.
    """
    rows = []
    for key, partner in samples:
        role, session, _ = partner.split("/")
        others = sorted((c for c in candidates[(role, session)] if c != partner), key=_natural)
        if len(others) > count - 1:
            others = random.Random(f"{seed}:{key}").sample(others, count - 1)
        rows += [(key, t) for t in [partner, *others]]
    return rows


def read_targets(path: Path, samples: Sequence[str], known: Iterable[str]) -> dict[str, list[str]]:
    """A target TSV (`speaker`, `target`: clip keys relative to the split, no extension), checked."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError([f"{path}: target file is missing"])
    known = set(known)
    out: dict[str, list[str]] = defaultdict(list)
    problems = []
    with path.open(newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header != TARGET_COLUMNS:
            raise DatasetError([f"{path}: header is {header!r}, expected {TARGET_COLUMNS!r} (tab-separated)"])
        for line, row in enumerate(reader, start=2):
            if len(row) != 2:
                problems.append(f"{path}:{line}: expected 2 tab-separated cells, got {row!r}")
                continue
            speaker, target = (c.strip().strip("/") for c in row)
            for name, key in (("speaker", speaker), ("target", target)):
                if key not in known:
                    problems.append(f"{path}:{line}: {name} {key!r} is no clip of the split")
            out[speaker].append(target)
    missing = [s for s in samples if not out.get(s)]
    if missing:
        problems.append(f"{path}: no target for {len(missing)} sample(s), e.g. {missing[0]!r}")
    if problems:
        raise DatasetError(problems)
    return {s: out[s] for s in samples}


@dataclass(frozen=True)
class MarsIndex:
    """A checked split: clips and their attributes, the samples, and their target sets."""

    clips: list[str]  # clip keys role/session/stem
    attributes: list[np.ndarray]  # per clip (T, 25) float32
    files: dict[str, dict[str, Path]]  # clip -> modality -> file
    samples: list[tuple[str, str]]  # (input clip, partner clip)
    targets: list[tuple[str, str]]  # (input clip, target clip)
    skipped: list[tuple[str, str]]  # (input clip, reason)
    junk: list[Path]


def build_index(root: Path, split: str, direction: str = "both", incomplete: str = "error",
                tolerance: int = LENGTH_TOLERANCE, target_seed: int = TARGET_SEED,
                modalities: Mapping[str, str] = REQUIRED) -> MarsIndex:
    """Walk, pair and check a split. Raises DatasetError listing every problem (`incomplete: error`), or
    drops the samples a problem touches and records them (`incomplete: skip`). The evaluation passes
    `modalities={ATTRIBUTES: ".npy"}`: scoring needs no media."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r}; choose one of {', '.join(DIRECTIONS)}")
    if incomplete not in ("error", "skip"):
        raise ValueError(f"incomplete {incomplete!r}; choose error or skip")
    found = walk_split(root, split, modalities)
    for path in found.junk:
        log.info("ignored junk entry %s", path)
    problems = found.problems
    keys = sorted({k for m in found.files.values() for k in m}, key=_sample_order)
    clip_files: dict[str, dict[str, Path]] = {}
    for key in keys:
        files = {m: found.files[m][key] for m in found.files if key in found.files[m]}
        role, session, stem = key.split("/")
        for modality, ext in modalities.items():
            if modality not in files:
                problems[key].append(f"{Path(root) / split / modality / role / session / stem}{ext}: "
                                     f"{modality} file of clip {key!r} is missing")
        if not any(partner_key(key) in m for m in found.files.values()):
            problems[key].append(f"{next(iter(files.values()))}: no paired {partner_key(key).split('/')[0]} "
                                 f"file {partner_key(key)!r} in any modality")
        clip_files[key] = files
    checkable = [k for k in keys if ATTRIBUTES in clip_files[k]]
    with ThreadPoolExecutor(max_workers=8) as pool:
        checked = dict(zip(checkable, pool.map(lambda k: check_clip(clip_files[k], tolerance), checkable)))
    for key, (_, found_problems) in checked.items():
        problems[key].extend(found_problems)
    if not keys and not problems[""]:
        problems[""].append(f"{Path(root) / split}: no clips found under {', '.join(modalities)}")
    bad = {k for k, p in problems.items() if p}
    if bad and (incomplete == "error" or not keys):
        raise DatasetError([p for k in ["", *keys] for p in problems.get(k, [])])
    roles = ROLES if direction == "both" else ROLES[:1]
    samples, skipped = [], [("", p) for p in problems.get("", [])]
    for key in keys:
        if key.split("/")[0] not in roles:
            continue
        reasons = problems.get(key, []) + problems.get(partner_key(key), [])
        if reasons:
            skipped.append((key, "; ".join(reasons)))
        else:
            samples.append((key, partner_key(key)))
    if not samples:
        raise DatasetError([f"{Path(root) / split}: every sample was skipped"] + [r for _, r in skipped])
    used = sorted({c for pair in samples for c in pair}, key=_sample_order)
    candidates: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key in used:
        role, session, _ = key.split("/")
        candidates[(role, session)].append(key)
    return MarsIndex(used, [checked[k][0] for k in used], {k: clip_files[k] for k in used}, samples,
                     draw_targets(samples, candidates, seed=target_seed), skipped, found.junk)


def write_rows(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A TSV with a header, atomically."""
    with atomic_output(path) as tmp:
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)


def write_index(index: MarsIndex, index_tsv: Path, emotions_h5: Path, targets_tsv: Path,
                skipped_tsv: Path | None = None, direction: str = "both") -> None:
    position = {c: i for i, c in enumerate(index.clips)}
    lengths = np.array([len(a) for a in index.attributes], dtype=np.int64)
    sessions = [c.split("/")[1] for c in index.clips]
    with atomic_output(emotions_h5) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["protocol"] = "react2025"
            f.attrs["direction"] = direction
            f.attrs["fps"] = FPS
            f.create_dataset("clips", data=np.array(index.clips, dtype=object), dtype=h5py.string_dtype())
            f.create_dataset("sessions", data=np.array(sessions, dtype=object), dtype=h5py.string_dtype())
            f.create_dataset("lengths", data=lengths)
            f.create_dataset("offsets", data=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
            f.create_dataset("emotions", data=np.concatenate(index.attributes), compression="gzip",
                             compression_opts=1)
            f.create_dataset("speaker_index", data=np.array([position[s] for s, _ in index.samples], np.int64))
            f.create_dataset("listener_index", data=np.array([position[p] for _, p in index.samples], np.int64))
    write_rows(targets_tsv, TARGET_COLUMNS, index.targets)
    if skipped_tsv is not None:
        write_rows(skipped_tsv, SKIPPED_COLUMNS, index.skipped)
    write_rows(index_tsv, INDEX_COLUMNS, (
        [k, s, p, s.split("/")[1], lengths[position[s]], lengths[position[p]], index.files[s].get(VIDEO, ""),
         index.files[s].get(AUDIO, ""), index.files[s][ATTRIBUTES]] for k, (s, p) in enumerate(index.samples)))


@dataclass(frozen=True)
class MarsCache:
    """A MARS split's attributes as `index_split` cached them."""

    clips: list[str]
    sessions: list[str]
    emotions: np.ndarray  # (sum of lengths, 25) float32
    offsets: np.ndarray  # (clips + 1,)
    speaker_index: np.ndarray  # (samples,) clip of each sample's input
    listener_index: np.ndarray  # (samples,) clip of each sample's partner

    def series(self, clip: int | str) -> np.ndarray:
        i = self.clips.index(clip) if isinstance(clip, str) else clip
        return self.emotions[self.offsets[i]:self.offsets[i + 1]]

    @property
    def samples(self) -> list[str]:
        return [self.clips[i] for i in self.speaker_index]


def load_cache(path: Path) -> MarsCache:
    with h5py.File(path, "r") as f:
        if f.attrs.get("protocol") != "react2025":
            raise DatasetError([f"{path}: not a MARS (react2025) emotion cache"])
        return MarsCache(decode_strings(f["clips"][()]), decode_strings(f["sessions"][()]), f["emotions"][()],
                         f["offsets"][()], f["speaker_index"][()], f["listener_index"][()])


def index_split(root: Path, split: str, index_tsv: Path, emotions_h5: Path, targets_tsv: Path,
                skipped_tsv: Path | None = None, direction: str = "both", incomplete: str = "error",
                tolerance: int = LENGTH_TOLERANCE) -> int:
    """Build, check and write a split's index; returns the number of samples."""
    index = build_index(root, split, direction, incomplete, tolerance)
    if index.junk:
        log.info("ignored %d junk entries (._*, .DS_Store, __MACOSX, PaxHeader) in %s", len(index.junk),
                 Path(root) / split)
    for clip, reason in index.skipped:
        log.warning("skipped %s: %s", clip or "(no clip)", reason)
    write_index(index, index_tsv, emotions_h5, targets_tsv, skipped_tsv, direction)
    return len(index.samples)
