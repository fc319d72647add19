"""Tests that need a server, a browser or shared data skip without it, unless JIESU_REQUIRE_ALL=1 (as in CI)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

REQUIRE_ALL = os.environ.get("JIESU_REQUIRE_ALL") == "1"


def skip_or_fail(reason: str) -> None:
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (mandatory because JIESU_REQUIRE_ALL=1)")
    pytest.skip(reason)


def require_chinese_font() -> None:
    """For the layout tests that measure Chinese text: without a Chinese font Chromium draws boxes instead."""
    fc_list = shutil.which("fc-list")
    if not (fc_list and subprocess.run([fc_list, ":lang=zh"], capture_output=True, text=True).stdout.strip()):
        skip_or_fail("no Chinese font for Chromium (apt-get install fonts-noto-cjk)")
