"""Tests that need a server, a browser or shared data skip without it, unless JIESU_REQUIRE_ALL=1 (as in CI)."""

from __future__ import annotations

import os

import pytest

REQUIRE_ALL = os.environ.get("JIESU_REQUIRE_ALL") == "1"


def skip_or_fail(reason: str) -> None:
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (mandatory because JIESU_REQUIRE_ALL=1)")
    pytest.skip(reason)
