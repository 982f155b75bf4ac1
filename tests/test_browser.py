"""The report test's browser lookup: $REGNN_BROWSER first, else a Chromium on PATH, else None (the test then
skips and says why)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import find_browser


def test_find_browser(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("REGNN_BROWSER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_browser() is None
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert find_browser() == str(fake)
    monkeypatch.setenv("REGNN_BROWSER", "/opt/other/chrome")
    assert find_browser() == "/opt/other/chrome"
