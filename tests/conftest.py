"""Shared fixtures: every library test body runs once per available array backend.

``xp`` yields NumPy, ``array_api_strict`` (a strict non-NumPy stand-in so that a
NumPy-only call cannot hide) and CuPy when a GPU is present; the CuPy case is
skipped with the reason otherwise.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from skip_summary import pytest_terminal_summary  # noqa: F401 - the hook: one summary line per skip reason

from dlcore import backend


def _cupy_reason() -> str | None:
    try:
        importlib.import_module("cupy")
    except ImportError:
        return "CuPy is not installed (install the 'gpu' extra on a machine with a CUDA GPU)"
    if not backend.gpu_available():
        return "CuPy is installed but no CUDA device is visible"
    return None


BACKENDS = [
    pytest.param("numpy", id="numpy"),
    pytest.param("array_api_strict", id="strict"),
    pytest.param("cupy", id="cupy", marks=pytest.mark.skipif(_cupy_reason() is not None, reason=str(_cupy_reason()))),
]


@pytest.fixture(params=BACKENDS)
def xp(request):
    """The array namespace under test."""
    return backend.resolve(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def pytest_report_header(config):
    reason = _cupy_reason()
    cupy = "available" if reason is None else f"skipped: {reason}"
    return [f"array backends: numpy, array_api_strict, cupy ({cupy})"]
