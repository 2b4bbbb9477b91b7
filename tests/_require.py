"""Prerequisites of tests (shared data folders, external tools): skipped on a developer's
machine that lacks them, a failure in CI (``CI=true``) so nothing passes by being skipped."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(present: bool, what: str) -> None:
    """Skip the calling test when ``what`` is missing; in CI fail instead."""
    if present:
        return
    if IN_CI:
        pytest.fail(f"{what} is missing, and CI must run every test")
    pytest.skip(f"{what} not available")
