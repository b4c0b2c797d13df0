"""Shared fixtures: a small real dataset prepared by the real code, offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from genmodels.config import DataParams
from genmodels.data.prepared import PreparedData, load_prepared, prepare


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory) -> Path:
    """scikit-learn's bundled digits, scaled to 28x28 by the prepare stage's own code."""
    out = tmp_path_factory.mktemp("digits") / "prepared"
    prepare(DataParams(name="digits", prepared_dir=str(out), download=False))
    return out


@pytest.fixture(scope="session")
def digits_prepared(digits_dir) -> PreparedData:
    return load_prepared(digits_dir)
