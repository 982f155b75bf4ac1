"""Shared fixtures: a tiny synthetic REACT dataset generated once per test session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from regnn.data.synthetic import SyntheticSettings, write_dataset

TINY = SyntheticSettings(seed=3, sessions={"train": 1, "val": 1, "test": 1}, clips_per_session=2,
                         frame_size=32, audio_rate=8000)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_dataset_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny") / "react"
    write_dataset(root, TINY)
    return root


@pytest.fixture
def tiny_dataset(tiny_dataset_master: Path, tmp_path: Path) -> Path:
    """A private copy a test may damage."""
    root = tmp_path / "react"
    shutil.copytree(tiny_dataset_master, root)
    return root
